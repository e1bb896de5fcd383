"""``minibatch_discrimination``'s self-test cases: 40 samples (two row programs and three column tiles at the GPU's
32 x 16 blocks, three at the interpreter's 16), 10 channels (two channel chunks of 8), 3 kernels; a sliced input,
and five rows duplicated exactly (the zero subgradient of |0|)."""

import torch

from ...backends import minibatch_discrimination as B
from ...params import minibatch_discrimination as P

BACKENDS = tuple(b for b in B.SPEC.backends if b != "ref")


def duplicated_rows(device, gen):
    m = (0.3 * torch.randn(35, 3, 11, generator=gen, device=device)).requires_grad_()

    def run(impl, t):
        m = t[0][:, :, 1:]
        m = torch.cat([m[:5], m])  # rows 0-4 equal rows 5-9
        return (B.run(impl, P.validate(m), m),)
    return run, [m]


CASES = (duplicated_rows,)

"""``gradient_norm_penalty``'s self-test cases: every center / one-sided / reduction mode over samples larger
than one GPU block per split (4920 entries each), and a sliced input."""

import torch

from ...backends import gradient_norm_penalty as B
from ...params import gradient_norm_penalty as P

BACKENDS = tuple(b for b in B.SPEC.backends if b != "ref")


def _penalty(impl, g, center=0.0, one_sided=False, reduction="mean"):
    return B.run(impl, P.validate(g, center, one_sided, reduction), g)


def modes(device, gen):
    g = (torch.randn(3, 3, 40, 42, generator=gen, device=device) * 0.02).requires_grad_()

    def run(impl, t):
        g = t[0][..., 1:]
        return (_penalty(impl, g, center=1.0, one_sided=True, reduction="none"),
                _penalty(impl, g, center=1.0, reduction="sum"),
                _penalty(impl, g))
    return run, [g]


CASES = (modes,)

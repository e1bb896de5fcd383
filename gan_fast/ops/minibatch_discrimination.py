"""Public ``minibatch_discrimination``: the pairwise part of minibatch discrimination (Salimans et al., 2016)."""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch

from .. import backend, checks, self_test
from ..reference import minibatch_discrimination as reference

FAST_BACKENDS: Dict[str, Sequence[str]] = {"cuda": ("triton",)}


def minibatch_discrimination(m: torch.Tensor, impl: Optional[str] = None) -> torch.Tensor:
    """Closeness of each sample to the rest of the batch, per kernel: the pairwise part of minibatch discrimination.

    ``o[i, b] = sum over j != i of exp(-sum_c |m[i, b, c] - m[j, b, c]|)``

    (the reference code's form; the paper's equation also counts j = i, which adds 1). The
    gradient of ``|0|`` is taken as 0, so identical rows, which mode collapse produces, get a
    finite gradient. Differentiable to second order on every backend (it sits inside D, under
    R1); the ``triton`` backend never materialises the [N, N, B, C] differences.

    Args:
        m: [N, B, C], floating: N samples, B kernels, C kernel dimensions (the
            ``x @ T`` of :class:`gan_fast.nn.MinibatchDiscrimination`). Any strides.
        impl: None (automatic), 'ref' or 'triton'.

    Returns:
        o: [N, B] in ``m``'s dtype (arithmetic in float32 for float16/bfloat16).
    """
    checks.tensor("m", m, ndim=3, shape_hint="[N, B, C]")
    impl = backend.resolve("minibatch_discrimination", impl, m.device, FAST_BACKENDS, m.dtype)
    if impl == "ref" or m.numel() == 0:  # empty inputs never reach a kernel
        return reference.minibatch_discrimination(m)
    from ..fused import minibatch_discrimination as fused  # noqa: PLC0415 - fast paths load lazily

    return fused.minibatch_discrimination(m, impl)


def _self_test_cases():
    """40 samples (two row programs and three column tiles at the GPU's 32 x 16 blocks, three at the
    interpreter's 16), 10 channels (two channel chunks of 8), 3 kernels; a sliced input, and five rows
    duplicated exactly (the zero subgradient of |0|)."""
    def case(device, gen):
        m = (0.3 * torch.randn(35, 3, 11, generator=gen, device=device)).requires_grad_()

        def run(impl, t):
            m = t[0][:, :, 1:]
            m = torch.cat([m[:5], m])  # rows 0-4 equal rows 5-9
            return (minibatch_discrimination(m, impl=impl),)
        return run, [m]
    return [case]


self_test.register("minibatch_discrimination", _self_test_cases(), FAST_BACKENDS)

"""Public ``minibatch_discrimination``: the pairwise part of minibatch discrimination (Salimans et al., 2016)."""

from __future__ import annotations

from typing import Optional

import torch

from .. import backend
from ..backends import minibatch_discrimination as backends
from ..params import minibatch_discrimination as params

__all__ = ["minibatch_discrimination"]


def minibatch_discrimination(m: torch.Tensor, impl: Optional[str] = None) -> torch.Tensor:
    """Closeness of each sample to the rest of the batch, per kernel: the pairwise part of minibatch discrimination.

    ``o[i, b] = sum over j != i of exp(-sum_c |m[i, b, c] - m[j, b, c]|)``

    (the reference code's form; the paper's equation also counts j = i, which adds 1). The
    gradient of ``|0|`` is taken as 0, so identical rows, which mode collapse produces, get a
    finite gradient. Differentiable to second order on every backend (it sits inside D, under
    R1); the ``triton`` backend never materialises the [N, N, B, C] differences.

    Args:
        m: [N, B, C], floating: N samples, B kernels, C kernel dimensions (the
            ``x @ T`` of :class:`gan_fast.nn.MinibatchDiscrimination`). Any strides. An empty m gets the
            reference's result whatever ``impl``.
        impl: None (automatic), 'ref' or 'triton'.

    Returns:
        o: [N, B] in ``m``'s dtype (arithmetic in float32 for float16/bfloat16).
    """
    p = params.validate(m)
    chosen = backend.choose(backends.SPEC, impl, m.device, m.dtype)
    if m.numel() == 0:
        chosen = "ref"  # empty inputs never reach a kernel
    return backends.run(chosen, p, m)

"""Public ``gradient_norm_penalty``: the part of a gradient penalty after the input gradient is known."""

from __future__ import annotations

from typing import Optional

import torch

from .. import backend
from ..backends import gradient_norm_penalty as backends
from ..params import gradient_norm_penalty as params
from ..params.gradient_norm_penalty import REDUCTIONS, check_reduction  # noqa: F401 - the regularizers' import

__all__ = ["gradient_norm_penalty"]


def gradient_norm_penalty(grads: torch.Tensor, center: float = 0.0, one_sided: bool = False,
                          reduction: str = "mean", impl: Optional[str] = None) -> torch.Tensor:
    """Penalty on the per-sample L2 norm n of ``grads`` over all non-batch dims.

    n^2 when ``center`` is 0, (n - center)^2 otherwise, max(0, n - center)^2 when
    ``one_sided``. Differentiable to second order (``grads`` usually carries a
    graph from ``autograd.grad(..., create_graph=True)``).

    Args:
        grads: [N, ...], floating; accumulated in float32 at least. N = 0 is valid with
            reduction 'none' (an empty [0] tensor) or 'sum' (0); 'mean' raises ValueError.
            Empty grads get the reference's result whatever ``impl``.
        center: the target norm, a finite number >= 0.
        one_sided: penalise only norms above ``center``.
        reduction: 'mean' | 'sum' | 'none' (a [N] float32-or-wider tensor).
        impl: None (automatic), 'ref' or 'triton'.
    """
    p = params.validate(grads, center, one_sided, reduction)
    chosen = backend.choose(backends.SPEC, impl, grads.device, grads.dtype)
    if grads.numel() == 0:
        chosen = "ref"  # an empty batch (or empty samples) never reaches a kernel
    return backends.run(chosen, p, grads)

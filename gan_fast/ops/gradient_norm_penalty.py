"""Public ``gradient_norm_penalty``: the part of a gradient penalty after the input gradient is known."""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch

from .. import backend, checks, self_test
from ..reference import gradient_norm_penalty as reference

FAST_BACKENDS: Dict[str, Sequence[str]] = {"cuda": ("triton",)}
REDUCTIONS = ("mean", "sum", "none")


def gradient_norm_penalty(grads: torch.Tensor, center: float = 0.0, one_sided: bool = False,
                          reduction: str = "mean", impl: Optional[str] = None) -> torch.Tensor:
    """Penalty on the per-sample L2 norm n of ``grads`` over all non-batch dims.

    n^2 when ``center`` is 0, (n - center)^2 otherwise, max(0, n - center)^2 when
    ``one_sided``. Differentiable to second order (``grads`` usually carries a
    graph from ``autograd.grad(..., create_graph=True)``).

    Args:
        grads: [N, ...], floating; accumulated in float32 at least. N = 0 is valid with
            reduction 'none' (an empty [0] tensor) or 'sum' (0); 'mean' raises ValueError.
        center: the target norm, a finite number >= 0.
        one_sided: penalise only norms above ``center``.
        reduction: 'mean' | 'sum' | 'none' (a [N] float32-or-wider tensor).
        impl: None (automatic), 'ref', 'triton' or 'cpp'.
    """
    checks.tensor("grads", grads, shape_hint="[N, ...]")
    if grads.ndim < 1:
        raise ValueError("grads must be [N, ...] with a batch dimension, got a 0-d tensor")
    center = checks.number("center", center, minimum=0)
    reduction = check_reduction(reduction, grads.shape[0], "grads")
    impl = backend.resolve("gradient_norm_penalty", impl, grads.device, FAST_BACKENDS, grads.dtype)
    if impl == "ref" or grads.numel() == 0:  # an empty batch (or empty samples) never reaches a kernel
        return reference.gradient_norm_penalty(grads, center, bool(one_sided), reduction)
    from ..fused import gradient_norm_penalty as fused  # noqa: PLC0415

    return fused.gradient_norm_penalty(grads, center, bool(one_sided), reduction, impl)


def check_reduction(reduction, batch: int, name: str) -> str:
    """``reduction`` checked, given the batch size of ``name``: no mean over an empty batch."""
    checks.choice("reduction", reduction, REDUCTIONS)
    if batch == 0 and reduction == "mean":
        raise ValueError(f"reduction='mean' over an empty batch ({name} has N = 0 samples) is undefined; use "
                         "reduction='sum' (0) or 'none' (an empty tensor)")
    return reduction


def _self_test_cases():
    """Every center / one-sided / reduction mode over samples larger than one GPU block per split
    (4920 entries each), and a sliced input."""
    def case(device, gen):
        g = (torch.randn(3, 3, 40, 42, generator=gen, device=device) * 0.02).requires_grad_()

        def run(impl, t):
            g = t[0][..., 1:]
            return (gradient_norm_penalty(g, center=1.0, one_sided=True, reduction="none", impl=impl),
                    gradient_norm_penalty(g, center=1.0, reduction="sum", impl=impl),
                    gradient_norm_penalty(g, impl=impl))
        return run, [g]
    return [case]


self_test.register("gradient_norm_penalty", _self_test_cases(), FAST_BACKENDS)

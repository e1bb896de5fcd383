"""``gradient_norm_penalty``'s parameter record, its validation, and the ``reduction`` check that the
regularizers share."""

from __future__ import annotations

from typing import NamedTuple

import torch

from .. import checks

__all__ = ["GradientNormPenaltyParams", "REDUCTIONS", "validate", "check_reduction"]

REDUCTIONS = ("mean", "sum", "none")


class GradientNormPenaltyParams(NamedTuple):
    """Per sample, on the L2 norm n of the sample's gradient: n^2 when ``center`` is 0, (n - center)^2
    otherwise, max(0, n - center)^2 when ``one_sided``; reduced by ``reduction``.

    Attributes:
        center: the target norm, a finite number >= 0.
        one_sided: penalise only norms above ``center``.
        reduction: 'mean' | 'sum' | 'none'.
    """

    center: float
    one_sided: bool
    reduction: str


def check_reduction(reduction, batch: int, name: str) -> str:
    """``reduction`` checked, given the batch size of ``name``: no mean over an empty batch."""
    checks.choice("reduction", reduction, REDUCTIONS)
    if batch == 0 and reduction == "mean":
        raise ValueError(f"reduction='mean' over an empty batch ({name} has N = 0 samples) is undefined; use "
                         "reduction='sum' (0) or 'none' (an empty tensor)")
    return reduction


def validate(grads: torch.Tensor, center, one_sided, reduction) -> GradientNormPenaltyParams:
    """Checks a ``gradient_norm_penalty`` call: grads [N, ...] floating."""
    checks.tensor("grads", grads, shape_hint="[N, ...]")
    if grads.ndim < 1:
        raise ValueError("grads must be [N, ...] with a batch dimension, got a 0-d tensor")
    center = checks.number("center", center, minimum=0)
    reduction = check_reduction(reduction, grads.shape[0], "grads")
    return GradientNormPenaltyParams(center, bool(one_sided), reduction)

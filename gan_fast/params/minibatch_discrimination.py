"""``minibatch_discrimination``'s parameter record (it has no parameters) and its validation."""

from __future__ import annotations

from typing import NamedTuple

import torch

from .. import checks

__all__ = ["MinibatchDiscriminationParams", "validate"]


class MinibatchDiscriminationParams(NamedTuple):
    """``o[i, b] = sum over j != i of exp(-sum_c |m[i, b, c] - m[j, b, c]|)``: no parameters beyond m."""


_PARAMS = MinibatchDiscriminationParams()


def validate(m: torch.Tensor) -> MinibatchDiscriminationParams:
    """Checks a ``minibatch_discrimination`` call: m [N, B, C] floating (any strides)."""
    checks.tensor("m", m, ndim=3, shape_hint="[N, B, C]")
    return _PARAMS

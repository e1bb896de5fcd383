"""Reference spectral normalisation of a weight: the spec of ``gan_fast.ops.spectral_normalize``."""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from .power_iteration import power_iteration


def weight_to_matrix(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Moves ``dim`` to the front and flattens the rest: [shape[dim], prod(other dims)]."""
    if dim != 0:
        weight = weight.permute(dim, *(d for d in range(weight.ndim) if d != dim))
    return weight.flatten(1)


def spectral_normalize(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor, dim: int, n_iterations: int,
                       eps: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weight / sigma, u, v) after ``n_iterations`` power-iteration steps, as PyTorch's
    ``parametrizations.spectral_norm`` computes it; a 1-D weight is simply normalised
    (u and v are then returned unchanged)."""
    if weight.ndim == 1:
        return F.normalize(weight, dim=0, eps=eps), u, v
    sigma, u, v = power_iteration(weight_to_matrix(weight, dim), u, v, n_iterations, eps)
    return weight / sigma, u, v

"""``power_iteration``'s parameter record and its validation."""

from __future__ import annotations

from typing import NamedTuple

import torch

from .. import checks

__all__ = ["PowerIterationParams", "validate"]


class PowerIterationParams(NamedTuple):
    """``n_iterations`` updates ``u <- normalize(W v, eps)``, ``v <- normalize(W^H u, eps)``, then
    ``sigma = u^H W v`` (``torch.nn.utils.parametrizations.spectral_norm``'s order and eps).

    Attributes:
        n_iterations: >= 0 (0 only evaluates sigma, as in eval mode).
        eps: a finite number > 0, the normalisation epsilon.
    """

    n_iterations: int
    eps: float


def validate(weight_mat: torch.Tensor, u: torch.Tensor, v: torch.Tensor, n_iterations, eps) -> PowerIterationParams:
    """Checks a ``power_iteration`` call: weight_mat [h, w] floating or complex, u [h], v [w] on its device."""
    checks.tensor("weight_mat", weight_mat, ndim=2, shape_hint="[h, w]", complex_ok=True)
    h, w = weight_mat.shape
    checks.tensor("u", u, ndim=1, shape_hint=f"[{h}] (weight_mat.shape[0])", complex_ok=True)
    checks.tensor("v", v, ndim=1, shape_hint=f"[{w}] (weight_mat.shape[1])", complex_ok=True)
    if u.shape[0] != h:
        raise ValueError(f"u must have shape [{h}] (weight_mat.shape[0]), got {tuple(u.shape)}")
    if v.shape[0] != w:
        raise ValueError(f"v must have shape [{w}] (weight_mat.shape[1]), got {tuple(v.shape)}")
    checks.same_device(weight_mat=weight_mat, u=u, v=v)
    return PowerIterationParams(checks.positive_int("n_iterations", n_iterations, minimum=0),
                                checks.positive_number("eps", eps))

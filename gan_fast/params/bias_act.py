"""``bias_act``'s parameter record and its validation."""

from __future__ import annotations

import numbers
from typing import NamedTuple, Optional

import torch

from .. import activations, checks

__all__ = ["BiasActParams", "validate", "activation_args"]


class BiasActParams(NamedTuple):
    """``y = clamp(act(x + b[dim], alpha) * gain, -clamp, clamp)``.

    Attributes:
        dim: the dimension of x that b indexes, in [0, x.ndim).
        act: the activation's name (a key of ``gan_fast.activations.ACTIVATIONS``).
        alpha, gain: the activation's parameters with their defaults applied.
        clamp: None (no clamp) or a bound >= 0.
    """

    dim: int
    act: str
    alpha: float
    gain: float
    clamp: Optional[float]


def activation_args(spec: activations.Activation, alpha, gain, clamp):
    """(alpha, gain, clamp) checked, with the activation's defaults for None alpha and gain."""
    alpha = spec.def_alpha if alpha is None else checks.optional_number("alpha", alpha)
    gain = spec.def_gain if gain is None else checks.optional_number("gain", gain)
    clamp = checks.optional_number("clamp", clamp, minimum=0)
    return alpha, gain, clamp


def validate(x: torch.Tensor, b: Optional[torch.Tensor], dim, act, alpha, gain, clamp) -> BiasActParams:
    """Checks a ``bias_act`` call: x any floating tensor of >= 1 dims, b None or [x.shape[dim]] on x's device."""
    x = checks.tensor("x", x)
    spec = activations.get(act)
    if type(dim) is not int:  # numpy integers too; never a bool
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"dim must be an int, got {type(dim).__name__}")
        dim = int(dim)
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension")
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"dim must be in [{-x.ndim}, {x.ndim - 1}] for x of shape {tuple(x.shape)}, got {dim}")
    dim = dim % x.ndim
    # b: the common valid case costs four attribute reads; the checks that name what is wrong run otherwise
    if b is not None and not (isinstance(b, torch.Tensor) and b.ndim == 1 and b.shape[0] == x.shape[dim]
                              and b.is_floating_point() and b.device == x.device):
        checks.tensor("b", b, ndim=1, shape_hint=f"[{x.shape[dim]}] (x.shape[dim])")
        if b.shape[0] != x.shape[dim]:
            raise ValueError(f"b must have shape [{x.shape[dim]}] (x.shape[{dim}]), got {tuple(b.shape)}")
        checks.same_device(x=x, b=b)
    alpha, gain, clamp = activation_args(spec, alpha, gain, clamp)
    return BiasActParams(dim, act, alpha, gain, clamp)

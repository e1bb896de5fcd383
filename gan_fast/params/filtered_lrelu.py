"""``filtered_lrelu``'s parameter record and its validation."""

from __future__ import annotations

import numbers
from typing import NamedTuple, Optional, Tuple

import torch

from .. import checks
from ..shapes import filter_wh, filtered_lrelu_size

__all__ = ["FilteredLReLUParams", "FACTORS", "validate"]

FACTORS = (1, 2, 4)  # the up/down factors of the public op (gan_fast.compat takes any integer, through ref)


class FilteredLReLUParams(NamedTuple):
    """``y = Down(fd, down)(clamp(lrelu(Up(fu, up, padding, gain=up**2)(x + b), slope) * gain, -clamp, clamp))``.

    Attributes:
        up, down: the factors (both axes).
        padding: (x0, x1, y0, y1), applied after the zero insertion; negative values crop.
        gain, slope: the activation's gain and negative slope.
        clamp: None (no clamp) or a bound >= 0.
        flip_filter: False = true convolution with the filters, True = correlation.
    """

    up: int
    down: int
    padding: Tuple[int, int, int, int]
    gain: float
    slope: float
    clamp: Optional[float]
    flip_filter: bool


def _factor(name: str, value, any_factor: bool) -> int:
    if type(value) is not int:  # numpy integers too; never a bool
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        value = int(value)
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    if not any_factor and value not in FACTORS:
        raise ValueError(f"{name} must be one of {FACTORS}, got {value}")
    return value


def validate(x: torch.Tensor, fu: Optional[torch.Tensor], fd: Optional[torch.Tensor], b: Optional[torch.Tensor],
             up, down, padding, gain, slope, clamp, flip_filter, any_factor: bool = False) -> FilteredLReLUParams:
    """Checks a ``filtered_lrelu`` call (x [N, C, H, W]; fu, fd None, [ft] or [fh, fw]; b None or [C]; all on
    x's device) and that it leaves an output; named ``TypeError``/``ValueError``.

    ``any_factor``: accept any integer up/down >= 1 (the compat layer, which runs those through ``ref``).
    """
    checks.tensor("x", x, ndim=4, shape_hint="[N, C, H, W]")
    for name, f in (("fu", fu), ("fd", fd)):
        if f is not None:
            checks.tensor(name, f, ndim=(1, 2), shape_hint="[ft] (separable) or [fh, fw]")
            if f.numel() == 0:
                raise ValueError(f"{name} must have at least one tap, got shape {tuple(f.shape)}")
    if b is not None:
        checks.tensor("b", b, ndim=1, shape_hint=f"[{x.shape[1]}] (x.shape[1])")
        if b.shape[0] != x.shape[1]:
            raise ValueError(f"b must have shape [{x.shape[1]}] (x.shape[1]), got {tuple(b.shape)}")
    checks.same_device(x=x, fu=fu, fd=fd, b=b)
    up = _factor("up", up, any_factor)
    down = _factor("down", down, any_factor)
    pad = checks.padding4("padding", padding)
    gain = checks.number("gain", gain)
    slope = checks.number("slope", slope)
    clamp = checks.optional_number("clamp", clamp, minimum=0)
    oh, ow = filtered_lrelu_size(x.shape[2], x.shape[3], filter_wh(fu), filter_wh(fd), up, down, pad)
    if oh < 1 or ow < 1:
        raise ValueError(f"filtered_lrelu: padding {pad}, up {up}, down {down} and filters of shapes "
                         f"{None if fu is None else tuple(fu.shape)} / {None if fd is None else tuple(fd.shape)} "
                         f"leave no output for x of shape {tuple(x.shape)} (output would be {oh}x{ow})")
    return FilteredLReLUParams(up, down, pad, gain, slope, clamp, bool(flip_filter))

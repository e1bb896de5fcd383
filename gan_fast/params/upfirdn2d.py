"""``upfirdn2d``'s parameter record and its validation, and the filter checks its callers share."""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch

from .. import checks
from ..shapes import filter_wh, upfirdn2d_length

__all__ = ["UpFirDn2dParams", "validate", "filter_size", "output_length", "filter2d_padding", "upsample2d_padding",
           "downsample2d_padding"]


class UpFirDn2dParams(NamedTuple):
    """Insert ``up - 1`` zeros, pad (negative crops), convolve with the filter times ``gain`` (a correlation
    when ``flip_filter``), keep every ``down``-th sample. Pairs are (x, y); padding is (x0, x1, y0, y1)."""

    up: Tuple[int, int]
    down: Tuple[int, int]
    padding: Tuple[int, int, int, int]
    flip_filter: bool
    gain: float


def filter_size(f: Optional[torch.Tensor], name: str = "f") -> Tuple[int, int]:
    """(fw, fh) of a filter tensor ([fh, fw] or separable [ft]); (1, 1) for None. Named errors otherwise."""
    if f is None:
        return 1, 1
    checks.tensor(name, f, ndim=(1, 2), shape_hint="[fh, fw] or [ft]")
    if f.numel() == 0:
        raise ValueError(f"{name} must have at least one tap, got shape {tuple(f.shape)}")
    return filter_wh(f)


def output_length(name: str, length: int, up: int, down: int, p0: int, p1: int, taps: int) -> int:
    """upfirdn2d's output length along one axis, after checking that the up-sampled and padded lengths fit in
    int64 (so no backend can overflow computing them)."""
    checks.fits_int64(name, length * up, "the up-sampled length")
    checks.fits_int64(name, length * up + p0 + p1, "the padded length")
    return upfirdn2d_length(length, up, down, p0, p1, taps)


def validate(x: torch.Tensor, f: Optional[torch.Tensor], up, down, padding, flip_filter, gain) -> UpFirDn2dParams:
    """Checks an ``upfirdn2d`` call (x [N, C, H, W]; f [fh, fw], [ft] or None on x's device) and that it leaves
    an output of int64 size."""
    checks.tensor("x", x, ndim=4, shape_hint="[N, C, H, W]")
    fw, fh = filter_size(f)
    checks.same_device(x=x, f=f)
    upxy = checks.int_pair("up", up)
    downxy = checks.int_pair("down", down)
    pad = checks.padding4("padding", padding)
    gain = checks.number("gain", gain)
    out_w = output_length("upfirdn2d (up, padding)", x.shape[3], upxy[0], downxy[0], pad[0], pad[1], fw)
    out_h = output_length("upfirdn2d (up, padding)", x.shape[2], upxy[1], downxy[1], pad[2], pad[3], fh)
    if out_w < 1 or out_h < 1:
        raise ValueError(f"upfirdn2d: padding {pad}, up {upxy}, down {downxy} and a {fh}x{fw} filter leave "
                         f"no output for x of shape {tuple(x.shape)} (output would be {out_h}x{out_w})")
    checks.fits_int64("upfirdn2d (up, padding)", x.shape[0] * x.shape[1] * out_h * out_w, "the output's size")
    for name, v in (("up", upxy), ("down", downxy)):
        checks.fits_int64(name, max(v), "a factor")  # only reachable for an empty x
    return UpFirDn2dParams(upxy, downxy, pad, bool(flip_filter), gain)


# The padding of the resampling helpers (``ops.filter2d``, ``upsample2d``, ``downsample2d``): the filter's reach
# centred, plus the caller's own (x0, x1, y0, y1).


def filter2d_padding(fw: int, fh: int, pad: Tuple[int, int, int, int]) -> Tuple[int, int, int, int]:
    x0, x1, y0, y1 = pad
    return x0 + fw // 2, x1 + (fw - 1) // 2, y0 + fh // 2, y1 + (fh - 1) // 2


def upsample2d_padding(fw: int, fh: int, upx: int, upy: int,
                       pad: Tuple[int, int, int, int]) -> Tuple[int, int, int, int]:
    x0, x1, y0, y1 = pad
    return x0 + (fw + upx - 1) // 2, x1 + (fw - upx) // 2, y0 + (fh + upy - 1) // 2, y1 + (fh - upy) // 2


def downsample2d_padding(fw: int, fh: int, downx: int, downy: int,
                         pad: Tuple[int, int, int, int]) -> Tuple[int, int, int, int]:
    x0, x1, y0, y1 = pad
    return (x0 + (fw - downx + 1) // 2, x1 + (fw - downx) // 2, y0 + (fh - downy + 1) // 2,
            y1 + (fh - downy) // 2)

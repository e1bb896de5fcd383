"""Convolution combined with FIR up/downsampling for the modules.

The one algorithm lives in :mod:`gan_fast.reference.conv2d_resample` (the
spec); here its FIR steps run through :func:`gan_fast.ops.upfirdn2d`, so the
fast backends apply to the modules that use it (the convolutions already go
through :mod:`gan_fast.conv2d_gradfix`, honouring ``no_weight_gradients``).
"""

from __future__ import annotations

import numbers
from typing import Optional

import torch

from .. import checks, ops
from ..ops.upfirdn2d import filter_size
from ..reference.conv2d_resample import conv2d_resample as _conv2d_resample


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: Optional[torch.Tensor] = None, up: int = 1, down: int = 1,
                    padding: int = 0, groups: int = 1, flip_weight: bool = True) -> torch.Tensor:
    """``downsample(conv(upsample(x)))`` as StyleGAN2 composes them.

    Args:
        x: [N, C, H, W]; w: [O, C // groups, kh, kw] (cast to x's dtype); f: FIR filter
        (``setup_filter``) or None; up/down: integer factors; padding: int (before the
        resampling adjustment, so that k=3, padding=1 and up/down=2 exactly double/halve H, W).
        flip_weight: True = correlation (as ``F.conv2d``), False = true convolution.

    Returns:
        [N, O, H', W'].
    """
    checks.tensor("x", x, ndim=4, shape_hint="[N, C, H, W]")
    checks.tensor("w", w, ndim=4, shape_hint="[O, C // groups, kh, kw]")
    groups = checks.positive_int("groups", groups)
    if x.shape[1] != w.shape[1] * groups or w.shape[0] % groups != 0:
        raise ValueError(f"w must have shape [O, {x.shape[1] // groups}, kh, kw] with O divisible by groups={groups} "
                         f"for x with {x.shape[1]} channels, got {tuple(w.shape)}")
    up = checks.positive_int("up", up)
    down = checks.positive_int("down", down)
    if isinstance(padding, bool) or not isinstance(padding, numbers.Integral):
        raise TypeError(f"padding must be an int, got {type(padding).__name__}")
    if (up > 1 or down > 1) and f is None:
        raise ValueError("f is required when up or down > 1 (e.g. setup_filter([1, 3, 3, 1]))")
    filter_size(f)
    checks.same_device(x=x, w=w, f=f)
    if w.dtype != x.dtype:
        w = w.to(x.dtype)
    return conv2d_resample_unchecked(x, w, f, up, down, int(padding), groups, bool(flip_weight))


def conv2d_resample_unchecked(x: torch.Tensor, w: torch.Tensor, f: Optional[torch.Tensor] = None, up: int = 1,
                              down: int = 1, padding: int = 0, groups: int = 1,
                              flip_weight: bool = True) -> torch.Tensor:
    """:func:`conv2d_resample` without the argument checks, for the modules (which check their inputs)."""
    def fir(x, f, up, down, pad, gain):
        return ops.upfirdn2d(x, f, up=up, down=down, padding=list(pad), gain=gain)

    return _conv2d_resample(x, w, f, up, down, (padding,) * 4, groups=groups, flip_weight=flip_weight, fir=fir)

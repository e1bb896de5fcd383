"""Convolution combined with FIR up/downsampling, as StyleGAN2 composes them.

Definition (the spec): with ``f`` the resampling filter,
``y = downsample(conv(upsample(x)))`` where ``upsample`` inserts ``up - 1``
zeros, pads and filters with ``f * up**2``, ``conv`` is a valid correlation
with ``w`` (a true convolution when ``flip_weight=False``), and ``downsample``
filters with ``f`` and keeps every ``down``-th sample. The padding is adjusted
so that up/down by 2 with a 3x3 kernel and padding 1 exactly doubles/halves the
size.

Because convolution and FIR filtering commute, it is computed the cheap way:
up=2 as a strided transposed convolution followed by the filter, down=2 as the
filter followed by a strided convolution, 1x1 kernels resampling on the
smaller side.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch

from .. import conv2d_gradfix
from .upfirdn2d import upfirdn2d as ref_upfirdn2d

# fir(x, f, up, down, (x0, x1, y0, y1), gain) -> y, with int up/down and the filter's flip bound.
Fir = Callable[[torch.Tensor, torch.Tensor, int, int, Tuple[int, int, int, int], float], torch.Tensor]


def _filter_size(f: Optional[torch.Tensor]) -> Tuple[int, int]:
    if f is None:
        return 1, 1
    return (f.shape[-1], f.shape[0]) if f.ndim == 2 else (f.shape[0], f.shape[0])


def _identity_filter(x: torch.Tensor) -> torch.Tensor:
    return torch.ones(1, 1, dtype=x.dtype, device=x.device)


def _conv(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
    """Correlation with w (true convolution when not flip_weight), or its transpose."""
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    if transpose:
        return conv2d_gradfix.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return conv2d_gradfix.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: Optional[torch.Tensor] = None, up: int = 1, down: int = 1,
                    padding: Tuple[int, int, int, int] = (0, 0, 0, 0), groups: int = 1, flip_weight: bool = True,
                    flip_filter: bool = False, fir: Optional[Fir] = None) -> torch.Tensor:
    """x: [N, C, H, W], w: [O, C / groups, kh, kw], f: FIR filter or None; up/down ints.

    ``padding`` is (x0, x1, y0, y1) before the up/down adjustment. ``fir`` runs
    the FIR resampling steps; the default is the reference upfirdn2d, and the
    modules and fast backends pass the public/fast op so this algorithm exists once.

    Returns:
        [N, O, H', W'].
    """
    if fir is None:
        def fir(x, f, up, down, pad, gain):
            return ref_upfirdn2d(x, f, (up, up), (down, down), pad, flip_filter, gain)

    out_ch, in_per_group, kh, kw = w.shape
    if in_per_group == 0 or out_ch == 0:
        return _without_channels(x, w, f, up, down, padding, groups, flip_weight, flip_filter, fir)
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = padding
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    if f is None:
        f = _identity_filter(x)

    if kw == 1 and kh == 1 and down > 1 and up == 1:  # 1x1: decimate first, convolve the smaller image
        x = fir(x, f, 1, down, (px0, px1, py0, py1), 1.0)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:  # 1x1: convolve the smaller image, then upsample
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return fir(x, f, up, 1, (px0, px1, py0, py1), float(up * up))
    if down > 1 and up == 1:  # filter, then strided convolution
        x = fir(x, f, 1, 1, (px0, px1, py0, py1), 1.0)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:  # strided transposed convolution, then filter
        if groups == 1:
            wt = w.transpose(0, 1)
        else:
            wt = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
            wt = wt.reshape(groups * in_per_group, out_ch // groups, kh, kw)
        # conv_transpose2d already pads (k-1, k-up) and convolves (not correlates).
        px0, px1 = px0 - (kw - 1), px1 - (kw - up)
        py0, py1 = py0 - (kh - 1), py1 - (kh - up)
        cx = max(min(-px0, -px1), 0)  # symmetric crop done by the transposed conv itself
        cy = max(min(-py0, -py1), 0)
        x = _conv(x, wt, stride=up, padding=(cy, cx), groups=groups, transpose=True, flip_weight=not flip_weight)
        x = fir(x, f, 1, 1, (px0 + cx, px1 + cx, py0 + cy, py1 + cy), float(up * up))
        if down > 1:
            x = fir(x, f, 1, down, (0, 0, 0, 0), 1.0)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:  # plain convolution
        return _conv(x, w, padding=(py0, px0), groups=groups, flip_weight=flip_weight)
    x = fir(x, _identity_filter(x), 1, 1, (px0, px1, py0, py1), 1.0)
    return _conv(x, w, groups=groups, flip_weight=flip_weight)


def _without_channels(x, w, f, up, down, padding, groups, flip_weight, flip_filter, fir):
    """conv2d_resample for a weight with no input or no output channels, which the convolution libraries
    reject: one zero channel is appended to each group (to x and w for inputs, to w for outputs), and the
    output channels that exist are kept. The result is zeros (no inputs) or empty (no outputs), with the
    gradients of the zero padding: zeros (or empty) for x and w."""
    out_ch, in_per_group, kh, kw = w.shape
    n, _, h, wd = x.shape
    if in_per_group == 0:
        x = torch.cat([x, x.new_zeros(n, groups, h, wd)], dim=1)  # now one zero channel per group
        w = torch.cat([w, w.new_zeros(out_ch, 1, kh, kw)], dim=1)
    per_group = out_ch // groups
    if out_ch == 0:
        w = torch.cat([w, w.new_zeros(groups, w.shape[1], kh, kw)], dim=0)  # one zero output channel per group
    y = conv2d_resample(x, w, f, up, down, padding, groups, flip_weight, flip_filter, fir)
    if out_ch == 0:
        y = y[:, :per_group * groups]
    return y

"""Convolution combined with FIR up/downsampling, built on the public ops.

The same algorithm as :mod:`gan_fast.reference.conv2d_resample` (the spec),
but every FIR filter goes through :func:`gan_fast.ops.upfirdn2d` and every
convolution through :func:`gan_fast.ops.conv2d` / ``conv_transpose2d``, so the
fast backends and ``no_weight_gradients`` apply to the modules that use it.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from .. import ops


def _filter_size(f: Optional[torch.Tensor]) -> Tuple[int, int]:
    if f is None:
        return 1, 1
    return (f.shape[-1], f.shape[0]) if f.ndim == 2 else (f.shape[0], f.shape[0])


def _conv(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    if transpose:
        return ops.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return ops.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: Optional[torch.Tensor] = None, up: int = 1, down: int = 1,
                    padding: int = 0, groups: int = 1, flip_weight: bool = True) -> torch.Tensor:
    """``downsample(conv(upsample(x)))`` as StyleGAN2 composes them.

    Args:
        x: [N, C, H, W]; w: [O, C // groups, kh, kw]; f: FIR filter (``setup_filter``)
        or None; up/down: integer factors; padding: int (before the resampling
        adjustment, so that k=3, padding=1 and up/down=2 exactly double/halve H, W).
        flip_weight: True = correlation (as ``F.conv2d``), False = true convolution.

    Returns:
        [N, O, H', W'].
    """
    out_ch, in_per_group, kh, kw = w.shape
    fw, fh = _filter_size(f)
    px0 = px1 = py0 = py1 = padding
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2

    if kw == 1 and kh == 1 and down > 1 and up == 1:  # decimate first, convolve the smaller image
        x = ops.upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1])
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:  # convolve the smaller image, then upsample
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return ops.upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up * up)
    if down > 1 and up == 1:  # filter, then strided convolution
        x = ops.upfirdn2d(x, f, padding=[px0, px1, py0, py1])
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:  # strided transposed convolution, then filter
        if groups == 1:
            wt = w.transpose(0, 1)
        else:
            wt = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
            wt = wt.reshape(groups * in_per_group, out_ch // groups, kh, kw)
        px0, px1 = px0 - (kw - 1), px1 - (kw - up)
        py0, py1 = py0 - (kh - 1), py1 - (kh - up)
        cx = max(min(-px0, -px1), 0)
        cy = max(min(-py0, -py1), 0)
        x = _conv(x, wt, stride=up, padding=(cy, cx), groups=groups, transpose=True, flip_weight=not flip_weight)
        x = ops.upfirdn2d(x, f, padding=[px0 + cx, px1 + cx, py0 + cy, py1 + cy], gain=up * up)
        if down > 1:
            x = ops.upfirdn2d(x, f, down=down)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=(py0, px0), groups=groups, flip_weight=flip_weight)
    x = ops.upfirdn2d(x, None, padding=[px0, px1, py0, py1])
    return _conv(x, w, groups=groups, flip_weight=flip_weight)

"""Reference FIR resampling: the specification of ``gan_fast.ops.upfirdn2d``."""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F

from ..fir import plane_weights


def upfirdn2d(x: torch.Tensor, f: torch.Tensor, up: Tuple[int, int], down: Tuple[int, int],
              padding: Tuple[int, int, int, int], flip_filter: bool, gain: float) -> torch.Tensor:
    """Upsample (insert zeros), pad (negative pads crop), FIR filter, downsample.

    Args:
        x: [N, C, H, W].
        f: [fh, fw] (non-separable) or [ft] (separable: applied along x, then y).
        up, down: (x, y) integer factors >= 1.
        padding: (x0, x1, y0, y1), applied after upsampling; negative values crop.
        flip_filter: False = true convolution with f, True = correlation.
        gain: multiplies the filter (overall, also for separable filters).

    Returns:
        [N, C, (H*up_y + y0 + y1 - fh) // down_y + 1, (W*up_x + x0 + x1 - fw) // down_x + 1].
    """
    n, c, h, w = x.shape
    upx, upy = up
    downx, downy = down
    x0, x1, y0, y1 = padding

    if upx > 1 or upy > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape(n, c, h * upy, w * upx)

    if x0 > 0 or x1 > 0 or y0 > 0 or y1 > 0:
        x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    if x0 < 0 or x1 < 0 or y0 < 0 or y1 < 0:  # negative pads crop
        x = x[:, :, max(-y0, 0): x.shape[2] - max(-y1, 0), max(-x0, 0): x.shape[3] - max(-x1, 0)]

    planes = c
    if c == 0:  # a grouped convolution needs groups >= 1: filter the (no) planes as a batch of one-channel images
        x = x.reshape(0, 1, x.shape[2], x.shape[3])
        planes = 1
    first, second = plane_weights(f, planes, gain, flip_filter, x.dtype)  # conv2d correlates: flipped unless asked
    x = F.conv2d(x, first, groups=planes)
    if second is not None:  # separable: along x, then along y
        x = F.conv2d(x, second, groups=planes)
    if c == 0:
        x = x.reshape(n, 0, x.shape[2], x.shape[3])

    if downx > 1 or downy > 1:
        x = x[:, :, ::downy, ::downx]
    return x

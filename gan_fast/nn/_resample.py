"""Convolution combined with FIR up/downsampling for the modules.

The one algorithm lives in :mod:`gan_fast.reference.conv2d_resample` (the
spec); here its FIR steps run through :func:`gan_fast.ops.upfirdn2d`, so the
fast backends apply to the modules that use it (the convolutions already go
through :mod:`gan_fast.conv2d_gradfix`, honouring ``no_weight_gradients``).
"""

from __future__ import annotations

from typing import Optional

import torch

from .. import ops
from ..reference.conv2d_resample import conv2d_resample as _conv2d_resample


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
    def fir(x, f, up, down, pad, gain):
        return ops.upfirdn2d(x, f, up=up, down=down, padding=list(pad), gain=gain)

    return _conv2d_resample(x, w, f, up, down, (padding,) * 4, groups=groups, flip_weight=flip_weight, fir=fir)

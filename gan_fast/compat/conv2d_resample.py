"""``torch_utils.ops.conv2d_resample`` call sites: ``conv2d_resample(x, w, f, up, down, padding, groups, ...)``.

Its convolutions are ``gan_fast.compat.conv2d_gradfix``'s: with that module's ``enabled = False`` they are
plain ``torch.nn.functional`` ones (weight gradients always computed), as in the originals.
"""

from __future__ import annotations

from typing import Optional

import torch

from .. import checks, ops
from .. import conv2d_gradfix as _core_gradfix
from . import conv2d_gradfix
from ..reference.conv2d_resample import conv2d_resample as _conv2d_resample


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: Optional[torch.Tensor] = None, up: int = 1, down: int = 1,
                    padding=0, groups: int = 1, flip_weight: bool = True, flip_filter: bool = False) -> torch.Tensor:
    """2-D convolution with optional FIR up/downsampling, StyleGAN2's signature.

    x: [N, C, H, W]; w: [O, C // groups, kh, kw]; f: filter from ``setup_filter`` or
    None; padding: int, [px, py] or [x0, x1, y0, y1]. Returns [N, O, H', W'].
    """
    checks.tensor("x", x, ndim=4, shape_hint="[N, C, H, W]")
    checks.tensor("w", w, ndim=4, shape_hint="[O, C // groups, kh, kw]")
    groups = checks.positive_int("groups", groups)
    if x.shape[1] != w.shape[1] * groups:
        raise ValueError(f"w must have shape [O, {x.shape[1] // groups}, kh, kw] for x with {x.shape[1]} channels "
                         f"and groups={groups}, got {tuple(w.shape)}")
    up = checks.positive_int("up", up)
    down = checks.positive_int("down", down)
    if (up > 1 or down > 1) and f is None:
        raise ValueError("f is required when up or down > 1 (e.g. setup_filter([1, 3, 3, 1]))")

    def fir(x, f, up, down, pad, gain):
        return ops.upfirdn2d(x, f, up=up, down=down, padding=list(pad), flip_filter=flip_filter, gain=gain)

    padding = checks.padding4("padding", padding)
    if not conv2d_gradfix.enabled:
        with _core_gradfix.plain_convolutions():
            return _conv2d_resample(x, w, f, up, down, padding, groups=groups, flip_weight=flip_weight,
                                    flip_filter=flip_filter, fir=fir)
    return _conv2d_resample(x, w, f, up, down, padding, groups=groups, flip_weight=flip_weight,
                            flip_filter=flip_filter, fir=fir)

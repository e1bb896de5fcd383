"""``torch_utils.ops.upfirdn2d`` of StyleGAN2-ADA / StyleGAN3: setup_filter, upfirdn2d, filter2d,
upsample2d, downsample2d.

The functions are :mod:`gan_fast.ops`'s, with the originals' ``impl='cuda'`` default meaning the
automatic choice (never an error for CPU tensors). ``padding`` is int, [px, py] or [x0, x1, y0, y1]
as there.
"""

from __future__ import annotations

from typing import Optional

import torch

from .. import ops
from ..ops import setup_filter
from .auto import auto_impl

__all__ = ["setup_filter", "upfirdn2d", "filter2d", "upsample2d", "downsample2d"]


def upfirdn2d(x: torch.Tensor, f: Optional[torch.Tensor], up=1, down=1, padding=0, flip_filter: bool = False,
              gain: float = 1, impl: Optional[str] = "cuda") -> torch.Tensor:
    """Pad, upsample, FIR-filter, downsample [N, C, H, W]: :func:`gan_fast.ops.upfirdn2d`."""
    return ops.upfirdn2d(x, f, up, down, padding, flip_filter, gain, impl=auto_impl(impl))


def filter2d(x: torch.Tensor, f: Optional[torch.Tensor], padding=0, flip_filter: bool = False, gain: float = 1,
             impl: Optional[str] = "cuda") -> torch.Tensor:
    """Filter [N, C, H, W] keeping its size (plus ``padding``): :func:`gan_fast.ops.filter2d`."""
    return ops.filter2d(x, f, padding, flip_filter, gain, impl=auto_impl(impl))


def upsample2d(x: torch.Tensor, f: Optional[torch.Tensor], up=2, padding=0, flip_filter: bool = False,
               gain: float = 1, impl: Optional[str] = "cuda") -> torch.Tensor:
    """Upsample [N, C, H, W] by ``up``: :func:`gan_fast.ops.upsample2d`."""
    return ops.upsample2d(x, f, up, padding, flip_filter, gain, impl=auto_impl(impl))


def downsample2d(x: torch.Tensor, f: Optional[torch.Tensor], down=2, padding=0, flip_filter: bool = False,
                 gain: float = 1, impl: Optional[str] = "cuda") -> torch.Tensor:
    """Downsample [N, C, H, W] by ``down``: :func:`gan_fast.ops.downsample2d`."""
    return ops.downsample2d(x, f, down, padding, flip_filter, gain, impl=auto_impl(impl))

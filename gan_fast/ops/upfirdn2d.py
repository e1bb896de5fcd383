"""Public FIR resampling: ``upfirdn2d`` and its helpers ``setup_filter``,
``upsample2d``, ``downsample2d``, ``filter2d``."""

from __future__ import annotations

from typing import Optional

import torch

from .. import backend, checks
from ..backends import upfirdn2d as backends
from ..fir import identity_filter, setup_filter
from ..params import cast_to
from ..params.upfirdn2d import (downsample2d_padding, filter2d_padding, filter_size, upsample2d_padding,
                                 validate)

__all__ = ["upfirdn2d", "setup_filter", "upsample2d", "downsample2d", "filter2d"]


def upfirdn2d(x: torch.Tensor, f: Optional[torch.Tensor], up=1, down=1, padding=0, flip_filter: bool = False,
              gain: float = 1, impl: Optional[str] = None) -> torch.Tensor:
    """Pads, upsamples, FIR-filters and downsamples a batch of 2-D images.

    Inserts ``up - 1`` zeros after each sample, pads (negative pads crop),
    convolves with ``f`` (a true convolution unless ``flip_filter``), keeps every
    ``down``-th sample. ``gain`` multiplies the filter.

    Args:
        x: [N, C, H, W] (any memory format).
        f: [fh, fw], separable [ft], or None (identity).
        up, down: int or [x, y] integer factors >= 1.
        padding: int, [px, py] or [x0, x1, y0, y1].
        impl: None (automatic), 'ref', 'triton', 'cpp' or 'cuda'. The Triton kernels compute in float32:
            float64 x runs ``ref`` when automatic, and ``impl='triton'`` refuses it (``UnsupportedDtypeError``,
            a ``TypeError``). The fast kernels take ``f`` as a constant: with a filter that requires grad
            the automatic choice runs ``ref`` (exact gradient for f) and an explicit fast ``impl`` raises
            ``BackendUnavailableError``. ``f`` is cast to x's dtype first, on every backend.

    Empty x (N = 0 or C = 0, or H/W = 0 with padding) is valid: the result (and gradient) is the
    reference's, whatever ``impl``. Sizes are checked before anything is allocated: arguments whose
    up-sampled, padded or output size would not fit in int64 raise ``ValueError``.

    Returns:
        [N, C, (H*up_y + y0 + y1 - fh) // down_y + 1, (W*up_x + x0 + x1 - fw) // down_x + 1].
    """
    p = validate(x, f, up, down, padding, flip_filter, gain)
    f = identity_filter(x) if f is None else cast_to(x, f)[0]  # the mixed-dtype rule, the same for every backend
    needs = ()
    if x.dtype == torch.float64:
        needs += ("float64",)
    if f.requires_grad and torch.is_grad_enabled():
        needs += ("learned filter",)
    chosen = backend.choose(backends.SPEC, impl, x.device, x.dtype, needs=needs)
    if x.numel() == 0:
        chosen = "ref"  # an empty x never reaches a kernel: ref's empty result
    return backends.run(chosen, p, x, f)


def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl=None):
    """Filters [N, C, H, W] with ``f`` keeping the size (plus ``padding``)."""
    fw, fh = filter_size(f)
    pad = filter2d_padding(fw, fh, checks.padding4("padding", padding))
    return upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl=None):
    """Upsamples [N, C, H, W] by ``up`` with FIR ``f``: [N, C, H*up_y, W*up_x] (plus ``padding``).

    The filter gain is multiplied by ``up_x * up_y`` to keep the signal level.
    """
    upx, upy = checks.int_pair("up", up)
    fw, fh = filter_size(f)
    pad = upsample2d_padding(fw, fh, upx, upy, checks.padding4("padding", padding))
    return upfirdn2d(x, f, up=(upx, upy), padding=pad, flip_filter=flip_filter,
                     gain=checks.number("gain", gain) * upx * upy, impl=impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl=None):
    """Downsamples [N, C, H, W] by ``down`` with FIR ``f``: [N, C, H//down_y, W//down_x] (plus ``padding``)."""
    downx, downy = checks.int_pair("down", down)
    fw, fh = filter_size(f)
    pad = downsample2d_padding(fw, fh, downx, downy, checks.padding4("padding", padding))
    return upfirdn2d(x, f, down=(downx, downy), padding=pad, flip_filter=flip_filter, gain=gain, impl=impl)

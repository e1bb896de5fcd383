"""Public FIR resampling: ``upfirdn2d`` and its helpers ``setup_filter``,
``upsample2d``, ``downsample2d``, ``filter2d``."""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch

from .. import backend, checks, self_test
from ..reference import upfirdn2d as reference
from ._dispatch import cast_to, exact_impl

# The C++ CPU kernel is slower than the conv2d-based reference on CPU (benchmarks/results, ci preset):
# it stays available as impl='cpp' but is not an automatic choice there.
FAST_BACKENDS: Dict[str, Sequence[str]] = {"cuda": ("triton", "cpp")}
# Backends whose kernels compute in float32: float64 input goes to ref automatically, and is refused
# when asked for explicitly (the C++ kernels compute in float64 for float64).
FLOAT32_ONLY = ("triton",)


def setup_filter(f, device=torch.device("cpu"), normalize: bool = True, flip_filter: bool = False,
                 gain: float = 1, separable: Optional[bool] = None) -> torch.Tensor:
    """Turns a list/array/tensor of FIR taps into a filter tensor for ``upfirdn2d``.

    Args:
        f: None (identity, ``[1]``), a scalar, a 1-D list of taps, or a 2-D array.
        normalize: divide by the sum of the taps, so the filter has unit DC gain.
        flip_filter: flip the taps (makes ``upfirdn2d`` a correlation).
        gain: overall gain of the filter.
        separable: keep a 1-D filter separable; default: separable when it has
            at least 8 taps, else expanded to its 2-D outer product. True with a 2-D
            filter raises ValueError.

    Taps that are not finite, or (with ``normalize``) that sum to zero, raise ValueError naming ``f``.

    Returns:
        float32 tensor, [ft] (separable) or [fh, fw].
    """
    if f is None:
        f = 1
    gain = checks.number("gain", gain)
    if separable is not None:
        separable = checks.boolean("separable", separable)
    if isinstance(f, torch.Tensor):
        if not (f.is_floating_point() or f.dtype in _INT_DTYPES):
            raise TypeError(f"f must hold real numbers, got a tensor of {f.dtype}")
        f = f.detach().to(device="cpu", dtype=torch.float32)
    else:
        try:
            f = torch.as_tensor(f, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"f must be None, a number, or a 1-D or 2-D array of numbers, got {f!r} ({exc})") from None
    if f.ndim not in (0, 1, 2):
        raise ValueError(f"f must be a scalar, 1-D or 2-D, got shape {tuple(f.shape)}")
    if f.numel() == 0:
        raise ValueError(f"f must have at least one tap, got shape {tuple(f.shape)}")
    if not bool(torch.isfinite(f).all()):
        raise ValueError(f"f must have finite taps, got {f.tolist()}")
    if f.ndim == 0:
        f = f[None]
    if separable and f.ndim == 2:
        raise ValueError(f"separable=True needs a 1-D filter (its outer product is the 2-D one), got a 2-D f of "
                         f"shape {tuple(f.shape)}")
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = f.outer(f)
    if normalize:
        total = float(f.sum())
        if total == 0 or not math.isfinite(total):
            raise ValueError(f"f: the taps sum to {total}, so normalize=True (divide by the sum) cannot give unit DC "
                             "gain; pass normalize=False for a filter without DC response")
        f = f / total
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 1 and gain < 0:
        raise ValueError(f"gain must be >= 0 for a separable filter (its square root scales each axis), got {gain}")
    f = f * (gain ** (f.ndim / 2))
    if not bool(torch.isfinite(f).all()):
        raise ValueError("f: the taps overflow float32 after normalisation and gain")
    return f.to(device=device)


_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)


def filter_size(f: Optional[torch.Tensor], name: str = "f") -> Tuple[int, int]:
    """(fw, fh) of a filter tensor; (1, 1) for None."""
    if f is None:
        return 1, 1
    checks.tensor(name, f, ndim=(1, 2), shape_hint="[fh, fw] or [ft]")
    if f.numel() == 0:
        raise ValueError(f"{name} must have at least one tap, got shape {tuple(f.shape)}")
    if f.ndim == 1:
        return f.shape[0], f.shape[0]
    return f.shape[1], f.shape[0]


def output_length(name: str, length: int, up: int, down: int, p0: int, p1: int, taps: int) -> int:
    """(length * up + p0 + p1 - taps) // down + 1 along one axis, after checking that the up-sampled and padded
    lengths fit in int64 (so no backend can overflow computing them)."""
    checks.fits_int64(name, length * up, "the up-sampled length")
    n = checks.fits_int64(name, length * up + p0 + p1, "the padded length")
    return (n - taps) // down + 1


_IDENTITY: Dict[Tuple[torch.device, torch.dtype], torch.Tensor] = {}


def _identity_filter(x: torch.Tensor) -> torch.Tensor:
    """The 1x1 filter [[1]] on x's device and dtype, made once per (device, dtype): f=None costs no allocation
    and no launch per call (and nothing inside a CUDA-graph capture)."""
    key = (x.device, x.dtype)
    f = _IDENTITY.get(key)
    if f is None:
        with torch.inference_mode(False):  # a normal tensor, even when first made in inference mode
            f = _IDENTITY[key] = torch.ones(1, 1, dtype=x.dtype, device=x.device)
    return f


def _validate(x, f, up, down, padding, gain):
    checks.tensor("x", x, ndim=4, shape_hint="[N, C, H, W]")
    if f is None:
        f = _identity_filter(x)
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
    (f,) = cast_to(x, f)  # the mixed-dtype rule, the same for every backend
    return f, upxy, downxy, pad, gain


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
        impl: None (automatic), 'ref', 'triton', 'cpp' or 'cuda'. The Triton kernels compute in
            float32: float64 x runs ``ref`` when automatic, and ``impl='triton'`` refuses it (TypeError).
            ``f`` is cast to x's dtype first, on every backend.

    Empty x (N = 0 or C = 0, or H/W = 0 with padding) is valid: the result (and gradient) is the
    reference's, whatever ``impl``. Sizes are checked before anything is allocated: arguments whose
    up-sampled, padded or output size would not fit in int64 raise ``ValueError``.

    Returns:
        [N, C, (H*up_y + y0 + y1 - fh) // down_y + 1, (W*up_x + x0 + x1 - fw) // down_x + 1].
    """
    f, upxy, downxy, pad, gain = _validate(x, f, up, down, padding, gain)
    chosen = exact_impl("upfirdn2d", impl, backend.resolve("upfirdn2d", impl, x.device, FAST_BACKENDS, x.dtype),
                        x.dtype, FLOAT32_ONLY)
    if chosen == "ref" or x.numel() == 0:  # an empty x never reaches a kernel
        return reference.upfirdn2d(x, f, upxy, downxy, pad, bool(flip_filter), gain)
    from ..fused import upfirdn2d as fused  # noqa: PLC0415

    return fused.upfirdn2d(x, f, upxy, downxy, pad, bool(flip_filter), gain, chosen)


def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl=None):
    """Filters [N, C, H, W] with ``f`` keeping the size (plus ``padding``)."""
    gain = checks.number("gain", gain)
    fw, fh = filter_size(f)
    x0, x1, y0, y1 = checks.padding4("padding", padding)
    pad = [x0 + fw // 2, x1 + (fw - 1) // 2, y0 + fh // 2, y1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl=None):
    """Upsamples [N, C, H, W] by ``up`` with FIR ``f``: [N, C, H*up_y, W*up_x] (plus ``padding``).

    The filter gain is multiplied by ``up_x * up_y`` to keep the signal level.
    """
    upx, upy = checks.int_pair("up", up)
    gain = checks.number("gain", gain)
    fw, fh = filter_size(f)
    x0, x1, y0, y1 = checks.padding4("padding", padding)
    pad = [x0 + (fw + upx - 1) // 2, x1 + (fw - upx) // 2, y0 + (fh + upy - 1) // 2, y1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=pad, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl=None):
    """Downsamples [N, C, H, W] by ``down`` with FIR ``f``: [N, C, H//down_y, W//down_x] (plus ``padding``)."""
    downx, downy = checks.int_pair("down", down)
    gain = checks.number("gain", gain)
    fw, fh = filter_size(f)
    x0, x1, y0, y1 = checks.padding4("padding", padding)
    pad = [x0 + (fw - downx + 1) // 2, x1 + (fw - downx) // 2, y0 + (fh - downy + 1) // 2, y1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=(downx, downy), padding=pad, flip_filter=flip_filter, gain=gain, impl=impl)


def _self_test_cases():
    """Up and down 2 with a 4x4 filter over several GPU blocks (1840 outputs per plane); channels_last with
    67 channels (two GPU channel blocks) and a 12-tap separable filter (the two-pass path); a sliced input with
    an 8-tap separable filter (one pass with the outer product) at up 2, down 2 and uneven padding."""
    def small_filter(device, gen):
        x = torch.randn(2, 3, 20, 23, generator=gen, device=device).requires_grad_()
        f = setup_filter([1, 3, 3, 1], device=device)
        return lambda impl, t: (upsample2d(t[0], f, impl=impl), downsample2d(t[0], f, impl=impl)), [x]

    def large_filters(device, gen):
        x = torch.randn(2, 67, 4, 5, generator=gen, device=device).to(memory_format=torch.channels_last)
        z = torch.randn(2, 5, 17, 19, generator=gen, device=device).requires_grad_()
        f12 = setup_filter(torch.rand(12, generator=gen, device=device).add(0.1), device=device)
        f8 = setup_filter(torch.rand(8, generator=gen, device=device).add(0.1), device=device)

        def run(impl, t):
            x, z = t
            return (upsample2d(x, f12, impl=impl),
                    upfirdn2d(z[:, :, 1:, 2:], f8, up=2, down=2, padding=[3, -1, 2, 4], impl=impl))
        return run, [x.requires_grad_(), z]
    return [small_filter, large_filters]


self_test.register("upfirdn2d", _self_test_cases(), FAST_BACKENDS)

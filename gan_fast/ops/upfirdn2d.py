"""Public FIR resampling: ``upfirdn2d`` and its helpers ``setup_filter``,
``upsample2d``, ``downsample2d``, ``filter2d``."""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch

from .. import backend, checks, self_test
from ..reference import upfirdn2d as reference

# The C++ CPU kernel is slower than the conv2d-based reference on CPU (benchmarks/results, ci preset):
# it stays available as impl='cpp' but is not an automatic choice there.
FAST_BACKENDS: Dict[str, Sequence[str]] = {"cuda": ("triton", "cpp")}


def setup_filter(f, device=torch.device("cpu"), normalize: bool = True, flip_filter: bool = False,
                 gain: float = 1, separable: Optional[bool] = None) -> torch.Tensor:
    """Turns a list/array/tensor of FIR taps into a filter tensor for ``upfirdn2d``.

    Args:
        f: None (identity, ``[1]``), a scalar, a 1-D list of taps, or a 2-D array.
        normalize: divide by the sum of the taps, so the filter has unit DC gain.
        flip_filter: flip the taps (makes ``upfirdn2d`` a correlation).
        gain: overall gain of the filter.
        separable: keep a 1-D filter separable; default: separable when it has
            at least 8 taps, else expanded to its 2-D outer product.

    Returns:
        float32 tensor, [ft] (separable) or [fh, fw].
    """
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim not in (0, 1, 2):
        raise ValueError(f"f must be a scalar, 1-D or 2-D, got shape {tuple(f.shape)}")
    if f.numel() == 0:
        raise ValueError("f must have at least one tap")
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = f.outer(f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 1 and gain < 0:
        raise ValueError(f"gain must be >= 0 for a separable filter (its square root scales each axis), got {gain}")
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def filter_size(f: Optional[torch.Tensor]) -> Tuple[int, int]:
    """(fw, fh) of a filter tensor; (1, 1) for None."""
    if f is None:
        return 1, 1
    checks.tensor("f", f, ndim=(1, 2), shape_hint="[fh, fw] or [ft]")
    if f.ndim == 1:
        return f.shape[0], f.shape[0]
    return f.shape[1], f.shape[0]


def _validate(x, f, up, down, padding, gain):
    checks.tensor("x", x, ndim=4, shape_hint="[N, C, H, W]")
    if f is None:
        f = torch.ones(1, 1, dtype=torch.float32, device=x.device)
    checks.tensor("f", f, ndim=(1, 2), shape_hint="[fh, fw] or [ft]")
    if f.numel() == 0:
        raise ValueError("f must have at least one tap")
    checks.same_device(x=x, f=f)
    upxy = checks.int_pair("up", up)
    downxy = checks.int_pair("down", down)
    pad = checks.padding4("padding", padding)
    gain = checks.optional_number("gain", gain)
    if gain is None:
        raise TypeError("gain must be a number, got None")
    fw, fh = filter_size(f)
    out_w = (x.shape[3] * upxy[0] + pad[0] + pad[1] - fw) // downxy[0] + 1
    out_h = (x.shape[2] * upxy[1] + pad[2] + pad[3] - fh) // downxy[1] + 1
    if out_w < 1 or out_h < 1:
        raise ValueError(f"upfirdn2d: padding {pad}, up {upxy}, down {downxy} and a {fh}x{fw} filter leave "
                         f"no output for x of shape {tuple(x.shape)} (output would be {out_h}x{out_w})")
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
        impl: None (automatic), 'ref', 'triton', 'cpp' or 'cuda'.

    Returns:
        [N, C, (H*up_y + y0 + y1 - fh) // down_y + 1, (W*up_x + x0 + x1 - fw) // down_x + 1].
    """
    f, upxy, downxy, pad, gain = _validate(x, f, up, down, padding, gain)
    impl = backend.resolve("upfirdn2d", impl, x.device, FAST_BACKENDS, x.dtype)
    if impl == "ref":
        return reference.upfirdn2d(x, f, upxy, downxy, pad, bool(flip_filter), gain)
    from ..fused import upfirdn2d as fused  # noqa: PLC0415

    return fused.upfirdn2d(x, f, upxy, downxy, pad, bool(flip_filter), gain, impl)


def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl=None):
    """Filters [N, C, H, W] with ``f`` keeping the size (plus ``padding``)."""
    fw, fh = filter_size(f)
    x0, x1, y0, y1 = checks.padding4("padding", padding)
    pad = [x0 + fw // 2, x1 + (fw - 1) // 2, y0 + fh // 2, y1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl=None):
    """Upsamples [N, C, H, W] by ``up`` with FIR ``f``: [N, C, H*up_y, W*up_x] (plus ``padding``).

    The filter gain is multiplied by ``up_x * up_y`` to keep the signal level.
    """
    upx, upy = checks.int_pair("up", up)
    fw, fh = filter_size(f)
    x0, x1, y0, y1 = checks.padding4("padding", padding)
    pad = [x0 + (fw + upx - 1) // 2, x1 + (fw - upx) // 2, y0 + (fh + upy - 1) // 2, y1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=pad, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl=None):
    """Downsamples [N, C, H, W] by ``down`` with FIR ``f``: [N, C, H//down_y, W//down_x] (plus ``padding``)."""
    downx, downy = checks.int_pair("down", down)
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

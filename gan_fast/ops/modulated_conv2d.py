"""Public StyleGAN2 ``modulated_conv2d``: validation, backend choice, dispatch."""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch

from .. import backend, checks, self_test
from ..reference import modulated_conv2d as reference
from ._dispatch import cast_to, exact_impl
from ..params.upfirdn2d import filter_size, output_length
from ..fir import setup_filter

FAST_BACKENDS: Dict[str, Sequence[str]] = {"cuda": ("triton",)}
# The Triton kernels (demodulation coefficients, scaling, FIR) compute in float32: float64 runs ref.
FLOAT32_ONLY = ("triton",)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                     noise: Optional[torch.Tensor] = None, up: int = 1, down: int = 1, padding=0,
                     resample_filter: Optional[torch.Tensor] = None, demodulate: bool = True,
                     flip_weight: bool = True, fused_modconv: bool = True,
                     impl: Optional[str] = None) -> torch.Tensor:
    """StyleGAN2 convolution with per-sample weight modulation and demodulation.

    ``w'[n, o, i, k] = styles[n, i] * weight[o, i, k]``; with ``demodulate``,
    ``w'`` is divided by ``sqrt(sum_{i,k} w'^2 + 1e-8)``. Then ``x`` is convolved
    with ``w'`` (with FIR up/downsampling by ``resample_filter``) and ``noise`` is
    added. In float16 (float16 ``x``, or float16 autocast) the weight and styles
    are pre-normalised (exact under demodulation) to avoid overflow.

    Args:
        x: [N, I, H, W].
        weight: [O, I, kh, kw].
        styles: [N, I].
        noise: None or a tensor broadcastable to the output [N, O, H', W'].
        up, down: 1 or an integer factor (StyleGAN2 uses 2).
        padding: int, [px, py] or [x0, x1, y0, y1] (before the up/down adjustment).
        resample_filter: FIR filter from ``setup_filter``; required when up/down > 1.
        demodulate: normalise each output channel's modulated weight.
        flip_weight: False = true convolution, True = correlation (as StyleGAN2).
        fused_modconv: grouped conv with per-sample weights (True) or scaling
            activations around one shared conv (False); the same result.
        impl: None (automatic), 'ref' or 'triton'. The Triton kernels compute in float32: float64
            x runs ``ref`` when automatic, and ``impl='triton'`` refuses it (TypeError).

    weight, styles, noise and resample_filter are cast to x's dtype first (on every backend). Empty
    inputs (N, O or I = 0) are valid: with I = 0 the convolution is zero (the output is the noise).

    Returns:
        [N, O, H', W'], H' = H * up / down for kernel size k and padding k // 2.
    """
    check_modulation_args(x, weight, styles, noise)
    up, down, pad, out_hw = check_resampling_args("modulated_conv2d", x, weight, up, down, padding, resample_filter,
                                                  styles=styles, noise=noise)
    check_noise(noise, (x.shape[0], weight.shape[0]) + out_hw)
    weight, styles, noise, resample_filter = cast_to(x, weight, styles, noise, resample_filter)

    chosen = exact_impl("modulated_conv2d", impl,
                        backend.resolve("modulated_conv2d", impl, x.device, FAST_BACKENDS, x.dtype), x.dtype,
                        FLOAT32_ONLY)
    if chosen == "ref" or x.numel() == 0 or weight.numel() == 0:  # empty inputs never reach a kernel
        return reference.modulated_conv2d(x, weight, styles, noise, up, down, pad, resample_filter,
                                          bool(demodulate), bool(flip_weight), bool(fused_modconv))
    from ..fused import modulated_conv2d as fused  # noqa: PLC0415

    return fused.modulated_conv2d(x, weight, styles, noise, up, down, pad, resample_filter, bool(demodulate),
                                  bool(flip_weight), bool(fused_modconv), chosen)


def check_noise(noise: Optional[torch.Tensor], out_shape: Tuple[int, int, int, int]) -> None:
    """ValueError naming noise unless it broadcasts to the output [N, O, H', W'] (without growing it)."""
    if noise is None:
        return
    try:
        ok = tuple(torch.broadcast_shapes(noise.shape, out_shape)) == tuple(out_shape)
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"noise must be broadcastable to the output {list(out_shape)} ([N, O, H', W']), "
                         f"got {tuple(noise.shape)}")


def check_modulation_args(x, weight, styles, noise) -> None:
    """The shape checks of x [N, I, H, W], weight [O, I, kh, kw], styles [N, I] and noise (4-D or None)."""
    checks.tensor("x", x, ndim=4, shape_hint="[N, I, H, W]")
    checks.tensor("weight", weight, ndim=4, shape_hint="[O, I, kh, kw]")
    checks.tensor("styles", styles, ndim=2, shape_hint="[N, I]")
    n, in_ch = x.shape[:2]
    if weight.shape[1] != in_ch:
        raise ValueError(f"weight must have shape [O, {in_ch}, kh, kw] (I = x.shape[1]), got {tuple(weight.shape)}")
    if tuple(styles.shape) != (n, in_ch):
        raise ValueError(f"styles must have shape [{n}, {in_ch}] ([N, I] of x), got {tuple(styles.shape)}")
    if noise is not None:
        checks.tensor("noise", noise, ndim=4, shape_hint="broadcastable to [N, O, H', W']")


def check_resampling_args(op: str, x, weight, up, down, padding, resample_filter, **others):
    """Validates up, down, padding and resample_filter (and that x, weight, the filter and ``others`` share a
    device); returns (up, down, (x0, x1, y0, y1), (H', W'))."""
    filter_size(resample_filter, "resample_filter")
    checks.same_device(x=x, weight=weight, resample_filter=resample_filter, **others)
    up = checks.positive_int("up", up)
    down = checks.positive_int("down", down)
    pad = checks.padding4("padding", padding)
    if (up > 1 or down > 1) and resample_filter is None:
        raise ValueError("resample_filter is required when up or down > 1 (e.g. setup_filter([1, 3, 3, 1]))")
    return up, down, pad, check_output_size(op, x, weight, resample_filter, up, down, pad)


def check_output_size(op: str, x, weight, f, up, down, pad) -> Tuple[int, int]:
    """The output's (H', W') for padding (x0, x1, y0, y1); ValueError when the layer leaves no output or a size
    would not fit in int64."""
    fw, fh = filter_size(f, "resample_filter")
    kh, kw = weight.shape[2:]
    sizes = []
    for length, k, flen, p0, p1 in ((x.shape[2], kh, fh, pad[2], pad[3]), (x.shape[3], kw, fw, pad[0], pad[1])):
        if up > 1:
            p0, p1 = p0 + (flen + up - 1) // 2, p1 + (flen - up) // 2
        if down > 1:
            p0, p1 = p0 + (flen - down + 1) // 2, p1 + (flen - down) // 2
        taps = k + (flen - 1 if up > 1 or down > 1 else 0)
        n = output_length(f"{op} (up, padding)", length, up, 1, p0, p1, taps)  # the stride-1 length
        sizes.append((n - 1) // down + 1 if n > 0 else n)
    if min(sizes) < 1:
        raise ValueError(f"{op}: kernel {kh}x{kw} with padding {pad}, up {up}, down {down} leaves no "
                         f"output for x of shape {tuple(x.shape)}")
    checks.fits_int64(f"{op} (up, padding)", x.shape[0] * weight.shape[0] * sizes[0] * sizes[1], "the output's size")
    checks.fits_int64("down", down, "a factor")
    return sizes[0], sizes[1]


def _self_test_cases():
    """The up-2 layer both ways (fused_modconv True / False), and a stride-1 layer with noise over several GPU
    tiles (67 input and 37 output channels, 90 pixels) with a channels_last input, demodulated or not."""
    def up2(device, gen):
        x = torch.randn(2, 3, 6, 6, generator=gen, device=device).requires_grad_()
        w = torch.randn(4, 3, 3, 3, generator=gen, device=device).requires_grad_()
        s = (torch.rand(2, 3, generator=gen, device=device) + 0.5).requires_grad_()
        f = setup_filter([1, 3, 3, 1], device=device)
        return (lambda impl, t: tuple(modulated_conv2d(*t, up=2, padding=1, resample_filter=f, fused_modconv=fused,
                                                       impl=impl) for fused in (True, False)), [x, w, s])

    def wide(device, gen):
        x = torch.randn(2, 67, 9, 10, generator=gen, device=device).to(memory_format=torch.channels_last)
        w = (torch.randn(37, 67, 3, 3, generator=gen, device=device) / 25).requires_grad_()
        s = (torch.rand(2, 67, generator=gen, device=device) + 0.5).requires_grad_()
        noise = torch.randn(2, 1, 9, 10, generator=gen, device=device).requires_grad_()

        def run(impl, t):
            x, w, s, noise = t
            return tuple(modulated_conv2d(x, w, s, noise, padding=1, demodulate=demod, fused_modconv=fused,
                                          impl=impl) for fused, demod in ((True, True), (False, True), (False, False)))
        return run, [x.requires_grad_(), w, s, noise]
    return [up2, wide]


self_test.register("modulated_conv2d", _self_test_cases(), FAST_BACKENDS, tf32=True)  # the cuDNN convolution

"""Public ``filtered_lrelu`` (StyleGAN3's filtered leaky ReLU): validation, backend choice, dispatch."""

from __future__ import annotations

import math
import numbers
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import torch

from .. import backend, checks, self_test
from ..reference import filtered_lrelu as reference
from ._dispatch import cast_to, exact_impl

# Fast backends by device type, in order of preference. CPU: the reference (the Triton interpreter is a test
# mode; no C++ kernel was measured faster than the composition there).
FAST_BACKENDS: Dict[str, Sequence[str]] = {"cuda": ("triton",)}
# The kernels compute in float32: float64 runs ref when automatic and is refused when asked for (TypeError).
FLOAT32_ONLY = ("triton",)
FACTORS = (1, 2, 4)  # the up/down factors of the public op (gan_fast.compat takes any integer, through ref)


class Args(NamedTuple):
    """Validated, normalised arguments (see :func:`validate`)."""
    fu: Optional[torch.Tensor]
    fd: Optional[torch.Tensor]
    b: Optional[torch.Tensor]
    up: int
    down: int
    padding: Tuple[int, int, int, int]
    gain: float
    slope: float
    clamp: Optional[float]
    flip_filter: bool


def _factor(name: str, value, any_factor: bool) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    if not any_factor and value not in FACTORS:
        raise ValueError(f"{name} must be one of {FACTORS}, got {value}")
    return value


def _filter_wh(f: Optional[torch.Tensor]) -> Tuple[int, int]:
    if f is None:
        return 1, 1
    return (f.shape[0], f.shape[0]) if f.ndim == 1 else (f.shape[1], f.shape[0])


def output_size(h: int, w: int, fu: Optional[torch.Tensor], fd: Optional[torch.Tensor], up: int, down: int,
                padding: Tuple[int, int, int, int]) -> Tuple[int, int]:
    """(OH, OW) of filtered_lrelu, StyleGAN3's formula."""
    (fuw, fuh), (fdw, fdh) = _filter_wh(fu), _filter_wh(fd)
    x0, x1, y0, y1 = padding
    return ((h * up + y0 + y1 - (fuh - 1) - (fdh - 1) + (down - 1)) // down,
            (w * up + x0 + x1 - (fuw - 1) - (fdw - 1) + (down - 1)) // down)


def validate(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter, any_factor: bool = False) -> Args:
    """Checks every argument (named ``TypeError``/``ValueError``) and returns them normalised.

    ``any_factor``: accept any integer up/down >= 1 (the compat layer, which runs those through ``ref``).
    """
    checks.tensor("x", x, ndim=4, shape_hint="[N, C, H, W]")
    for name, f in (("fu", fu), ("fd", fd)):
        if f is not None:
            checks.tensor(name, f, ndim=(1, 2), shape_hint="[ft] (separable) or [fh, fw]")
            if f.numel() == 0:
                raise ValueError(f"{name} must have at least one tap, got shape {tuple(f.shape)}")
    if b is not None:
        checks.tensor("b", b, ndim=1, shape_hint=f"[{x.shape[1]}] (x.shape[1])")
        if b.shape[0] != x.shape[1]:
            raise ValueError(f"b must have shape [{x.shape[1]}] (x.shape[1]), got {tuple(b.shape)}")
    checks.same_device(x=x, fu=fu, fd=fd, b=b)
    up = _factor("up", up, any_factor)
    down = _factor("down", down, any_factor)
    pad = checks.padding4("padding", padding)
    gain = checks.number("gain", gain)
    slope = checks.number("slope", slope)
    clamp = checks.optional_number("clamp", clamp, minimum=0)
    oh, ow = output_size(x.shape[2], x.shape[3], fu, fd, up, down, pad)
    if oh < 1 or ow < 1:
        raise ValueError(f"filtered_lrelu: padding {pad}, up {up}, down {down} and filters of shapes "
                         f"{None if fu is None else tuple(fu.shape)} / {None if fd is None else tuple(fd.shape)} "
                         f"leave no output for x of shape {tuple(x.shape)} (output would be {oh}x{ow})")
    fu, fd, b = cast_to(x, fu, fd, b)
    return Args(fu, fd, b, up, down, pad, gain, slope, clamp, bool(flip_filter))


def filtered_lrelu(x: torch.Tensor, fu: Optional[torch.Tensor] = None, fd: Optional[torch.Tensor] = None,
                   b: Optional[torch.Tensor] = None, up: int = 1, down: int = 1, padding=0,
                   gain: float = math.sqrt(2), slope: float = 0.2, clamp: Optional[float] = None,
                   flip_filter: bool = False, impl: Optional[str] = None) -> torch.Tensor:
    """StyleGAN3's filtered leaky ReLU: bias, FIR up-sampling, leaky ReLU, gain, clamp, FIR down-sampling.

    ``y = upfirdn2d(fd, down)( clamp( lrelu( upfirdn2d(fu, up, padding, gain=up**2)(x + b), slope ) * gain,
    -clamp, clamp ) )``, the resampling as :func:`gan_fast.ops.upfirdn2d` (zero insertion, padding that
    may be negative, true convolution unless ``flip_filter``).

    Args:
        x: [N, C, H, W], float16/bfloat16/float32/float64, any memory format.
        fu, fd: up- and down-sampling filters: None (the 1-tap identity; the up-sampling gain ``up**2``
            still applies), 1-D [ft] (separable) or 2-D [fh, fw], as made by ``setup_filter``.
            Constants: no gradient flows to them on the fast path (a filter that requires grad runs
            the reference, whose gradient is exact).
        b: None or [C] bias, added before the up-sampling (cast to x's dtype).
        up, down: 1, 2 or 4 (both axes).
        padding: int, [px, py] or [x0, x1, y0, y1], applied after the zero insertion; negative crops.
        gain: multiplies the leaky ReLU's output (default sqrt 2).
        slope: the leaky ReLU's negative slope (default 0.2).
        clamp: None, or a bound >= 0: the activation is clamped to [-clamp, clamp].
        flip_filter: False = true convolution, True = correlation.
        impl: None (automatic: ``triton`` for CUDA tensors of float16/bfloat16/float32, else ``ref``),
            'ref' or 'triton'.

    Returns:
        [N, C, (H*up + y0 + y1 - (fu_h - 1) - (fd_h - 1) + down - 1) // down,
        (W*up + x0 + x1 - (fu_w - 1) - (fd_w - 1) + down - 1) // down] in x's dtype (and, on the
        triton backend, x's memory format). Differentiable with respect to x and b, to any order.

    The triton backend: separable or absent filters run one fused forward kernel (the up-sampled tile stays
    on chip; an int8 code per up-sampled sample is kept for backward) and one backward kernel, which also
    serve every higher derivative (the op is piecewise linear in x and b). One 2-D filter (StyleGAN3-R's
    radial down filter) is split off to the Triton ``upfirdn2d``, the rest stays fused; two 2-D filters run
    the composition of the Triton ``upfirdn2d`` and ``bias_act`` kernels. A non-finite input value spoils
    its whole output tile (about 21 x 21 outputs) rather than only the outputs within the filters' reach.
    """
    a = validate(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
    chosen = exact_impl("filtered_lrelu", impl,
                        backend.resolve("filtered_lrelu", impl, x.device, FAST_BACKENDS, dtype=x.dtype), x.dtype,
                        FLOAT32_ONLY)
    if chosen == "ref" or x.numel() == 0:  # an empty x never reaches a kernel
        return reference.filtered_lrelu(x, *a)
    from ..fused import filtered_lrelu as fused  # noqa: PLC0415 - fast paths load lazily

    return fused.filtered_lrelu(x, *a, impl=chosen)


def _self_test_cases():
    """Cases that launch every kernel (forward with and without the activation, backward) over two or more
    tiles per axis (the tiles do not depend on the device): up 2 / down 2 with 12-tap filters, bias and
    clamp (StyleGAN3-T's common layer); up 4 / down 2 with 24- and 12-tap filters on a channels_last input
    (flipped filters, no bias, negative padding); on a sliced input, a 2-D down filter at up 4 / down 4
    (the split path) and absent filters."""
    def taps(n, gen, device):
        return (torch.rand(n, generator=gen, device=device) + 0.1).div_(n / 2)

    def up2(device, gen):
        x = torch.randn(2, 2, 24, 26, generator=gen, device=device).requires_grad_()
        b = torch.randn(2, generator=gen, device=device).requires_grad_()
        fu, fd = taps(12, gen, device), taps(12, gen, device)

        def run(impl, t):
            x, b = t
            return (filtered_lrelu(x, fu, fd, b, up=2, down=2, padding=[11, 10, 9, 12], clamp=1.5, impl=impl),)
        return run, [x, b]

    def up4(device, gen):
        x = torch.randn(1, 3, 19, 17, generator=gen, device=device).to(memory_format=torch.channels_last)
        z = torch.randn(2, 2, 13, 14, generator=gen, device=device)
        b = torch.randn(2, generator=gen, device=device).requires_grad_()
        fu, fd, f2 = taps(24, gen, device), taps(12, gen, device), taps(4, gen, device).outer(taps(3, gen, device))

        def run(impl, t):
            x, z, b = t
            zs = z[:, :, 1:, 2:]
            return (filtered_lrelu(x, fu, fd, up=4, down=2, padding=[14, 13, -1, 15], slope=0.3, flip_filter=True,
                                   impl=impl),
                    filtered_lrelu(zs, fu, f2, b, up=4, down=4, padding=[12, 11, 10, 13], gain=1.0, clamp=2.0,
                                   impl=impl),
                    filtered_lrelu(zs, None, None, b, padding=[1, -1, 0, 2], impl=impl))
        return run, [x.requires_grad_(), z.requires_grad_(), b]
    return [up2, up4]


self_test.register("filtered_lrelu", _self_test_cases(), FAST_BACKENDS)

"""The parameter records of ``modulated_conv2d`` and ``modulated_conv2d_bias_act`` (StyleGAN2's modulated
convolution and its whole synthesis layer) and their shared validation: x / weight / styles / noise, up / down
/ padding / resample_filter, the output size, and the fused layer's algorithm."""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch

from .. import activations, checks
from ..shapes import conv_resample_length, filter_wh

__all__ = ["ModulatedConv2dParams", "ModulatedConv2dBiasActParams", "ALGORITHMS", "EXPERIMENTAL_ALGORITHMS",
           "DEFAULT_ALGORITHM", "validate",
           "validate_bias_act", "check_modulation_args", "check_resampling_args", "check_output_size",
           "check_noise", "check_algorithm"]

# The algorithms of modulated_conv2d_bias_act's fast backend (one self-test name each).
ALGORITHMS = ("cudnn", "implicit_gemm")
# Experimental: never chosen automatically (DEFAULT_ALGORITHM must not be one). The implicit GEMM does not meet the
# static sm_90 bars (its float32 configs spill, 12% occupancy): kernels/modulated_conv2d_bias_act.py says why.
EXPERIMENTAL_ALGORITHMS = ("implicit_gemm",)
# What algorithm=None picks. DESIGN.md keeps convolutions on cuDNN until a GPU benchmark shows a Triton
# convolution winning: `python -m benchmarks --preset stylegan2` compares the two (op modulated_conv2d_bias_act,
# backends triton vs triton:implicit_gemm); no GPU run has been recorded yet.
DEFAULT_ALGORITHM = "cudnn"


class ModulatedConv2dParams(NamedTuple):
    """``conv2d_resample(x, w') * d + noise`` with ``w' = weight * styles`` (see ``ops.modulated_conv2d``).

    Attributes:
        up, down: integer resampling factors >= 1.
        padding: (x0, x1, y0, y1) before the up/down adjustment.
        demodulate, flip_weight, fused_modconv: as the public op's arguments.
    """

    up: int
    down: int
    padding: Tuple[int, int, int, int]
    demodulate: bool
    flip_weight: bool
    fused_modconv: bool


class ModulatedConv2dBiasActParams(NamedTuple):
    """``bias_act(modulated_conv2d(...), bias, act, alpha, gain, clamp)`` computed by ``algorithm``.

    Attributes:
        up, down, padding, demodulate, flip_weight: as :class:`ModulatedConv2dParams` (the shared-weight
            form: the fused layer is always ``fused_modconv=False``).
        act: the activation's name (a key of ``gan_fast.activations.ACTIVATIONS``).
        alpha, gain: the activation's parameters with their defaults applied.
        clamp: None (no clamp) or a bound >= 0.
        algorithm: one of :data:`ALGORITHMS` (None resolved to :data:`DEFAULT_ALGORITHM`, or to 'cudnn'
            where the default cannot take the call).
    """

    up: int
    down: int
    padding: Tuple[int, int, int, int]
    demodulate: bool
    flip_weight: bool
    act: str
    alpha: float
    gain: float
    clamp: Optional[float]
    algorithm: str


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


def _filter_wh(f: Optional[torch.Tensor]) -> Tuple[int, int]:
    """(fw, fh) of resample_filter ([fh, fw], separable [ft] or None), with named errors."""
    if f is None:
        return 1, 1
    checks.tensor("resample_filter", f, ndim=(1, 2), shape_hint="[fh, fw] or [ft]")
    if f.numel() == 0:
        raise ValueError(f"resample_filter must have at least one tap, got shape {tuple(f.shape)}")
    return filter_wh(f)


def check_resampling_args(op: str, x, weight, up, down, padding, resample_filter, **others):
    """Validates up, down, padding and resample_filter (and that x, weight, the filter and ``others`` share a
    device); returns (up, down, (x0, x1, y0, y1), (H', W'))."""
    _filter_wh(resample_filter)
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
    fw, fh = _filter_wh(f)
    kh, kw = weight.shape[2:]
    name = f"{op} (up, padding)"
    sizes = []
    for length, k, taps, p0, p1 in ((x.shape[2], kh, fh, pad[2], pad[3]), (x.shape[3], kw, fw, pad[0], pad[1])):
        checks.fits_int64(name, length * up, "the up-sampled length")
        _, padded, out = conv_resample_length(length, k, taps, up, down, p0, p1)
        checks.fits_int64(name, padded, "the padded length")
        sizes.append(out)
    if min(sizes) < 1:
        raise ValueError(f"{op}: kernel {kh}x{kw} with padding {pad}, up {up}, down {down} leaves no "
                         f"output for x of shape {tuple(x.shape)}")
    checks.fits_int64(name, x.shape[0] * weight.shape[0] * sizes[0] * sizes[1], "the output's size")
    checks.fits_int64("down", down, "a factor")
    return sizes[0], sizes[1]


def _implicit_gemm_refusal(up: int, down: int, pad: Tuple[int, int, int, int], flip_weight: bool) -> Optional[str]:
    """Why algorithm='implicit_gemm' cannot compute this layer (None: it can)."""
    if up != 1 or down != 1:
        return f"algorithm='implicit_gemm' needs up = down = 1, got up={up}, down={down}"
    if pad[0] != pad[1] or pad[2] != pad[3] or min(pad) < 0:
        return f"algorithm='implicit_gemm' needs an int or [px, py] padding >= 0, got {list(pad)}"
    if not flip_weight:
        return "algorithm='implicit_gemm' computes a correlation: it needs flip_weight=True"
    return None


def check_algorithm(algorithm, up: int, down: int, pad: Tuple[int, int, int, int], flip_weight: bool) -> str:
    """The algorithm that computes the layer: None is :data:`DEFAULT_ALGORITHM` ('cudnn' where the default is
    'implicit_gemm' and cannot take the layer); 'implicit_gemm' for a layer it cannot compute is a ValueError."""
    if algorithm is None:
        algorithm = DEFAULT_ALGORITHM
        if algorithm == "implicit_gemm" and _implicit_gemm_refusal(up, down, pad, flip_weight) is not None:
            algorithm = "cudnn"
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be None or one of {ALGORITHMS}, got {algorithm!r}")
    if algorithm == "implicit_gemm":
        why = _implicit_gemm_refusal(up, down, pad, flip_weight)
        if why is not None:
            raise ValueError(why)
    return algorithm


def validate(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, noise: Optional[torch.Tensor], up, down,
             padding, resample_filter: Optional[torch.Tensor], demodulate, flip_weight,
             fused_modconv) -> ModulatedConv2dParams:
    """Checks a ``modulated_conv2d`` call (shapes, devices, resampling, the output size, noise's shape)."""
    check_modulation_args(x, weight, styles, noise)
    up, down, pad, out_hw = check_resampling_args("modulated_conv2d", x, weight, up, down, padding, resample_filter,
                                                  styles=styles, noise=noise)
    check_noise(noise, (x.shape[0], weight.shape[0]) + out_hw)
    return ModulatedConv2dParams(up, down, pad, bool(demodulate), bool(flip_weight), bool(fused_modconv))


def validate_bias_act(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, bias: Optional[torch.Tensor],
                      noise: Optional[torch.Tensor], up, down, padding, resample_filter: Optional[torch.Tensor],
                      demodulate, flip_weight, act, alpha, gain, clamp,
                      algorithm) -> ModulatedConv2dBiasActParams:
    """Checks a ``modulated_conv2d_bias_act`` call: ``modulated_conv2d``'s checks, bias [O], the activation's
    parameters (with their defaults) and the algorithm."""
    check_modulation_args(x, weight, styles, noise)
    out_ch = weight.shape[0]
    if bias is not None:
        checks.tensor("bias", bias, ndim=1, shape_hint=f"[{out_ch}] (O = weight.shape[0])")
        if bias.shape[0] != out_ch:
            raise ValueError(f"bias must have shape [{out_ch}] (O = weight.shape[0]), got {tuple(bias.shape)}")
    up, down, pad, (oh, ow) = check_resampling_args("modulated_conv2d_bias_act", x, weight, up, down, padding,
                                                    resample_filter, styles=styles, bias=bias, noise=noise)
    check_noise(noise, (x.shape[0], out_ch, oh, ow))
    spec = activations.get(act)
    # bias_act's defaults and checks (gan_fast.params.bias_act.activation_args; params modules import only leaves)
    alpha = spec.def_alpha if alpha is None else checks.optional_number("alpha", alpha)
    gain = spec.def_gain if gain is None else checks.optional_number("gain", gain)
    clamp = checks.optional_number("clamp", clamp, minimum=0)
    flip_weight = bool(flip_weight)
    algorithm = check_algorithm(algorithm, up, down, pad, flip_weight)
    return ModulatedConv2dBiasActParams(up, down, pad, bool(demodulate), flip_weight, spec.name, alpha, gain, clamp,
                                        algorithm)

"""Public ``modulated_conv2d_bias_act``: a whole StyleGAN2 synthesis layer (modulated conv, noise, bias_act) as one op."""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch

from .. import activations, backend, checks, self_test
from ..reference import bias_act as bias_act_reference
from ..reference import modulated_conv2d as modconv_reference
from ..params.bias_act import activation_args
from .bias_act import bias_act
from ._dispatch import cast_to
from .modulated_conv2d import check_modulation_args, check_noise, check_resampling_args, modulated_conv2d
from ..fir import setup_filter

FAST_BACKENDS: Dict[str, Sequence[str]] = {"cuda": ("triton",)}

ALGORITHMS = ("cudnn", "implicit_gemm")
# What algorithm=None picks. DESIGN.md keeps convolutions on cuDNN until a GPU benchmark shows a Triton
# convolution winning: `python -m benchmarks --preset stylegan2` compares the two (op modulated_conv2d_bias_act,
# backends triton vs triton:implicit_gemm); no GPU run has been recorded yet.
DEFAULT_ALGORITHM = "cudnn"


def modulated_conv2d_bias_act(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                              bias: Optional[torch.Tensor] = None, noise: Optional[torch.Tensor] = None,
                              up: int = 1, down: int = 1, padding=0, resample_filter: Optional[torch.Tensor] = None,
                              demodulate: bool = True, flip_weight: bool = True, act: str = "linear",
                              alpha: Optional[float] = None, gain: Optional[float] = None,
                              clamp: Optional[float] = None, algorithm: Optional[str] = None,
                              impl: Optional[str] = None) -> torch.Tensor:
    """A StyleGAN2 synthesis layer: modulated conv (with up/down resampling), noise, then bias_act.

    Exactly ``bias_act(modulated_conv2d(x, weight, styles, noise, up, down, padding,
    resample_filter, demodulate, flip_weight), bias, act=act, alpha=alpha, gain=gain,
    clamp=clamp)``. The ``triton`` backend fuses everything after the convolution
    (demodulation, noise, bias, activation, gain, clamp) into one pass, which
    also halves what the layer keeps for backward.

    Args:
        x: [N, I, H, W] (contiguous, channels_last or any strides).
        weight: [O, I, kh, kw].
        styles: [N, I].
        bias: None or [O].
        noise: None or a 4-D tensor broadcastable to the output [N, O, H', W'].
        up, down: resampling factors (StyleGAN2: up 2 in the first layer of each block).
        padding: int, [px, py] or [x0, x1, y0, y1] (before the up/down adjustment, as in
            ``modulated_conv2d``; k // 2 keeps the size at up = down = 1).
        resample_filter: FIR filter from ``setup_filter``; required when up or down > 1.
        demodulate: normalise each output channel's modulated weight.
        flip_weight: False = true convolution, True = correlation (StyleGAN2 passes up == 1).
        act, alpha, gain, clamp: as in ``bias_act`` (e.g. 'lrelu' with gain sqrt(2), clamp 256).
        algorithm: for the triton backend. 'cudnn': the convolution on cuDNN (with the
            Triton FIR for up/down), then one fused epilogue kernel. 'implicit_gemm': the
            whole layer in one Triton kernel (implicit-GEMM convolution with the style
            scaling on load); up = down = 1, symmetric padding and flip_weight only.
            None: ``DEFAULT_ALGORITHM`` ('cudnn' until a GPU benchmark says otherwise).
        impl: None (automatic: 'triton' on CUDA; elsewhere the composition of
            ``modulated_conv2d`` and ``bias_act``, each on its own automatic backend),
            'ref' or 'triton' (exact in float64 too: its float64 path computes in float64).

    weight, styles, bias, noise and resample_filter are cast to x's dtype first (on every backend).
    Empty inputs (N, O or I = 0) are valid and run the reference composition.

    Returns:
        [N, O, H', W'] in x's dtype (the autocast dtype under autocast); differentiable to
        second order (path length through G, R1). H' = H * up / down for padding k // 2.
    """
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
    alpha, gain, clamp = activation_args(spec, alpha, gain, clamp)
    algorithm = _check_algorithm(algorithm, up, down, pad, flip_weight)
    weight, styles, bias, noise, resample_filter = cast_to(x, weight, styles, bias, noise, resample_filter)

    # Each algorithm is self-tested (and falls back) on its own: an opt-in one cannot disable the default.
    # Under autocast the fused layer computes in the autocast dtype: that dtype's verdict is the one that applies.
    dtype = x.dtype
    if dtype != torch.float64 and torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
    chosen = backend.resolve(_SELF_TEST_NAMES[algorithm], impl, x.device, FAST_BACKENDS, dtype)
    if x.numel() == 0 or weight.numel() == 0:
        chosen = "ref"  # empty inputs never reach a kernel
    if chosen == "ref" and impl is None:
        # No fused backend here (e.g. CPU): the composition of the public ops, each on its own best backend.
        y = modulated_conv2d(x, weight, styles, noise, up, down, pad, resample_filter, bool(demodulate),
                             bool(flip_weight), fused_modconv=False)
        return bias_act(y, bias, act=act, alpha=alpha, gain=gain, clamp=clamp)
    if chosen == "ref":
        y = modconv_reference.modulated_conv2d(x, weight, styles, noise, up, down, pad, resample_filter,
                                               bool(demodulate), bool(flip_weight), False)
        return bias_act_reference.bias_act(y, bias, 1, act, alpha, gain, clamp)
    from ..fused import modulated_conv2d_bias_act as fused  # noqa: PLC0415

    return fused.modulated_conv2d_bias_act(x, weight, styles, bias, noise, up, down, pad, resample_filter,
                                           bool(demodulate), bool(flip_weight), spec.code, alpha, gain, clamp,
                                           algorithm, chosen)


def _check_algorithm(algorithm, up, down, pad, flip_weight) -> str:
    if algorithm is None:
        algorithm = DEFAULT_ALGORITHM
        if algorithm == "implicit_gemm" and (up != 1 or down != 1 or pad[0] != pad[1] or pad[2] != pad[3]
                                             or not flip_weight or min(pad) < 0):
            algorithm = "cudnn"
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be None or one of {ALGORITHMS}, got {algorithm!r}")
    if algorithm == "implicit_gemm":
        if up != 1 or down != 1:
            raise ValueError(f"algorithm='implicit_gemm' needs up = down = 1, got up={up}, down={down}")
        if pad[0] != pad[1] or pad[2] != pad[3] or min(pad) < 0:
            raise ValueError(f"algorithm='implicit_gemm' needs an int or [px, py] padding >= 0, got {list(pad)}")
        if not flip_weight:
            raise ValueError("algorithm='implicit_gemm' computes a correlation: it needs flip_weight=True")
    return algorithm


def _self_test_cases(algorithm):
    """The layers StyleGAN2 trains: lrelu + clamp + per-pixel noise with gradient, and a linear ToRGB-like layer
    without demodulation, first small (17 output channels; for 'cudnn' also the up-2 layer), then over several
    GPU tiles (264 pixels x 67 output channels: BLOCK_M and BLOCK_N up to 128 / 64) with a channels_last input."""
    def small(device, gen):
        def rand(*shape):
            return torch.randn(*shape, generator=gen, device=device).requires_grad_()

        x, w, b, nz = rand(2, 3, 6, 5), rand(17, 3, 3, 3), rand(17), rand(2, 1, 6, 5)
        s = (torch.rand(2, 3, generator=gen, device=device) + 0.5).requires_grad_()
        x_up, nz_up = rand(2, 3, 3, 3), rand(2, 1, 6, 6)
        f = setup_filter([1, 3, 3, 1], device=device)

        def run(impl, t):
            x, w, s, b, nz, x_up, nz_up = t
            out = [modulated_conv2d_bias_act(x, w, s, b, nz, padding=1, act="lrelu", clamp=1.0,
                                             algorithm=algorithm, impl=impl),
                   modulated_conv2d_bias_act(x, w, s, b, padding=1, demodulate=False, algorithm=algorithm,
                                             impl=impl)]
            if algorithm == "cudnn":
                out.append(modulated_conv2d_bias_act(x_up, w, s, b, nz_up, up=2, padding=1, resample_filter=f,
                                                     flip_weight=False, act="lrelu", impl=impl))
            return tuple(out)
        return run, [x, w, s, b, nz, x_up, nz_up]

    def wide(device, gen):
        x = torch.randn(2, 5, 12, 11, generator=gen, device=device).to(memory_format=torch.channels_last)
        w = (torch.randn(67, 5, 3, 3, generator=gen, device=device) / 4).requires_grad_()
        s = (torch.rand(2, 5, generator=gen, device=device) + 0.5).requires_grad_()
        b = torch.randn(67, generator=gen, device=device).requires_grad_()
        nz = torch.randn(2, 1, 12, 11, generator=gen, device=device).requires_grad_()

        def run(impl, t):
            x, w, s, b, nz = t
            return (modulated_conv2d_bias_act(x, w, s, b, nz, padding=1, act="lrelu", clamp=1.5,
                                              algorithm=algorithm, impl=impl),
                    modulated_conv2d_bias_act(x, w, s, b, padding=1, demodulate=False, act="swish",
                                              algorithm=algorithm, impl=impl))
        return run, [x.requires_grad_(), w, s, b, nz]
    return [small, wide]


_SELF_TEST_NAMES = {"cudnn": "modulated_conv2d_bias_act", "implicit_gemm": "modulated_conv2d_bias_act:implicit_gemm"}
for _algorithm, _name in _SELF_TEST_NAMES.items():
    self_test.register(_name, _self_test_cases(_algorithm), FAST_BACKENDS, tf32=True)  # cuDNN / the TF32 GEMM

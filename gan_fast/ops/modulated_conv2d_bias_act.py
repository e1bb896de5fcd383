"""Public ``modulated_conv2d_bias_act``: a whole StyleGAN2 synthesis layer (modulated conv, noise, bias_act) as
one op."""

from __future__ import annotations

from typing import Optional

import torch

from .. import backend
from ..backends import modulated_conv2d_bias_act as backends
from ..params import cast_to
from ..params import modulated_conv2d as params
from .bias_act import bias_act
from .modulated_conv2d import modulated_conv2d

__all__ = ["modulated_conv2d_bias_act"]


_AUTOCAST_DEVICES = ("cpu", "cuda", "xpu", "mps", "hpu")  # torch.is_autocast_enabled raises for others (meta)


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
            scaling on load); up = down = 1, symmetric padding and flip_weight only (else ValueError).
            None: ``DEFAULT_ALGORITHM`` of ``gan_fast.params.modulated_conv2d`` ('cudnn' until a GPU
            benchmark says otherwise). Each algorithm has its own self-test.
        impl: None (automatic: 'triton' on CUDA where the algorithm passed its self-test; elsewhere, e.g. on
            CPU, the composition of the public ops ``modulated_conv2d`` and ``bias_act``, each on its own
            automatic backend), 'ref' (the reference composition) or 'triton' (exact in float64 too: its
            float64 path computes in float64). The triton backend takes ``resample_filter`` as a constant:
            with a filter that requires grad (and up or down > 1) ``impl='triton'`` raises
            ``BackendUnavailableError`` and the automatic choice does not run it.

    weight, styles, bias, noise and resample_filter are cast to x's dtype first (on every backend).
    Empty inputs (N, O or I = 0) are valid and never reach a kernel.

    Returns:
        [N, O, H', W'] in x's dtype (the autocast dtype under autocast); differentiable to
        second order (path length through G, R1). H' = H * up / down for padding k // 2.
    """
    p = params.validate_bias_act(x, weight, styles, bias, noise, up, down, padding, resample_filter, demodulate,
                                 flip_weight, act, alpha, gain, clamp, algorithm)
    weight, styles, bias, noise, resample_filter = cast_to(x, weight, styles, bias, noise, resample_filter)
    # Under autocast the fused layer computes in the autocast dtype: that dtype's verdict is the one that applies.
    dtype = x.dtype
    if dtype != torch.float64 and x.device.type in _AUTOCAST_DEVICES and torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
    needs = ()
    if (p.up > 1 or p.down > 1) and resample_filter.requires_grad and torch.is_grad_enabled():
        needs = ("learned filter",)
    # Each algorithm has its own spec (its own self-test and verdict): an opt-in one cannot disable the default.
    chosen = backend.choose(backends.SPEC_BY_ALGORITHM[p.algorithm], impl, x.device, dtype, needs=needs)
    if x.numel() == 0 or weight.numel() == 0:
        chosen = "ref"  # empty inputs never reach a kernel
    if chosen == "ref" and impl is None:
        # No fused backend here (e.g. CPU): the composition of the public ops, each on its own best backend.
        y = modulated_conv2d(x, weight, styles, noise, p.up, p.down, p.padding, resample_filter, p.demodulate,
                             p.flip_weight, fused_modconv=False)
        return bias_act(y, bias, act=p.act, alpha=p.alpha, gain=p.gain, clamp=p.clamp)
    return backends.run(chosen, p, x, weight, styles, bias, noise, resample_filter)

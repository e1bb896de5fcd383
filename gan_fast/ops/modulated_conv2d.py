"""Public StyleGAN2 ``modulated_conv2d``: validate, choose a backend, run it."""

from __future__ import annotations

from typing import Optional

import torch

from .. import backend
from ..backends import modulated_conv2d as backends
from ..params import cast_to
from ..params import modulated_conv2d as params

__all__ = ["modulated_conv2d"]


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
        impl: None (automatic), 'ref' or 'triton'. The Triton kernels compute in float32: float64 x runs
            ``ref`` when automatic, and ``impl='triton'`` refuses it (``UnsupportedDtypeError``, a
            ``TypeError``). They take ``resample_filter`` as a constant: with a filter that requires grad
            (and up or down > 1) the automatic choice runs ``ref`` and ``impl='triton'`` raises
            ``BackendUnavailableError``.

    weight, styles, noise and resample_filter are cast to x's dtype first (on every backend). Empty
    inputs (N, O or I = 0) are valid and run the reference: with I = 0 the convolution is zero (the
    output is the noise).

    Returns:
        [N, O, H', W'], H' = H * up / down for kernel size k and padding k // 2.
    """
    p = params.validate(x, weight, styles, noise, up, down, padding, resample_filter, demodulate, flip_weight,
                        fused_modconv)
    weight, styles, noise, resample_filter = cast_to(x, weight, styles, noise, resample_filter)
    needs = ()
    if x.dtype == torch.float64:
        needs += ("float64",)
    if (p.up > 1 or p.down > 1) and resample_filter.requires_grad and torch.is_grad_enabled():
        needs += ("learned filter",)
    chosen = backend.choose(backends.SPEC, impl, x.device, x.dtype, needs=needs)
    if x.numel() == 0 or weight.numel() == 0:
        chosen = "ref"  # empty inputs never reach a kernel
    return backends.run(chosen, p, x, weight, styles, noise, resample_filter)

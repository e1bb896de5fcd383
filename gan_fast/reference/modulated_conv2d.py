"""Reference StyleGAN2 modulated convolution: the spec of ``gan_fast.ops.modulated_conv2d``."""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from .conv2d_resample import conv2d_resample

DEMOD_EPS = 1e-8


def prenormalize_fp16(weight: torch.Tensor, styles: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Scales weight [O, I, kh, kw] and styles [N, I] so w' and its squared sums stay in fp16 range.

    Exact under demodulation, which cancels any per-output-channel scale.
    """
    out_ch, in_ch, kh, kw = weight.shape
    if weight.numel() == 0 or styles.numel() == 0:
        return weight, styles  # nothing to overflow (and no maximum to divide by)
    weight = weight * (1 / math.sqrt(in_ch * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
    styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    return weight, styles


def needs_fp16_prenormalization(x: torch.Tensor, demodulate: bool) -> bool:
    """True when the convolution will run in float16: x is float16, or float16 autocast is on.

    Under autocast x stays float32 but the convolution is cast to float16, where
    x * styles * weight summed over I * kh * kw overflows just as it would for float16 x.
    """
    if not demodulate:
        return False
    if x.dtype == torch.float16:
        return True
    device_type = x.device.type
    return torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type) == torch.float16


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, noise: Optional[torch.Tensor],
                     up: int, down: int, padding: Tuple[int, int, int, int], resample_filter: Optional[torch.Tensor],
                     demodulate: bool, flip_weight: bool, fused_modconv: bool) -> torch.Tensor:
    """x: [N, I, H, W], weight: [O, I, kh, kw], styles: [N, I], noise: broadcastable to the output.

    w'[n, o, i] = styles[n, i] * weight[o, i]; with ``demodulate``,
    d[n, o] = rsqrt(sum_{i,k} w'^2 + 1e-8) and the output is conv(x, w') * d + noise.
    ``fused_modconv`` picks grouped convolution with per-sample weights (True) or
    scaling the activations before and after one shared convolution (False).
    """
    batch = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    if batch == 0:
        fused_modconv = False  # a grouped convolution needs groups >= 1; the algorithm never changes the result

    if needs_fp16_prenormalization(x, demodulate):
        weight, styles = prenormalize_fp16(weight, styles)

    w = None
    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch, 1, in_ch, 1, 1)  # [N, O, I, kh, kw]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + DEMOD_EPS).rsqrt()  # [N, O]

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch, in_ch, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), resample_filter, up, down, padding, flip_weight=flip_weight)
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch, out_ch, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    if demodulate:
        w = w * dcoefs.reshape(batch, out_ch, 1, 1, 1)
    x = x.reshape(1, batch * in_ch, *x.shape[2:])
    w = w.reshape(batch * out_ch, in_ch, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), resample_filter, up, down, padding, groups=batch, flip_weight=flip_weight)
    x = x.reshape(batch, out_ch, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x

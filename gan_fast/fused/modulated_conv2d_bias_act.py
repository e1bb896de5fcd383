"""Autograd glue for the one-kernel synthesis layer (``gan_fast.kernels.modulated_conv2d_bias_act``).

Forward: ``d = _Demod(styles, weight)`` (the [N, O] demodulation coefficients,
differentiable, from ``gan_fast.fused.modulated_conv2d``; plain torch ops for
float64), then one launch of the
fused kernel, an opaque ``torch.library.custom_op`` with ``register_fake``, giving
``y`` and the raw convolution ``c = conv(x * s, w)``.

``_ModconvBiasAct(x, weight, styles, d, noise, bias) -> (y, c)`` saves only its
inputs and outputs (so double backward is exact, DESIGN.md). ``c`` is a real,
differentiable output: the backward reads it, so the second order must reach
through it. The backward is plain differentiable ops plus the bias_act VJP:

    z0 = c * d + noise                        (pre-activation without the bias)
    dz = bias_act_vjp(gy, z0, bias)           (+ gc * ... when c's own gradient arrives)
    g_bias = sum dz,  g_noise = dz summed to noise's shape
    gc_total = dz * d + gc,  g_d = sum_hw dz * c
    g_xs, g_w = convolution_backward(gc_total, x * s, w)   (cuDNN; honours no_weight_gradients)
    g_x = g_xs * s,  g_s = sum_hw g_xs * x

so the first backward costs what the composed layer's does (the convolutions
on cuDNN, the measured choice DESIGN.md prefers), and path-length double
backward through G stays exact.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from ..conv2d_gradfix import weight_gradients_disabled
from ..kernels import modulated_conv2d_bias_act as K
from ..reference.modulated_conv2d import DEMOD_EPS, needs_fp16_prenormalization, prenormalize_fp16
from .bias_act import bias_act_vjp
from .modulated_conv2d import _Demod

__all__ = ["modulated_conv2d_bias_act"]


@torch.library.custom_op("gan_fast::triton_modconv_bias_act", mutates_args=())
def _fwd_op(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, dcoefs: Optional[torch.Tensor],
            noise: Optional[torch.Tensor], bias: Optional[torch.Tensor], pad_y: int, pad_x: int, act_code: int,
            alpha: float, gain: float, clamp: Optional[float], store_c: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    return K.modconv_bias_act_fwd(x, weight, styles, dcoefs, noise, bias, (pad_y, pad_x), act_code, alpha, gain,
                                  clamp, store_c)


@_fwd_op.register_fake
def _(x, weight, styles, dcoefs, noise, bias, pad_y, pad_x, act_code, alpha, gain, clamp, store_c):
    oh, ow = K.output_size(x.shape[2], x.shape[3], weight.shape[2], weight.shape[3], pad_y, pad_x)
    y = K.new_output(x, weight.shape[0], oh, ow)
    return y, (torch.empty_like(y) if store_c else x.new_empty((0,)))


def _params(pad_y, pad_x, act_code, alpha, gain, clamp):
    return (int(pad_y), int(pad_x), int(act_code), float(alpha), float(gain), None if clamp is None else float(clamp))


class _ModconvBiasAct(torch.autograd.Function):
    @staticmethod
    def forward(x, weight, styles, dcoefs, noise, bias, p, store_c):
        return _fwd_op(x, weight, styles, dcoefs, noise, bias, *p, store_c)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, styles, dcoefs, noise, bias, p, _ = inputs
        ctx.save_for_backward(x, weight, styles, dcoefs, noise, bias, output[1])
        ctx.p = p
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, gy, gc):
        x, weight, styles, dcoefs, noise, bias, c = ctx.saved_tensors
        pad_y, pad_x, act_code, alpha, gain, clamp = ctx.p
        need_x, need_w, need_s, need_d, need_noise, need_b = ctx.needs_input_grad[:6]
        grads = [None] * 8
        if gy is None and gc is None:
            return tuple(grads)
        acc = torch.promote_types(x.dtype, torch.float32)  # the per-channel sums: float32 at least
        d4 = dcoefs.to(c.dtype)[:, :, None, None] if dcoefs is not None else None
        g_conv = gc
        if gy is not None:
            z0 = c * d4 if d4 is not None else c
            if noise is not None:
                z0 = z0 + noise.to(c.dtype)
            dz = bias_act_vjp(gy, z0, bias, 1, act_code, alpha, gain, clamp, "triton")
            if need_b:
                grads[5] = dz.sum(dim=(0, 2, 3)).to(bias.dtype)
            if need_noise:
                grads[4] = dz.sum_to_size(noise.shape).to(noise.dtype)
            if need_d:
                grads[3] = (dz.to(acc) * c.to(acc)).sum(dim=(2, 3)).to(dcoefs.dtype)
            g_conv = dz * d4 if d4 is not None else dz
            if gc is not None:
                g_conv = g_conv + gc
        want_x = need_x or need_s
        want_w = need_w and not weight_gradients_disabled()
        if want_x or want_w:
            s4 = styles.to(x.dtype)[:, :, None, None]
            g_xs, g_w, _ = torch.ops.aten.convolution_backward(
                g_conv.to(x.dtype), x * s4, weight.to(x.dtype), None, [1, 1], [pad_y, pad_x], [1, 1], False,
                [0, 0], 1, [want_x, want_w, False])
            if need_x:
                grads[0] = g_xs * s4
            if need_s:
                grads[2] = (g_xs.to(acc) * x.to(acc)).sum(dim=(2, 3)).to(styles.dtype)
            if want_w:
                grads[1] = g_w.to(weight.dtype)
        return tuple(grads)


def modulated_conv2d_bias_act(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                              bias: Optional[torch.Tensor], noise: Optional[torch.Tensor], padding: Tuple[int, int],
                              demodulate: bool, act_code: int, alpha: float, gain: float, clamp: Optional[float],
                              impl: str) -> torch.Tensor:
    """The fused layer; arguments already validated by ``gan_fast.ops.modulated_conv2d_bias_act``."""
    if impl != "triton":
        raise ValueError(f"modulated_conv2d_bias_act has no fused {impl!r} backend (only 'triton')")
    if needs_fp16_prenormalization(x, demodulate):
        weight, styles = prenormalize_fp16(weight, styles)
    dcoefs = None
    if demodulate and x.dtype == torch.float64:  # _Demod's kernel computes in float32
        wsq = weight.square().sum(dim=(2, 3))  # [O, I]
        dcoefs = (styles.square() @ wsq.t() + DEMOD_EPS).rsqrt()
    elif demodulate:
        dcoefs = _Demod.apply(styles, weight)
    tensors = (x, weight, styles, dcoefs, noise, bias)
    store_c = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    y, _ = _ModconvBiasAct.apply(*tensors, _params(padding[0], padding[1], act_code, alpha, gain, clamp), store_c)
    return y

"""Autograd glue for the fused synthesis layer (``gan_fast.kernels.modulated_conv2d_bias_act``).

Two algorithms, the same result (``gan_fast.ops.modulated_conv2d_bias_act`` picks one):

* ``cudnn``: ``c = conv2d_resample(x * s, w)`` — the Triton ``x * s`` pass, the
  cuDNN convolution (transposed for up 2) and the Triton upfirdn2d FIR, all
  from ``gan_fast.fused.modulated_conv2d`` — then **one** epilogue kernel
  ``y = clamp(act(c * d + noise + bias) * gain)`` (``_DemodBiasAct``), where the
  composed layer makes two passes (``c * d + noise``, then ``bias_act``) and
  keeps both intermediates for backward. Any up/down, any padding.
* ``implicit_gemm``: the whole stride-1 layer in one kernel (``_ModconvBiasAct``):
  an implicit-GEMM convolution with the style scaling on load and the same
  epilogue; it also writes the raw convolution ``c`` for the backward.

Both Functions save only their inputs and outputs (so double backward is exact,
DESIGN.md) and share the epilogue's backward, ``_epilogue_vjp``::

    dz = bias_act_vjp(gy, c * d + noise, bias)        (the clamp's mask included)
    g_c = dz * d,  g_d = sum_hw dz * c,  g_bias = sum dz,  g_noise = dz summed to noise's shape

A plain backward (no ``create_graph``: the main G/D loss, every step) computes
all four in one Triton pass (``demod_bias_act_bwd``: one read of ``gy`` and
``c``, float32 partial sums reduced without atomics); a backward that will be
differentiated again (path length through G, R1) uses differentiable pieces
(the bias_act VJP kernel and torch ops), so the second order is exact. Then
``implicit_gemm`` runs ``convolution_backward`` on cuDNN (honouring
``no_weight_gradients``) and ``cudnn`` lets autograd differentiate its
convolution. ``c`` in ``_ModconvBiasAct`` is a real, differentiable output: the
backward reads it, so the second order reaches it.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from ..conv2d_gradfix import weight_gradients_disabled
from ..kernels import modulated_conv2d_bias_act as K
from ..reference.conv2d_resample import conv2d_resample as reference_conv2d_resample
from ..reference.modulated_conv2d import DEMOD_EPS, needs_fp16_prenormalization, prenormalize_fp16
from ..backends import bias_act as _bias_act_backend
from ..params.bias_act import BiasActParams
from .. import activations as _activations


def bias_act_vjp(dy, x, b, dim, act_code, alpha, gain, clamp, impl):  # migration shim
    act = [n for n, a in _activations.ACTIVATIONS.items() if a.code == act_code][0]
    return _bias_act_backend.vjp(impl, BiasActParams(dim, act, alpha, gain, clamp), dy, x, b)
from .modulated_conv2d import _Demod, _scale_channels, conv2d_resample

__all__ = ["modulated_conv2d_bias_act"]


# ---------------------------------------------------------------------------------------------------
# opaque kernel launches


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


@torch.library.custom_op("gan_fast::triton_demod_bias_act", mutates_args=())
def _epilogue_op(c: torch.Tensor, dcoefs: Optional[torch.Tensor], noise: Optional[torch.Tensor],
                 bias: Optional[torch.Tensor], act_code: int, alpha: float, gain: float,
                 clamp: Optional[float]) -> torch.Tensor:
    return K.demod_bias_act_fwd(c, dcoefs, noise, bias, act_code, alpha, gain, clamp)


@_epilogue_op.register_fake
def _(c, dcoefs, noise, bias, act_code, alpha, gain, clamp):
    return K.new_output(c, c.shape[1], c.shape[2], c.shape[3])


@torch.library.custom_op("gan_fast::triton_demod_bias_act_bwd", mutates_args=())
def _epilogue_bwd_op(gy: torch.Tensor, c: torch.Tensor, dcoefs: Optional[torch.Tensor], noise: Optional[torch.Tensor],
                     bias: Optional[torch.Tensor], act_code: int, alpha: float, gain: float, clamp: Optional[float],
                     need_c: bool, need_d: bool, need_noise: bool,
                     need_b: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return K.demod_bias_act_bwd(gy, c, dcoefs, noise, bias, act_code, alpha, gain, clamp, need_c, need_d,
                                need_noise, need_b)


@_epilogue_bwd_op.register_fake
def _(gy, c, dcoefs, noise, bias, act_code, alpha, gain, clamp, need_c, need_d, need_noise, need_b):
    acc = torch.promote_types(c.dtype, torch.float32)
    none = lambda: c.new_empty((0,), dtype=acc)  # noqa: E731
    return (K.new_output(c, c.shape[1], c.shape[2], c.shape[3]) if need_c else c.new_empty((0,)),
            c.new_empty((c.shape[0], c.shape[1]), dtype=acc) if need_d else none(),
            c.new_empty(noise.shape, dtype=acc) if need_noise else none(),
            c.new_empty((c.shape[1],), dtype=acc) if need_b else none())


# ---------------------------------------------------------------------------------------------------
# differentiable pieces


def _params(act_code, alpha, gain, clamp):
    return int(act_code), float(alpha), float(gain), None if clamp is None else float(clamp)


def _epilogue_vjp(gy, c, dcoefs, noise, bias, p, need_c, need_d, need_noise, need_b):
    """(g_c, g_d, g_noise, g_bias) of y = clamp(act(c * d + noise + bias) * gain); None where not needed.

    A plain backward (grad mode off: no second order to come) is one Triton pass
    (``demod_bias_act_bwd``); under ``create_graph`` (path length, R1) it is built
    from differentiable pieces so that the second order is exact.
    """
    if not torch.is_grad_enabled() and (not need_noise or noise.shape[1] == 1):
        g = _epilogue_bwd_op(gy, c, dcoefs, noise, bias, *p, need_c, need_d, need_noise, need_b)
        return tuple(gi.to(t.dtype) if need else None
                     for gi, t, need in zip(g, (c, dcoefs, noise, bias), (need_c, need_d, need_noise, need_b)))
    act_code, alpha, gain, clamp = p
    acc = torch.promote_types(c.dtype, torch.float32)  # per-channel sums in float32 at least
    d4 = dcoefs.to(c.dtype)[:, :, None, None] if dcoefs is not None else None
    z0 = c * d4 if d4 is not None else c
    if noise is not None:
        z0 = z0 + noise.to(c.dtype)
    dz = bias_act_vjp(gy, z0, bias, 1, act_code, alpha, gain, clamp, "triton")
    g_c = (dz * d4 if d4 is not None else dz) if need_c else None
    g_d = (dz.to(acc) * c.to(acc)).sum(dim=(2, 3)).to(dcoefs.dtype) if need_d else None
    g_noise = dz.to(acc).sum_to_size(noise.shape).to(noise.dtype) if need_noise else None
    g_bias = dz.sum(dim=(0, 2, 3), dtype=acc).to(bias.dtype) if need_b else None
    return g_c, g_d, g_noise, g_bias


class _DemodBiasAct(torch.autograd.Function):
    """y = clamp(act(c * d[:, :, None, None] + noise + bias[:, None, None]) * gain), one Triton pass."""

    @staticmethod
    def forward(c, dcoefs, noise, bias, p):
        return _epilogue_op(c, dcoefs, noise, bias, *p)

    @staticmethod
    def setup_context(ctx, inputs, output):
        c, dcoefs, noise, bias, p = inputs
        ctx.save_for_backward(c, dcoefs, noise, bias)
        ctx.p = p

    @staticmethod
    def backward(ctx, gy):
        c, dcoefs, noise, bias = ctx.saved_tensors
        return (*_epilogue_vjp(gy, c, dcoefs, noise, bias, ctx.p, *ctx.needs_input_grad[:4]), None)


class _ModconvBiasAct(torch.autograd.Function):
    """(y, c) of the one-kernel stride-1 layer; c = conv(x * s, w) is kept for the backward."""

    @staticmethod
    def forward(x, weight, styles, dcoefs, noise, bias, padding, p, store_c):
        return _fwd_op(x, weight, styles, dcoefs, noise, bias, *padding, *p, store_c)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, styles, dcoefs, noise, bias, padding, p, _ = inputs
        ctx.save_for_backward(x, weight, styles, dcoefs, noise, bias, output[1])
        ctx.padding, ctx.p = padding, p
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, gy, gc):
        x, weight, styles, dcoefs, noise, bias, c = ctx.saved_tensors
        need_x, need_w, need_s, need_d, need_noise, need_b = ctx.needs_input_grad[:6]
        grads = [None] * 9
        if gy is None and gc is None:
            return tuple(grads)
        g_conv = gc
        if gy is not None:
            g_conv, grads[3], grads[4], grads[5] = _epilogue_vjp(gy, c, dcoefs, noise, bias, ctx.p, True, need_d,
                                                                 need_noise, need_b)
            if gc is not None:
                g_conv = g_conv + gc
        want_x = need_x or need_s
        want_w = need_w and not weight_gradients_disabled()
        if want_x or want_w:
            acc = torch.promote_types(x.dtype, torch.float32)
            s4 = styles.to(x.dtype)[:, :, None, None]
            g_xs, g_w, _ = torch.ops.aten.convolution_backward(
                g_conv.to(x.dtype), x * s4, weight.to(x.dtype), None, [1, 1], list(ctx.padding), [1, 1], False,
                [0, 0], 1, [want_x, want_w, False])
            if need_x:
                grads[0] = g_xs * s4
            if need_s:
                grads[2] = (g_xs.to(acc) * x.to(acc)).sum(dim=(2, 3)).to(styles.dtype)
            if want_w:
                grads[1] = g_w.to(weight.dtype)
        return tuple(grads)


# ---------------------------------------------------------------------------------------------------
# entry point (called by gan_fast.ops.modulated_conv2d_bias_act after validation)


def _dcoefs(x, weight, styles, demodulate):
    if not demodulate:
        return None
    if x.dtype == torch.float64:  # _Demod's kernel computes in float32
        wsq = weight.square().sum(dim=(2, 3))  # [O, I]
        return (styles.square() @ wsq.t() + DEMOD_EPS).rsqrt()
    return _Demod.apply(styles, weight)


def modulated_conv2d_bias_act(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                              bias: Optional[torch.Tensor], noise: Optional[torch.Tensor], up: int, down: int,
                              padding: Tuple[int, int, int, int], resample_filter: Optional[torch.Tensor],
                              demodulate: bool, flip_weight: bool, act_code: int, alpha: float, gain: float,
                              clamp: Optional[float], algorithm: str, impl: str) -> torch.Tensor:
    """The fused layer; arguments already validated by ``gan_fast.ops.modulated_conv2d_bias_act``.

    ``algorithm='implicit_gemm'`` needs up = down = 1, symmetric padding and flip_weight.
    """
    if impl != "triton":
        raise ValueError(f"modulated_conv2d_bias_act has no fused {impl!r} backend (only 'triton')")
    device_type = x.device.type
    if x.dtype != torch.float64 and torch.is_autocast_enabled(device_type):
        x = x.to(torch.get_autocast_dtype(device_type))  # autocast's convolution policy (it cannot see inside)
    if needs_fp16_prenormalization(x, demodulate):
        weight, styles = prenormalize_fp16(weight, styles)
    dcoefs = _dcoefs(x, weight, styles, demodulate)
    p = _params(act_code, alpha, gain, clamp)

    if algorithm == "implicit_gemm":
        tensors = (x, weight, styles, dcoefs, noise, bias)
        store_c = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
        y, _ = _ModconvBiasAct.apply(*tensors, (padding[2], padding[0]), p, store_c)
        return y
    if x.dtype == torch.float64:  # the Triton scale/FIR kernels compute in float32
        c = reference_conv2d_resample(x * styles[:, :, None, None], weight, resample_filter, up, down, padding,
                                      flip_weight=flip_weight)
    else:
        c = conv2d_resample(_scale_channels(x, styles, None), weight.to(x.dtype),
                            resample_filter, up, down, padding, flip_weight=flip_weight)
    return _DemodBiasAct.apply(c, dcoefs, noise, bias, p)

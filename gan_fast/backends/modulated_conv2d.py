"""Autograd glue and torch.library registration for the Triton modulated convolution.

Algorithms (both give the reference's result; ``fused_modconv`` picks one):

* ``fused_modconv=False`` (StyleGAN2's training path): one shared cuDNN
  convolution of the style-scaled activations, ``y = conv(x * s) * d + noise``.
  Triton does ``x * s`` (one pass), the demodulation coefficients ``d`` (one
  launch) and the epilogue ``* d + noise`` (one pass).
* ``fused_modconv=True``: per-sample weights ``w' = w * s * d`` written once by a
  Triton kernel (after the same ``d`` kernel), one grouped cuDNN convolution, and
  the noise epilogue.

The convolution stays on cuDNN (through ``gan_fast.conv2d_gradfix``, so
``no_weight_gradients`` works); the up/down resampling around it is the
upfirdn2d fast path (``gan_fast.fused.upfirdn2d`` with ``impl='triton'``) when
that module is present, else the reference upfirdn2d.

Structure (the pattern DESIGN.md checked): kernel launches are opaque
``torch.library.custom_op``s with ``register_fake``; differentiation lives in
``torch.autograd.Function``s with a separate ``setup_context`` that save only
inputs and outputs, and whose backward is made of differentiable pieces:

* ``_ScaleChannels(x, scale, noise) = x * scale[b,c] + noise``;
  backward: ``_ScaleChannels(g, scale)``, ``_ChannelDot(g, x)``, ``sum(g)``.
* ``_ChannelDot(a, b) = sum_hw a * b``; backward: ``_ScaleChannels(b, g)``, ``_ScaleChannels(a, g)``.
  These two are closed under differentiation: every order of derivative of
  the non-fused layer's elementwise parts runs on the Triton kernels.
* ``_Demod(s, w) = rsqrt(s^2 @ wsq^T + eps)``; backward in torch ops
  (two small matmuls), differentiable again by autograd.
* ``_ModulateWeight(w, s, d)``; backward in torch ops (einsums).

So the first-order gradients w.r.t. x, weight, styles and noise are exact, and
the second order (path length penalty through G, R1 through D) is exact too:
it differentiates these backward formulas.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from ..kernels import modulated_conv2d as K
from ..reference.conv2d_resample import conv2d_resample as _ref_conv2d_resample
from ..reference.modulated_conv2d import needs_fp16_prenormalization, prenormalize_fp16
from ..backends import upfirdn2d as _upfirdn2d_backend
from ..params.upfirdn2d import UpFirDn2dParams

__all__ = ["modulated_conv2d", "conv2d_resample"]


def _out_format(x: torch.Tensor) -> torch.memory_format:
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


# ---------------------------------------------------------------------------------------------------
# opaque kernel launches


@torch.library.custom_op("gan_fast::triton_modconv_demod", mutates_args=())
def _demod_op(styles: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return K.demod_coefs(styles, weight)


@_demod_op.register_fake
def _(styles, weight):
    return styles.new_empty((styles.shape[0], weight.shape[0]), dtype=torch.float32)


@torch.library.custom_op("gan_fast::triton_modconv_scale_channels", mutates_args=())
def _scale_op(x: torch.Tensor, scale: Optional[torch.Tensor], noise: Optional[torch.Tensor]) -> torch.Tensor:
    return K.scale_channels(x, scale, noise)


@_scale_op.register_fake
def _(x, scale, noise):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=_out_format(x))


@torch.library.custom_op("gan_fast::triton_modconv_channel_dot", mutates_args=())
def _channel_dot_op(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return K.channel_dot(a, b)


@_channel_dot_op.register_fake
def _(a, b):
    return a.new_empty(a.shape[:2], dtype=torch.float32)


@torch.library.custom_op("gan_fast::triton_modconv_modulate_weight", mutates_args=())
def _modulate_op(weight: torch.Tensor, styles: torch.Tensor, dcoefs: Optional[torch.Tensor],
                 dtype: torch.dtype) -> torch.Tensor:
    return K.modulate_weight(weight, styles, dcoefs, dtype)


@_modulate_op.register_fake
def _(weight, styles, dcoefs, dtype):
    return weight.new_empty((styles.shape[0], *weight.shape), dtype=dtype)


# ---------------------------------------------------------------------------------------------------
# differentiable pieces


class _ScaleChannels(torch.autograd.Function):
    """x * scale[:, :, None, None] + noise (scale [B, C] or None, noise broadcastable to x or None)."""

    @staticmethod
    def forward(x, scale, noise):
        return _scale_op(x, scale, noise)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, scale, noise = inputs
        ctx.save_for_backward(x if scale is not None else None, scale)
        ctx.noise_meta = None if noise is None else (noise.shape, noise.dtype)

    @staticmethod
    def backward(ctx, g):
        x, scale = ctx.saved_tensors
        gx = gs = gn = None
        if ctx.needs_input_grad[0]:
            gx = g if scale is None else _ScaleChannels.apply(g, scale, None)
        if ctx.needs_input_grad[1]:
            gs = _ChannelDot.apply(g, x).to(scale.dtype).sum_to_size(scale.shape)
        if ctx.needs_input_grad[2]:
            shape, dtype = ctx.noise_meta
            gn = g.sum_to_size(shape).to(dtype)
        return gx, gs, gn


class _ChannelDot(torch.autograd.Function):
    """sum over H, W of a * b: [B, C] float32."""

    @staticmethod
    def forward(a, b):
        return _channel_dot_op(a, b)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = _ScaleChannels.apply(b, g, None).to(a.dtype)
        if ctx.needs_input_grad[1]:
            gb = _ScaleChannels.apply(a, g, None).to(b.dtype)
        return ga, gb


def _scale_channels(x: torch.Tensor, scale: Optional[torch.Tensor], noise: Optional[torch.Tensor]) -> torch.Tensor:
    if noise is not None and torch.broadcast_shapes(noise.shape, x.shape) != x.shape:
        # noise that would enlarge the output: keep the reference's broadcasting semantics
        y = x if scale is None else _ScaleChannels.apply(x, scale, None)
        return y + noise.to(y.dtype)
    if scale is None and noise is None:
        return x
    return _ScaleChannels.apply(x, scale, noise)


class _Demod(torch.autograd.Function):
    """d[b, o] = rsqrt(sum_i s[b,i]^2 * sum_k w[o,i,k]^2 + 1e-8), float32 [B, O]."""

    @staticmethod
    def forward(styles, weight):
        return _demod_op(styles, weight)

    @staticmethod
    def setup_context(ctx, inputs, output):
        styles, weight = inputs
        ctx.save_for_backward(styles, weight, output)

    @staticmethod
    def backward(ctx, gd):
        styles, weight, d = ctx.saved_tensors
        gs = gw = None
        gq = -0.5 * gd * d * d * d  # d q^(-1/2) / dq
        s = styles.float()
        if ctx.needs_input_grad[0]:
            wsq = weight.float().square().sum(dim=[2, 3])  # [O, I]
            gs = (2 * s * (gq @ wsq)).to(styles.dtype)
        if ctx.needs_input_grad[1]:
            gw = (2 * weight.float() * (gq.t() @ s.square())[:, :, None, None]).to(weight.dtype)
        return gs, gw


class _ModulateWeight(torch.autograd.Function):
    """w'[b, o, i, ky, kx] = w[o,i,ky,kx] * s[b,i] (* d[b,o]), in ``dtype``."""

    @staticmethod
    def forward(weight, styles, dcoefs, dtype):
        return _modulate_op(weight, styles, dcoefs, dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        weight, styles, dcoefs, _ = inputs
        ctx.save_for_backward(weight, styles, dcoefs)

    @staticmethod
    def backward(ctx, g):
        weight, styles, dcoefs = ctx.saved_tensors
        o, i = weight.shape[:2]
        gf = g.float().reshape(g.shape[0], o, i, -1)  # [B, O, I, K]
        w = weight.float().reshape(o, i, -1)
        s = styles.float()
        gw = gs = gd = None
        gfd = gf if dcoefs is None else gf * dcoefs[:, :, None, None]
        if ctx.needs_input_grad[0]:
            gw = torch.einsum("boik,bi->oik", gfd, s).reshape(weight.shape).to(weight.dtype)
        if ctx.needs_input_grad[1]:
            gs = torch.einsum("boik,oik->bi", gfd, w).to(styles.dtype)
        if dcoefs is not None and ctx.needs_input_grad[2]:
            gd = torch.einsum("boik,oik,bi->bo", gf, w, s).to(dcoefs.dtype)
        return gw, gs, gd, None


# ---------------------------------------------------------------------------------------------------
# convolution with resampling (the reference's composition, with the fast upfirdn2d)


def _upfirdn2d(x, f, up, down, padding, flip_filter, gain):
    return _upfirdn2d_backend.run("triton", UpFirDn2dParams((up, up), (down, down), tuple(padding), flip_filter,
                                                            float(gain)), x, f)


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: Optional[torch.Tensor], up: int, down: int,
                    padding: Tuple[int, int, int, int], groups: int = 1, flip_weight: bool = True) -> torch.Tensor:
    """``gan_fast.reference.conv2d_resample`` with its FIR steps on the fast upfirdn2d."""
    return _ref_conv2d_resample(x, w, f, up, down, padding, groups=groups, flip_weight=flip_weight,
                                fir=lambda x, f, up, down, pad, gain: _upfirdn2d(x, f, up, down, pad, False, gain))


# ---------------------------------------------------------------------------------------------------
# entry point (called by gan_fast.ops.modulated_conv2d after validation)


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, noise: Optional[torch.Tensor],
                     up: int, down: int, padding: Tuple[int, int, int, int], resample_filter: Optional[torch.Tensor],
                     demodulate: bool, flip_weight: bool, fused_modconv: bool, impl: str) -> torch.Tensor:
    """Same arguments and result as ``gan_fast.reference.modulated_conv2d`` (``impl``: 'triton')."""
    if impl != "triton":
        raise ValueError(f"modulated_conv2d: the fused module has no {impl!r} backend (only 'triton')")
    batch = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape

    if needs_fp16_prenormalization(x, demodulate):
        weight, styles = prenormalize_fp16(weight, styles)

    dcoefs = _Demod.apply(styles, weight) if demodulate else None  # float32 [N, O]

    if not fused_modconv:
        xs = _ScaleChannels.apply(x, styles, None)
        y = conv2d_resample(xs, weight.to(x.dtype), resample_filter, up, down, padding, flip_weight=flip_weight)
        return _scale_channels(y, dcoefs, noise)

    wm = _ModulateWeight.apply(weight, styles, dcoefs, x.dtype)  # [N, O, I, kh, kw]
    y = conv2d_resample(x.reshape(1, -1, *x.shape[2:]), wm.reshape(-1, in_ch, kh, kw), resample_filter, up, down,
                        padding, groups=batch, flip_weight=flip_weight)
    y = y.reshape(batch, -1, *y.shape[2:])
    return _scale_channels(y, None, noise)

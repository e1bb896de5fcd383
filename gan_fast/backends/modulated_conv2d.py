"""The ``modulated_conv2d`` backends: ``ref`` (``gan_fast.reference.modulated_conv2d``) and ``triton``
(``gan_fast.kernels.modulated_conv2d`` around a cuDNN convolution).

Algorithms of the triton backend (both give the reference's result; ``fused_modconv`` picks one):

* ``fused_modconv=False`` (StyleGAN2's training path): one shared cuDNN
  convolution of the style-scaled activations, ``y = conv(x * s) * d + noise``.
  Triton does ``x * s`` (one pass), the demodulation coefficients ``d`` (one
  launch) and the epilogue ``* d + noise`` (one pass).
* ``fused_modconv=True``: per-sample weights ``w' = w * s * d`` written once by a
  Triton kernel (after the same ``d`` kernel), one grouped cuDNN convolution, and
  the noise epilogue.

The convolution stays on cuDNN (through ``gan_fast.conv2d_gradfix``, so
``no_weight_gradients`` works); the up/down resampling around it is the
triton upfirdn2d backend (``gan_fast.backends.upfirdn2d.run("triton", ...)``), which takes the filter as a
constant: a filter that requires grad is refused (``SPEC.cannot``). The Triton kernels compute in float32:
float64 is refused too.

Structure: kernel launches are opaque ``torch.library.custom_op``s with ``register_fake`` (the kernels are
imported by their bodies, on the first launch); differentiation lives in ``torch.autograd.Function``s with a
separate ``setup_context`` that save only inputs and outputs, and whose backward is made of differentiable
pieces:

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

from typing import Optional, Tuple

import torch

from ..params.modulated_conv2d import ModulatedConv2dParams
from ..params.upfirdn2d import UpFirDn2dParams
from ..reference import modulated_conv2d as reference
from ..reference.conv2d_resample import conv2d_resample as _ref_conv2d_resample
from ..reference.modulated_conv2d import needs_fp16_prenormalization, prenormalize_fp16
from ..shapes import output_format
from . import upfirdn2d as _upfirdn2d
from .common import OpSpec, cache_signatures

__all__ = ["SPEC", "SPECS", "run", "channel_dot", "conv2d_resample", "demod", "scale_channels"]

LEARNED_FILTER = ("the resampling runs on the triton upfirdn2d, which takes the filter as a constant, so a "
                  "resample_filter that requires grad gets no gradient")
SPEC = OpSpec("modulated_conv2d", "modulated_conv2d", fast={"cuda": ("triton",)},
              cannot={"triton": {"float64": "its Triton kernels compute in float32",
                                 "learned filter": LEARNED_FILTER}})
SPECS = (SPEC,)


def _kernels():
    from ..kernels import modulated_conv2d as K  # noqa: PLC0415 - triton loads on the first launch, not at import

    return K


# ---------------------------------------------------------------------------------------------------
# opaque kernel launches


@torch.library.custom_op("gan_fast::triton_modconv_demod", mutates_args=())
def _demod_op(styles: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return _kernels().demod_coefs(styles, weight)


@_demod_op.register_fake
def _(styles, weight):
    return styles.new_empty((styles.shape[0], weight.shape[0]), dtype=torch.float32)


@torch.library.custom_op("gan_fast::triton_modconv_scale_channels", mutates_args=())
def _scale_op(x: torch.Tensor, scale: Optional[torch.Tensor], noise: Optional[torch.Tensor]) -> torch.Tensor:
    return _kernels().scale_channels(x, scale, noise)


@_scale_op.register_fake
def _(x, scale, noise):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=output_format(x))


@torch.library.custom_op("gan_fast::triton_modconv_channel_dot", mutates_args=())
def _channel_dot_op(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _kernels().channel_dot(a, b)


@_channel_dot_op.register_fake
def _(a, b):
    return a.new_empty(a.shape[:2], dtype=torch.float32)


@torch.library.custom_op("gan_fast::triton_modconv_modulate_weight", mutates_args=())
def _modulate_op(weight: torch.Tensor, styles: torch.Tensor, dcoefs: Optional[torch.Tensor],
                 dtype: torch.dtype) -> torch.Tensor:
    return _kernels().modulate_weight(weight, styles, dcoefs, dtype)


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
        ctx.set_materialize_grads(False)  # no gradient in, none out (as autograd's own ops: None, not zeros)

    @staticmethod
    def backward(ctx, g):
        x, scale = ctx.saved_tensors
        gx = gs = gn = None
        if g is None:
            return gx, gs, gn
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
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        ga = gb = None
        if g is None:
            return ga, gb
        if ctx.needs_input_grad[0]:
            ga = _ScaleChannels.apply(b, g, None).to(a.dtype)
        if ctx.needs_input_grad[1]:
            gb = _ScaleChannels.apply(a, g, None).to(b.dtype)
        return ga, gb


def scale_channels(x: torch.Tensor, scale: Optional[torch.Tensor], noise: Optional[torch.Tensor]) -> torch.Tensor:
    """``x * scale[:, :, None, None] + noise`` (either optional) on the Triton kernels, differentiable to every
    order; noise that would enlarge the output keeps the reference's broadcasting."""
    if noise is not None and torch.broadcast_shapes(noise.shape, x.shape) != x.shape:
        y = x if scale is None else _ScaleChannels.apply(x, scale, None)
        return y + noise.to(y.dtype)
    if scale is None and noise is None:
        return x
    return _ScaleChannels.apply(x, scale, noise)


def channel_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sum_hw a * b`` (float32 [N, C], products and sums in float32) on the Triton kernel, differentiable to
    every order; what it keeps for backward is ``a`` and ``b`` themselves, in their own dtype (no float32
    copies: a half-precision second order keeps half-precision tensors). With grad mode off (a plain
    backward), one launch without ``Function.apply``."""
    if not torch.is_grad_enabled():
        return _channel_dot_op(a, b)
    return _ChannelDot.apply(a, b)


class _Demod(torch.autograd.Function):
    """d[b, o] = rsqrt(sum_i s[b,i]^2 * sum_k w[o,i,k]^2 + 1e-8), float32 [B, O]."""

    @staticmethod
    def forward(styles, weight):
        return _demod_op(styles, weight)

    @staticmethod
    def setup_context(ctx, inputs, output):
        styles, weight = inputs
        ctx.save_for_backward(styles, weight, output)
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, gd):
        styles, weight, d = ctx.saved_tensors
        gs = gw = None
        if gd is None:
            return gs, gw
        gq = -0.5 * gd * d * d * d  # d q^(-1/2) / dq
        s = styles.float()
        if ctx.needs_input_grad[0]:
            wsq = weight.float().square().sum(dim=[2, 3])  # [O, I]
            gs = (2 * s * (gq @ wsq)).to(styles.dtype)
        if ctx.needs_input_grad[1]:
            gw = (2 * weight.float() * (gq.t() @ s.square())[:, :, None, None]).to(weight.dtype)
        return gs, gw


def demod(styles: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The demodulation coefficients (float32 [N, O]) on the Triton kernel, differentiable to every order."""
    return _Demod.apply(styles, weight)


class _ModulateWeight(torch.autograd.Function):
    """w'[b, o, i, ky, kx] = w[o,i,ky,kx] * s[b,i] (* d[b,o]), in ``dtype``."""

    @staticmethod
    def forward(weight, styles, dcoefs, dtype):
        return _modulate_op(weight, styles, dcoefs, dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        weight, styles, dcoefs, _ = inputs
        ctx.save_for_backward(weight, styles, dcoefs)
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g):
        weight, styles, dcoefs = ctx.saved_tensors
        if g is None:
            return None, None, None, None
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


cache_signatures(_ScaleChannels, _ChannelDot, _Demod, _ModulateWeight)


# ---------------------------------------------------------------------------------------------------
# convolution with resampling (the reference's composition, with the triton upfirdn2d)


def _fir(x, f, up, down, padding, gain):
    return _upfirdn2d.run("triton", UpFirDn2dParams((up, up), (down, down), tuple(padding), False, float(gain)), x, f)


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: Optional[torch.Tensor], up: int, down: int,
                    padding: Tuple[int, int, int, int], groups: int = 1, flip_weight: bool = True) -> torch.Tensor:
    """``gan_fast.reference.conv2d_resample`` with its FIR steps on the triton upfirdn2d (``f`` a constant)."""
    return _ref_conv2d_resample(x, w, f, up, down, padding, groups=groups, flip_weight=flip_weight, fir=_fir)


# ---------------------------------------------------------------------------------------------------
# entry point


def run(impl: str, p: ModulatedConv2dParams, x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
        noise: Optional[torch.Tensor], resample_filter: Optional[torch.Tensor]) -> torch.Tensor:
    """``modulated_conv2d`` on backend ``impl`` ('ref' or 'triton'); ``p`` from
    ``gan_fast.params.modulated_conv2d.validate``, the other tensors already in x's dtype."""
    if impl == "ref":
        return reference.modulated_conv2d(x, weight, styles, noise, p.up, p.down, p.padding, resample_filter,
                                          p.demodulate, p.flip_weight, p.fused_modconv)
    if impl != "triton":
        raise ValueError(f"modulated_conv2d: no {impl!r} backend (it has {list(SPEC.backends)})")
    batch = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape

    if needs_fp16_prenormalization(x, p.demodulate):
        weight, styles = prenormalize_fp16(weight, styles)

    dcoefs = _Demod.apply(styles, weight) if p.demodulate else None  # float32 [N, O]

    if not p.fused_modconv:
        xs = _ScaleChannels.apply(x, styles, None)
        y = conv2d_resample(xs, weight.to(x.dtype), resample_filter, p.up, p.down, p.padding,
                            flip_weight=p.flip_weight)
        return scale_channels(y, dcoefs, noise)

    wm = _ModulateWeight.apply(weight, styles, dcoefs, x.dtype)  # [N, O, I, kh, kw]
    y = conv2d_resample(x.reshape(1, -1, *x.shape[2:]), wm.reshape(-1, in_ch, kh, kw), resample_filter, p.up,
                        p.down, p.padding, groups=batch, flip_weight=p.flip_weight)
    y = y.reshape(batch, -1, *y.shape[2:])
    return scale_channels(y, None, noise)

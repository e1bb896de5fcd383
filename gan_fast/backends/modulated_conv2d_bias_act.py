"""The ``modulated_conv2d_bias_act`` backends: ``ref`` (the reference composition ``bias_act(modulated_conv2d(...,
fused_modconv=False))``) and ``triton`` (``gan_fast.kernels.modulated_conv2d_bias_act``), whose two
algorithms give the same result; the parameter record names the one that runs (each has its own
:class:`OpSpec`, so its own self-test and verdict):

* ``cudnn`` (:data:`SPEC`): ``c = conv2d_resample(x * s, w)`` — the Triton ``x * s`` pass, the
  cuDNN convolution (transposed for up 2) and the Triton upfirdn2d FIR, all
  from ``gan_fast.backends.modulated_conv2d`` — then **one** epilogue kernel
  ``y = clamp(act(c * d + noise + bias) * gain)`` (``_DemodBiasAct``), where the
  composed layer makes two passes (``c * d + noise``, then ``bias_act``) and
  keeps both intermediates for backward. Any up/down, any padding. float64
  computes the convolution with torch ops and the epilogue in float64.
* ``implicit_gemm`` (:data:`SPEC_IMPLICIT_GEMM`): the whole stride-1 layer in one kernel
  (``_ModconvBiasAct``): an implicit-GEMM convolution with the style scaling on load and the same
  epilogue; it also writes the raw convolution ``c`` for the backward. Up = down = 1, symmetric padding
  and flip_weight only (``gan_fast.params.modulated_conv2d.check_algorithm``).

Under autocast the fused layer computes in the autocast dtype (autocast's convolution policy, which it cannot
see inside the custom ops).

Both Functions save only their inputs and outputs (so double backward is exact,
DESIGN.md) and share the epilogue's backward, ``_epilogue_vjp``::

    dz = bias_act's VJP (gy, c * d + noise, bias)        (the clamp's mask included)
    g_c = dz * d,  g_d = sum_hw dz * c,  g_bias = sum dz,  g_noise = dz summed to noise's shape

A plain backward (no ``create_graph``: the main G/D loss, every step) computes
all four in one Triton pass (``demod_bias_act_bwd``: one read of ``gy`` and
``c``, float32 partial sums reduced without atomics); a backward that will be
differentiated again (path length through G, R1) uses differentiable pieces
(``gan_fast.backends.bias_act.vjp`` on triton, the Triton ``channel_dot`` for the per-channel sums, and torch
ops), so the second order is exact; what it keeps for the double backward stays in the layer's dtype, no more
than the composed layer keeps (``tests/test_synthesis_layer_memory.py``). Then
``implicit_gemm`` runs ``convolution_backward`` on cuDNN (honouring
``no_weight_gradients`` for a leaf-derived weight, ``gan_fast.conv2d_gradfix``) and ``cudnn`` lets autograd
differentiate its convolution. ``c`` in ``_ModconvBiasAct`` is a real, differentiable output: the
backward reads it, so the second order reaches it.
"""

from typing import NamedTuple, Optional, Tuple

import torch

from .. import activations
from ..conv2d_gradfix import is_leaf_derived, skip_weight_gradient
from ..params.bias_act import BiasActParams
from ..params.modulated_conv2d import ModulatedConv2dBiasActParams
from ..reference import bias_act as bias_act_reference
from ..reference import modulated_conv2d as modconv_reference
from ..reference.conv2d_resample import conv2d_resample as reference_conv2d_resample
from ..reference.modulated_conv2d import DEMOD_EPS, needs_fp16_prenormalization, prenormalize_fp16
from ..shapes import output_format, same_conv_size
from . import bias_act as _bias_act
from .common import OpSpec, cache_signatures
from .modulated_conv2d import LEARNED_FILTER, channel_dot, conv2d_resample, demod, scale_channels

__all__ = ["SPEC", "SPEC_IMPLICIT_GEMM", "SPECS", "SPEC_BY_ALGORITHM", "run"]

# float64 runs exactly on both algorithms (their float64 paths compute in float64).
SPEC = OpSpec("modulated_conv2d_bias_act", "modulated_conv2d_bias_act", fast={"cuda": ("triton",)},
              cannot={"triton": {"learned filter": LEARNED_FILTER}})
SPEC_IMPLICIT_GEMM = OpSpec("modulated_conv2d_bias_act:implicit_gemm", "modulated_conv2d_bias_act",
                            fast={"cuda": ("triton",)})
SPECS = (SPEC, SPEC_IMPLICIT_GEMM)
SPEC_BY_ALGORITHM = {"cudnn": SPEC, "implicit_gemm": SPEC_IMPLICIT_GEMM}


def _kernels():
    from ..kernels import modulated_conv2d_bias_act as K  # noqa: PLC0415 - triton loads on the first launch

    return K


def _new_output(x: torch.Tensor, out_ch: int, oh: int, ow: int) -> torch.Tensor:
    """[N, out_ch, oh, ow] in x's dtype, channels_last when x is: what the kernels write."""
    return torch.empty((x.shape[0], out_ch, oh, ow), dtype=x.dtype, device=x.device, memory_format=output_format(x))


# ---------------------------------------------------------------------------------------------------
# opaque kernel launches


@torch.library.custom_op("gan_fast::triton_modconv_bias_act", mutates_args=())
def _fwd_op(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, dcoefs: Optional[torch.Tensor],
            noise: Optional[torch.Tensor], bias: Optional[torch.Tensor], pad_y: int, pad_x: int, act: int,
            alpha: float, gain: float, clamp: Optional[float], store_c: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    return _kernels().modconv_bias_act_fwd(x, weight, styles, dcoefs, noise, bias, (pad_y, pad_x), act, alpha, gain,
                                           clamp, store_c)


@_fwd_op.register_fake
def _(x, weight, styles, dcoefs, noise, bias, pad_y, pad_x, act, alpha, gain, clamp, store_c):
    oh, ow = same_conv_size(x.shape[2], x.shape[3], weight.shape[2], weight.shape[3], pad_y, pad_x)
    y = _new_output(x, weight.shape[0], oh, ow)
    return y, (torch.empty_like(y) if store_c else x.new_empty((0,)))


@torch.library.custom_op("gan_fast::triton_demod_bias_act", mutates_args=())
def _epilogue_op(c: torch.Tensor, dcoefs: Optional[torch.Tensor], noise: Optional[torch.Tensor],
                 bias: Optional[torch.Tensor], act: int, alpha: float, gain: float,
                 clamp: Optional[float]) -> torch.Tensor:
    return _kernels().demod_bias_act_fwd(c, dcoefs, noise, bias, act, alpha, gain, clamp)


@_epilogue_op.register_fake
def _(c, dcoefs, noise, bias, act, alpha, gain, clamp):
    return _new_output(c, c.shape[1], c.shape[2], c.shape[3])


@torch.library.custom_op("gan_fast::triton_demod_bias_act_bwd", mutates_args=())
def _epilogue_bwd_op(gy: torch.Tensor, c: torch.Tensor, dcoefs: Optional[torch.Tensor], noise: Optional[torch.Tensor],
                     bias: Optional[torch.Tensor], act: int, alpha: float, gain: float, clamp: Optional[float],
                     need_c: bool, need_d: bool, need_noise: bool,
                     need_b: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return _kernels().demod_bias_act_bwd(gy, c, dcoefs, noise, bias, act, alpha, gain, clamp, need_c, need_d,
                                         need_noise, need_b)


@_epilogue_bwd_op.register_fake
def _(gy, c, dcoefs, noise, bias, act, alpha, gain, clamp, need_c, need_d, need_noise, need_b):
    acc = torch.promote_types(c.dtype, torch.float32)
    none = lambda: c.new_empty((0,), dtype=acc)  # noqa: E731
    return (_new_output(c, c.shape[1], c.shape[2], c.shape[3]) if need_c else c.new_empty((0,)),
            c.new_empty((c.shape[0], c.shape[1]), dtype=acc) if need_d else none(),
            c.new_empty(noise.shape, dtype=acc) if need_noise else none(),
            c.new_empty((c.shape[1],), dtype=acc) if need_b else none())


# ---------------------------------------------------------------------------------------------------
# differentiable pieces


class Epilogue(NamedTuple):
    """``y = clamp(act(c * d + noise + bias) * gain)``: the epilogue kernels' arguments (``code``: the
    activation's kernel code) and, for its VJP on the bias_act backend, bias_act's record (bias along dim 1)."""
    code: int
    alpha: float
    gain: float
    clamp: Optional[float]
    bias_act: BiasActParams


class Gemm(NamedTuple):
    """The non-tensor arguments of the one-kernel layer (``_ModconvBiasAct``): its symmetric padding and its
    epilogue."""
    pad_y: int
    pad_x: int
    epilogue: Epilogue


# The activations whose second derivative is zero, and what the reference's second order gives for the
# pre-activation z = c * d + noise + bias there (the gradients must be None or zeros as the reference's are):
# linear's backward does not read z (a clamp reads only its mask): z is not in the graph, its gradient None;
# relu's and lrelu's (torch's threshold_backward, leaky_relu_backward) read z with a derivative of defined
# zeros: z, and so noise, bias, c and d, get zeros. The bias_act VJP returns None for z and b for all three,
# so the glue passes them detached and links them with zeros where the reference does (_ZeroDerivative).
_PIECEWISE_LINEAR = frozenset({"linear", "relu", "lrelu"})
_READS_Z_AS_ZEROS = frozenset({"relu", "lrelu"})


class _ZeroDerivative(torch.autograd.Function):
    """``dz`` unchanged, depending on ``z`` and ``b`` with a zero derivative: its backward passes the cotangent
    on to ``dz`` and gives (expanded) zeros for ``z`` and ``b``, as the reference's relu/lrelu backward does."""

    @staticmethod
    def forward(dz, z, b):
        return dz

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, z, b = inputs
        ctx.metas = tuple(None if t is None else (t.shape, t.dtype) for t in (z, b))
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, g):
        if g is None:
            return None, None, None
        grads = [g]
        for meta, need in zip(ctx.metas, ctx.needs_input_grad[1:]):
            if meta is None or not need:
                grads.append(None)
            else:
                shape, dtype = meta
                grads.append(g.new_zeros((), dtype=dtype).expand(shape))
        return tuple(grads)


def _channel_sums(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sum_hw a * b`` [N, C] in float32 (float64 for float64), keeping for backward only ``a`` and ``b`` in
    their own dtype (the Triton ``channel_dot``): never float32 copies of half-precision tensors, which a
    second order would keep (issue 21: the fp16 double backward kept two float32 [N, O, H, W] copies per
    sum)."""
    if a.dtype == torch.float64:  # the kernel computes in float32: float64 stays float64, with torch ops
        return (a * b).sum(dim=(2, 3))
    return channel_dot(a, b)


def _sum_to(t: torch.Tensor, shape, dtype: torch.dtype) -> torch.Tensor:
    """``t`` summed to ``shape`` (over the dims where it broadcasts), accumulated and returned in ``dtype``; ``t``
    itself where nothing is summed. No float32 copy of ``t`` is made, so none is kept for a second order."""
    dims = tuple(i for i, (n, m) in enumerate(zip(shape, t.shape)) if n == 1 and m != 1)
    return t.sum(dim=dims, keepdim=True, dtype=dtype) if dims else t


def _epilogue_vjp(gy, c, dcoefs, noise, bias, e: Epilogue, need_c, need_d, need_noise, need_b):
    """(g_c, g_d, g_noise, g_bias) of y = clamp(act(c * d + noise + bias) * gain); None where not needed.

    A plain backward (grad mode off: no second order to come) is one Triton pass
    (``demod_bias_act_bwd``); under ``create_graph`` (path length, R1) it is built
    from differentiable pieces so that the second order is exact.
    """
    if not torch.is_grad_enabled() and (not need_noise or noise.shape[1] == 1):
        g = _epilogue_bwd_op(gy, c, dcoefs, noise, bias, e.code, e.alpha, e.gain, e.clamp, need_c, need_d,
                             need_noise, need_b)
        return tuple(gi.to(t.dtype) if need else None
                     for gi, t, need in zip(g, (c, dcoefs, noise, bias), (need_c, need_d, need_noise, need_b)))
    # What a second order keeps here is what the composed layer keeps (c, dz, z0 in c's dtype, d [N, O]): sums
    # accumulate in float32 (sum(dtype=), channel_dot) without float32 copies of whole tensors.
    acc = torch.promote_types(c.dtype, torch.float32)  # per-channel sums in float32 at least
    d4 = dcoefs.to(c.dtype)[:, :, None, None] if dcoefs is not None else None
    z0 = c * d4 if d4 is not None else c
    if noise is not None:
        z0 = z0 + noise.to(c.dtype)
    if e.bias_act.act in _PIECEWISE_LINEAR:
        dz = _bias_act.vjp("triton", e.bias_act, gy, z0.detach(), None if bias is None else bias.detach())
        if e.bias_act.act in _READS_Z_AS_ZEROS:
            dz = _ZeroDerivative.apply(dz, z0, bias)
    else:
        dz = _bias_act.vjp("triton", e.bias_act, gy, z0, bias)
    g_c = (dz * d4 if d4 is not None else dz) if need_c else None
    g_d = _channel_sums(dz, c).to(dcoefs.dtype) if need_d else None
    g_noise = _sum_to(dz, noise.shape, acc).to(noise.dtype) if need_noise else None
    g_bias = dz.sum(dim=(0, 2, 3), dtype=acc).to(bias.dtype) if need_b else None
    return g_c, g_d, g_noise, g_bias


class _DemodBiasAct(torch.autograd.Function):
    """y = clamp(act(c * d[:, :, None, None] + noise + bias[:, None, None]) * gain), one Triton pass."""

    @staticmethod
    def forward(c, dcoefs, noise, bias, e):
        return _epilogue_op(c, dcoefs, noise, bias, e.code, e.alpha, e.gain, e.clamp)

    @staticmethod
    def setup_context(ctx, inputs, output):
        c, dcoefs, noise, bias, e = inputs
        ctx.save_for_backward(c, dcoefs, noise, bias)
        ctx.e = e
        ctx.set_materialize_grads(False)  # no gradient in, none out (None, as autograd's own ops give)

    @staticmethod
    def backward(ctx, gy):
        if gy is None:
            return None, None, None, None, None
        c, dcoefs, noise, bias = ctx.saved_tensors
        return (*_epilogue_vjp(gy, c, dcoefs, noise, bias, ctx.e, *ctx.needs_input_grad[:4]), None)


class _ModconvBiasAct(torch.autograd.Function):
    """(y, c) of the one-kernel stride-1 layer; c = conv(x * s, w) is kept for the backward (a forward that
    nothing differentiates launches the kernel directly, without writing c)."""

    @staticmethod
    def forward(x, weight, styles, dcoefs, noise, bias, q):
        e = q.epilogue
        return _fwd_op(x, weight, styles, dcoefs, noise, bias, q.pad_y, q.pad_x, e.code, e.alpha, e.gain, e.clamp,
                       True)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, styles, dcoefs, noise, bias, q = inputs
        ctx.save_for_backward(x, weight, styles, dcoefs, noise, bias, output[1])
        ctx.q = q
        # no_weight_gradients() skips a leaf-derived weight's gradient only (decided now, read at backward)
        ctx.weight_leaf_derived = is_leaf_derived(weight)
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, gy, gc):
        x, weight, styles, dcoefs, noise, bias, c = ctx.saved_tensors
        need_x, need_w, need_s, need_d, need_noise, need_b = ctx.needs_input_grad[:6]
        q = ctx.q
        grads = [None] * 7
        if gy is None and gc is None:
            return tuple(grads)
        g_conv = gc
        if gy is not None:
            g_conv, grads[3], grads[4], grads[5] = _epilogue_vjp(gy, c, dcoefs, noise, bias, q.epilogue, True, need_d,
                                                                 need_noise, need_b)
            if gc is not None:
                g_conv = g_conv + gc
        want_x = need_x or need_s
        want_w = need_w and not skip_weight_gradient(ctx.weight_leaf_derived)
        if want_x or want_w:
            s4 = styles.to(x.dtype)[:, :, None, None]
            g_xs, g_w, _ = torch.ops.aten.convolution_backward(
                g_conv.to(x.dtype), x * s4, weight.to(x.dtype), None, [1, 1], [q.pad_y, q.pad_x], [1, 1], False,
                [0, 0], 1, [want_x, want_w, False])
            if need_x:
                grads[0] = g_xs * s4
            if need_s:
                grads[2] = _channel_sums(g_xs, x).to(styles.dtype)
            if want_w:
                grads[1] = g_w.to(weight.dtype)
        return tuple(grads)


cache_signatures(_ZeroDerivative, _DemodBiasAct, _ModconvBiasAct)


# ---------------------------------------------------------------------------------------------------
# entry point


def _dcoefs(x, weight, styles, demodulate):
    if not demodulate:
        return None
    if x.dtype == torch.float64:  # the demodulation kernel computes in float32
        wsq = weight.square().sum(dim=(2, 3))  # [O, I]
        return (styles.square() @ wsq.t() + DEMOD_EPS).rsqrt()
    return demod(styles, weight)


def run(impl: str, p: ModulatedConv2dBiasActParams, x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
        bias: Optional[torch.Tensor], noise: Optional[torch.Tensor],
        resample_filter: Optional[torch.Tensor]) -> torch.Tensor:
    """``modulated_conv2d_bias_act`` on backend ``impl``: 'ref' (the reference composition) or 'triton'
    (algorithm ``p.algorithm``); ``p`` from ``gan_fast.params.modulated_conv2d.validate_bias_act``, the other
    tensors already in x's dtype."""
    if impl == "ref":
        y = modconv_reference.modulated_conv2d(x, weight, styles, noise, p.up, p.down, p.padding, resample_filter,
                                               p.demodulate, p.flip_weight, False)
        return bias_act_reference.bias_act(y, bias, 1, p.act, p.alpha, p.gain, p.clamp)
    if impl != "triton":
        raise ValueError(f"modulated_conv2d_bias_act: no {impl!r} backend (it has {list(SPEC.backends)})")
    device_type = x.device.type
    if x.dtype != torch.float64 and torch.is_autocast_enabled(device_type):
        x = x.to(torch.get_autocast_dtype(device_type))  # autocast's convolution policy (it cannot see inside)
    if needs_fp16_prenormalization(x, p.demodulate):
        weight, styles = prenormalize_fp16(weight, styles)
    dcoefs = _dcoefs(x, weight, styles, p.demodulate)
    e = Epilogue(activations.ACTIVATIONS[p.act].code, p.alpha, p.gain, p.clamp,
                 BiasActParams(1, p.act, p.alpha, p.gain, p.clamp))

    if p.algorithm == "implicit_gemm":
        tensors = (x, weight, styles, dcoefs, noise, bias)
        if not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)):
            # nothing to differentiate: one launch, no Function.apply and no saved convolution
            return _fwd_op(*tensors, p.padding[2], p.padding[0], e.code, e.alpha, e.gain, e.clamp, False)[0]
        y, _ = _ModconvBiasAct.apply(*tensors, Gemm(p.padding[2], p.padding[0], e))
        return y
    if x.dtype == torch.float64:  # the Triton scale/FIR kernels compute in float32
        c = reference_conv2d_resample(x * styles[:, :, None, None], weight, resample_filter, p.up, p.down, p.padding,
                                      flip_weight=p.flip_weight)
    else:
        c = conv2d_resample(scale_channels(x, styles, None), weight.to(x.dtype), resample_filter, p.up, p.down,
                            p.padding, flip_weight=p.flip_weight)
    if not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (c, dcoefs, noise, bias))):
        return _epilogue_op(c, dcoefs, noise, bias, e.code, e.alpha, e.gain, e.clamp)  # no Function.apply
    return _DemodBiasAct.apply(c, dcoefs, noise, bias, e)

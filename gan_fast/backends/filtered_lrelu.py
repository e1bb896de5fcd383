"""Autograd glue for the Triton ``filtered_lrelu`` (``gan_fast.kernels.filtered_lrelu``).

Three launches, each an opaque ``torch.library.custom_op`` with a ``register_fake`` (so
``torch.compile`` traces them)::

    fwd(x, fu, fd, b, ...)        -> (y, mask)   mask: int8 [N, C, MH, MW], or empty when not kept
    jvp(v, vb, mask, fu, fd, ...) -> y'          the forward linearised at mask: Down(d(mask) * Up(v + vb))
    bwd(dy, mask, fu, fd, ...)    -> (dx, db)    its transpose: Up^T(d(mask) * Down^T(dy)) and the sum over N, H, W

Differentiation. filtered_lrelu is piecewise linear in (x, b): its Jacobian
``J`` depends on x only through the mask (which side of 0 and of the clamp each
up-sampled sample lies on), so its second derivative in x is 0 wherever it
exists (as the reference's autograd gives: leaky ReLU's and clamp's backward
have zero derivative with respect to their input). So:

* ``_FilteredLReLU(x, b) -> (y, mask)``; backward: ``(dx, db) = _FilteredLReLUGrad(dy, mask)``.
* ``_FilteredLReLUGrad(dy, mask) -> (dx, db) = J^T dy`` is linear in dy; its backward is
  ``d dy = _FilteredLReLUJvp(g_dx, g_db, mask) = J (g_dx + g_db)``.
* ``_FilteredLReLUJvp`` is linear too; its backward is ``_FilteredLReLUGrad`` again.

Every order of derivative is exact and runs on the two kernels; each Function
saves only its inputs and outputs (the mask is an output of the first and an
input of the others), as DESIGN.md requires for double backward.

Filters the kernels do not take (documented in ``gan_fast.ops.filtered_lrelu``):
one 2-D (non-separable) filter is split off: the kernels run the separable
half with the activation (``fd=None, down=1``, or ``fu=None, up=1``) and the
Triton ``upfirdn2d`` the 2-D resampling (StyleGAN3-R's radial down filters);
two 2-D filters, and filters whose reach no tile holds, run the composition of
the Triton ``upfirdn2d`` and ``bias_act`` kernels; filters that require grad
run the reference (exact gradient for them).
"""

from __future__ import annotations

import importlib
from typing import Optional, Tuple

import torch

from .. import activations
from ..kernels._common import is_channels_last
from . import cache_signatures
from ..reference import filtered_lrelu as reference

__all__ = ["filtered_lrelu", "uses_kernels"]


def _kernels():
    return importlib.import_module("gan_fast.kernels.filtered_lrelu")


def _ntaps(f: Optional[torch.Tensor]) -> int:
    return 1 if f is None else f.shape[0]


def _fmt(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def _sizes(n, c, h, w, fu, fd, up, down, px0, px1, py0, py1):
    """(OH, OW, MH, MW) as the kernels compute them (their own formulas)."""
    k = _kernels()
    oh, ow = k.output_size(h, w, up, down, _ntaps(fu), _ntaps(fd), px0, px1, py0, py1)
    return (oh, ow) + k.mask_size(oh, ow, down, _ntaps(fd))


# ----------------------------------------------------------------------------------------------- custom ops


@torch.library.custom_op("gan_fast::triton_filtered_lrelu_fwd", mutates_args=())
def _fwd_op(x: torch.Tensor, fu: Optional[torch.Tensor], fd: Optional[torch.Tensor], b: Optional[torch.Tensor],
            up: int, down: int, px0: int, px1: int, py0: int, py1: int, gain: float, slope: float, clamp: float,
            flip_filter: bool, keep_mask: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    K = _kernels()
    y, mask = K.filtered_lrelu_fwd(x, fu, fd, b, up, down, px0, px1, py0, py1, gain, slope,
                                   None if clamp < 0 else clamp, flip_filter,
                                   K.MODE_ACT_MASK if keep_mask else K.MODE_ACT)
    return y, (mask if mask is not None else x.new_empty(0, dtype=torch.int8))


@_fwd_op.register_fake
def _(x, fu, fd, b, up, down, px0, px1, py0, py1, gain, slope, clamp, flip_filter, keep_mask):
    n, c, h, w = x.shape
    oh, ow, mh, mw = _sizes(n, c, h, w, fu, fd, up, down, px0, px1, py0, py1)
    y = _fmt(x.new_empty(n, c, oh, ow), is_channels_last(x))
    return y, x.new_empty((n, c, mh, mw) if keep_mask else (0,), dtype=torch.int8)


@torch.library.custom_op("gan_fast::triton_filtered_lrelu_jvp", mutates_args=())
def _jvp_op(v: torch.Tensor, vb: Optional[torch.Tensor], mask: torch.Tensor, fu: Optional[torch.Tensor],
            fd: Optional[torch.Tensor], up: int, down: int, px0: int, px1: int, py0: int, py1: int, gain: float,
            slope: float, flip_filter: bool) -> torch.Tensor:
    K = _kernels()
    return K.filtered_lrelu_fwd(v, fu, fd, vb, up, down, px0, px1, py0, py1, gain, slope, None, flip_filter,
                                K.MODE_JVP, mask)[0]


@_jvp_op.register_fake
def _(v, vb, mask, fu, fd, up, down, px0, px1, py0, py1, gain, slope, flip_filter):
    n, c, h, w = v.shape
    oh, ow, _, _ = _sizes(n, c, h, w, fu, fd, up, down, px0, px1, py0, py1)
    return _fmt(v.new_empty(n, c, oh, ow), is_channels_last(v))


@torch.library.custom_op("gan_fast::triton_filtered_lrelu_bwd", mutates_args=())
def _bwd_op(dy: torch.Tensor, mask: torch.Tensor, fu: Optional[torch.Tensor], fd: Optional[torch.Tensor], up: int,
            down: int, px0: int, py0: int, h: int, w: int, gain: float, slope: float, flip_filter: bool,
            channels_last: bool, want_db: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    dx, db = _kernels().filtered_lrelu_bwd(dy, mask, fu, fd, up, down, px0, py0, h, w, gain, slope, flip_filter,
                                           channels_last, want_db)
    return dx, (db if db is not None else dy.new_empty(0))


@_bwd_op.register_fake
def _(dy, mask, fu, fd, up, down, px0, py0, h, w, gain, slope, flip_filter, channels_last, want_db):
    n, c = dy.shape[:2]
    return _fmt(dy.new_empty(n, c, h, w), channels_last), dy.new_empty(c if want_db else 0)


# ----------------------------------------------------------------------------------------------- autograd
# Non-tensor arguments travel packed in one tuple (Function.apply binds its arguments to forward's
# signature on every call): p = (up, down, px0, px1, py0, py1, gain, slope, clamp (-1: none), flip_filter).


def _bwd_args(p, h, w, channels_last, want_db):
    up, down, px0, _px1, py0, _py1, gain, slope, _clamp, flip = p
    return (up, down, px0, py0, h, w, gain, slope, flip, channels_last, want_db)


def _jvp_args(p):
    up, down, px0, px1, py0, py1, gain, slope, _clamp, flip = p
    return (up, down, px0, px1, py0, py1, gain, slope, flip)


class _FilteredLReLUGrad(torch.autograd.Function):
    """(dy, mask, fu, fd, p, q) -> (dx, db); q = (h, w, channels_last, want_db)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(dy, mask, fu, fd, p, q):
        return _bwd_op(dy, mask, fu, fd, *_bwd_args(p, *q))

    @staticmethod
    def setup_context(ctx, inputs, output):
        dy, mask, fu, fd, p, q = inputs
        ctx.save_for_backward(mask, fu, fd)
        ctx.p = p
        if not q[3]:
            ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx, g_dx, g_db):
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None, None
        mask, fu, fd = ctx.saved_tensors
        vb = g_db if g_db is not None and g_db.numel() else None
        return _FilteredLReLUJvp.apply(g_dx, vb, mask, fu, fd, ctx.p), None, None, None, None, None


class _FilteredLReLUJvp(torch.autograd.Function):
    """(v, vb, mask, fu, fd, p) -> J (v + vb): linear in (v, vb)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(v, vb, mask, fu, fd, p):
        return _jvp_op(v, vb, mask, fu, fd, *_jvp_args(p))

    @staticmethod
    def setup_context(ctx, inputs, output):
        v, vb, mask, fu, fd, p = inputs
        ctx.save_for_backward(mask, fu, fd)
        ctx.p, ctx.v_info = p, (v.shape[2], v.shape[3], is_channels_last(v))

    @staticmethod
    def backward(ctx, gy):
        need_v, need_vb = ctx.needs_input_grad[:2]
        if not (need_v or need_vb):
            return None, None, None, None, None, None
        mask, fu, fd = ctx.saved_tensors
        dv, dvb = _FilteredLReLUGrad.apply(gy, mask, fu, fd, ctx.p, ctx.v_info + (bool(need_vb),))
        return (dv if need_v else None), (dvb if need_vb else None), None, None, None, None


class _FilteredLReLU(torch.autograd.Function):
    """(x, b, fu, fd, p) -> (y, mask); the mask is not differentiable."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, b, fu, fd, p):
        return _fwd_op(x, fu, fd, b, *p, True)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, b, fu, fd, p = inputs
        mask = output[1]
        ctx.mark_non_differentiable(mask)
        ctx.save_for_backward(mask, fu, fd)
        ctx.p, ctx.x_info = p, (x.shape[2], x.shape[3], is_channels_last(x))

    @staticmethod
    def backward(ctx, dy, _d_mask):
        need_x, need_b = ctx.needs_input_grad[:2]
        if not (need_x or need_b):
            return None, None, None, None, None
        mask, fu, fd = ctx.saved_tensors
        dx, db = _FilteredLReLUGrad.apply(dy, mask, fu, fd, ctx.p, ctx.x_info + (bool(need_b),))
        return (dx if need_x else None), (db if need_b else None), None, None, None


cache_signatures(_FilteredLReLU, _FilteredLReLUGrad, _FilteredLReLUJvp)


# ----------------------------------------------------------------------------------------------- entry


@torch.compiler.assume_constant_result
def _has_plans(up: int, down: int, nfu: int, nfd: int) -> bool:
    # Evaluated eagerly under torch.compile (Dynamo does not trace importlib), a constant of the shapes.
    K = _kernels()
    return K.plan_forward(up, down, nfu, nfd) is not None and K.plan_backward(up, down, nfu, nfd) is not None


def uses_kernels(fu: Optional[torch.Tensor], fd: Optional[torch.Tensor], up: int, down: int) -> bool:
    """Whether the fused kernels take these filters and factors (else the composition runs)."""
    if (fu is not None and fu.ndim != 1) or (fd is not None and fd.ndim != 1):
        return False
    return _has_plans(int(up), int(down), _ntaps(fu), _ntaps(fd))


def _resample(x, f, up, down, padding, flip_filter, gain):
    from ..backends import upfirdn2d as fused_upfirdn2d  # noqa: PLC0415
    from ..params.upfirdn2d import UpFirDn2dParams  # noqa: PLC0415

    return fused_upfirdn2d.run("triton", UpFirDn2dParams(tuple(up), tuple(down), tuple(padding), bool(flip_filter),
                                                         float(gain)), x, f)


def _bias_act(x, b, dim, act, alpha, gain, clamp):
    from ..backends import bias_act as fused_bias_act  # noqa: PLC0415
    from ..params.bias_act import BiasActParams  # noqa: PLC0415

    return fused_bias_act.run("triton", BiasActParams(dim, act, alpha, gain, clamp), x, b)


def _split(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter):
    """One 2-D filter: the fused kernels take the separable half with the activation, the Triton upfirdn2d
    the 2-D resampling (StyleGAN3-R's radial down filters); both 2-D: the reference composition on the
    Triton upfirdn2d and bias_act kernels. None when the kernels hold no tile for the separable half."""
    if fd is not None and fd.ndim == 2 and (fu is None or fu.ndim == 1):
        if not uses_kernels(fu, None, up, 1):
            return None
        a = _fused(x, fu, None, b, up, 1, padding, gain, slope, clamp, flip_filter)
        return _resample(a, fd, (1, 1), (down, down), (0, 0, 0, 0), flip_filter, 1.0)
    if fu is not None and fu.ndim == 2 and (fd is None or fd.ndim == 1) and uses_kernels(None, fd, 1, down):
        if b is not None:
            x = _bias_act(x, b, 1, "linear", 0.0, 1.0, None)
        u = _resample(x, fu, (up, up), (1, 1), tuple(padding), flip_filter, float(up * up))
        return _fused(u, None, fd, None, 1, down, (0, 0, 0, 0), gain, slope, clamp, flip_filter)
    return reference.filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter,
                                    resample=_resample, bias_act=_bias_act)


def _fused(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter):
    """The two kernels (separable or absent filters, a plan that holds them)."""
    p = (int(up), int(down), *(int(v) for v in padding), float(gain), float(slope),
         -1.0 if clamp is None else float(clamp), bool(flip_filter))
    if torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad)):
        if fd is not None and fd is fu:
            fd = fd.detach()  # Dynamo cannot trace a Function given one tensor twice (a constant here)
        return _FilteredLReLU.apply(x, b, fu, fd, p)[0]
    return _fwd_op(x, fu, fd, b, *p, False)[0]


def filtered_lrelu(x: torch.Tensor, fu: Optional[torch.Tensor], fd: Optional[torch.Tensor], b: Optional[torch.Tensor],
                   up: int, down: int, padding, gain: float, slope: float, clamp: Optional[float], flip_filter: bool,
                   impl: str = "triton") -> torch.Tensor:
    """The fast op; arguments already validated by ``gan_fast.ops.filtered_lrelu`` (padding (x0, x1, y0, y1))."""
    if impl != "triton":
        raise ValueError(f"filtered_lrelu: no fused kernels for impl={impl!r}")
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"filtered_lrelu: impl='triton' computes in float32 and takes float32, float16 or bfloat16 "
                        f"x, got {x.dtype}; use impl='ref' (or impl=None, which sends float64 there)")
    grad = torch.is_grad_enabled()
    if grad and any(f is not None and f.requires_grad for f in (fu, fd)):
        return reference.filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
    if b is not None:
        b = b.to(x.dtype)  # as the reference; the cast is differentiable, so db returns in b's dtype
    if uses_kernels(fu, fd, up, down):
        return _fused(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
    y = _split(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
    if y is None:
        y = reference.filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter,
                                     resample=_resample, bias_act=_bias_act)
    return y

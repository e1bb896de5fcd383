"""Autograd glue for the fast ``bias_act`` backends (C++/CUDA extension and Triton).

One structure serves both backends; ``impl`` only picks the kernel set
(:func:`kernel_set`), five launches with one signature::

    fwd(x, b, act, alpha, gain, clamp, C, inner) -> y
    grad(dy, x, b, act, alpha, gain, clamp, C, inner) -> dx
    grad2(ddx, dy, x, b, act, alpha, gain, clamp, C, inner) -> d_x
    grad_db(dy, x, b, ...) -> (dx, db)          db = dx summed over every dim but the bias dim
    grad2_db(ddx, dy, x, b, ...) -> (d_x, d_b)  likewise, in the same pass (no separate reduction)

``cpp`` calls ``torch.ops.gan_fast.bias_act_*`` (csrc/); ``triton`` wraps the
launchers of ``gan_fast.kernels.bias_act`` as ``torch.library.custom_op``s.
Either way each launch is an opaque op with a ``register_fake`` (outputs are
``torch.empty_like(x)``, and ``[C]`` tensors of x's dtype for the bias
gradients), so ``torch.compile`` traces it. ``b`` is an empty tensor when there
is no bias, ``clamp`` is -1 for none, and ``(C, inner)`` describe the bias
dimension logically: ``C = x.shape[dim]``, ``inner = prod(x.shape[dim + 1:])``;
the kernels find its memory stride, so any dense memory format (contiguous,
channels_last, permuted) runs as is and the output keeps it. The bias
gradients are summed in float32 (float64 for float64) from per-thread or
per-program partial sums added in a fixed order: deterministic, no atomics.

Differentiation (the pattern checked in DESIGN.md: Functions with a separate
``setup_context`` whose backward calls further Functions; each saves only its
own inputs):

* ``_BiasAct(x, b) -> y``; backward: ``(dx, db) = _BiasActGradDb(dy, x, b)``
  when b needs a gradient, else ``dx = _BiasActGrad(dy, x, b)``.
* ``_BiasActGrad(dy, x, b) -> dx`` is linear in ``dy``; its backward gives
  ``d dy = _BiasActGrad(ddx, x, b)`` and ``d x = grad2(ddx, dy, x, b)``
  (``ddx * dy * gain * act''``; skipped for linear/relu/lrelu, whose
  ``act''`` is 0), ``d b`` = its sum (``grad2_db``, one pass).
* ``_BiasActGradDb(dy, x, b) -> (dx, db)``: ``db`` is ``dx`` summed, so the
  cotangents ``(ddx, ddb)`` act as the one cotangent ``ddx + ddb`` (broadcast
  along the bias dim) of ``dx``, and the backward is ``_BiasActGrad``'s.
* ``_BiasActGrad2`` / ``_BiasActGrad2Db`` end the chain: a third derivative raises.

The clamp's gradient mask is recomputed from the pre-clamp value
(``-clamp <= act(x + b) * gain <= clamp``, torch.clamp's rule), never read off y.
"""

from __future__ import annotations

import importlib
import math
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import torch

from ..kernels._common import is_dense  # no triton import: the C++ path needs none
from . import cache_signatures

__all__ = ["bias_act", "bias_act_vjp", "kernel_set", "KernelSet"]

_ZERO_SECOND_DERIVATIVE = frozenset({0, 1, 2})  # linear, relu, lrelu: act'' = 0 everywhere


class KernelSet(NamedTuple):
    fwd: Callable[..., torch.Tensor]
    grad: Callable[..., torch.Tensor]
    grad2: Callable[..., torch.Tensor]
    grad_db: Callable[..., Tuple[torch.Tensor, torch.Tensor]]
    grad2_db: Callable[..., Tuple[torch.Tensor, torch.Tensor]]


# ----------------------------------------------------------------------------- Triton kernel set


def _triton_kernels():
    return importlib.import_module("gan_fast.kernels.bias_act")


@torch.library.custom_op("gan_fast::triton_bias_act_fwd", mutates_args=())
def _triton_fwd(x: torch.Tensor, b: torch.Tensor, act: int, alpha: float, gain: float, clamp: float, C: int,
                inner: int) -> torch.Tensor:
    return _triton_kernels().bias_act_fwd(x, b, act, alpha, gain, clamp, C, inner)


@torch.library.custom_op("gan_fast::triton_bias_act_grad", mutates_args=())
def _triton_grad(dy: torch.Tensor, x: torch.Tensor, b: torch.Tensor, act: int, alpha: float, gain: float,
                 clamp: float, C: int, inner: int) -> torch.Tensor:
    return _triton_kernels().bias_act_grad(dy, x, b, act, alpha, gain, clamp, C, inner)


@torch.library.custom_op("gan_fast::triton_bias_act_grad2", mutates_args=())
def _triton_grad2(ddx: torch.Tensor, dy: torch.Tensor, x: torch.Tensor, b: torch.Tensor, act: int, alpha: float,
                  gain: float, clamp: float, C: int, inner: int) -> torch.Tensor:
    return _triton_kernels().bias_act_grad2(ddx, dy, x, b, act, alpha, gain, clamp, C, inner)


@torch.library.custom_op("gan_fast::triton_bias_act_grad_db", mutates_args=())
def _triton_grad_db(dy: torch.Tensor, x: torch.Tensor, b: torch.Tensor, act: int, alpha: float, gain: float,
                    clamp: float, C: int, inner: int) -> Tuple[torch.Tensor, torch.Tensor]:
    return _triton_kernels().bias_act_grad_db(dy, x, b, act, alpha, gain, clamp, C, inner)


@torch.library.custom_op("gan_fast::triton_bias_act_grad2_db", mutates_args=())
def _triton_grad2_db(ddx: torch.Tensor, dy: torch.Tensor, x: torch.Tensor, b: torch.Tensor, act: int, alpha: float,
                     gain: float, clamp: float, C: int, inner: int) -> Tuple[torch.Tensor, torch.Tensor]:
    return _triton_kernels().bias_act_grad2_db(ddx, dy, x, b, act, alpha, gain, clamp, C, inner)


def _fake_fwd(x, b, act, alpha, gain, clamp, C, inner):
    return torch.empty_like(x)


def _fake_grad(dy, x, b, act, alpha, gain, clamp, C, inner):
    return torch.empty_like(x)


def _fake_grad2(ddx, dy, x, b, act, alpha, gain, clamp, C, inner):
    return torch.empty_like(x)


def _fake_grad_db(dy, x, b, act, alpha, gain, clamp, C, inner):
    return torch.empty_like(x), x.new_empty([C])


def _fake_grad2_db(ddx, dy, x, b, act, alpha, gain, clamp, C, inner):
    return torch.empty_like(x), x.new_empty([C])


_FAKES = (("fwd", _fake_fwd), ("grad", _fake_grad), ("grad2", _fake_grad2), ("grad_db", _fake_grad_db),
          ("grad2_db", _fake_grad2_db))
for _name, _fake in _FAKES:
    globals()[f"_triton_{_name}"].register_fake(_fake)


# ----------------------------------------------------------------------------- kernel sets

_sets: Dict[str, KernelSet] = {}


def _make_cpp() -> KernelSet:
    from .. import extension

    ok, why = extension.status()
    if not ok:
        from ..backend import BackendUnavailableError

        raise BackendUnavailableError(f"bias_act: the cpp backend is unavailable: {why}")
    for name, fake in _FAKES:
        torch.library.register_fake(f"gan_fast::bias_act_{name}")(fake)
    # The overloads themselves: calling an OpOverloadPacket resolves the overload on every call.
    return KernelSet(*(getattr(torch.ops.gan_fast, f"bias_act_{name}").default for name, _ in _FAKES))


def kernel_set(impl: str) -> KernelSet:
    """The launches of backend ``impl`` ('cpp' or 'triton'); loads the extension for 'cpp' once.

    No lock: making a set twice (two threads racing on the first call) is harmless.
    """
    ks = _sets.get(impl)
    if ks is None:
        if impl == "cpp":
            ks = _make_cpp()
        elif impl == "triton":
            ks = KernelSet(_triton_fwd, _triton_grad, _triton_grad2, _triton_grad_db, _triton_grad2_db)
        else:
            raise ValueError(f"bias_act: no fused kernels for impl={impl!r}")
        _sets[impl] = ks
    return ks


# ----------------------------------------------------------------------------- autograd


# The Functions take their non-tensor arguments packed in one tuple
# p = (dim, impl, act, alpha, gain, clamp, C, inner): Function.apply binds its
# arguments to forward's signature on every call (for setup_context), which
# costs tens of microseconds per call with ten separate parameters.


def _launch_args(p):
    return p[2:]  # act, alpha, gain, clamp, C, inner


def _third_order():
    raise RuntimeError("bias_act: third-order derivatives are not implemented by the fast backends; "
                       "use impl='ref' for them")


class _BiasActGrad2(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(ddx, dy, x, b, p):
        return _sets[p[1]].grad2(ddx, dy, x, b, *_launch_args(p))

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        _third_order()


class _BiasActGrad2Db(torch.autograd.Function):
    """(d_x, d_b): _BiasActGrad2's output and its sum over every dim but the bias dim, in one pass."""

    generate_vmap_rule = True

    @staticmethod
    def forward(ddx, dy, x, b, p):
        return _sets[p[1]].grad2_db(ddx, dy, x, b, *_launch_args(p))

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad, grad_b):
        _third_order()


def _grad_backward(g, dy, x, b, p, need_dy, need_x, need_b):
    """(d dy, d x, d b) of <g, dx> for dx = grad(dy, x, b): the backward of the first-order Functions."""
    d_dy = d_x = d_b = None
    plain = not torch.is_grad_enabled()  # nothing will differentiate the results: launch the kernels directly
    ks = _sets[p[1]]
    if need_dy:
        d_dy = ks.grad(g, x, b, *_launch_args(p)) if plain else _BiasActGrad.apply(g, x, b, p)
    if (need_x or need_b) and p[2] not in _ZERO_SECOND_DERIVATIVE:
        if need_b:
            d_x, d_b = ks.grad2_db(g, dy, x, b, *_launch_args(p)) if plain else _BiasActGrad2Db.apply(g, dy, x, b, p)
        else:
            d_x = ks.grad2(g, dy, x, b, *_launch_args(p)) if plain else _BiasActGrad2.apply(g, dy, x, b, p)
        if not need_x:
            d_x = None
    return d_dy, d_x, d_b


class _BiasActGrad(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(dy, x, b, p):
        return _sets[p[1]].grad(dy, x, b, *_launch_args(p))

    @staticmethod
    def setup_context(ctx, inputs, output):
        dy, x, b, p = inputs
        ctx.save_for_backward(dy, x, b)
        ctx.p = p

    @staticmethod
    def backward(ctx, ddx):
        dy, x, b = ctx.saved_tensors
        return _grad_backward(ddx, dy, x, b, ctx.p, *ctx.needs_input_grad[:3]) + (None,)


class _BiasActGradDb(torch.autograd.Function):
    """(dx, db) = (_BiasActGrad(dy, x, b), dx summed over every dim but the bias dim), in one pass."""

    generate_vmap_rule = True

    @staticmethod
    def forward(dy, x, b, p):
        return _sets[p[1]].grad_db(dy, x, b, *_launch_args(p))

    @staticmethod
    def setup_context(ctx, inputs, output):
        dy, x, b, p = inputs
        ctx.save_for_backward(dy, x, b)
        ctx.p = p
        ctx.set_materialize_grads(False)  # an unused db (the usual case) costs nothing

    @staticmethod
    def backward(ctx, ddx, ddb):
        dy, x, b = ctx.saved_tensors
        p = ctx.p
        # <ddx, dx> + <ddb, db> = <ddx + ddb broadcast along the bias dim, dx>
        g = ddx
        if ddb is not None:
            shape = [1] * x.ndim
            shape[p[0]] = -1
            g = ddb.reshape(shape).expand(x.shape) if g is None else g + ddb.reshape(shape)
        if g is None:
            return None, None, None, None
        return _grad_backward(g, dy, x, b, p, *ctx.needs_input_grad[:3]) + (None,)


class _BiasAct(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, b, p):
        return _sets[p[1]].fwd(x, b, *_launch_args(p))

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, b, p = inputs
        ctx.save_for_backward(x, b)
        ctx.p = p

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        need_x, need_b = ctx.needs_input_grad[:2]
        p = ctx.p
        # A plain backward (grad mode off: nothing will differentiate the result) launches the kernel
        # directly: a Function.apply costs more host time than the kernel on a small layer.
        plain = not torch.is_grad_enabled()
        if need_b:
            dx, db = _sets[p[1]].grad_db(dy, x, b, *_launch_args(p)) if plain else _BiasActGradDb.apply(dy, x, b, p)
            return (dx if need_x else None), db, None
        if need_x:
            return (_sets[p[1]].grad(dy, x, b, *_launch_args(p)) if plain else _BiasActGrad.apply(dy, x, b, p)), None, None
        return None, None, None


cache_signatures(_BiasAct, _BiasActGrad, _BiasActGradDb, _BiasActGrad2, _BiasActGrad2Db)




def bias_act(x: torch.Tensor, b: Optional[torch.Tensor], dim: int, act_code: int, alpha: float, gain: float,
             clamp: Optional[float], impl: str) -> torch.Tensor:
    """The fused op; arguments already validated and defaulted by ``gan_fast.ops.bias_act``."""
    x, b, p = _prepare(x, b, dim, act_code, alpha, gain, clamp, impl)
    if not (torch.is_grad_enabled() and (x.requires_grad or b.requires_grad)):
        return _sets[impl].fwd(x, b, *_launch_args(p))  # nothing to differentiate: no Function.apply
    return _BiasAct.apply(x, b, p)


def bias_act_vjp(dy: torch.Tensor, x: torch.Tensor, b: Optional[torch.Tensor], dim: int, act_code: int,
                 alpha: float, gain: float, clamp: Optional[float], impl: str) -> torch.Tensor:
    """d bias_act(x, b) / d x applied to ``dy``, itself differentiable (w.r.t. dy, x and b) to second order.

    For fused ops whose epilogue is a bias_act (their backward starts here).
    """
    x, b, p = _prepare(x, b, dim, act_code, alpha, gain, clamp, impl)
    return _BiasActGrad.apply(dy, x, b, p)


def _prepare(x, b, dim, act_code, alpha, gain, clamp, impl):
    """(x dense, b as x's dtype or an empty tensor, the packed parameters p)."""
    if impl not in _sets:
        kernel_set(impl)
    dim = dim % x.ndim
    shape = x.shape
    if not is_dense(x):
        x = x.clone(memory_format=torch.preserve_format)  # dense, same dimension order
    if b is None:
        b = x.new_empty([0])
    elif b.dtype != x.dtype:
        b = b.to(x.dtype)  # as the reference; the cast is differentiable, so db returns in b's dtype
    p = (dim, impl, int(act_code), float(alpha), float(gain), -1.0 if clamp is None else float(clamp),
         int(shape[dim]), math.prod(shape[dim + 1:]))
    return x, b, p

"""Autograd glue for the fast ``bias_act`` backends (C++/CUDA extension and Triton).

One structure serves both backends; ``impl`` only picks the kernel set
(:func:`kernel_set`), three launches with one signature::

    fwd(x, b, act, alpha, gain, clamp, C, inner) -> y
    grad(dy, x, b, act, alpha, gain, clamp, C, inner) -> dx
    grad2(ddx, dy, x, b, act, alpha, gain, clamp, C, inner) -> d_x

``cpp`` calls ``torch.ops.gan_fast.bias_act_*`` (csrc/); ``triton`` wraps the
launchers of ``gan_fast.kernels.bias_act`` as ``torch.library.custom_op``s.
Either way each launch is an opaque op with a ``register_fake`` (outputs are
``torch.empty_like(x)``), so ``torch.compile`` traces it. ``b`` is an empty
tensor when there is no bias, ``clamp`` is -1 for none, and ``(C, inner)``
describe the bias dimension logically: ``C = x.shape[dim]``,
``inner = prod(x.shape[dim + 1:])``; the kernels find its memory stride, so
any dense memory format (contiguous, channels_last, permuted) runs as is and
the output keeps it.

Differentiation (the pattern checked in DESIGN.md: Functions with a separate
``setup_context`` whose backward calls further Functions; each saves only its
own inputs):

* ``_BiasAct(x, b) -> y``; backward: ``dx = _BiasActGrad(dy, x, b)``,
  ``db = dx`` summed over every dim but ``dim``.
* ``_BiasActGrad(dy, x, b) -> dx`` is linear in ``dy``; its backward gives
  ``d dy = _BiasActGrad(ddx, x, b)`` and ``d x = grad2(ddx, dy, x, b)``
  (``ddx * dy * gain * act''``; skipped for linear/relu/lrelu, whose
  ``act''`` is 0), ``d b`` = its sum.
* ``_BiasActGrad2`` is the end of the chain: a third derivative raises.

The clamp's gradient mask is recomputed from the pre-clamp value
(``-clamp <= act(x + b) * gain <= clamp``, torch.clamp's rule), never read off y.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Callable, Dict, NamedTuple, Optional

import torch

__all__ = ["bias_act", "bias_act_vjp", "kernel_set", "KernelSet"]

_ZERO_SECOND_DERIVATIVE = frozenset({0, 1, 2})  # linear, relu, lrelu: act'' = 0 everywhere


class KernelSet(NamedTuple):
    fwd: Callable[..., torch.Tensor]
    grad: Callable[..., torch.Tensor]
    grad2: Callable[..., torch.Tensor]


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


def _fake_fwd(x, b, act, alpha, gain, clamp, C, inner):
    return torch.empty_like(x)


def _fake_grad(dy, x, b, act, alpha, gain, clamp, C, inner):
    return torch.empty_like(x)


def _fake_grad2(ddx, dy, x, b, act, alpha, gain, clamp, C, inner):
    return torch.empty_like(x)


_triton_fwd.register_fake(_fake_fwd)
_triton_grad.register_fake(_fake_grad)
_triton_grad2.register_fake(_fake_grad2)


# ----------------------------------------------------------------------------- kernel sets

_sets: Dict[str, KernelSet] = {}


def _make_cpp() -> KernelSet:
    from .. import extension

    ok, why = extension.status()
    if not ok:
        from ..backend import BackendUnavailableError

        raise BackendUnavailableError(f"bias_act: the cpp backend is unavailable: {why}")
    for name, fake in (("bias_act_fwd", _fake_fwd), ("bias_act_grad", _fake_grad), ("bias_act_grad2", _fake_grad2)):
        torch.library.register_fake(f"gan_fast::{name}")(fake)
    ops = torch.ops.gan_fast
    return KernelSet(ops.bias_act_fwd, ops.bias_act_grad, ops.bias_act_grad2)


def kernel_set(impl: str) -> KernelSet:
    """The launches of backend ``impl`` ('cpp' or 'triton'); loads the extension for 'cpp' once.

    No lock: making a set twice (two threads racing on the first call) is harmless.
    """
    ks = _sets.get(impl)
    if ks is None:
        if impl == "cpp":
            ks = _make_cpp()
        elif impl == "triton":
            ks = KernelSet(_triton_fwd, _triton_grad, _triton_grad2)
        else:
            raise ValueError(f"bias_act: no fused kernels for impl={impl!r}")
        _sets[impl] = ks
    return ks


# ----------------------------------------------------------------------------- autograd


def _sum_except(t: torch.Tensor, dim: int) -> torch.Tensor:
    if t.ndim == 1:
        return t
    return t.sum(dim=[d for d in range(t.ndim) if d != dim])


# The Functions take their non-tensor arguments packed in one tuple
# p = (dim, impl, act, alpha, gain, clamp, C, inner): Function.apply binds its
# arguments to forward's signature on every call (for setup_context), which
# costs tens of microseconds per call with ten separate parameters.


def _launch_args(p):
    return p[2:]  # act, alpha, gain, clamp, C, inner


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
        raise RuntimeError("bias_act: third-order derivatives are not implemented by the fast backends; "
                           "use impl='ref' for them")


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
        need_dy, need_x, need_b = ctx.needs_input_grad[:3]
        p = ctx.p
        d_dy = d_x = d_b = None
        if need_dy:
            d_dy = _BiasActGrad.apply(ddx, x, b, p)
        if (need_x or need_b) and p[2] not in _ZERO_SECOND_DERIVATIVE:
            d_x = _BiasActGrad2.apply(ddx, dy, x, b, p)
            if need_b:
                d_b = _sum_except(d_x, p[0])
            if not need_x:
                d_x = None
        return d_dy, d_x, d_b, None


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
        dx = db = None
        if need_x or need_b:
            dx = _BiasActGrad.apply(dy, x, b, ctx.p)
            if need_b:
                db = _sum_except(dx, ctx.p[0])
            if not need_x:
                dx = None
        return dx, db, None


for _fn in (_BiasAct, _BiasActGrad, _BiasActGrad2):  # spare Function.apply a signature inspection per call
    _fn.forward.__signature__ = inspect.signature(_fn.forward)


def _is_dense(t: torch.Tensor) -> bool:
    """Non-overlapping and dense: the elements fill numel consecutive storage slots in some order."""
    if t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last):
        return True
    expected = 1
    for size, stride in sorted(((s, st) for s, st in zip(t.shape, t.stride()) if s != 1), key=lambda p: p[1]):
        if stride != expected:
            return False
        expected *= size
    return True


def bias_act(x: torch.Tensor, b: Optional[torch.Tensor], dim: int, act_code: int, alpha: float, gain: float,
             clamp: Optional[float], impl: str) -> torch.Tensor:
    """The fused op; arguments already validated and defaulted by ``gan_fast.ops.bias_act``."""
    x, b, p = _prepare(x, b, dim, act_code, alpha, gain, clamp, impl)
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
    kernel_set(impl)
    dim = dim % x.ndim
    C = int(x.shape[dim])
    inner = 1
    for s in x.shape[dim + 1:]:
        inner *= int(s)
    if not _is_dense(x):
        x = x.clone(memory_format=torch.preserve_format)  # dense, same dimension order
    if b is None:
        b = x.new_empty([0])
    else:
        b = b.to(x.dtype)  # as the reference; the cast is differentiable, so db returns in b's dtype
    p = (dim, impl, int(act_code), float(alpha), float(gain), -1.0 if clamp is None else float(clamp), C, inner)
    return x, b, p

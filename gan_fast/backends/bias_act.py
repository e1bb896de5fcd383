"""The ``bias_act`` backends: ``ref``, ``triton`` (``gan_fast.kernels.bias_act``) and ``cpp`` (``csrc/``).

The two fast backends share one autograd structure; the backend only picks the kernel set
(:func:`kernel_set`), five launches with one signature::

    fwd(x, b, act, alpha, gain, clamp, C, inner) -> y
    grad(dy, x, b, act, alpha, gain, clamp, C, inner) -> dx
    grad2(ddx, dy, x, b, act, alpha, gain, clamp, C, inner) -> d_x
    grad_db(dy, x, b, ...) -> (dx, db)          db = dx summed over every dim but the bias dim
    grad2_db(ddx, dy, x, b, ...) -> (d_x, d_b)  likewise, in the same pass (no separate reduction)

``cpp`` calls ``torch.ops.gan_fast.bias_act_*`` (defined here, implemented in csrc/); ``triton`` wraps
the launchers of ``gan_fast.kernels.bias_act`` as ``torch.library.custom_op``s defined when this module is
imported. Every launch is an opaque op with a ``register_fake`` (outputs ``torch.empty_like(x)``, and ``[C]``
tensors of x's dtype for the bias gradients), so ``torch.compile`` traces it. ``b`` is an empty tensor when
there is no bias, ``clamp`` is None for none, and ``(C, inner)`` describe the bias dimension logically:
``C = x.shape[dim]``, ``inner = prod(x.shape[dim + 1:])``; the kernels find its memory stride, so any dense
memory format (contiguous, channels_last, permuted) runs as is and the output keeps it. The bias gradients
are summed in float32 (float64 for float64) from partial sums added in a fixed order: deterministic, no
atomics.

Differentiation (Functions with a separate ``setup_context`` whose backward calls further Functions; each
saves only its own inputs, so double backward is exact):

* ``_BiasAct(x, b) -> y``; backward: ``(dx, db) = _BiasActGradDb(dy, x, b)`` when b needs a gradient,
  else ``dx = _BiasActGrad(dy, x, b)``.
* ``_BiasActGrad(dy, x, b) -> dx`` is linear in ``dy``; its backward gives ``d dy = _BiasActGrad(ddx, x, b)``
  and ``d x = grad2(ddx, dy, x, b)`` (``ddx * dy * gain * act''``; skipped for linear/relu/lrelu, whose
  ``act''`` is 0), ``d b`` = its sum (``grad2_db``, one pass).
* ``_BiasActGradDb(dy, x, b) -> (dx, db)``: ``db`` is ``dx`` summed, so the cotangents ``(ddx, ddb)`` act as
  the one cotangent ``ddx + ddb`` (broadcast along the bias dim) of ``dx``; the backward is ``_BiasActGrad``'s.
* ``_BiasActGrad2`` / ``_BiasActGrad2Db`` end the chain: a third derivative raises.

A plain backward (grad mode off: nothing will differentiate the result) and a forward that nothing
differentiates launch the kernels directly, without ``Function.apply`` (host time on small layers). The
clamp's gradient mask is recomputed from the pre-clamp value (``-clamp <= act(x + b) * gain <= clamp``,
torch.clamp's rule), never read off y.
"""

import math
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import torch

from .. import activations
from ..errors import BackendUnavailableError
from ..params.bias_act import BiasActParams
from ..reference import bias_act as reference
from ..shapes import is_dense
from .common import OpSpec, cache_signatures

__all__ = ["SPEC", "SPECS", "run", "vjp", "kernel_set", "KernelSet"]

# On CPU the C++ kernel overtakes the plain PyTorch chain (forward + backward, one thread) from about 16K
# elements (equal at 16K, 1.3x at 64K, 2.7x at 1M; 0.87x at 1K, where Function.apply's cost dominates): below,
# the automatic choice runs the reference in float32/float64 (ops.bias_act passes the size).
SPEC = OpSpec(name="bias_act", op="bias_act", fast={"cuda": ("triton", "cpp"), "cpu": ("cpp",)},
              min_numel={"cpu": 16384})
SPECS = (SPEC,)

_ZERO_SECOND_DERIVATIVE = frozenset({0, 1, 2})  # linear, relu, lrelu: act'' = 0 everywhere


class KernelSet(NamedTuple):
    fwd: Callable[..., torch.Tensor]
    grad: Callable[..., torch.Tensor]
    grad2: Callable[..., torch.Tensor]
    grad_db: Callable[..., Tuple[torch.Tensor, torch.Tensor]]
    grad2_db: Callable[..., Tuple[torch.Tensor, torch.Tensor]]


class Launch(NamedTuple):
    """What a Function passes to its kernel set: the backend, the bias dim, and the launch arguments."""
    impl: str
    dim: int
    act: int  # the activation's code (gan_fast.activations)
    alpha: float
    gain: float
    clamp: Optional[float]
    C: int
    inner: int


# ----------------------------------------------------------------------------------------------- triton ops


def _triton_kernels():
    from ..kernels import bias_act as K  # noqa: PLC0415 - triton loads on the first launch, not at import

    return K


@torch.library.custom_op("gan_fast::triton_bias_act_fwd", mutates_args=())
def _triton_fwd(x: torch.Tensor, b: torch.Tensor, act: int, alpha: float, gain: float, clamp: Optional[float],
                C: int, inner: int) -> torch.Tensor:
    return _triton_kernels().bias_act_fwd(x, b, act, alpha, gain, clamp, C, inner)


@torch.library.custom_op("gan_fast::triton_bias_act_grad", mutates_args=())
def _triton_grad(dy: torch.Tensor, x: torch.Tensor, b: torch.Tensor, act: int, alpha: float, gain: float,
                 clamp: Optional[float], C: int, inner: int) -> torch.Tensor:
    return _triton_kernels().bias_act_grad(dy, x, b, act, alpha, gain, clamp, C, inner)


@torch.library.custom_op("gan_fast::triton_bias_act_grad2", mutates_args=())
def _triton_grad2(ddx: torch.Tensor, dy: torch.Tensor, x: torch.Tensor, b: torch.Tensor, act: int, alpha: float,
                  gain: float, clamp: Optional[float], C: int, inner: int) -> torch.Tensor:
    return _triton_kernels().bias_act_grad2(ddx, dy, x, b, act, alpha, gain, clamp, C, inner)


@torch.library.custom_op("gan_fast::triton_bias_act_grad_db", mutates_args=())
def _triton_grad_db(dy: torch.Tensor, x: torch.Tensor, b: torch.Tensor, act: int, alpha: float, gain: float,
                    clamp: Optional[float], C: int, inner: int) -> Tuple[torch.Tensor, torch.Tensor]:
    return _triton_kernels().bias_act_grad_db(dy, x, b, act, alpha, gain, clamp, C, inner)


@torch.library.custom_op("gan_fast::triton_bias_act_grad2_db", mutates_args=())
def _triton_grad2_db(ddx: torch.Tensor, dy: torch.Tensor, x: torch.Tensor, b: torch.Tensor, act: int, alpha: float,
                     gain: float, clamp: Optional[float], C: int, inner: int) -> Tuple[torch.Tensor, torch.Tensor]:
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


_FAKES = {"fwd": _fake_fwd, "grad": _fake_grad, "grad2": _fake_grad2, "grad_db": _fake_grad_db,
          "grad2_db": _fake_grad2_db}
for _name, _fake in _FAKES.items():
    globals()[f"_triton_{_name}"].register_fake(_fake)

_TRITON = KernelSet(_triton_fwd, _triton_grad, _triton_grad2, _triton_grad_db, _triton_grad2_db)

# ----------------------------------------------------------------------------------------------- C++ ops
# The extension's ops are defined here, at import, with their fakes; csrc/ registers only their CPU and CUDA
# implementations when it loads (so an exported program finds the ops after `import gan_fast`, and running
# them needs the extension: gan_fast.extension.load()).

_CPP_SCHEMAS = {
    "fwd": "(Tensor x, Tensor b, int act, float alpha, float gain, float? clamp, int C, int inner) -> Tensor",
    "grad": "(Tensor dy, Tensor x, Tensor b, int act, float alpha, float gain, float? clamp, int C, int inner) "
            "-> Tensor",
    "grad2": "(Tensor ddx, Tensor dy, Tensor x, Tensor b, int act, float alpha, float gain, float? clamp, int C, "
             "int inner) -> Tensor",
    "grad_db": "(Tensor dy, Tensor x, Tensor b, int act, float alpha, float gain, float? clamp, int C, "
               "int inner) -> (Tensor, Tensor)",
    "grad2_db": "(Tensor ddx, Tensor dy, Tensor x, Tensor b, int act, float alpha, float gain, float? clamp, "
                "int C, int inner) -> (Tensor, Tensor)",
}
for _name, _schema in _CPP_SCHEMAS.items():
    torch.library.define(f"gan_fast::bias_act_{_name}", _schema)
    torch.library.register_fake(f"gan_fast::bias_act_{_name}")(_FAKES[_name])

# The overloads themselves: calling an OpOverloadPacket resolves the overload on every call.
_CPP = KernelSet(*(getattr(torch.ops.gan_fast, f"bias_act_{name}").default for name in _FAKES))


def kernel_set(impl: str) -> KernelSet:
    """The launches of backend ``impl`` ('triton' or 'cpp'); 'cpp' needs the extension loaded (its first eager
    call loads it; inside a ``torch.compile`` trace only the op's fake runs)."""
    if impl == "triton":
        return _TRITON
    if impl != "cpp":
        raise ValueError(f"bias_act: no fused kernels for impl={impl!r}")
    if not torch.compiler.is_compiling():
        from .. import extension  # noqa: PLC0415

        ok, why = extension.status()
        if not ok:
            raise BackendUnavailableError(f"bias_act: impl='cpp' cannot run: {why}; impl='ref' runs it")
    return _CPP


def _sets(impl: str) -> KernelSet:
    return _TRITON if impl == "triton" else _CPP  # run() checked the extension with kernel_set()


# ----------------------------------------------------------------------------------------------- autograd


def _third_order():
    raise RuntimeError("bias_act: third-order derivatives are not implemented by the fast backends; "
                       "use impl='ref' for them")


class _BiasActGrad2(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(ddx, dy, x, b, q):
        return _sets(q.impl).grad2(ddx, dy, x, b, *q[2:])

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
    def forward(ddx, dy, x, b, q):
        return _sets(q.impl).grad2_db(ddx, dy, x, b, *q[2:])

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad, grad_b):
        _third_order()


def _grad_backward(g, dy, x, b, q: Launch, need_dy, need_x, need_b):
    """(d dy, d x, d b) of <g, dx> for dx = grad(dy, x, b): the backward of the first-order Functions."""
    d_dy = d_x = d_b = None
    plain = not torch.is_grad_enabled()  # nothing will differentiate the results: launch the kernels directly
    ks = _sets(q.impl)
    args = q[2:]
    if need_dy:
        d_dy = ks.grad(g, x, b, *args) if plain else _BiasActGrad.apply(g, x, b, q)
    if (need_x or need_b) and q.act not in _ZERO_SECOND_DERIVATIVE:
        if need_b:
            d_x, d_b = ks.grad2_db(g, dy, x, b, *args) if plain else _BiasActGrad2Db.apply(g, dy, x, b, q)
        else:
            d_x = ks.grad2(g, dy, x, b, *args) if plain else _BiasActGrad2.apply(g, dy, x, b, q)
        if not need_x:
            d_x = None
    return d_dy, d_x, d_b


class _BiasActGrad(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(dy, x, b, q):
        return _sets(q.impl).grad(dy, x, b, *q[2:])

    @staticmethod
    def setup_context(ctx, inputs, output):
        dy, x, b, q = inputs
        # dy enters the backward only through act'' (grad2): not kept where act'' = 0 (linear, relu, lrelu)
        ctx.save_for_backward(None if q.act in _ZERO_SECOND_DERIVATIVE else dy, x, b)
        ctx.q = q

    @staticmethod
    def backward(ctx, ddx):
        dy, x, b = ctx.saved_tensors
        return _grad_backward(ddx, dy, x, b, ctx.q, *ctx.needs_input_grad[:3]) + (None,)


class _BiasActGradDb(torch.autograd.Function):
    """(dx, db) = (_BiasActGrad(dy, x, b), dx summed over every dim but the bias dim), in one pass."""

    generate_vmap_rule = True

    @staticmethod
    def forward(dy, x, b, q):
        return _sets(q.impl).grad_db(dy, x, b, *q[2:])

    @staticmethod
    def setup_context(ctx, inputs, output):
        dy, x, b, q = inputs
        ctx.save_for_backward(None if q.act in _ZERO_SECOND_DERIVATIVE else dy, x, b)  # as _BiasActGrad
        ctx.q = q
        ctx.set_materialize_grads(False)  # an unused db (the usual case) costs nothing

    @staticmethod
    def backward(ctx, ddx, ddb):
        dy, x, b = ctx.saved_tensors
        q = ctx.q
        # <ddx, dx> + <ddb, db> = <ddx + ddb broadcast along the bias dim, dx>
        g = ddx
        if ddb is not None:
            shape = [1] * x.ndim
            shape[q.dim] = -1
            g = ddb.reshape(shape).expand(x.shape) if g is None else g + ddb.reshape(shape)
        if g is None:
            return None, None, None, None
        return _grad_backward(g, dy, x, b, q, *ctx.needs_input_grad[:3]) + (None,)


class _BiasAct(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, b, q):
        return _sets(q.impl).fwd(x, b, *q[2:])

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, b, q = inputs
        ctx.save_for_backward(x, b)
        ctx.q = q

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        need_x, need_b = ctx.needs_input_grad[:2]
        q = ctx.q
        ks = _sets(q.impl)
        # A plain backward (grad mode off: nothing will differentiate the result) launches the kernel
        # directly: a Function.apply costs more host time than the kernel on a small layer.
        plain = not torch.is_grad_enabled()
        if need_b:
            dx, db = ks.grad_db(dy, x, b, *q[2:]) if plain else _BiasActGradDb.apply(dy, x, b, q)
            return (dx if need_x else None), db, None
        if need_x:
            return (ks.grad(dy, x, b, *q[2:]) if plain else _BiasActGrad.apply(dy, x, b, q)), None, None
        return None, None, None


cache_signatures(_BiasAct, _BiasActGrad, _BiasActGradDb, _BiasActGrad2, _BiasActGrad2Db)


# ----------------------------------------------------------------------------------------------- entry points


def run(impl: str, p: BiasActParams, x: torch.Tensor, b: Optional[torch.Tensor]) -> torch.Tensor:
    """``bias_act`` on backend ``impl`` ('ref', 'triton' or 'cpp'); ``p`` from ``gan_fast.params.bias_act``."""
    if impl == "ref":
        return reference.bias_act(x, b, p.dim, p.act, p.alpha, p.gain, p.clamp)
    ks = kernel_set(impl)
    x, b, q = _prepare(impl, p, x, b)
    if not (torch.is_grad_enabled() and (x.requires_grad or b.requires_grad)):
        return ks.fwd(x, b, *q[2:])  # nothing to differentiate: no Function.apply
    return _BiasAct.apply(x, b, q)


def vjp(impl: str, p: BiasActParams, dy: torch.Tensor, x: torch.Tensor, b: Optional[torch.Tensor]) -> torch.Tensor:
    """d bias_act(x, b) / d x applied to ``dy`` on a fast backend, itself differentiable (w.r.t. dy, x and b)
    to second order: where the backward of a fused op whose epilogue is a bias_act starts."""
    kernel_set(impl)
    x, b, q = _prepare(impl, p, x, b)
    return _BiasActGrad.apply(dy, x, b, q)


_CODES: Dict[str, int] = {name: a.code for name, a in activations.ACTIVATIONS.items()}


def _prepare(impl: str, p: BiasActParams, x: torch.Tensor, b: Optional[torch.Tensor]):
    """(x dense, b as x's dtype or an empty tensor, the Launch)."""
    if not is_dense(x):
        x = x.clone(memory_format=torch.preserve_format)  # dense, same dimension order
    if b is None:
        b = x.new_empty([0])
    elif b.dtype != x.dtype:
        b = b.to(x.dtype)  # as the reference; the cast is differentiable, so db returns in b's dtype
    shape = x.shape
    return x, b, Launch(impl, p.dim, _CODES[p.act], p.alpha, p.gain, p.clamp, shape[p.dim],
                        math.prod(shape[p.dim + 1:]))

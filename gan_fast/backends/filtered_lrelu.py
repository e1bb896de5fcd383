"""The ``filtered_lrelu`` backends: ``ref`` (the reference composition) and ``triton``
(``gan_fast.kernels.filtered_lrelu``, with the Triton ``upfirdn2d`` and ``bias_act`` where its kernels do not
take the filters).

The triton backend runs one of four algorithms, chosen once per call by :func:`algorithm` from the filters'
kinds and taps and the factors (a pure function of ints, cached per key):

* ``fused``: separable or absent filters whose reach a tile holds (the kernels' ``plan_forward`` /
  ``plan_backward``): the two kernels below, every derivative included.
* ``split_down``: a 2-D down filter (StyleGAN3-R's radial filters) and a separable or absent up filter: the
  kernels run the up-sampling with the activation (``fd=None, down=1``), the Triton ``upfirdn2d`` the 2-D
  down-sampling.
* ``split_up``: a 2-D up filter and a separable or absent down filter: the Triton ``bias_act`` adds the bias,
  the Triton ``upfirdn2d`` up-samples, the kernels run the activation and the down-sampling
  (``fu=None, up=1``).
* ``composed``: two 2-D filters, or filters whose reach no tile holds: the reference composition on the
  Triton ``upfirdn2d`` and ``bias_act``.

The kernels treat the filters as constants: a call whose filter requires grad is refused (``SPEC.cannot``),
and the automatic choice runs ``ref`` for it (exact gradient for the filters). float64 likewise.

Three launches, each an opaque ``torch.library.custom_op`` with a ``register_fake`` (so ``torch.compile``
traces them)::

    fwd(x, fu, fd, b, ...)        -> (y, mask)   mask: int8 [N, C, MH, MW], or empty when not kept
    jvp(v, vb, mask, fu, fd, ...) -> y'          the forward linearised at mask: Down(d(mask) * Up(v + vb))
    bwd(dy, mask, fu, fd, ...)    -> (dx, db)    its transpose: Up^T(d(mask) * Down^T(dy)) and the sum over N, H, W

Differentiation. filtered_lrelu is piecewise linear in (x, b): its Jacobian ``J`` depends on x only through
the mask (which side of 0 and of the clamp each up-sampled sample lies on), so its second derivative in x is 0
wherever it exists (as the reference's autograd gives: leaky ReLU's and clamp's backward have zero derivative
with respect to their input). So:

* ``_FilteredLReLU(x, b) -> (y, mask)``; backward: ``(dx, db) = _FilteredLReLUGrad(dy, mask)``.
* ``_FilteredLReLUGrad(dy, mask) -> (dx, db) = J^T dy`` is linear in dy; its backward is
  ``d dy = _FilteredLReLUJvp(g_dx, g_db, mask) = J (g_dx + g_db)``.
* ``_FilteredLReLUJvp`` is linear too; its backward is ``_FilteredLReLUGrad`` again.

Every order of derivative is exact and runs on the two kernels; each Function saves only its inputs and
outputs (the mask is an output of the first and an input of the others), as DESIGN.md requires for double
backward.
"""

from typing import Callable, Dict, NamedTuple, Optional, Tuple

import torch

from .. import config
from ..params.bias_act import BiasActParams
from ..params.filtered_lrelu import FilteredLReLUParams
from ..params.upfirdn2d import UpFirDn2dParams
from ..reference import filtered_lrelu as reference
from ..shapes import filter_wh, filtered_lrelu_mask_size, filtered_lrelu_size, is_channels_last
from . import bias_act as bias_act_backends
from . import upfirdn2d as upfirdn2d_backends
from .common import OpSpec, cache_signatures

__all__ = ["SPEC", "SPECS", "run", "algorithm", "choose_algorithm", "ALGORITHMS"]

_LEARNED = "its kernels treat the filters as constants, so a filter that requires grad gets no gradient"
SPEC = OpSpec("filtered_lrelu", "filtered_lrelu", fast={"cuda": ("triton",)},
              cannot={"triton": {"float64": "its kernels compute in float32", "learned filter": _LEARNED}})
SPECS = (SPEC,)

FUSED, SPLIT_DOWN, SPLIT_UP, COMPOSED = "fused", "split_down", "split_up", "composed"
ALGORITHMS = (FUSED, SPLIT_DOWN, SPLIT_UP, COMPOSED)


def _fmt(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


# ----------------------------------------------------------------------------------------------- custom ops


def _kernels():
    from ..kernels import filtered_lrelu as K  # noqa: PLC0415 - triton loads on the first launch, not at import

    return K


@torch.library.custom_op("gan_fast::triton_filtered_lrelu_fwd", mutates_args=())
def _fwd_op(x: torch.Tensor, fu: Optional[torch.Tensor], fd: Optional[torch.Tensor], b: Optional[torch.Tensor],
            up: int, down: int, px0: int, px1: int, py0: int, py1: int, gain: float, slope: float,
            clamp: Optional[float], flip_filter: bool, keep_mask: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    K = _kernels()
    y, mask = K.filtered_lrelu_fwd(x, fu, fd, b, up, down, px0, px1, py0, py1, gain, slope, clamp, flip_filter,
                                   K.MODE_ACT_MASK if keep_mask else K.MODE_ACT,
                                   fp32_precision=config.fp32_dot_precision())
    return y, (mask if mask is not None else x.new_empty(0, dtype=torch.int8))


@_fwd_op.register_fake
def _(x, fu, fd, b, up, down, px0, px1, py0, py1, gain, slope, clamp, flip_filter, keep_mask):
    n, c, h, w = x.shape
    fd_wh = filter_wh(fd)
    oh, ow = filtered_lrelu_size(h, w, filter_wh(fu), fd_wh, up, down, (px0, px1, py0, py1))
    mh, mw = filtered_lrelu_mask_size(oh, ow, down, fd_wh[0])
    y = _fmt(x.new_empty(n, c, oh, ow), is_channels_last(x))
    return y, x.new_empty((n, c, mh, mw) if keep_mask else (0,), dtype=torch.int8)


@torch.library.custom_op("gan_fast::triton_filtered_lrelu_jvp", mutates_args=())
def _jvp_op(v: torch.Tensor, vb: Optional[torch.Tensor], mask: torch.Tensor, fu: Optional[torch.Tensor],
            fd: Optional[torch.Tensor], up: int, down: int, px0: int, px1: int, py0: int, py1: int, gain: float,
            slope: float, flip_filter: bool) -> torch.Tensor:
    K = _kernels()
    return K.filtered_lrelu_fwd(v, fu, fd, vb, up, down, px0, px1, py0, py1, gain, slope, None, flip_filter,
                                K.MODE_JVP, mask, fp32_precision=config.fp32_dot_precision())[0]


@_jvp_op.register_fake
def _(v, vb, mask, fu, fd, up, down, px0, px1, py0, py1, gain, slope, flip_filter):
    n, c, h, w = v.shape
    oh, ow = filtered_lrelu_size(h, w, filter_wh(fu), filter_wh(fd), up, down, (px0, px1, py0, py1))
    return _fmt(v.new_empty(n, c, oh, ow), is_channels_last(v))


@torch.library.custom_op("gan_fast::triton_filtered_lrelu_bwd", mutates_args=())
def _bwd_op(dy: torch.Tensor, mask: torch.Tensor, fu: Optional[torch.Tensor], fd: Optional[torch.Tensor], up: int,
            down: int, px0: int, py0: int, h: int, w: int, gain: float, slope: float, flip_filter: bool,
            channels_last: bool, want_db: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    dx, db = _kernels().filtered_lrelu_bwd(dy, mask, fu, fd, up, down, px0, py0, h, w, gain, slope, flip_filter,
                                           channels_last, want_db, fp32_precision=config.fp32_dot_precision())
    return dx, (db if db is not None else dy.new_empty(0))


@_bwd_op.register_fake
def _(dy, mask, fu, fd, up, down, px0, py0, h, w, gain, slope, flip_filter, channels_last, want_db):
    n, c = dy.shape[:2]
    return _fmt(dy.new_empty(n, c, h, w), channels_last), dy.new_empty(c if want_db else 0)


# ----------------------------------------------------------------------------------------------- autograd
# The non-tensor arguments travel as named records: the call's FilteredLReLUParams ``p`` (as the kernels run
# it: a split path's half has its own) and, for the transposed pass, the input's ``Plane``.


class Plane(NamedTuple):
    """The input's spatial size and layout, which the transposed pass rebuilds."""
    h: int
    w: int
    channels_last: bool


def _plane(t: torch.Tensor) -> Plane:
    return Plane(t.shape[2], t.shape[3], is_channels_last(t))


def _fwd(x, fu, fd, b, p: FilteredLReLUParams, keep_mask: bool):
    px0, px1, py0, py1 = p.padding
    return _fwd_op(x, fu, fd, b, p.up, p.down, px0, px1, py0, py1, p.gain, p.slope, p.clamp, p.flip_filter,
                   keep_mask)


def _jvp(v, vb, mask, fu, fd, p: FilteredLReLUParams):
    px0, px1, py0, py1 = p.padding
    return _jvp_op(v, vb, mask, fu, fd, p.up, p.down, px0, px1, py0, py1, p.gain, p.slope, p.flip_filter)


def _bwd(dy, mask, fu, fd, p: FilteredLReLUParams, q: Plane, want_db: bool):
    return _bwd_op(dy, mask, fu, fd, p.up, p.down, p.padding[0], p.padding[2], q.h, q.w, p.gain, p.slope,
                   p.flip_filter, q.channels_last, want_db)


class _FilteredLReLUGrad(torch.autograd.Function):
    """(dy, mask, fu, fd, p, q, want_db) -> (dx, db) = J^T dy: linear in dy (db empty unless ``want_db``)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(dy, mask, fu, fd, p, q, want_db):
        return _bwd(dy, mask, fu, fd, p, q, want_db)

    @staticmethod
    def setup_context(ctx, inputs, output):
        dy, mask, fu, fd, p, q, want_db = inputs
        ctx.save_for_backward(mask, fu, fd)
        ctx.p = p
        if not want_db:
            ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx, g_dx, g_db):
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None, None, None
        mask, fu, fd = ctx.saved_tensors
        vb = g_db if g_db is not None and g_db.numel() else None
        if not torch.is_grad_enabled():  # nothing will differentiate this: launch directly
            return _jvp(g_dx, vb, mask, fu, fd, ctx.p), None, None, None, None, None, None
        return _FilteredLReLUJvp.apply(g_dx, vb, mask, fu, fd, ctx.p), None, None, None, None, None, None


class _FilteredLReLUJvp(torch.autograd.Function):
    """(v, vb, mask, fu, fd, p) -> J (v + vb): linear in (v, vb)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(v, vb, mask, fu, fd, p):
        return _jvp(v, vb, mask, fu, fd, p)

    @staticmethod
    def setup_context(ctx, inputs, output):
        v, vb, mask, fu, fd, p = inputs
        ctx.save_for_backward(mask, fu, fd)
        ctx.p, ctx.q = p, _plane(v)

    @staticmethod
    def backward(ctx, gy):
        need_v, need_vb = ctx.needs_input_grad[:2]
        if not (need_v or need_vb):
            return None, None, None, None, None, None
        mask, fu, fd = ctx.saved_tensors
        if not torch.is_grad_enabled():  # nothing will differentiate this: launch directly
            dv, dvb = _bwd(gy, mask, fu, fd, ctx.p, ctx.q, bool(need_vb))
        else:
            dv, dvb = _FilteredLReLUGrad.apply(gy, mask, fu, fd, ctx.p, ctx.q, bool(need_vb))
        return (dv if need_v else None), (dvb if need_vb else None), None, None, None, None


class _FilteredLReLU(torch.autograd.Function):
    """(x, b, fu, fd, p) -> (y, mask); the mask is not differentiable."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, b, fu, fd, p):
        return _fwd(x, fu, fd, b, p, True)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, b, fu, fd, p = inputs
        mask = output[1]
        ctx.mark_non_differentiable(mask)
        ctx.save_for_backward(mask, fu, fd)
        ctx.p, ctx.q = p, _plane(x)

    @staticmethod
    def backward(ctx, dy, _d_mask):
        need_x, need_b = ctx.needs_input_grad[:2]
        if not (need_x or need_b):
            return None, None, None, None, None
        mask, fu, fd = ctx.saved_tensors
        # A plain backward (grad mode off: nothing will differentiate the result) launches the kernel
        # directly: a Function.apply costs more host time than the kernel on a small layer.
        if not torch.is_grad_enabled():
            dx, db = _bwd(dy, mask, fu, fd, ctx.p, ctx.q, bool(need_b))
        else:
            dx, db = _FilteredLReLUGrad.apply(dy, mask, fu, fd, ctx.p, ctx.q, bool(need_b))
        return (dx if need_x else None), (db if need_b else None), None, None, None


cache_signatures(_FilteredLReLU, _FilteredLReLUGrad, _FilteredLReLUJvp)


# ----------------------------------------------------------------------------------------------- algorithm


def _kind(f: Optional[torch.Tensor]) -> int:
    """A filter as the algorithm sees it: its taps when separable [ft], 1 when absent, 0 when 2-D [fh, fw]."""
    if f is None:
        return 1
    return f.shape[0] if f.ndim == 1 else 0


def _has_plans(up: int, down: int, nfu: int, nfd: int) -> bool:
    """Whether a tile of the kernels holds separable nfu/nfd-tap filters at these factors (forward and backward).
    Imports the kernels (triton): called on the triton backend only."""
    K = _kernels()
    fwd, bwd = K.plan_forward, K.plan_backward
    if torch.compiler.is_compiling():  # a key no eager call has seen: the trace runs the plain functions
        # (functools.lru_cache's __wrapped__: Dynamo warns about tracing the cache wrappers)
        fwd, bwd = fwd.__wrapped__, bwd.__wrapped__
    return fwd(up, down, nfu, nfd) is not None and bwd(up, down, nfu, nfd) is not None


def choose_algorithm(up: int, down: int, nfu: int, nfd: int, has_plans: Callable[[int, int, int, int], bool]) -> str:
    """The triton backend's algorithm for filters of kinds ``nfu``/``nfd`` (:func:`_kind`: taps, 1 for none,
    0 for 2-D) at factors ``up``/``down``; ``has_plans(up, down, nfu, nfd)``: whether the kernels hold those
    separable filters. Pure."""
    if nfu and nfd:
        return FUSED if has_plans(up, down, nfu, nfd) else COMPOSED
    if nfu and has_plans(up, 1, nfu, 1):  # 2-D down filter: the kernels up-sample and activate
        return SPLIT_DOWN
    if nfd and has_plans(1, down, 1, nfd):  # 2-D up filter: the kernels activate and down-sample
        return SPLIT_UP
    return COMPOSED


# (up, down, kind of fu, kind of fd) -> algorithm, filled by eager calls. A torch.compile trace reads it (a
# constant of the graph, guarded by Dynamo); for a key no eager call has seen, the trace computes the choice
# (plain Python on ints) without storing it, so the compiled function is not retraced for the store.
_ALGORITHM: Dict[Tuple[int, int, int, int], str] = {}


def algorithm(up: int, down: int, fu: Optional[torch.Tensor], fd: Optional[torch.Tensor]) -> str:
    """The algorithm the triton backend runs for these filters and factors (one of :data:`ALGORITHMS`)."""
    key = (up, down, _kind(fu), _kind(fd))
    alg = _ALGORITHM.get(key)
    if alg is None:
        alg = choose_algorithm(*key, _has_plans)
        if not torch.compiler.is_compiling():
            _ALGORITHM[key] = alg
    return alg


# ----------------------------------------------------------------------------------------------- triton paths


def _resample(x, f, up, down, padding, flip_filter, gain):
    """The Triton upfirdn2d, with the reference's signature (the composition's ``resample``)."""
    return upfirdn2d_backends.run("triton", UpFirDn2dParams(up, down, padding, flip_filter, gain), x, f)


def _bias_act(x, b, dim, act, alpha, gain, clamp):
    """The Triton bias_act, with the reference's signature (the composition's ``bias_act``)."""
    return bias_act_backends.run("triton", BiasActParams(dim, act, alpha, gain, clamp), x, b)


def _fused(x, fu, fd, b, p: FilteredLReLUParams):
    """The two kernels (separable or absent filters, a plan that holds them)."""
    if torch.is_grad_enabled() and (x.requires_grad or (b is not None and b.requires_grad)):
        if fd is not None and fd is fu:
            fd = fd.detach()  # Dynamo cannot trace a Function given one tensor twice (a constant here)
        return _FilteredLReLU.apply(x, b, fu, fd, p)[0]
    return _fwd(x, fu, fd, b, p, False)[0]  # nothing to differentiate: no Function.apply


_NO_PADDING = (0, 0, 0, 0)


# ----------------------------------------------------------------------------------------------- entry point


def run(impl: str, p: FilteredLReLUParams, x: torch.Tensor, fu: Optional[torch.Tensor], fd: Optional[torch.Tensor],
        b: Optional[torch.Tensor]) -> torch.Tensor:
    """``filtered_lrelu`` on backend ``impl`` ('ref' or 'triton'); ``p`` from ``gan_fast.params.filtered_lrelu``,
    fu, fd and b already in x's dtype. The triton backend takes the filters as constants (``SPEC.cannot``) and
    runs the :func:`algorithm` of the call."""
    if impl == "ref":
        return reference.filtered_lrelu(x, fu, fd, b, p.up, p.down, p.padding, p.gain, p.slope, p.clamp,
                                        p.flip_filter)
    if impl != "triton":
        raise ValueError(f"filtered_lrelu: no {impl!r} backend; it has {list(SPEC.backends)}")
    alg = algorithm(p.up, p.down, fu, fd)
    if alg == FUSED:
        return _fused(x, fu, fd, b, p)
    if alg == SPLIT_DOWN:
        a = _fused(x, fu, None, b, p._replace(down=1))
        return _resample(a, fd, (1, 1), (p.down, p.down), _NO_PADDING, p.flip_filter, 1.0)
    if alg == SPLIT_UP:
        if b is not None:
            x = _bias_act(x, b, 1, "linear", 0.0, 1.0, None)
        u = _resample(x, fu, (p.up, p.up), (1, 1), p.padding, p.flip_filter, float(p.up * p.up))
        return _fused(u, None, fd, None, p._replace(up=1, padding=_NO_PADDING))
    return reference.filtered_lrelu(x, fu, fd, b, p.up, p.down, p.padding, p.gain, p.slope, p.clamp, p.flip_filter,
                                    resample=_resample, bias_act=_bias_act)

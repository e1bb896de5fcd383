"""The ``spectral_normalize`` backends: ``ref`` and ``triton`` (``gan_fast.kernels.spectral_norm``).

``triton``: ``spectral_normalize(weight, u, v, dim, n, eps)`` -> (weight / sigma, u, v): power iteration, sigma
and the division in one launch per iteration for weights up to the kernels' fuse size (one more launch for the
division above it), as the ``torch.library.custom_op`` ``gan_fast::triton_spectral_normalize`` (with a
``register_fake``). Differentiation, with u and v constants and sigma = <P, W>, P = u v^T (the reference's
semantics):

    first order   dW = g / sigma - (<g, W> / sigma^2) P           one kernel (two above the fuse size)
    second order  (the backward's own backward, plain torch ops on saved inputs/outputs, exact)
        d/dW <V, dW> = -<V, g> P / sigma^2 - <V, P> g / sigma^2 + 2 <g, W> <V, P> P / sigma^3
        d/dg <V, dW> = V / sigma - <V, P> W / sigma^2

The weight is viewed as the matrix [shape[dim], rest] without a copy whenever strides allow (contiguous weights
for any dim=0, most dim=1 cases copy). The triton backend takes real weights of >= 2 dims with no empty
dimension: complex weights are refused (``SPEC.cannot``); ``gan_fast.ops.spectral_normalize`` sends 1-D weights
(an L2 normalisation, no power iteration) and empty ones to ``ref``. u and v enter as constants (detached, as
in ``ref``). The helpers here (:func:`matrix_to_weight`, :func:`matrix_in`, :func:`second_order`) serve the
batched form too (``backends.spectral_norm_multi``).
"""

from typing import NamedTuple, Tuple

import torch

from ..params.spectral_normalize import SpectralNormalizeParams, matrix_shape
from ..reference import spectral_normalize as reference
from ..reference.spectral_normalize import weight_to_matrix
from .common import OpSpec, cache_signatures
from .power_iteration import REAL_ONLY

__all__ = ["SPEC", "SPECS", "run", "matrix_to_weight", "matrix_in", "matrix_out", "second_order", "compute_dtype"]

SPEC = OpSpec("spectral_normalize", "spectral_normalize", fast={"cuda": ("triton",)}, cannot={"triton": REAL_ONLY})
SPECS = (SPEC,)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The kernels' arithmetic (and u, v, sigma) dtype: float64 for float64, else float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def matrix_to_weight(mat: torch.Tensor, shape: Tuple[int, ...], dim: int) -> torch.Tensor:
    """The inverse of ``weight_to_matrix``: [shape[dim], rest] -> shape."""
    if dim == 0:
        return mat.reshape(shape)
    perm_shape = (shape[dim],) + tuple(s for i, s in enumerate(shape) if i != dim)
    inv = [0] * len(shape)
    order = [dim] + [i for i in range(len(shape)) if i != dim]
    for pos, d in enumerate(order):
        inv[d] = pos
    return mat.reshape(perm_shape).permute(*inv)


def matrix_in(t: torch.Tensor, dim: int) -> torch.Tensor:
    """A [h, w] strided view of t when possible, else a contiguous copy (read-only use)."""
    from ..kernels.spectral_norm import matrix_view  # noqa: PLC0415 - called from the launches' bodies only

    m = matrix_view(t, dim)
    return m if m is not None else weight_to_matrix(t, dim).contiguous()


def matrix_out(t: torch.Tensor, dim: int) -> Tuple[torch.Tensor, bool]:
    """(a [h, w] tensor to write, True if it is a view of t; else the caller copies it back)."""
    from ..kernels.spectral_norm import matrix_view  # noqa: PLC0415

    m = matrix_view(t, dim)
    if m is not None:
        return m, True
    return torch.empty(matrix_shape(t.shape, dim), dtype=t.dtype, device=t.device), False


@torch.library.custom_op("gan_fast::triton_spectral_normalize", mutates_args=())
def _spectral_normalize_op(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor, dim: int, n_iterations: int,
                           eps: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from ..kernels import spectral_norm as K  # noqa: PLC0415 - triton loads on the first launch

    dtype = weight.dtype
    y = torch.empty_like(weight)
    y_mat, direct = matrix_out(y, dim)
    layer = K.SNLayer(mat=matrix_in(weight, dim), u=u.to(dtype).contiguous(), v=v.to(dtype).contiguous(),
                      y_mat=y_mat)
    plan, _ = K.power_launch([layer], n_iterations, eps)
    if not direct:
        y.copy_(matrix_to_weight(y_mat, tuple(weight.shape), dim))
    return y, plan.u[0].to(dtype), plan.v[0].to(dtype), plan.sigma[0]


@_spectral_normalize_op.register_fake
def _(weight, u, v, dim, n_iterations, eps):
    h, w = matrix_shape(weight.shape, dim)
    return (torch.empty_like(weight), weight.new_empty((h,)), weight.new_empty((w,)),
            weight.new_empty((), dtype=compute_dtype(weight.dtype)))


@torch.library.custom_op("gan_fast::triton_spectral_normalize_backward", mutates_args=())
def _spectral_normalize_backward_op(weight: torch.Tensor, grad: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                                    sigma: torch.Tensor, dim: int) -> torch.Tensor:
    from ..kernels import spectral_norm as K  # noqa: PLC0415

    acc = compute_dtype(weight.dtype)
    grad = grad.to(weight.dtype)
    dw = torch.empty_like(weight)
    dw_mat, direct = matrix_out(dw, dim)
    plan = K.Plan(u=[u.to(acc).contiguous()], v=[v.to(acc).contiguous()], sigma=[sigma.to(acc)])
    K.backward_launch([matrix_in(weight, dim)], [matrix_in(grad, dim)], [dw_mat], plan)
    if not direct:
        dw.copy_(matrix_to_weight(dw_mat, tuple(weight.shape), dim))
    return dw


@_spectral_normalize_backward_op.register_fake
def _(weight, grad, u, v, sigma, dim):
    return torch.empty_like(weight)


def second_order(weight: torch.Tensor, grad: torch.Tensor, u: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor,
                 dim: int, V: torch.Tensor, need_w: bool, need_g: bool):
    """(d<V, dW>/dW, d<V, dW>/dg) of dW = g / sigma - <g, W> P / sigma^2, in plain torch ops (None where not
    needed)."""
    acc = compute_dtype(weight.dtype)
    W, g, VV = weight.to(acc), grad.to(acc), V.to(acc)
    s = sigma.to(acc)
    P = matrix_to_weight(torch.outer(u.to(acc), v.to(acc)), tuple(weight.shape), dim)
    vp = (VV * P).sum()
    d_w = d_g = None
    if need_w:
        vg = (VV * g).sum()
        gw = (g * W).sum()
        d_w = (-(vg / s**2) * P - (vp / s**2) * g + (2 * gw * vp / s**3) * P).to(weight.dtype)
    if need_g:
        d_g = (VV / s - (vp / s**2) * W).to(grad.dtype)
    return d_w, d_g


class Launch(NamedTuple):
    """The non-tensor arguments of the W / sigma backward: the output dimension."""
    dim: int


class _SpectralNormalizeBackward(torch.autograd.Function):
    """(weight, g, u, v, sigma) -> dW; its backward is the exact second order (w.r.t. weight and g)."""

    @staticmethod
    def forward(weight, grad, u, v, sigma, q: Launch):
        return _spectral_normalize_backward_op(weight, grad, u, v, sigma, q.dim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        weight, grad, u, v, sigma, q = inputs
        ctx.save_for_backward(weight, grad, u, v, sigma)
        ctx.q = q

    @staticmethod
    def backward(ctx, V):
        weight, grad, u, v, sigma = ctx.saved_tensors
        d_w, d_g = second_order(weight, grad, u, v, sigma, ctx.q.dim, V, ctx.needs_input_grad[0],
                                ctx.needs_input_grad[1])
        return d_w, d_g, None, None, None, None


class _SpectralNormalize(torch.autograd.Function):
    """(weight, u, v) -> (W / sigma, u, v, sigma); u and v arrive detached; the last three are
    non-differentiable."""

    @staticmethod
    def forward(weight, u, v, p: SpectralNormalizeParams):
        return _spectral_normalize_op(weight, u, v, p.dim, p.n_iterations, p.eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        weight, _, _, p = inputs
        _, u_new, v_new, sigma = output
        ctx.mark_non_differentiable(u_new, v_new, sigma)
        ctx.save_for_backward(weight, u_new, v_new, sigma)
        ctx.q = Launch(p.dim)

    @staticmethod
    def backward(ctx, gy, _gu, _gv, _gs):
        weight, u, v, sigma = ctx.saved_tensors
        return _SpectralNormalizeBackward.apply(weight, gy, u, v, sigma, ctx.q), None, None, None


cache_signatures(_SpectralNormalize, _SpectralNormalizeBackward)


def run(impl: str, p: SpectralNormalizeParams, weight: torch.Tensor, u: torch.Tensor,
        v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``spectral_normalize`` on backend ``impl`` ('ref' or 'triton'); ``p`` from
    ``gan_fast.params.spectral_normalize``, u and v already in weight's dtype. The triton backend takes a real
    weight of >= 2 dims with no empty dimension."""
    if impl == "ref":
        return reference.spectral_normalize(weight, u, v, p.dim, p.n_iterations, p.eps)
    if impl != "triton":
        raise ValueError(f"spectral_normalize: no {impl!r} backend")
    if weight.ndim < 2 or weight.numel() == 0:
        raise ValueError(f"spectral_normalize: the triton backend takes weights of >= 2 dims with no empty "
                         f"dimension, got {tuple(weight.shape)} (impl='ref' runs it)")
    u, v = u.detach(), v.detach()  # constants, as in ref
    if not (weight.requires_grad and torch.is_grad_enabled()):  # nothing to differentiate: no Function.apply
        y, u_new, v_new, _ = _spectral_normalize_op(weight, u, v, p.dim, p.n_iterations, p.eps)
    else:
        y, u_new, v_new, _ = _SpectralNormalize.apply(weight, u, v, p)
    return y, u_new, v_new

"""Autograd glue and torch.library registration for fused spectral normalisation (Triton backend).

``spectral_normalize(weight, u, v, dim, n, eps)`` -> (weight / sigma, u, v):
power iteration, sigma and the division in one launch per iteration for
weights up to ``kernels.spectral_norm`` 's fuse size (one more launch for the
division above it). Differentiation, with u and v constants and
sigma = <P, W>, P = u v^T (the reference's semantics):

    first order   dW = g / sigma - (<g, W> / sigma^2) P           one kernel (two above the fuse size)
    second order  (the backward's own backward, plain torch ops on saved inputs/outputs, exact)
        d/dW <V, dW> = -<V, g> P / sigma^2 - <V, P> g / sigma^2 + 2 <g, W> <V, P> P / sigma^3
        d/dg <V, dW> = V / sigma - <V, P> W / sigma^2

The weight is viewed as the matrix [shape[dim], rest] without a copy whenever
strides allow (contiguous weights for any dim=0, most dim=1 cases copy).
"""

from __future__ import annotations

from typing import Tuple

import torch

from ..kernels import spectral_norm as K
from ..reference.spectral_normalize import weight_to_matrix

__all__ = ["spectral_normalize", "matrix_to_weight", "second_order"]


def _acc(dtype: torch.dtype) -> torch.dtype:
    return K.compute_dtype(dtype)


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


def _mat_in(t: torch.Tensor, dim: int) -> torch.Tensor:
    """A [h, w] strided view of t when possible, else a contiguous copy (read-only use)."""
    m = K.matrix_view(t, dim)
    return m if m is not None else weight_to_matrix(t, dim).contiguous()


def _mat_out(t: torch.Tensor, dim: int) -> Tuple[torch.Tensor, bool]:
    """(a [h, w] tensor to write, True if it is a view of t; else the caller copies it back)."""
    m = K.matrix_view(t, dim)
    if m is not None:
        return m, True
    h = t.shape[dim]
    return torch.empty((h, t.numel() // h), dtype=t.dtype, device=t.device), False


@torch.library.custom_op("gan_fast::triton_spectral_normalize", mutates_args=())
def _spectral_normalize_op(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor, dim: int, n_iterations: int,
                           eps: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    dtype = weight.dtype
    y = torch.empty_like(weight)
    y_mat, direct = _mat_out(y, dim)
    layer = K.SNLayer(mat=_mat_in(weight, dim), u=u.detach().to(dtype).contiguous(),
                      v=v.detach().to(dtype).contiguous(), y_mat=y_mat)
    plan, _ = K.power_launch([layer], n_iterations, eps)
    if not direct:
        y.copy_(matrix_to_weight(y_mat, tuple(weight.shape), dim))
    return y, plan.u[0].to(dtype), plan.v[0].to(dtype), plan.sigma[0]


@_spectral_normalize_op.register_fake
def _(weight, u, v, dim, n_iterations, eps):
    h = weight.shape[dim]
    w = weight.numel() // h
    return (torch.empty_like(weight), weight.new_empty((h,)), weight.new_empty((w,)),
            weight.new_empty((), dtype=_acc(weight.dtype)))


@torch.library.custom_op("gan_fast::triton_spectral_normalize_backward", mutates_args=())
def _spectral_normalize_backward_op(weight: torch.Tensor, grad: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                                    sigma: torch.Tensor, dim: int) -> torch.Tensor:
    acc = _acc(weight.dtype)
    grad = grad.to(weight.dtype)
    dw = torch.empty_like(weight)
    dw_mat, direct = _mat_out(dw, dim)
    plan = K.Plan(u=[u.to(acc).contiguous()], v=[v.to(acc).contiguous()], sigma=[sigma.to(acc)])
    K.backward_launch([_mat_in(weight, dim)], [_mat_in(grad, dim)], [dw_mat], plan)
    if not direct:
        dw.copy_(matrix_to_weight(dw_mat, tuple(weight.shape), dim))
    return dw


@_spectral_normalize_backward_op.register_fake
def _(weight, grad, u, v, sigma, dim):
    return torch.empty_like(weight)


def second_order(weight: torch.Tensor, grad: torch.Tensor, u: torch.Tensor, v: torch.Tensor, sigma: torch.Tensor,
                 dim: int, V: torch.Tensor, need_w: bool, need_g: bool):
    """(d<V, dW>/dW, d<V, dW>/dg) of dW = g / sigma - <g, W> P / sigma^2, in plain torch ops."""
    acc = _acc(weight.dtype)
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


class _SpectralNormalizeBackward(torch.autograd.Function):
    @staticmethod
    def forward(weight, grad, u, v, sigma, dim):
        return _spectral_normalize_backward_op(weight, grad, u, v, sigma, dim)

    @staticmethod
    def setup_context(ctx, inputs, output):
        weight, grad, u, v, sigma, dim = inputs
        ctx.save_for_backward(weight, grad, u, v, sigma)
        ctx.dim = dim

    @staticmethod
    def backward(ctx, V):
        weight, grad, u, v, sigma = ctx.saved_tensors
        d_w, d_g = second_order(weight, grad, u, v, sigma, ctx.dim, V, ctx.needs_input_grad[0],
                                ctx.needs_input_grad[1])
        return d_w, d_g, None, None, None, None


class _SpectralNormalize(torch.autograd.Function):
    @staticmethod
    def forward(weight, u, v, dim, n_iterations, eps):
        return _spectral_normalize_op(weight, u, v, dim, n_iterations, eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        weight, _, _, dim, _, _ = inputs
        _, u_new, v_new, sigma = output
        ctx.mark_non_differentiable(u_new, v_new, sigma)
        ctx.save_for_backward(weight, u_new, v_new, sigma)
        ctx.dim = dim

    @staticmethod
    def backward(ctx, gy, _gu, _gv, _gs):
        weight, u, v, sigma = ctx.saved_tensors
        return _SpectralNormalizeBackward.apply(weight, gy, u, v, sigma, ctx.dim), None, None, None, None, None


def spectral_normalize(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor, dim: int, n_iterations: int,
                       eps: float, impl: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Arguments already validated by ``gan_fast.ops.spectral_normalize`` (weight has >= 2 dims)."""
    if impl != "triton":
        raise NotImplementedError(f"spectral_normalize has no fused {impl!r} implementation")
    y, u_new, v_new, _ = _SpectralNormalize.apply(weight, u, v, int(dim), int(n_iterations), float(eps))
    return y, u_new, v_new

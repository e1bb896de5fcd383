"""Autograd glue and torch.library registration for the fused spectral-norm power iteration (Triton backend).

``power_iteration(weight_mat, u, v, n, eps)`` -> (sigma, u, v) runs n power
iterations and sigma = u^T W v in one launch per iteration (one for n <= 1),
see ``kernels/spectral_norm.py``. sigma is differentiable w.r.t. weight_mat
with u and v held constant, exactly as the reference:
d sigma / dW = outer(g u, v) (its own derivative w.r.t. g is plain autograd on
those ops, so any order is exact).
"""

from __future__ import annotations

from typing import Tuple

import torch

from ..kernels import spectral_norm as K

__all__ = ["power_iteration"]


def _vec(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return t.detach().to(dtype).contiguous()


@torch.library.custom_op("gan_fast::triton_power_iteration", mutates_args=())
def _power_iteration_op(weight_mat: torch.Tensor, u: torch.Tensor, v: torch.Tensor, n_iterations: int,
                        eps: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dtype = weight_mat.dtype
    layer = K.SNLayer(mat=weight_mat, u=_vec(u, dtype), v=_vec(v, dtype))
    plan, _ = K.power_launch([layer], n_iterations, eps)
    sigma, u_new, v_new = plan.sigma[0], plan.u[0], plan.v[0]
    if sigma.dtype != dtype:
        sigma, u_new, v_new = sigma.to(dtype), u_new.to(dtype), v_new.to(dtype)
    return sigma, u_new, v_new


@_power_iteration_op.register_fake
def _(weight_mat, u, v, n_iterations, eps):
    h, w = weight_mat.shape
    return weight_mat.new_empty(()), weight_mat.new_empty((h,)), weight_mat.new_empty((w,))


class _PowerIteration(torch.autograd.Function):
    @staticmethod
    def forward(weight_mat, u, v, n_iterations, eps):
        return _power_iteration_op(weight_mat, u, v, n_iterations, eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, u_new, v_new = output
        ctx.mark_non_differentiable(u_new, v_new)
        ctx.save_for_backward(u_new, v_new)

    @staticmethod
    def backward(ctx, g_sigma, _gu, _gv):
        u, v = ctx.saved_tensors
        # As autograd differentiates the reference vdot(u, mv(W, v)): outer(g * u, v).
        return torch.outer(g_sigma * u, v), None, None, None, None


def power_iteration(weight_mat: torch.Tensor, u: torch.Tensor, v: torch.Tensor, n_iterations: int, eps: float,
                    impl: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Arguments already validated by ``gan_fast.ops.power_iteration``."""
    if impl != "triton":
        raise NotImplementedError(f"power_iteration has no fused {impl!r} implementation")
    return _PowerIteration.apply(weight_mat, u, v, int(n_iterations), float(eps))

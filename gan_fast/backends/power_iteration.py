"""The ``power_iteration`` backends: ``ref`` and ``triton`` (``gan_fast.kernels.spectral_norm``).

``triton`` runs n power iterations and sigma = u^T W v in one launch per iteration (one for n <= 1), as the
``torch.library.custom_op`` ``gan_fast::triton_power_iteration`` (with a ``register_fake``). sigma is
differentiable w.r.t. weight_mat with u and v held constant, exactly as the reference: d sigma / dW =
outer(g u, v), written in plain torch ops, so every order is exact (and, as in ``ref``, the gradient does not
depend on W: its own derivative w.r.t. W is absent, not zero).

u and v enter as constants (detached: as in ``ref``, which detaches them, no gradient reaches them and sigma
requires grad only when weight_mat does). The kernels are real: complex matrices are refused (``SPEC.cannot``)
and run ``ref`` when the choice is automatic. float64 stays float64.
"""

from typing import Tuple

import torch

from ..params.power_iteration import PowerIterationParams
from ..reference import power_iteration as reference
from .common import OpSpec, cache_signatures

__all__ = ["SPEC", "SPECS", "run", "REAL_ONLY"]

REAL_ONLY = {"complex": "its kernels are real"}
SPEC = OpSpec("power_iteration", "power_iteration", fast={"cuda": ("triton",)}, cannot={"triton": REAL_ONLY})
SPECS = (SPEC,)


@torch.library.custom_op("gan_fast::triton_power_iteration", mutates_args=())
def _power_iteration_op(weight_mat: torch.Tensor, u: torch.Tensor, v: torch.Tensor, n_iterations: int,
                        eps: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from ..kernels import spectral_norm as K  # noqa: PLC0415 - triton loads on the first launch

    dtype = weight_mat.dtype
    layer = K.SNLayer(mat=weight_mat, u=u.to(dtype).contiguous(), v=v.to(dtype).contiguous())
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
    """(weight_mat, u, v) -> (sigma, u, v); u and v arrive detached, the new ones are non-differentiable."""

    @staticmethod
    def forward(weight_mat, u, v, p: PowerIterationParams):
        return _power_iteration_op(weight_mat, u, v, p.n_iterations, p.eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, u_new, v_new = output
        ctx.mark_non_differentiable(u_new, v_new)
        ctx.save_for_backward(u_new, v_new)

    @staticmethod
    def backward(ctx, g_sigma, _gu, _gv):
        u, v = ctx.saved_tensors
        # As autograd differentiates the reference vdot(u, mv(W, v)): outer(g * u, v).
        return torch.outer(g_sigma * u, v), None, None, None


cache_signatures(_PowerIteration)


def run(impl: str, p: PowerIterationParams, weight_mat: torch.Tensor, u: torch.Tensor,
        v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``power_iteration`` on backend ``impl`` ('ref' or 'triton'); ``p`` from ``gan_fast.params.power_iteration``,
    u and v already in weight_mat's dtype; the triton backend takes a real, non-empty weight_mat."""
    if impl == "ref":
        return reference.power_iteration(weight_mat, u, v, p.n_iterations, p.eps)
    if impl != "triton":
        raise ValueError(f"power_iteration: no {impl!r} backend")
    u, v = u.detach(), v.detach()  # constants, as in ref
    if not (weight_mat.requires_grad and torch.is_grad_enabled()):
        return _power_iteration_op(weight_mat, u, v, p.n_iterations, p.eps)  # nothing to differentiate
    return _PowerIteration.apply(weight_mat, u, v, p)

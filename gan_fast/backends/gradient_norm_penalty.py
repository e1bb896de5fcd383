"""The ``gradient_norm_penalty`` backends: ``ref`` and ``triton`` (``gan_fast.kernels.gradient_norm_penalty``).

Structure (the pattern DESIGN.md checked): the kernel launches are opaque
``torch.library.custom_op``s with ``register_fake`` (so ``torch.compile`` traces
the forward without a graph break); the differentiation lives in
``torch.autograd.Function``s with a separate ``setup_context`` (so ``torch.func``
works), each saving only its inputs and outputs:

* ``_Penalty``: grads -> (penalty, sq). One kernel. sq, the per-sample squared
  norms, is a non-differentiable output kept for the backward.
* ``_PenaltyBackward``: (grads, sq, grad_out) -> d penalty / d grads. One
  kernel. Its own backward (the second order of the penalty, which
  ``gradgradcheck`` and third-order users reach) is written in plain torch ops
  on its inputs, exact:

      dg_i = a_i g_i,   a_i = 2 w_i m_i (1 - c / n_i)      (2 w_i when zero-centred)
      d<V, dg>/dg_i = a_i V_i + 2 w_i m_i c / n_i^3 (g_i . V_i) g_i
      d<V, dg>/dw_i = 2 m_i (1 - c / n_i) (g_i . V_i)

  with n_i = sqrt(sq_i), m_i the one-sided mask (n_i - c >= 0), and every
  1 / n_i taken as 0 for an all-zero sample (the subgradient 0, as ``ref``). sq enters as a
  value of grads, so the second order is exact; a third order through it would
  miss d sq / d grads.

R1/R2 (``loss.backward()`` after ``autograd.grad(create_graph=True)``) reach only
``_Penalty.backward``, i.e. the single backward kernel.

The kernels accumulate in float32 at least (float64 for float64) and take every floating dtype; empty inputs
never reach them (``gan_fast.ops.gradient_norm_penalty`` runs ``ref`` for those).
"""

from typing import Tuple

import torch

from ..params.gradient_norm_penalty import GradientNormPenaltyParams
from ..reference import gradient_norm_penalty as reference
from .common import OpSpec, cache_signatures

__all__ = ["SPEC", "SPECS", "run"]

SPEC = OpSpec("gradient_norm_penalty", "gradient_norm_penalty", fast={"cuda": ("triton",)})
SPECS = (SPEC,)


def _acc(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


@torch.library.custom_op("gan_fast::triton_gradient_norm_penalty", mutates_args=())
def _penalty_op(grads: torch.Tensor, center: float, one_sided: bool, reduction: str) -> Tuple[torch.Tensor, torch.Tensor]:
    from ..kernels import gradient_norm_penalty as K  # noqa: PLC0415 - triton loads on the first launch

    return K.gnp_forward(grads, center, one_sided, reduction)


@_penalty_op.register_fake
def _(grads, center, one_sided, reduction):
    n = grads.shape[0]
    acc = _acc(grads.dtype)
    out = grads.new_empty(() if reduction != "none" else (n,), dtype=acc)
    return out, grads.new_empty((n,), dtype=acc)


@torch.library.custom_op("gan_fast::triton_gradient_norm_penalty_backward", mutates_args=())
def _penalty_backward_op(grads: torch.Tensor, sq: torch.Tensor, grad_out: torch.Tensor, center: float,
                         one_sided: bool, reduction: str) -> torch.Tensor:
    from ..kernels import gradient_norm_penalty as K  # noqa: PLC0415

    return K.gnp_backward(grads, sq, grad_out, center, one_sided, reduction)


@_penalty_backward_op.register_fake
def _(grads, sq, grad_out, center, one_sided, reduction):
    return torch.empty_like(grads)


def _per_sample_weight(grad_out: torch.Tensor, n: int, reduction: str) -> torch.Tensor:
    """w_i, the gradient reaching each sample's penalty, as an [N] tensor."""
    if reduction == "none":
        return grad_out
    w = grad_out / n if reduction == "mean" else grad_out
    return w.expand(n)


def _bcast(per_sample: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return per_sample.reshape((-1,) + (1,) * (like.ndim - 1))


class _PenaltyBackward(torch.autograd.Function):
    @staticmethod
    def forward(grads, sq, grad_out, p: GradientNormPenaltyParams):
        return _penalty_backward_op(grads, sq, grad_out, p.center, p.one_sided, p.reduction)

    @staticmethod
    def setup_context(ctx, inputs, output):
        grads, sq, grad_out, p = inputs
        ctx.save_for_backward(grads, sq, grad_out)
        ctx.p = p

    @staticmethod
    def backward(ctx, v):
        grads, sq, grad_out = ctx.saved_tensors
        c, one_sided, reduction = ctx.p
        n_samples = grads.shape[0]
        acc = _acc(grads.dtype)
        g, vv = grads.to(acc), v.to(acc)
        w = _per_sample_weight(grad_out.to(acc), n_samples, reduction)
        zero_centred = c == 0 and not one_sided
        need_g, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[2]
        gv = None
        if (need_g and not zero_centred) or need_w:
            gv = (g * vv).reshape(n_samples, -1).sum(dim=1)  # per-sample <g_i, V_i>
        if zero_centred:
            a = 2 * w
            q = 2 * gv if need_w else None
        else:
            sq_acc = sq.to(acc)
            nonzero = sq_acc > 0
            nrm = torch.where(nonzero, sq_acc, 1).sqrt()
            inv = torch.where(nonzero, 1 / nrm, 0)
            nrm = torch.where(nonzero, nrm, 0)
            gap = nrm - c
            mask = (gap >= 0).to(acc) if one_sided else torch.ones_like(gap)
            a = 2 * w * mask * gap * inv
            q = 2 * mask * gap * inv * gv if need_w else None
        d_grads = d_go = None
        if need_g:
            d = _bcast(a, g) * vv
            if not zero_centred:
                d = d + _bcast(2 * w * mask * c * inv ** 3 * gv, g) * g
            d_grads = d.to(grads.dtype)
        if need_w:
            if reduction == "none":
                d_go = q
            else:
                d_go = q.sum() / n_samples if reduction == "mean" else q.sum()
            d_go = d_go.to(grad_out.dtype)
        return d_grads, None, d_go, None


class _Penalty(torch.autograd.Function):
    @staticmethod
    def forward(grads, p: GradientNormPenaltyParams):
        return _penalty_op(grads, p.center, p.one_sided, p.reduction)

    @staticmethod
    def setup_context(ctx, inputs, output):
        grads, p = inputs
        _, sq = output
        ctx.mark_non_differentiable(sq)
        ctx.save_for_backward(grads, sq)
        ctx.p = p

    @staticmethod
    def backward(ctx, grad_out, _grad_sq):
        grads, sq = ctx.saved_tensors
        return _PenaltyBackward.apply(grads, sq, grad_out, ctx.p), None


cache_signatures(_Penalty, _PenaltyBackward)


def run(impl: str, p: GradientNormPenaltyParams, grads: torch.Tensor) -> torch.Tensor:
    """``gradient_norm_penalty`` on backend ``impl`` ('ref' or 'triton'); ``p`` from
    ``gan_fast.params.gradient_norm_penalty``. The triton backend takes a non-empty grads."""
    if impl == "ref":
        return reference.gradient_norm_penalty(grads, p.center, p.one_sided, p.reduction)
    if impl != "triton":
        raise ValueError(f"gradient_norm_penalty: no {impl!r} backend")
    if not (grads.requires_grad and torch.is_grad_enabled()):  # nothing to differentiate: no Function.apply
        return _penalty_op(grads, p.center, p.one_sided, p.reduction)[0]
    return _Penalty.apply(grads, p)[0]

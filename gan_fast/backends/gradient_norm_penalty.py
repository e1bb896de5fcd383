"""Autograd glue and torch.library registration for the fused gradient-norm penalty (Triton backend).

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
"""

from __future__ import annotations

from typing import Tuple

import torch

from ..kernels import gradient_norm_penalty as K

__all__ = ["gradient_norm_penalty"]

_RED = ("mean", "sum", "none")


def _acc(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


@torch.library.custom_op("gan_fast::triton_gradient_norm_penalty", mutates_args=())
def _penalty_op(grads: torch.Tensor, center: float, one_sided: bool, reduction: str) -> Tuple[torch.Tensor, torch.Tensor]:
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
    def forward(grads, sq, grad_out, center, one_sided, reduction):
        return _penalty_backward_op(grads, sq, grad_out, center, one_sided, reduction)

    @staticmethod
    def setup_context(ctx, inputs, output):
        grads, sq, grad_out, center, one_sided, reduction = inputs
        ctx.save_for_backward(grads, sq, grad_out)
        ctx.center, ctx.one_sided, ctx.reduction = center, one_sided, reduction

    @staticmethod
    def backward(ctx, v):
        grads, sq, grad_out = ctx.saved_tensors
        c, one_sided, reduction = ctx.center, ctx.one_sided, ctx.reduction
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
        return d_grads, None, d_go, None, None, None


class _Penalty(torch.autograd.Function):
    @staticmethod
    def forward(grads, center, one_sided, reduction):
        return _penalty_op(grads, center, one_sided, reduction)

    @staticmethod
    def setup_context(ctx, inputs, output):
        grads, center, one_sided, reduction = inputs
        _, sq = output
        ctx.mark_non_differentiable(sq)
        ctx.save_for_backward(grads, sq)
        ctx.center, ctx.one_sided, ctx.reduction = center, one_sided, reduction

    @staticmethod
    def backward(ctx, grad_out, _grad_sq):
        grads, sq = ctx.saved_tensors
        d = _PenaltyBackward.apply(grads, sq, grad_out, ctx.center, ctx.one_sided, ctx.reduction)
        return d, None, None, None


def gradient_norm_penalty(grads: torch.Tensor, center: float, one_sided: bool, reduction: str,
                          impl: str) -> torch.Tensor:
    """The fused penalty; arguments already validated by ``gan_fast.ops.gradient_norm_penalty``."""
    if impl != "triton":
        raise NotImplementedError(f"gradient_norm_penalty has no fused {impl!r} implementation")
    out, _ = _Penalty.apply(grads, float(center), bool(one_sided), reduction)
    return out

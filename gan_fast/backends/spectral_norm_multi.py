"""Spectral normalisation of many weights in one launch per step (Triton backend).

``gan_fast.nn.spectral_norm`` layers each run ``ops.spectral_normalize`` in their
forward: for a BigGAN discriminator (~30 layers) that is ~30 launch groups per
step, a launch-bound cost. Here the power iteration, sigma and W / sigma of all
those weights run in one Triton launch per iteration (plus one for the division
of weights too large to fuse), and the backward of all W / sigma in one or two
launches.

This module works on tensors only: :func:`spectral_normalize_many` takes the
weights, their u/v vectors and dims. Which layers of a model it serves, and how
their parametrizations pick up the result, is ``gan_fast.nn.spectral_norm``'s
business (``gan_fast.nn.spectral_norm_step``); nothing here imports ``gan_fast.nn``.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch

from ..kernels import spectral_norm as K
from .spectral_normalize import _mat_in, matrix_to_weight, second_order

__all__ = ["spectral_normalize_many"]


# ------------------------------------------------------------------------------------------- torch.library ops


def _arena_views(arena: torch.Tensor, shapes: Sequence[Tuple[int, int]]):
    us, vs, ss, o = [], [], [], 0
    for h, w in shapes:
        us.append(arena[o:o + h])
        vs.append(arena[o + h:o + h + w])
        ss.append(arena[o + h + w])
        o += h + w + 1
    return us, vs, ss


@torch.library.custom_op("gan_fast::triton_spectral_normalize_multi", mutates_args=("us", "vs"))
def _multi_op(weights: List[torch.Tensor], us: List[torch.Tensor], vs: List[torch.Tensor], dims: List[int],
              n_iterations: int, eps: float, update: bool) -> List[torch.Tensor]:
    """[W_l / sigma_l for each layer] + [arena of (u, v, sigma) per layer]; u/v buffers updated in place if
    ``update``. All weights share device and dtype."""
    ys, layers, copies = [], [], []
    for w, u, v, d in zip(weights, us, vs, dims):
        y = torch.empty_like(w)
        y_mat = K.matrix_view(y, d)
        if y_mat is None:
            y_mat = torch.empty((w.shape[d], w.numel() // w.shape[d]), dtype=w.dtype, device=w.device)
            copies.append((y, y_mat, d))
        ys.append(y)
        in_place = update and u.is_contiguous() and v.is_contiguous() and u.dtype == w.dtype and v.dtype == w.dtype
        layers.append(K.SNLayer(mat=_mat_in(w, d), u=u.to(w.dtype).contiguous(), v=v.to(w.dtype).contiguous(),
                                y_mat=y_mat, u_buf=u if in_place else None, v_buf=v if in_place else None))
    plan, _ = K.power_launch(layers, n_iterations, eps, arena=True)
    for y, y_mat, d in copies:
        y.copy_(matrix_to_weight(y_mat, tuple(y.shape), d))
    if update:
        for L, u, v, pu, pv in zip(layers, us, vs, plan.u, plan.v):
            if L.u_buf is None:
                u.copy_(pu)
                v.copy_(pv)
    return ys + [plan.arena]


@_multi_op.register_fake
def _(weights, us, vs, dims, n_iterations, eps, update):
    n = sum(w.shape[d] + w.numel() // w.shape[d] + 1 for w, d in zip(weights, dims))
    return [torch.empty_like(w) for w in weights] + [weights[0].new_empty((n,), dtype=K.compute_dtype(weights[0].dtype))]


@torch.library.custom_op("gan_fast::triton_spectral_normalize_multi_backward", mutates_args=())
def _multi_backward_op(weights: List[torch.Tensor], grads: List[torch.Tensor], arena: torch.Tensor,
                       dims: List[int]) -> List[torch.Tensor]:
    shapes = [(w.shape[d], w.numel() // w.shape[d]) for w, d in zip(weights, dims)]
    us, vs, ss = _arena_views(arena, shapes)
    dws, mats, gmats, dmats, copies = [], [], [], [], []
    for w, g, d in zip(weights, grads, dims):
        dw = torch.empty_like(w)
        dm = K.matrix_view(dw, d)
        if dm is None:
            dm = torch.empty((w.shape[d], w.numel() // w.shape[d]), dtype=w.dtype, device=w.device)
            copies.append((dw, dm, d))
        dws.append(dw)
        mats.append(_mat_in(w, d))
        gmats.append(_mat_in(g.to(w.dtype), d))
        dmats.append(dm)
    K.backward_launch(mats, gmats, dmats, K.Plan(u=us, v=vs, sigma=ss))
    for dw, dm, d in copies:
        dw.copy_(matrix_to_weight(dm, tuple(dw.shape), d))
    return dws


@_multi_backward_op.register_fake
def _(weights, grads, arena, dims):
    return [torch.empty_like(w) for w in weights]


# -------------------------------------------------------------------------------------------------- autograd


class _MultiBackward(torch.autograd.Function):
    """(weights..., grads..., arena) -> dW per layer; its backward is the exact second order, in torch ops."""

    @staticmethod
    def forward(dims, n, *tensors):
        weights, grads, arena = list(tensors[:n]), list(tensors[n:2 * n]), tensors[2 * n]
        return tuple(_multi_backward_op(weights, grads, arena, list(dims)))

    @staticmethod
    def setup_context(ctx, inputs, output):
        dims, n = inputs[0], inputs[1]
        ctx.dims, ctx.n = dims, n
        ctx.save_for_backward(*inputs[2:])

    @staticmethod
    def backward(ctx, *vs):
        n, dims = ctx.n, ctx.dims
        saved = ctx.saved_tensors
        weights, grads, arena = saved[:n], saved[n:2 * n], saved[2 * n]
        shapes = [(w.shape[d], w.numel() // w.shape[d]) for w, d in zip(weights, dims)]
        us, vvs, ss = _arena_views(arena, shapes)
        d_w, d_g = [], []
        for i in range(n):
            need_w, need_g = ctx.needs_input_grad[2 + i], ctx.needs_input_grad[2 + n + i]
            if vs[i] is None or not (need_w or need_g):
                d_w.append(None)
                d_g.append(None)
                continue
            a, b = second_order(weights[i], grads[i], us[i], vvs[i], ss[i], dims[i], vs[i], need_w, need_g)
            d_w.append(a)
            d_g.append(b)
        return (None, None, *d_w, *d_g, None)


class _Multi(torch.autograd.Function):
    """weights... -> (W_l / sigma_l ..., arena); u/v buffers are updated in place as a side effect."""

    @staticmethod
    def forward(us, vs, dims, n_iterations, eps, update, *weights):
        return tuple(_multi_op(list(weights), list(us), list(vs), list(dims), n_iterations, eps, update))

    @staticmethod
    def setup_context(ctx, inputs, output):
        dims = inputs[2]
        weights = inputs[6:]
        arena = output[-1]
        ctx.mark_non_differentiable(arena)
        ctx.dims = dims
        ctx.save_for_backward(*weights, arena)

    @staticmethod
    def backward(ctx, *grads):
        saved = ctx.saved_tensors
        weights, arena = saved[:-1], saved[-1]
        n = len(weights)
        idx = [i for i in range(n) if grads[i] is not None and ctx.needs_input_grad[6 + i]]
        out: List[Optional[torch.Tensor]] = [None] * n
        if idx:
            dws = _MultiBackward.apply(tuple(ctx.dims[i] for i in idx), len(idx), *(weights[i] for i in idx),
                                       *(grads[i] for i in idx), _sub_arena(arena, weights, ctx.dims, idx))
            for i, d in zip(idx, dws):
                out[i] = d
        return (None, None, None, None, None, None, *out)


def _sub_arena(arena: torch.Tensor, weights, dims, idx: List[int]) -> torch.Tensor:
    """The (u, v, sigma) entries of layers ``idx`` as an arena of their own (the whole arena when idx is all)."""
    if len(idx) == len(weights):
        return arena
    shapes = [(w.shape[d], w.numel() // w.shape[d]) for w, d in zip(weights, dims)]
    offs, o = [], 0
    for h, w in shapes:
        offs.append((o, h + w + 1))
        o += h + w + 1
    return torch.cat([arena[offs[i][0]:offs[i][0] + offs[i][1]] for i in idx])


# ----------------------------------------------------------------------------------------------------- API


def spectral_normalize_many(weights: Sequence[torch.Tensor], us: Sequence[torch.Tensor], vs: Sequence[torch.Tensor],
                            dims: Sequence[int], n_iterations: int, eps: float, update: bool) -> List[torch.Tensor]:
    """[W_l / sigma_l] for every weight, in batched launches; differentiable w.r.t. the weights (any order).

    Args:
        weights: tensors of >= 2 dims and no empty dimension, on one device, of one dtype.
        us, vs: each weight's u [shape[dim]] and v [product of the other dims] (any dtype; read as the weight's).
        dims: each weight's output dimension (the matrix is [shape[dim], rest]).
        n_iterations: power iterations (>= 0), the same for all; eps: the normalisation epsilon.
        update: write the new u and v into ``us`` / ``vs`` in place (what a training-mode forward does).

    Per weight, the result and the u/v update are those of ``gan_fast.ops.spectral_normalize``.
    """
    for i, w in enumerate(weights):  # what the kernels cannot take (ops.spectral_normalize runs those on ref)
        if w.ndim < 2 or w.numel() == 0 or not w.is_floating_point():
            raise ValueError(f"weights[{i}] must be a real floating tensor of >= 2 dims with no empty dimension, "
                             f"got {w.dtype} {tuple(w.shape)}")
    outs = _Multi.apply(list(us), list(vs), tuple(dims), int(n_iterations), float(eps), bool(update), *weights)
    return list(outs[:-1])

"""The ``spectral_normalize_many`` backends: spectral normalisation of many weights at once; ``ref`` (one
reference ``spectral_normalize`` per weight) and ``triton`` (one launch per step for all of them).

``gan_fast.nn.spectral_norm`` layers each run ``ops.spectral_normalize`` in their forward: for a BigGAN
discriminator (~30 layers) that is ~30 launch groups per step, a launch-bound cost. Here the power iteration,
sigma and W / sigma of all those weights run in one Triton launch per iteration (plus one for the division of
weights too large to fuse), and the backward of all W / sigma in one or two launches.

This module works on tensors only (weights, their u/v vectors, dims); which layers of a model it serves, and
how their parametrizations pick up the result, is ``gan_fast.nn.spectral_norm``'s business
(``spectral_norm_step``, through ``gan_fast.ops.spectral_normalize_many``); nothing here imports ``gan_fast.nn``.

Its ``SPEC`` is an algorithm of the public op ``spectral_normalize`` (``use_backend(spectral_normalize=...)``
forces it too) with a self-test of its own (``spectral_normalize:many``): the batched glue (the arena of u, v,
sigma, the per-layer backward) is checked, not only the kernels. The weights the kernels cannot take (complex,
< 2 dims, an empty dimension, mixed devices or dtypes) are rejected by the validation
(``gan_fast.params.spectral_normalize.validate_many``), on every backend.
"""

from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch

from ..params.spectral_normalize import SpectralNormalizeManyParams, matrix_shape
from ..reference import spectral_normalize as reference
from .common import OpSpec, cache_signatures
from .spectral_normalize import compute_dtype, matrix_in, matrix_out, matrix_to_weight, second_order

__all__ = ["SPEC", "SPECS", "run"]

SPEC = OpSpec("spectral_normalize:many", "spectral_normalize", fast={"cuda": ("triton",)})
SPECS = (SPEC,)


# ------------------------------------------------------------------------------------------- torch.library ops


def _shapes(weights: Sequence[torch.Tensor], dims: Sequence[int]) -> List[Tuple[int, int]]:
    return [matrix_shape(w.shape, d) for w, d in zip(weights, dims)]


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
    from ..kernels import spectral_norm as K  # noqa: PLC0415 - triton loads on the first launch

    ys, layers, copies = [], [], []
    for w, u, v, d in zip(weights, us, vs, dims):
        y = torch.empty_like(w)
        y_mat, direct = matrix_out(y, d)
        if not direct:
            copies.append((y, y_mat, d))
        ys.append(y)
        in_place = update and u.is_contiguous() and v.is_contiguous() and u.dtype == w.dtype and v.dtype == w.dtype
        layers.append(K.SNLayer(mat=matrix_in(w, d), u=u.to(w.dtype).contiguous(), v=v.to(w.dtype).contiguous(),
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
    n = sum(h + w + 1 for h, w in _shapes(weights, dims))
    return [torch.empty_like(w) for w in weights] + [weights[0].new_empty((n,), dtype=compute_dtype(weights[0].dtype))]


@torch.library.custom_op("gan_fast::triton_spectral_normalize_multi_backward", mutates_args=())
def _multi_backward_op(weights: List[torch.Tensor], grads: List[torch.Tensor], arena: torch.Tensor,
                       dims: List[int]) -> List[torch.Tensor]:
    from ..kernels import spectral_norm as K  # noqa: PLC0415

    us, vs, ss = _arena_views(arena, _shapes(weights, dims))
    dws, mats, gmats, dmats, copies = [], [], [], [], []
    for w, g, d in zip(weights, grads, dims):
        dw = torch.empty_like(w)
        dm, direct = matrix_out(dw, d)
        if not direct:
            copies.append((dw, dm, d))
        dws.append(dw)
        mats.append(matrix_in(w, d))
        gmats.append(matrix_in(g.to(w.dtype), d))
        dmats.append(dm)
    K.backward_launch(mats, gmats, dmats, K.Plan(u=us, v=vs, sigma=ss))
    for dw, dm, d in copies:
        dw.copy_(matrix_to_weight(dm, tuple(dw.shape), d))
    return dws


@_multi_backward_op.register_fake
def _(weights, grads, arena, dims):
    return [torch.empty_like(w) for w in weights]


# -------------------------------------------------------------------------------------------------- autograd


class BackwardLaunch(NamedTuple):
    """The non-tensor arguments of the batched backward: each layer's output dimension, and the number of
    layers (the tensors arrive as weights..., grads..., arena)."""
    dims: Tuple[int, ...]
    n: int


class _MultiBackward(torch.autograd.Function):
    """(weights..., grads..., arena) -> dW per layer; its backward is the exact second order, in torch ops."""

    @staticmethod
    def forward(q: BackwardLaunch, *tensors):
        n = q.n
        weights, grads, arena = list(tensors[:n]), list(tensors[n:2 * n]), tensors[2 * n]
        return tuple(_multi_backward_op(weights, grads, arena, list(q.dims)))

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.q = inputs[0]
        ctx.save_for_backward(*inputs[1:])
        ctx.set_materialize_grads(False)  # a layer whose dW is unused gets None, as ref's per-layer graph gives

    @staticmethod
    def backward(ctx, *cotangents):
        n, dims = ctx.q.n, ctx.q.dims
        saved = ctx.saved_tensors
        weights, grads, arena = saved[:n], saved[n:2 * n], saved[2 * n]
        us, vvs, ss = _arena_views(arena, _shapes(weights, dims))
        d_w: List[Optional[torch.Tensor]] = [None] * n
        d_g: List[Optional[torch.Tensor]] = [None] * n
        for i in range(n):
            need_w, need_g = ctx.needs_input_grad[1 + i], ctx.needs_input_grad[1 + n + i]
            if cotangents[i] is None or not (need_w or need_g):
                continue
            d_w[i], d_g[i] = second_order(weights[i], grads[i], us[i], vvs[i], ss[i], dims[i], cotangents[i],
                                          need_w, need_g)
        return (None, *d_w, *d_g, None)


class _Multi(torch.autograd.Function):
    """weights... -> (W_l / sigma_l ..., arena); u/v buffers are updated in place as a side effect."""

    @staticmethod
    def forward(us, vs, p: SpectralNormalizeManyParams, *weights):
        return tuple(_multi_op(list(weights), list(us), list(vs), list(p.dims), p.n_iterations, p.eps, p.update))

    @staticmethod
    def setup_context(ctx, inputs, output):
        p, weights = inputs[2], inputs[3:]
        # The arena, and the W / sigma of weights that do not require grad (as ref's per-layer results do not)
        ctx.mark_non_differentiable(output[-1], *(y for y, w in zip(output, weights) if not w.requires_grad))
        ctx.dims = p.dims
        ctx.save_for_backward(*inputs[3:], output[-1])
        ctx.set_materialize_grads(False)  # an unused layer output: None for its weight, as ref gives

    @staticmethod
    def backward(ctx, *grads):
        saved = ctx.saved_tensors
        weights, arena = saved[:-1], saved[-1]
        n = len(weights)
        idx = [i for i in range(n) if grads[i] is not None and ctx.needs_input_grad[3 + i]]
        out: List[Optional[torch.Tensor]] = [None] * n
        if idx:
            q = BackwardLaunch(tuple(ctx.dims[i] for i in idx), len(idx))
            dws = _MultiBackward.apply(q, *(weights[i] for i in idx), *(grads[i] for i in idx),
                                       _sub_arena(arena, weights, ctx.dims, idx))
            for i, d in zip(idx, dws):
                out[i] = d
        return (None, None, None, *out)


cache_signatures(_Multi, _MultiBackward)


def _sub_arena(arena: torch.Tensor, weights, dims, idx: List[int]) -> torch.Tensor:
    """The (u, v, sigma) entries of layers ``idx`` as an arena of their own (the whole arena when idx is all)."""
    if len(idx) == len(weights):
        return arena
    offs, o = [], 0
    for h, w in _shapes(weights, dims):
        offs.append((o, h + w + 1))
        o += h + w + 1
    return torch.cat([arena[offs[i][0]:offs[i][0] + offs[i][1]] for i in idx])


# ----------------------------------------------------------------------------------------------- entry point


def run(impl: str, p: SpectralNormalizeManyParams, weights: Sequence[torch.Tensor], us: Sequence[torch.Tensor],
        vs: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """[W_l / sigma_l] for every weight on backend ``impl`` ('ref' or 'triton'), differentiable w.r.t. the weights
    (any order); with ``p.update`` the new u and v are written into ``us`` / ``vs`` in place. Arguments from
    ``gan_fast.params.spectral_normalize.validate_many`` (one device and dtype; u, v of any real dtype, read as
    the weight's). Per weight, the result and the u/v update are those of ``spectral_normalize``."""
    if impl == "ref":
        ys = []
        for w, u, v, d in zip(weights, us, vs, p.dims):
            y, u_new, v_new = reference.spectral_normalize(w, u.to(w.dtype), v.to(w.dtype), d, p.n_iterations, p.eps)
            if p.update:
                with torch.no_grad():
                    u.copy_(u_new)
                    v.copy_(v_new)
            ys.append(y)
        return ys
    if impl != "triton":
        raise ValueError(f"spectral_normalize_many: no {impl!r} backend")
    if not weights:
        return []
    if any(t.requires_grad for t in us) or any(t.requires_grad for t in vs):
        # constants, as in ref (a detached alias shares the storage the update writes)
        us, vs = [t.detach() for t in us], [t.detach() for t in vs]
    if not (torch.is_grad_enabled() and any(w.requires_grad for w in weights)):  # nothing to differentiate
        return _multi_op(list(weights), list(us), list(vs), list(p.dims), p.n_iterations, p.eps, p.update)[:-1]
    return list(_Multi.apply(list(us), list(vs), p, *weights)[:-1])

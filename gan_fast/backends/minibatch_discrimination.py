"""The ``minibatch_discrimination`` backends: ``ref`` and ``triton`` (``gan_fast.kernels.minibatch_discrimination``).

Structure (the pattern DESIGN.md checked): the kernel launches are opaque
``torch.library.custom_op``s with ``register_fake`` (``torch.compile`` traces the
forward without a graph break); the differentiation lives in
``torch.autograd.Function``s with a separate ``setup_context``, each saving only
its inputs:

* ``_MBD``: m -> o. One kernel; its backward is ``_MBDBackward``.
* ``_MBDBackward``: (m, g) -> dm. One kernel. Its backward (the second order,
  which R1 through a discriminator with this layer reaches), d<v, dm>/dm and
  d<v, dm>/dg, is one more kernel; under ``create_graph`` (a third order) it is
  served by ``ref``'s autograd instead, exact to every order.

The formulas are in ``gan_fast/kernels/minibatch_discrimination.py``. The kernels take every floating dtype
(arithmetic in float32 for float16/bfloat16, float64 kept) and any strides; empty inputs never reach them
(``gan_fast.ops.minibatch_discrimination`` runs ``ref`` for those).
"""

from typing import Tuple

import torch

from ..params.minibatch_discrimination import MinibatchDiscriminationParams
from ..reference import minibatch_discrimination as reference
from .common import OpSpec, cache_signatures

__all__ = ["SPEC", "SPECS", "run"]

SPEC = OpSpec("minibatch_discrimination", "minibatch_discrimination", fast={"cuda": ("triton",)})
SPECS = (SPEC,)


def _kernels():
    from ..kernels import minibatch_discrimination as K  # noqa: PLC0415 - triton loads on the first launch

    return K


@torch.library.custom_op("gan_fast::triton_minibatch_discrimination", mutates_args=())
def _forward_op(m: torch.Tensor) -> torch.Tensor:
    return _kernels().mbd_forward(m)


@_forward_op.register_fake
def _(m):
    return m.new_empty(m.shape[:2])


@torch.library.custom_op("gan_fast::triton_minibatch_discrimination_backward", mutates_args=())
def _backward_op(m: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    return _kernels().mbd_backward(m, g)[0]


@_backward_op.register_fake
def _(m, g):
    return m.new_empty(m.shape)


@torch.library.custom_op("gan_fast::triton_minibatch_discrimination_double_backward", mutates_args=())
def _double_backward_op(m: torch.Tensor, g: torch.Tensor, v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    dm, dg = _kernels().mbd_backward(m, g, v)
    return dm, dg


@_double_backward_op.register_fake
def _(m, g, v):
    return m.new_empty(m.shape), m.new_empty(m.shape[:2])


def _double_backward_ref(m: torch.Tensor, g: torch.Tensor, v: torch.Tensor):
    """(d<v, dm>/dm, d<v, dm>/dg) by ``ref``'s autograd, with a graph (differentiable again)."""
    with torch.enable_grad():
        m_ = m if m.requires_grad else m.detach().requires_grad_()
        g_ = g if g.requires_grad else g.detach().requires_grad_()
        dm, = torch.autograd.grad(reference.minibatch_discrimination(m_), m_, g_, create_graph=True)
        return torch.autograd.grad(dm, (m_, g_), v, create_graph=True)


class _MBDBackward(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(m, g):
        return _backward_op(m, g)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, v):
        m, g = ctx.saved_tensors
        need_m, need_g = ctx.needs_input_grad
        if not (need_m or need_g):
            return None, None
        if torch.is_grad_enabled():  # create_graph: a third order will follow
            dm, dg = _double_backward_ref(m, g, v)
        else:
            dm, dg = _double_backward_op(m, g, v)
        return (dm if need_m else None), (dg if need_g else None)


class _MBD(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(m):
        return _forward_op(m)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, g):
        (m,) = ctx.saved_tensors
        return _MBDBackward.apply(m, g)


cache_signatures(_MBD, _MBDBackward)


def run(impl: str, p: MinibatchDiscriminationParams, m: torch.Tensor) -> torch.Tensor:
    """``minibatch_discrimination`` on backend ``impl`` ('ref' or 'triton'); ``p`` from
    ``gan_fast.params.minibatch_discrimination``. The triton backend takes a non-empty m."""
    if impl == "ref":
        return reference.minibatch_discrimination(m)
    if impl != "triton":
        raise ValueError(f"minibatch_discrimination: no {impl!r} backend")
    if not (m.requires_grad and torch.is_grad_enabled()):  # nothing to differentiate: no Function.apply
        return _forward_op(m)
    return _MBD.apply(m)

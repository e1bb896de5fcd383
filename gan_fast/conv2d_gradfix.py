"""Convolutions whose weight gradient can be skipped, for R1 / path-length steps.

``with no_weight_gradients(): torch.autograd.grad(D(x).sum(), x, create_graph=True)``
computes only the input gradient of every convolution that went through
:func:`conv2d` / :func:`conv_transpose2d`, even when it is requested with
``.backward()`` or with the weights among ``inputs`` — the weights then get no
gradient (None). Built on public APIs only (``torch.autograd.Function`` and the
core ATen op ``convolution_backward`` with an output mask), so it works on
current PyTorch, where StyleGAN2-ADA's private-op trick no longer does. Double
backward is exact: the backward is made of differentiable ops.

Which weight gradients are skipped: a convolution skips its weight gradient when

1. :func:`weight_gradients_disabled` is True when its **backward** runs (the flag is read
   then, so entering :func:`no_weight_gradients` only around ``torch.autograd.grad``, after
   the forward, works, as in StyleGAN2-ADA / StyleGAN3), and
2. its weight was **leaf-derived** when its **forward** ran (:func:`is_leaf_derived`): a leaf
   tensor (a parameter), or a tensor reached from exactly one leaf through autograd nodes
   with a single differentiable input — dtype casts (``weight.to(torch.float16)``),
   multiplication by a constant (``weight * weight_gain``), views and reshapes.

A weight computed from other tensors that require grad — StyleGAN2's fused modulated
convolution, ``w = weight * styles`` (demodulated, reshaped) and one grouped convolution —
is not leaf-derived, so its gradient is always computed: it is the path from the images
to the styles and ``ws``, and NVlabs' path-length step (``fused_modconv=True`` inside
``no_weight_gradients()``, ``pl_no_weight_grad``) needs it, as it gets it from NVlabs'
own gradfix (a no-op on current PyTorch). Skipping it would leave ``ws`` unconnected.

The leaf-derived test walks ``weight.grad_fn`` through
``torch.autograd.graph.Node.next_functions``: a node with more than one distinct live
(non-None) entry is not single-input, and the walk must end at an ``AccumulateGrad``
node (a leaf). It runs in the forward pass, in O(length of the cast/view chain). Under
``torch.compile`` (and with grad disabled) the plain ``torch.nn.functional`` convolution
runs instead, which always computes weight gradients. Under ``torch.func`` transforms
each level sees only its own graph, so a weight computed from a transformed input may be
taken for leaf-derived there.

Fused kernels that honour :func:`no_weight_gradients` apply the same rule: call
:func:`is_leaf_derived` on the weight in the forward (``setup_context``) and skip the
weight gradient in the backward only when that was True and :func:`weight_gradients_disabled`
is True then.

Note: ``torch.autograd.grad(out, inputs=[x])`` already prunes weight gradients
in PyTorch's engine; the context matters for callers that differentiate with
respect to weights or call ``.backward()`` while only input gradients are wanted.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

__all__ = ["no_weight_gradients", "weight_gradients_disabled", "is_leaf_derived", "skip_weight_gradient",
           "plain_convolutions", "conv2d", "conv_transpose2d"]

# A process-wide flag, not thread-local: the autograd engine runs CUDA backward passes in its own
# device threads, which would never see a flag set on the calling thread.
_weight_gradients_disabled = False


def weight_gradients_disabled() -> bool:
    """True inside :func:`no_weight_gradients` (read it at backward time)."""
    return _weight_gradients_disabled


# Longest cast / view chain followed from a weight to its leaf; longer chains count as computed
# weights (their gradient is then kept, which is always correct, only slower).
_MAX_CHAIN = 1000


def is_leaf_derived(weight: torch.Tensor) -> bool:
    """Whether ``weight`` is a leaf, or reached from exactly one leaf through single-input autograd
    nodes (dtype casts, multiplication by a constant, views): the weights whose gradient
    :func:`no_weight_gradients` may skip. False for a weight computed from several tensors that
    require grad (``weight * styles``), whose gradient carries other tensors' gradients.

    Call it at forward time (in ``setup_context``, on the tensor the op received); see the module
    docstring for the rule. A tensor without ``grad_fn`` (a parameter, or one not requiring grad)
    is a leaf: True.
    """
    node = weight.grad_fn
    for _ in range(_MAX_CHAIN):
        if node is None:
            return True
        live = []
        for fn, _index in node.next_functions:
            if fn is not None and not any(fn is seen for seen in live):
                live.append(fn)  # the same node reached twice (w * w, two outputs of one split) is one input
        if not live:
            return node.name().endswith("AccumulateGrad")  # the leaf; anything else: no leaf found
        if len(live) > 1:
            return False
        node = live[0]
    return False


def skip_weight_gradient(weight_was_leaf_derived: bool) -> bool:
    """At backward time: skip the weight gradient of an op whose forward recorded
    ``weight_was_leaf_derived = is_leaf_derived(weight)``? True when that is True and
    :func:`weight_gradients_disabled` is True now."""
    return _weight_gradients_disabled and weight_was_leaf_derived


@contextlib.contextmanager
def no_weight_gradients(disable: bool = True):
    """Within the block, backward passes through gan_fast convolutions skip the gradient of each
    leaf-derived weight (a parameter, or a cast / view of one: :func:`is_leaf_derived`); computed
    weights (``weight * styles``) keep theirs. Read at backward time: the forward may run outside.

    The flag is process-wide (as in StyleGAN2-ADA), so that backward passes run
    by autograd's device threads see it; do not overlap it with an unrelated
    backward on another Python thread.
    """
    global _weight_gradients_disabled
    old = _weight_gradients_disabled
    _weight_gradients_disabled = old or disable
    try:
        yield
    finally:
        _weight_gradients_disabled = old


# Per thread: the choice is made in the forward pass, which runs on the caller's thread.
_plain = threading.local()


@contextlib.contextmanager
def plain_convolutions():
    """Within the block (on this thread), :func:`conv2d` and :func:`conv_transpose2d` call
    ``torch.nn.functional`` directly, so they compute weight gradients even inside
    :func:`no_weight_gradients`: what ``enabled = False`` means in the compat modules.
    Only the forward pass consults it (that is where the convolution is chosen)."""
    old = getattr(_plain, "on", False)
    _plain.on = True
    try:
        yield
    finally:
        _plain.on = old


def _pair(v: Union[int, Sequence[int]]) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


class _Convolution(torch.autograd.Function):
    """aten.convolution whose backward skips the weight gradient per :func:`skip_weight_gradient`."""

    generate_vmap_rule = True

    @staticmethod
    def forward(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
        return torch.ops.aten.convolution(input, weight, bias, stride, padding, dilation, transposed,
                                          output_padding, groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, bias, *params = inputs
        ctx.save_for_backward(input, weight)
        ctx.bias_sizes = None if bias is None else list(bias.shape)
        ctx.params = params
        ctx.weight_leaf_derived = is_leaf_derived(weight)
        ctx.set_materialize_grads(False)  # no incoming gradient gives None, as autograd gives ref's convolution

    @staticmethod
    def backward(ctx, grad_output):
        if grad_output is None:
            return (None,) * 9
        input, weight = ctx.saved_tensors
        want_w = ctx.needs_input_grad[1] and not skip_weight_gradient(ctx.weight_leaf_derived)
        want_b = ctx.needs_input_grad[2]
        gi, gw, gb = torch.ops.aten.convolution_backward(
            grad_output, input, weight, ctx.bias_sizes, *ctx.params,
            [ctx.needs_input_grad[0], want_w, want_b])
        return gi, (gw if want_w else None), (gb if want_b else None), None, None, None, None, None, None


def _use_plain() -> bool:
    # torch.compile traces the plain op (and would bake the flag in); so does no-grad use.
    return torch.compiler.is_compiling() or not torch.is_grad_enabled() or getattr(_plain, "on", False)


def _autocast(input, weight, bias):
    """Applies autocast's convolution policy (run in the autocast dtype) before the Function,
    since autocast does not look inside ``aten.convolution`` called from it."""
    device_type = input.device.type
    if not torch.is_autocast_enabled(device_type):
        return input, weight, bias
    dtype = torch.get_autocast_dtype(device_type)
    return input.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype)


def _check_ranks(input, weight) -> None:
    """The two checks PyTorch reports only as an internal error (the rest it names well itself)."""
    if not isinstance(weight, torch.Tensor) or weight.ndim != 4:
        raise ValueError(f"weight must be a 4-D tensor [out_channels, in_channels / groups, kh, kw], got "
                         f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__}")
    if not isinstance(input, torch.Tensor) or input.ndim not in (3, 4):
        raise ValueError(f"input must be a 4-D [N, C, H, W] (or 3-D [C, H, W]) tensor, got "
                         f"{tuple(input.shape) if isinstance(input, torch.Tensor) else type(input).__name__}")


def conv2d(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> torch.Tensor:
    """``F.conv2d`` (integer padding only) that honours :func:`no_weight_gradients`."""
    _check_ranks(input, weight)
    if _use_plain():
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)
    input, weight, bias = _autocast(input, weight, bias)
    return _Convolution.apply(input, weight, bias, list(_pair(stride)), list(_pair(padding)), list(_pair(dilation)),
                              False, [0, 0], groups)


def conv_transpose2d(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, stride=1,
                     padding=0, output_padding=0, groups: int = 1, dilation=1) -> torch.Tensor:
    """``F.conv_transpose2d`` that honours :func:`no_weight_gradients`."""
    _check_ranks(input, weight)
    if _use_plain():
        return F.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)
    input, weight, bias = _autocast(input, weight, bias)
    return _Convolution.apply(input, weight, bias, list(_pair(stride)), list(_pair(padding)), list(_pair(dilation)),
                              True, list(_pair(output_padding)), groups)

"""``torch_utils.ops.bias_act`` of StyleGAN2-ADA / StyleGAN3: ``bias_act`` and ``activation_funcs``."""

from __future__ import annotations

from typing import Optional

import torch

from .. import ops
from ..activations import ACTIVATIONS, Activation
from .auto import auto_impl

__all__ = ["bias_act", "activation_funcs", "EasyDict"]


class EasyDict(dict):
    """A dict whose items are also attributes: ``spec.func`` and ``spec['func']`` (as dnnlib.EasyDict)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None


def _func(act: Activation):
    """``func(x, alpha=..., **_)`` as the originals call it; only lrelu reads ``alpha`` there."""
    if act.name == "lrelu":
        def func(x, alpha=None, **_):
            return act.func(x, act.def_alpha if alpha is None else alpha)
    else:
        def func(x, **_):
            return act.func(x, act.def_alpha)
    func.__name__ = func.__qualname__ = act.name
    return func


# The originals' table: their CUDA kernel's activation numbers (cuda_idx 1..9), which value their
# gradient kernel reads (ref: '' none, 'x' the input, 'y' the output), and whether the activation
# has a non-zero second derivative (has_2nd_grad). Their elu ignores alpha (it is F.elu(x), alpha 1),
# so its def_alpha is 0 there, as for every activation but lrelu.
_ORIGINAL = {  # name: (def_alpha, cuda_idx, ref, has_2nd_grad)
    "linear": (0, 1, "", False),
    "relu": (0, 2, "y", False),
    "lrelu": (0.2, 3, "y", False),
    "tanh": (0, 4, "y", True),
    "sigmoid": (0, 5, "y", True),
    "elu": (0, 6, "y", True),
    "selu": (0, 7, "y", True),
    "softplus": (0, 8, "y", True),
    "swish": (0, 9, "x", True),
}

activation_funcs = {
    name: EasyDict(func=_func(ACTIVATIONS[name]), def_alpha=def_alpha, def_gain=ACTIVATIONS[name].def_gain,
                   cuda_idx=cuda_idx, ref=ref, has_2nd_grad=has_2nd_grad)
    for name, (def_alpha, cuda_idx, ref, has_2nd_grad) in _ORIGINAL.items()
}


def bias_act(x: torch.Tensor, b: Optional[torch.Tensor] = None, dim: int = 1, act: str = "linear",
             alpha: Optional[float] = None, gain: Optional[float] = None, clamp: Optional[float] = None,
             impl: Optional[str] = "cuda") -> torch.Tensor:
    """StyleGAN2-ADA's ``bias_act``: ``clamp(act(x + b[dim], alpha) * gain, -clamp, clamp)``.

    :func:`gan_fast.ops.bias_act` with the originals' conventions: ``impl='cuda'`` (default) is the
    automatic choice (never raises for CPU tensors), and ``alpha`` is ignored by every activation but
    lrelu (elu is ``F.elu(x)``, alpha 1, as there).
    """
    if act == "elu":
        alpha = None
    return ops.bias_act(x, b, dim, act, alpha, gain, clamp, impl=auto_impl(impl))

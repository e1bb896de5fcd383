"""Public ``bias_act``: validate, choose a backend, run it."""

from __future__ import annotations

import math
from typing import Optional

import torch

from .. import backend
from ..backends import bias_act as backends
from ..params import bias_act as params

_FULL_PRECISION = (torch.float32, torch.float64)


def bias_act(x: torch.Tensor, b: Optional[torch.Tensor] = None, dim: int = 1, act: str = "linear",
             alpha: Optional[float] = None, gain: Optional[float] = None, clamp: Optional[float] = None,
             impl: Optional[str] = None) -> torch.Tensor:
    """Adds a bias along ``dim``, applies an activation, scales by ``gain``, clamps.

    ``y = clamp(act(x + b[dim], alpha) * gain, -clamp, clamp)``

    Args:
        x: any shape, floating dtype.
        b: None or a 1-D tensor of ``x.shape[dim]`` entries (cast to ``x.dtype``).
        dim: the dimension of ``x`` that ``b`` indexes (default 1, channels).
        act: one of linear, relu, lrelu, tanh, sigmoid, elu, selu, softplus, swish.
        alpha: the activation's shape parameter (lrelu slope, default 0.2;
            elu alpha, default 1); ignored by the others.
        gain: output scale; default sqrt(2) for relu, lrelu and swish, else 1.
        clamp: None, or a bound >= 0: the output is clamped to [-clamp, clamp].
        impl: None (automatic), 'ref', 'triton', 'cpp' or 'cuda' (alias of 'cpp').

    Returns:
        A tensor of ``x``'s shape and dtype. Differentiable to second order in
        every backend.
    """
    p = params.validate(x, b, dim, act, alpha, gain, clamp)
    # The automatic choice runs ref below SPEC.min_numel float32/float64 elements; float16/bfloat16 keep the
    # kernel at any size (it computes in float32, where the chain rounds every step).
    numel = x.numel() if x.dtype in _FULL_PRECISION else math.inf
    return backends.run(backend.choose(backends.SPEC, impl, x.device, x.dtype, numel), p, x, b)

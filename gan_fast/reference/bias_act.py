"""Reference bias + activation: the specification of ``gan_fast.ops.bias_act``."""

from __future__ import annotations

from typing import Optional

import torch

from .. import activations


def bias_act(x: torch.Tensor, b: Optional[torch.Tensor], dim: int, act: str, alpha: float, gain: float,
             clamp: Optional[float]) -> torch.Tensor:
    """y = clamp(act(x + b, alpha) * gain, -clamp, clamp); arguments already validated and defaulted.

    ``b`` has ``x.shape[dim]`` entries and is added along ``dim``. Differentiable
    to every order by autograd.
    """
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + (b if b.dtype == x.dtype else b.to(x.dtype)).view(shape)
    x = activations.get(act).func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x

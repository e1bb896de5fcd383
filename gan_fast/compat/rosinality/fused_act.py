"""rosinality's ``op.fused_act``: ``fused_leaky_relu`` and ``FusedLeakyReLU`` on :func:`gan_fast.ops.bias_act`."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ... import checks, ops

__all__ = ["FusedLeakyReLU", "fused_leaky_relu"]


def fused_leaky_relu(input: torch.Tensor, bias: Optional[torch.Tensor] = None, negative_slope: float = 0.2,
                     scale: float = 2 ** 0.5) -> torch.Tensor:
    """``leaky_relu(input + bias, negative_slope) * scale``, the bias along dim 1.

    Args:
        input: [N, C, ...] (any rank >= 2: [N, C] after a linear layer, [N, C, H, W] after a conv).
        bias: None or [C] (cast to ``input``'s dtype).
        negative_slope: the slope for negative inputs, honoured on every device (the original's CPU
            path ignores it and always uses 0.2).
        scale: output gain.

    Returns:
        A tensor of ``input``'s shape and dtype, differentiable to second order (gan_fast's fused
        bias_act kernels where available, else the reference).
    """
    checks.tensor("input", input, shape_hint="[N, C, ...]")
    if input.ndim < 2:
        raise ValueError(f"input must be [N, C, ...] with at least 2 dimensions, got shape {tuple(input.shape)}")
    if bias is not None:
        checks.tensor("bias", bias, ndim=1, shape_hint=f"[{input.shape[1]}] (input.shape[1])")
        if bias.shape[0] != input.shape[1]:
            raise ValueError(f"bias must have shape [{input.shape[1]}] (input.shape[1]), got {tuple(bias.shape)}")
    negative_slope = checks.number("negative_slope", negative_slope)  # named here, not as bias_act's alpha/gain
    scale = checks.number("scale", scale)
    return ops.bias_act(input, bias, dim=1, act="lrelu", alpha=negative_slope, gain=scale)


class FusedLeakyReLU(nn.Module):
    """Bias + leaky ReLU + scale; its only state is the parameter ``bias`` ([channel], zeros), none when
    ``bias=False``, so checkpoints of the original load as they are.

    ``forward(input [N, channel, ...]) -> [N, channel, ...]``.
    """

    def __init__(self, channel: int, bias: bool = True, negative_slope: float = 0.2, scale: float = 2 ** 0.5):
        super().__init__()
        if bias:
            self.bias = nn.Parameter(torch.zeros(channel))
        else:
            self.bias = None
        self.negative_slope = negative_slope
        self.scale = scale

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(input, self.bias, self.negative_slope, self.scale)

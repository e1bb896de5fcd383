"""Minibatch standard deviation (Karras et al. 2018; StyleGAN2's discriminator epilogue)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .. import checks

__all__ = ["MinibatchStdLayer"]


class MinibatchStdLayer(nn.Module):
    """Appends ``num_channels`` feature maps holding the std of features over groups of samples.

    The batch is split into groups of ``G = min(group_size, N)`` samples (sample i
    belongs to group ``i % (N // G)``); for each group and each of ``num_channels``
    channel slices, the std over the group (eps 1e-8), averaged over the slice's
    channels and pixels, is broadcast to a constant map and concatenated.

    Args:
        group_size: samples per group (None: the whole batch).
        num_channels: how many std maps to append; must divide C.

    Shapes:
        x: [N, C, H, W] with N divisible by min(group_size, N) -> [N, C + num_channels, H, W].

    Note: under DistributedDataParallel, groups are formed within each process's batch.
    """

    def __init__(self, group_size: Optional[int] = 4, num_channels: int = 1):
        super().__init__()
        if group_size is not None:
            checks.positive_int("group_size", group_size)
        self.group_size = group_size
        self.num_channels = checks.positive_int("num_channels", num_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checks.tensor("x", x, ndim=4, shape_hint="[N, C, H, W]")
        n, c, h, w = x.shape
        f = self.num_channels
        if c % f != 0:
            raise ValueError(f"x: the channel count {c} must be divisible by num_channels={f}")
        if n == 0:  # no samples, no groups: the (empty) std maps are appended all the same
            return torch.cat([x, x.new_zeros(0, f, h, w)], dim=1)
        g = min(self.group_size, n) if self.group_size is not None else n
        if n % g != 0:
            raise ValueError(f"x: the batch size {n} must be divisible by the group size {g} (group_size)")
        y = x.reshape(g, -1, f, c // f, h, w)      # [G, M, F, c, H, W]
        y = y - y.mean(dim=0)                      # deviation from the group mean
        y = y.square().mean(dim=0)                 # [M, F, c, H, W] variance
        y = (y + 1e-8).sqrt()                      # std
        y = y.mean(dim=[2, 3, 4])                  # [M, F]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # [N, F, H, W]
        return torch.cat([x, y.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"

"""Reference penalty on per-sample gradient norms: the spec of ``gan_fast.ops.gradient_norm_penalty``."""

from __future__ import annotations

import math

import torch


def gradient_norm_penalty(grads: torch.Tensor, center: float, one_sided: bool, reduction: str) -> torch.Tensor:
    """grads: [N, ...] -> penalty per sample on n = ||grads[i]||_2, reduced.

    n^2 when center == 0 (written as a sum of squares: smooth at g = 0),
    (n - center)^2 otherwise, max(0, n - center)^2 when one_sided.
    Norms are accumulated in float32 at least. A sample whose gradient is all
    zero gets a zero gradient (the subgradient 0 of ||g|| at g = 0), not the
    NaN of d sqrt(x)/dx at 0.
    """
    g = grads.reshape(grads.shape[0], math.prod(grads.shape[1:]))  # -1 is ambiguous for an empty batch
    acc = torch.promote_types(g.dtype, torch.float32)
    sq = g.to(acc).square().sum(dim=1)
    if center == 0 and not one_sided:
        per_sample = sq
    else:
        nonzero = sq > 0
        gap = torch.where(nonzero, torch.where(nonzero, sq, 1).sqrt(), 0) - center
        if one_sided:
            gap = gap.clamp(min=0)
        per_sample = gap.square()
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample

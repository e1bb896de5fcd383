"""Reference penalty on per-sample gradient norms: the spec of ``gan_fast.ops.gradient_norm_penalty``."""

from __future__ import annotations

import torch


def gradient_norm_penalty(grads: torch.Tensor, center: float, one_sided: bool, reduction: str) -> torch.Tensor:
    """grads: [N, ...] -> penalty per sample on n = ||grads[i]||_2, reduced.

    n^2 when center == 0 (written as a sum of squares: smooth at g = 0),
    (n - center)^2 otherwise, max(0, n - center)^2 when one_sided.
    Norms are accumulated in float32 at least.
    """
    g = grads.reshape(grads.shape[0], -1)
    acc = torch.promote_types(g.dtype, torch.float32)
    sq = g.to(acc).square().sum(dim=1)
    if center == 0 and not one_sided:
        per_sample = sq
    else:
        gap = sq.sqrt() - center
        if one_sided:
            gap = gap.clamp(min=0)
        per_sample = gap.square()
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample

"""Reference pairwise part of minibatch discrimination: the spec of ``gan_fast.ops.minibatch_discrimination``."""

from __future__ import annotations

import torch


def minibatch_discrimination(m: torch.Tensor) -> torch.Tensor:
    """m: [N, B, C] -> o: [N, B], o[i, b] = sum over j != i of exp(-sum_c |m[i, b, c] - m[j, b, c]|).

    Materialises the [N, N, B, C] differences (the textbook form). The j = i
    term is masked out rather than subtracted, so an o far below 1 keeps its
    precision. The gradient of |0| is 0 (``abs``'s subgradient), so identical
    rows (mode collapse) get a finite gradient; every order of derivative is
    autograd's.
    """
    n = m.shape[0]
    dist = (m.unsqueeze(1) - m.unsqueeze(0)).abs().sum(dim=3)  # [N, N, B], the L1 distances
    self_pair = torch.eye(n, dtype=torch.bool, device=m.device).unsqueeze(2)
    return torch.where(self_pair, 0, torch.exp(-dist)).sum(dim=1)

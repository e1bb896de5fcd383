"""Reference spectral-norm power iteration: the spec of ``gan_fast.ops.power_iteration``."""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F


def power_iteration(weight_mat: torch.Tensor, u: torch.Tensor, v: torch.Tensor, n_iterations: int,
                    eps: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n_iterations`` updates u <- normalize(W v), v <- normalize(W^H u), then sigma = u^H W v.

    The update order, ``eps`` handling and the sigma formula are exactly those of
    ``torch.nn.utils.parametrizations.spectral_norm``. ``u`` and ``v`` come back as
    new detached tensors; ``sigma`` is differentiable with respect to
    ``weight_mat`` only (u and v are constants, as in PyTorch).
    """
    with torch.no_grad():
        w = weight_mat.detach()
        u = u.detach().clone(memory_format=torch.contiguous_format)
        v = v.detach().clone(memory_format=torch.contiguous_format)
        for _ in range(n_iterations):
            u = F.normalize(torch.mv(w, v), dim=0, eps=eps)
            v = F.normalize(torch.mv(w.H, u), dim=0, eps=eps)
    sigma = torch.vdot(u, torch.mv(weight_mat, v))
    return sigma, u, v

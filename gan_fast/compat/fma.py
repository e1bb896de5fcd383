"""``torch_utils.ops.fma`` of StyleGAN2-ADA / StyleGAN3: ``fma(a, b, c) = a * b + c``."""

from __future__ import annotations

import torch

__all__ = ["fma"]


def fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``a * b + c`` with broadcasting, as one ``torch.addcmul``; gradients (of every order) are reduced to
    each argument's shape by autograd, as the original's hand-written backward reduces them."""
    return torch.addcmul(c, a, b)

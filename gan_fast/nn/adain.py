"""Adaptive instance normalisation (StyleGAN1): ``y_s * (x - mu) / sigma + y_b``."""

from __future__ import annotations

import torch
from torch import nn

from .. import checks
from ._util import check_input
from .equalized import FullyConnectedLayer

__all__ = ["AdaIN", "adaptive_instance_norm"]


def adaptive_instance_norm(x: torch.Tensor, y_s: torch.Tensor, y_b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``y_s * (x - mean_hw(x)) / sqrt(var_hw(x) + eps) + y_b`` per sample and channel.

    Shapes: x [N, C, H, W]; y_s, y_b [N, C] -> [N, C, H, W]. Statistics in at least float32.
    ``eps`` is a finite number > 0.
    """
    checks.tensor("x", x, ndim=4, shape_hint="[N, C, H, W]")
    for name, y in (("y_s", y_s), ("y_b", y_b)):
        checks.tensor(name, y, ndim=2, shape_hint="[N, C]")
        if tuple(y.shape) != tuple(x.shape[:2]):
            raise ValueError(f"{name} must have shape {list(x.shape[:2])} ([N, C] of x), got {tuple(y.shape)}")
    eps = checks.positive_number("eps", eps)
    dtype = x.dtype
    xf = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    xf = xf - xf.mean(dim=[2, 3], keepdim=True)
    xf = xf * (xf.square().mean(dim=[2, 3], keepdim=True) + eps).rsqrt()
    return (xf * y_s.to(xf.dtype)[:, :, None, None] + y_b.to(xf.dtype)[:, :, None, None]).to(dtype)


class AdaIN(nn.Module):
    """Instance norm followed by a style-dependent scale and shift, as in StyleGAN1.

    ``[y_s - 1, y_b] = affine(w)`` (an equalized-lr linear layer, zero bias, so y_s
    starts near 1), then :func:`adaptive_instance_norm`.

    Args:
        num_features: channels C of x; w_dim: style size; eps: variance epsilon (a finite number > 0).

    Shapes:
        ``forward(x [N, C, H, W], w [N, w_dim])`` -> [N, C, H, W].
    """

    def __init__(self, num_features: int, w_dim: int, eps: float = 1e-8):
        super().__init__()
        self.num_features = checks.positive_int("num_features", num_features)
        self.w_dim = checks.positive_int("w_dim", w_dim)
        self.eps = checks.positive_number("eps", eps)
        self.affine = FullyConnectedLayer(w_dim, 2 * num_features)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        check_input("x", x, 4, self.num_features, "[N, num_features, H, W]")
        checks.tensor("w", w, ndim=2, shape_hint=f"[N, {self.w_dim}] ([N, w_dim])")
        if tuple(w.shape) != (x.shape[0], self.w_dim):
            raise ValueError(f"w must have shape [{x.shape[0]}, {self.w_dim}] ([N, w_dim]), got {tuple(w.shape)}")
        y = self.affine(w)
        y_s, y_b = y[:, :self.num_features] + 1, y[:, self.num_features:]
        return adaptive_instance_norm(x, y_s, y_b, self.eps)

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, w_dim={self.w_dim}"

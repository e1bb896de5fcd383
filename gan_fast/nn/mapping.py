"""StyleGAN2's mapping network z (+ c) -> w, with the running average of w and truncation."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .. import checks
from ._util import check_activation
from .equalized import FullyConnectedLayer

__all__ = ["MappingNetwork", "normalize_2nd_moment"]


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """``x / sqrt(mean(x^2, dim) + eps)``: projects latents onto the sphere of radius sqrt(dim size).

    ``eps`` is a finite number > 0."""
    checks.positive_number("eps", eps)
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    """An MLP of equalized-lr layers mapping a latent z and a condition c to w.

    z is normalised to its second moment; c (if ``c_dim > 0``) is embedded by a
    linear layer, normalised and concatenated. ``num_layers`` lrelu layers with
    ``lr_multiplier`` follow. In training, ``update_emas=True`` moves the
    buffer ``w_avg`` towards the batch mean with decay ``w_avg_beta``; truncation
    lerps from ``w_avg``.

    Args:
        z_dim: latent size (0: no latent, e.g. a discriminator's c-mapping).
        c_dim: condition size (0: unconditional).
        w_dim: output size.
        num_ws: how many copies of w to return ([N, num_ws, w_dim]); None returns [N, w_dim].
        num_layers: depth of the MLP.
        embed_features, layer_features: hidden sizes (default w_dim).
        activation: hidden activation.
        lr_multiplier: learning-rate multiplier of every layer (a finite number > 0).
        w_avg_beta: decay of the w average, in [0, 1); None disables tracking (and truncation).

    Shapes:
        ``forward(z [N, z_dim] or None, c [N, c_dim] or None, truncation_psi=1, truncation_cutoff=None,
        update_emas=False)`` -> [N, num_ws, w_dim] (or [N, w_dim] when num_ws is None).
        ``truncation_cutoff=k`` truncates only the first k of the num_ws copies.
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: Optional[int], num_layers: int = 8,
                 embed_features: Optional[int] = None, layer_features: Optional[int] = None,
                 activation: str = "lrelu", lr_multiplier: float = 0.01, w_avg_beta: Optional[float] = 0.998):
        super().__init__()
        z_dim = checks.positive_int("z_dim", z_dim, minimum=0)
        c_dim = checks.positive_int("c_dim", c_dim, minimum=0)
        w_dim = checks.positive_int("w_dim", w_dim)
        num_layers = checks.positive_int("num_layers", num_layers)
        if num_ws is not None:
            num_ws = checks.positive_int("num_ws", num_ws)
        if z_dim == 0 and c_dim == 0:
            raise ValueError("MappingNetwork needs z_dim > 0 or c_dim > 0")
        if embed_features is not None:
            embed_features = checks.positive_int("embed_features", embed_features)
        if layer_features is not None:
            layer_features = checks.positive_int("layer_features", layer_features)
        check_activation("activation", activation)
        checks.positive_number("lr_multiplier", lr_multiplier)
        if w_avg_beta is not None:
            w_avg_beta = checks.number("w_avg_beta", w_avg_beta, 0, 1, strict_max=True)
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                        lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: Optional[torch.Tensor], c: Optional[torch.Tensor] = None, truncation_psi: float = 1.0,
                truncation_cutoff: Optional[int] = None, update_emas: bool = False) -> torch.Tensor:
        if truncation_psi != 1:  # the arguments first, before any layer runs
            truncation_psi = checks.number("truncation_psi", truncation_psi)
            if self.num_ws is None or self.w_avg_beta is None:
                raise ValueError("truncation_psi != 1 needs num_ws and w_avg_beta (a tracked w_avg)")
            if truncation_cutoff is not None:
                truncation_cutoff = checks.positive_int("truncation_cutoff", truncation_cutoff, minimum=0)
        if self.z_dim > 0:
            checks.tensor("z", z, ndim=2, shape_hint=f"[N, {self.z_dim}] ([N, z_dim])")
            if z.shape[1] != self.z_dim:
                raise ValueError(f"z must have shape [N, {self.z_dim}] ([N, z_dim]), got {tuple(z.shape)}")
        if self.c_dim > 0:
            checks.tensor("c", c, ndim=2, shape_hint=f"[N, {self.c_dim}] ([N, c_dim])")
            if c.shape[1] != self.c_dim or (self.z_dim > 0 and c.shape[0] != z.shape[0]):
                raise ValueError(f"c must have shape [N, {self.c_dim}] ([N, c_dim], N = len(z)), got {tuple(c.shape)}")
        batch = z.shape[0] if self.z_dim > 0 else c.shape[0]
        if update_emas and self.num_ws is not None and self.w_avg_beta is not None and batch == 0:
            raise ValueError("update_emas=True needs at least one sample: the batch (z / c) is empty, and its "
                             "mean would turn w_avg into NaN")
        parts = []
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(z))
        if self.c_dim > 0:
            parts.append(normalize_2nd_moment(self.embed(c.to(self.embed.weight.dtype))))
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if update_emas and self.num_ws is not None and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().float().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        if truncation_psi != 1:
            w_avg = self.w_avg.to(x.dtype)
            if truncation_cutoff is None:
                x = w_avg.lerp(x, truncation_psi)
            else:
                keep = torch.arange(self.num_ws, device=x.device).reshape(1, -1, 1) < truncation_cutoff
                x = torch.where(keep, w_avg.lerp(x, truncation_psi), x)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"

"""StyleGAN2 path length regularisation."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .. import checks
from ..conv2d_gradfix import no_weight_gradients

__all__ = ["PathLengthPenalty"]

WS_REDUCTIONS = ("mean", "sum")


class PathLengthPenalty(nn.Module):
    """Path length penalty of StyleGAN2 (Karras et al. 2020), per sample.

    For generated images ``x = G(w)`` and ``y ~ N(0, I) / sqrt(H * W)`` (one
    draw per call, the shape of the images), the path length of sample i is
    ``l_i = |J_w^T y|_i = || d sum(x * y) / d w[i] ||``, and the penalty is
    ``(l_i - a)^2`` where ``a`` is an exponential moving average of the mean
    path length, kept in the ``pl_mean`` buffer.

    Exactly as StyleGAN2(-ADA): in training mode, ``a = lerp(pl_mean,
    mean(l), decay)`` (the new buffer value) is used as the target and stored
    detached in ``pl_mean`` (in place, so the buffer object never changes). The
    target keeps its ``decay * mean(l)`` dependence on the generator in the
    penalty's graph, as in StyleGAN2. In eval mode the buffer is neither read
    into a new value nor updated: ``a = pl_mean``.

    ``ws`` may be ``[N, w_dim]`` or StyleGAN2's broadcast ``[N, num_ws, w_dim]``.
    For the latter, ``ws_reduction='mean'`` (default, StyleGAN2's exact formula)
    gives ``l_i = sqrt(mean over num_ws of sum over w_dim of grad^2)``, the RMS
    over layers of the per-layer lengths; ``ws_reduction='sum'`` gives the plain
    norm over all of the sample's ws entries (``sqrt(num_ws)`` times larger).

    The gradient is computed inside :func:`gan_fast.conv2d_gradfix.no_weight_gradients`
    (as StyleGAN2 does; ``no_weight_gradients=False`` turns that off) and the penalty
    needs a double backward (``penalty.mean().backward()``). The caller
    multiplies by ``pl_weight`` (StyleGAN2: 2) and the lazy interval.

    Generators that fold the styles into convolution weights (StyleGAN2's
    ``fused_modconv=True``, rosinality's ``ModulatedConv2d``: per-sample weights
    ``w * s`` and one grouped convolution) work as they are: ``no_weight_gradients``
    skips only the gradients of weights that are parameters (or casts / views of one,
    :func:`gan_fast.conv2d_gradfix.is_leaf_derived`), and keeps those of weights computed
    from the styles, which carry the gradient to ``ws``. When no gradient at all reaches
    ``ws`` this raises and says why.

    State: ``pl_mean`` is a persistent buffer (in ``state_dict``, moved by
    ``.to()``). Under ``DistributedDataParallel``, when this module is inside
    the DDP-wrapped module, DDP broadcasts buffers from rank 0 before each
    forward (``broadcast_buffers=True``, the default), so every rank uses rank
    0's ``pl_mean``; a standalone instance keeps one EMA per rank (as
    StyleGAN2-ADA does).

    Args:
        decay: EMA rate in (0, 1]: ``pl_mean <- pl_mean + decay * (mean(l) - pl_mean)``.
        ws_reduction: 'mean' (StyleGAN2) or 'sum', for 3-D ``ws``.
        no_weight_gradients: compute the path length gradient inside
            ``no_weight_gradients()`` (default True: skips the weight gradients of the
            convolutions whose weights are parameters, which it does not need).
    """

    pl_mean: torch.Tensor

    def __init__(self, decay: float = 0.01, ws_reduction: str = "mean", *, no_weight_gradients: bool = True) -> None:
        super().__init__()
        decay = checks.number("decay", decay, 0, 1, strict_min=True)
        checks.choice("ws_reduction", ws_reduction, WS_REDUCTIONS)
        self.decay = float(decay)
        self.ws_reduction = ws_reduction
        self.no_weight_gradients = checks.boolean("no_weight_gradients", no_weight_gradients)
        self.register_buffer("pl_mean", torch.zeros([]))

    def extra_repr(self) -> str:
        return (f"decay={self.decay}, ws_reduction={self.ws_reduction!r}, "
                f"no_weight_gradients={self.no_weight_gradients}")

    def path_lengths(self, images: torch.Tensor, ws: torch.Tensor, noise: Optional[torch.Tensor] = None
                     ) -> torch.Tensor:
        """Per-sample path lengths ``l`` [N] (with a graph for double backward); no state change."""
        checks.tensor("images", images, shape_hint="[N, C, H, W] (or [N, C, *spatial])")
        checks.tensor("ws", ws, ndim=(2, 3), shape_hint="[N, w_dim] or [N, num_ws, w_dim]")
        if images.ndim < 3:
            raise ValueError(f"images must be [N, C, H, W] (or [N, C, *spatial]), got shape {tuple(images.shape)}")
        if ws.shape[0] != images.shape[0] or ws.shape[0] == 0:
            raise ValueError(f"ws must be [N, ...] with N = images.shape[0] = {images.shape[0]} >= 1, "
                             f"got shape {tuple(ws.shape)}")
        checks.same_device(images=images, ws=ws)
        if not ws.requires_grad:
            raise ValueError("ws must require grad: it must be the tensor the generator synthesised images from")
        if not images.requires_grad:
            raise ValueError("images has no autograd graph, so it is not connected to ws: synthesise it from ws "
                             "with grad enabled")
        if noise is None:
            noise = torch.randn_like(images)
        else:
            checks.tensor("noise", noise, shape_hint=f"{list(images.shape)} like images")
            if noise.shape != images.shape:
                raise ValueError(f"noise must have the shape of images {tuple(images.shape)}, got {tuple(noise.shape)}")
        y = noise / math.sqrt(images[0, 0].numel())
        out = (images * y).sum()
        with no_weight_gradients(self.no_weight_gradients):
            (grads,) = torch.autograd.grad(outputs=out, inputs=ws, create_graph=True, allow_unused=True)
        if grads is None:
            self._explain_unconnected(out, ws)
        sq = grads.to(torch.promote_types(grads.dtype, torch.float32)).square()
        if ws.ndim == 2:
            return sq.sum(dim=1).sqrt()
        sq = sq.sum(dim=2)
        return (sq.mean(dim=1) if self.ws_reduction == "mean" else sq.sum(dim=1)).sqrt()

    def _explain_unconnected(self, out: torch.Tensor, ws: torch.Tensor) -> None:
        """Raises the error for no gradient reaching ws, saying why (runs only on that error path)."""
        if self.no_weight_gradients:
            (plain,) = torch.autograd.grad(outputs=out, inputs=ws, retain_graph=True, allow_unused=True)
            if plain is not None:
                raise ValueError(
                    "no gradient reaches ws because weight gradients are off: images depends on ws only through "
                    "the weight of a convolution (or fused kernel) that skips its weight gradient inside "
                    "gan_fast.conv2d_gradfix.no_weight_gradients(), where PathLengthPenalty differentiates: ws "
                    "itself, or a cast or view of it, is used as a weight (gan_fast skips the gradients of "
                    "leaf-derived weights only, see gan_fast.conv2d_gradfix.is_leaf_derived). Use "
                    "PathLengthPenalty(..., no_weight_gradients=False)")
        raise ValueError("images is not connected to ws: it was not synthesised from this tensor")

    def forward(self, images: torch.Tensor, ws: torch.Tensor, noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per-sample path length penalty.

        Args:
            images: generator output computed from ``ws``, [N, C, H, W] (or [N, C, *spatial]).
            ws: the latents the images were synthesised from, [N, w_dim] or
                [N, num_ws, w_dim], with ``requires_grad=True``.
            noise: optional standard normal sample shaped like ``images`` (the
                module divides it by sqrt(H * W)); drawn with ``randn_like`` if None.

        Returns:
            [N] float32-or-wider: ``(l_i - a)^2``. Updates ``pl_mean`` in training mode.
        """
        lengths = self.path_lengths(images, ws, noise)
        if self.training:
            target = self.pl_mean.to(lengths.dtype).lerp(lengths.mean(), self.decay)
            with torch.no_grad():
                self.pl_mean.copy_(target.detach())
        else:
            target = self.pl_mean.to(lengths.dtype)
        return (lengths - target).square()

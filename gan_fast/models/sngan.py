"""An SNGAN / BigGAN-style residual discriminator with spectral normalisation.

Every convolution and linear layer is wrapped with :func:`gan_fast.nn.spectral_norm`
(one fused power-iteration + division per layer on GPU); conv biases are added
together with the following ReLU by one :func:`gan_fast.ops.bias_act`.
Conditional models use the projection discriminator (Miyato & Koyama 2018)
with a spectrally normalised class embedding (one-hot or soft ``c``).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import checks, ops
from ..nn import spectral_norm
from ..nn._util import check_activation

__all__ = ["SNDiscriminatorBlock", "SNDiscriminator"]


def _sn_conv(in_ch: int, out_ch: int, k: int, n_power_iterations: int) -> nn.Conv2d:
    return spectral_norm(nn.Conv2d(in_ch, out_ch, k, padding=k // 2, bias=False),
                         n_power_iterations=n_power_iterations)


class SNDiscriminatorBlock(nn.Module):
    """Residual block: [act] -> conv3x3 -> act -> conv3x3 -> [avgpool], plus a shortcut.

    The first block (``preactivation=False``, SNGAN's "optimized" block) skips the
    leading activation and pools before its 1x1 shortcut; the others pool after it.
    The shortcut is a 1x1 SN conv when channels change or the block downsamples.

    Shapes:
        x: [N, in_channels, H, W] -> [N, out_channels, H / 2, W / 2] (down) or [N, out_channels, H, W].
    """

    def __init__(self, in_channels: int, out_channels: int, down: bool = True, preactivation: bool = True,
                 activation: str = "relu", n_power_iterations: int = 1):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.down, self.preactivation = bool(down), bool(preactivation)
        self.activation = check_activation("activation", activation)
        self.conv1 = _sn_conv(in_channels, out_channels, 3, n_power_iterations)
        self.conv2 = _sn_conv(out_channels, out_channels, 3, n_power_iterations)
        self.bias1 = nn.Parameter(torch.zeros([out_channels]))
        self.bias2 = nn.Parameter(torch.zeros([out_channels]))
        self.learnable_sc = in_channels != out_channels or down
        if self.learnable_sc:
            self.conv_sc = _sn_conv(in_channels, out_channels, 1, n_power_iterations)
            self.bias_sc = nn.Parameter(torch.zeros([out_channels]))

    def _act(self, x, b=None):
        return ops.bias_act(x, b, act=self.activation, gain=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checks.tensor("x", x, ndim=4, shape_hint=f"[N, {self.in_channels}, H, W]")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"x must have {self.in_channels} channels (in_channels), got shape {tuple(x.shape)}")
        h = self._act(x) if self.preactivation else x
        h = self._act(self.conv1(h), self.bias1.to(x.dtype))
        h = ops.bias_act(self.conv2(h), self.bias2.to(x.dtype))
        if self.down:
            h = F.avg_pool2d(h, 2)
        sc = x
        if self.learnable_sc:
            if self.preactivation:
                sc = ops.bias_act(self.conv_sc(sc), self.bias_sc.to(x.dtype))
                if self.down:
                    sc = F.avg_pool2d(sc, 2)
            else:
                if self.down:
                    sc = F.avg_pool2d(sc, 2)
                sc = ops.bias_act(self.conv_sc(sc), self.bias_sc.to(x.dtype))
        return h + sc


class SNDiscriminator(nn.Module):
    """SNGAN (ResNet, Miyato et al. 2018) / BigGAN-style discriminator.

    Blocks with ``channels * channel_multipliers[i]`` output channels; every block
    halves the resolution until it reaches ``min_resolution`` (later blocks keep it).
    Then activation, global sum pooling, an SN linear output, and with ``c_dim > 0``
    the projection term ``sum(embed(c) * h)``.

    Args:
        img_resolution, img_channels: input size.
        channels: base width (SNGAN CIFAR: 128; BigGAN: 64 * multipliers).
        channel_multipliers: one per block; default (1, 1, 1, 1) (SNGAN CIFAR-10).
        c_dim: condition size (one-hot or soft labels), 0 for unconditional.
        min_resolution: blocks stop downsampling at this resolution (SNGAN: 8).
        activation: 'relu' (SNGAN, BigGAN) or any bias_act activation (applied with gain 1).
        n_power_iterations: power iterations per forward for every spectral norm.

    Shapes:
        ``forward(img [N, img_channels, R, R], c [N, c_dim] or None)`` -> logits [N, 1].
    """

    def __init__(self, img_resolution: int = 32, img_channels: int = 3, channels: int = 128,
                 channel_multipliers: Sequence[int] = (1, 1, 1, 1), c_dim: int = 0, min_resolution: int = 8,
                 activation: str = "relu", n_power_iterations: int = 1):
        super().__init__()
        img_resolution = checks.positive_int("img_resolution", img_resolution)
        img_channels = checks.positive_int("img_channels", img_channels)
        channels = checks.positive_int("channels", channels)
        c_dim = checks.positive_int("c_dim", c_dim, minimum=0)
        min_resolution = checks.positive_int("min_resolution", min_resolution)
        check_activation("activation", activation)
        if not isinstance(channel_multipliers, (list, tuple)):
            raise TypeError(f"channel_multipliers must be a list or tuple of ints (one per block), "
                            f"got {type(channel_multipliers).__name__}")
        if len(channel_multipliers) == 0:
            raise ValueError("channel_multipliers must name at least one block")
        self.img_resolution, self.img_channels, self.c_dim = img_resolution, img_channels, c_dim
        self.activation = activation
        blocks = []
        in_ch, res = img_channels, img_resolution
        for i, mult in enumerate(channel_multipliers):
            out_ch = channels * checks.positive_int(f"channel_multipliers[{i}]", mult)
            down = res > min_resolution
            blocks.append(SNDiscriminatorBlock(in_ch, out_ch, down=down, preactivation=(i > 0),
                                               activation=activation, n_power_iterations=n_power_iterations))
            in_ch = out_ch
            res = res // 2 if down else res
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = in_ch
        self.linear = spectral_norm(nn.Linear(in_ch, 1), n_power_iterations=n_power_iterations)
        if c_dim > 0:
            self.embed = spectral_norm(nn.Linear(c_dim, in_ch, bias=False), n_power_iterations=n_power_iterations)

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        r = self.img_resolution
        checks.tensor("img", img, ndim=4, shape_hint=f"[N, {self.img_channels}, {r}, {r}]")
        if tuple(img.shape[1:]) != (self.img_channels, r, r):
            raise ValueError(f"img must have shape [N, {self.img_channels}, {r}, {r}], got {tuple(img.shape)}")
        h = img
        for block in self.blocks:
            h = block(h)
        h = ops.bias_act(h, act=self.activation, gain=1).sum(dim=[2, 3])
        out = self.linear(h)
        if self.c_dim > 0:
            checks.tensor("c", c, ndim=2, shape_hint=f"[N, {self.c_dim}]")
            if tuple(c.shape) != (img.shape[0], self.c_dim):
                raise ValueError(f"c must have shape [{img.shape[0]}, {self.c_dim}] ([N, c_dim]), "
                                 f"got {tuple(c.shape)}")
            out = out + (self.embed(c.to(h.dtype)) * h).sum(dim=1, keepdim=True)
        return out

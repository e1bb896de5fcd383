"""A StyleGAN2 generator (mapping + skip-architecture synthesis) and discriminator
(resnet architecture with a minibatch-std epilogue), built only from :mod:`gan_fast.nn`.

Channel counts follow StyleGAN2 config F: ``min(channel_base // res, channel_max)``
with ``channel_base=32768, channel_max=512``; pass small values (e.g.
``channel_base=256, channel_max=16``) for tests and CPU experiments. Module and
parameter names follow StyleGAN2-ADA's (``mapping.fc0``, ``synthesis.b4.conv1``,
``b32.fromrgb``, ``b4.out``, ...). Mixed-precision blocks (``num_fp16_res``) are not
built in; use ``torch.autocast`` instead.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import torch
from torch import nn

from .. import checks, ops
from ..nn import (Conv2dLayer, FullyConnectedLayer, MappingNetwork, MinibatchStdLayer, SynthesisLayer, ToRGB)
from ..nn._util import check_activation
from ..nn.synthesis import NOISE_MODES

__all__ = ["channel_table", "SynthesisBlock", "SynthesisNetwork", "Generator", "DiscriminatorBlock",
           "DiscriminatorEpilogue", "Discriminator"]


def _log2_resolution(name: str, resolution: int) -> int:
    checks.positive_int(name, resolution)
    log2 = int(round(math.log2(resolution)))
    if resolution < 4 or 2 ** log2 != resolution:
        raise ValueError(f"{name} must be a power of two >= 4, got {resolution}")
    return log2


def channel_table(resolutions: Sequence[int], channel_base: int = 32768, channel_max: int = 512) -> Dict[int, int]:
    """{res: min(channel_base // res, channel_max)}, at least 1 (StyleGAN2 config F with the defaults).

    channel_base and channel_max are ints >= 1."""
    channel_base = checks.positive_int("channel_base", channel_base)
    channel_max = checks.positive_int("channel_max", channel_max)
    return {res: max(min(channel_base // res, channel_max), 1) for res in resolutions}


class SynthesisBlock(nn.Module):
    """One resolution of the skip-architecture synthesis network.

    ``in_channels == 0``: the 4x4 block, starting from a learned constant ``const``;
    otherwise ``conv0`` upsamples x2. Then ``conv1`` and a ``torgb`` whose image is
    added to the upsampled image of the previous block.

    Shapes:
        ``forward(x [N, in_channels, R/2, R/2] or None, img [N, img_channels, R/2, R/2] or None,
        ws [N, num_conv + num_torgb, w_dim], noise_mode='random', fused_modconv=None)``
        -> (x [N, out_channels, R, R], img [N, img_channels, R, R]).
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", resample_filter: Sequence[float] = (1, 3, 3, 1),
                 conv_clamp: Optional[float] = None, channels_last: bool = False, **layer_kwargs):
        super().__init__()
        if architecture != "skip":
            raise ValueError(f"architecture must be 'skip' (the StyleGAN2 generator), got {architecture!r}")
        self.in_channels, self.out_channels, self.w_dim = in_channels, out_channels, w_dim
        self.resolution, self.img_channels, self.is_last = resolution, img_channels, is_last
        self.register_buffer("resample_filter", ops.setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp,
                                        channels_last=channels_last, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp,
                                    channels_last=channels_last, **layer_kwargs)
        self.num_conv += 1
        self.torgb = ToRGB(out_channels, img_channels, w_dim, conv_clamp=conv_clamp, channels_last=channels_last)
        self.num_torgb += 1

    def forward(self, x: Optional[torch.Tensor], img: Optional[torch.Tensor], ws: torch.Tensor,
                noise_mode: str = "random", fused_modconv: Optional[bool] = None):
        n_ws = self.num_conv + self.num_torgb
        checks.tensor("ws", ws, ndim=3, shape_hint=f"[N, {n_ws}, {self.w_dim}]")
        if tuple(ws.shape[1:]) != (n_ws, self.w_dim):
            raise ValueError(f"ws must have shape [N, {n_ws}, {self.w_dim}] ([N, num_conv + num_torgb, w_dim]), "
                             f"got {tuple(ws.shape)}")
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.to(ws.dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            if x is None:
                raise ValueError(f"x must be a tensor [N, {self.in_channels}, R/2, R/2] for a block with "
                                 "in_channels > 0")
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
        x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)
        if img is not None:
            img = ops.upsample2d(img, self.resample_filter)
        y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
        img = y if img is None else img + y.to(img.dtype)
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, in_channels={self.in_channels}, out_channels={self.out_channels}"


class SynthesisNetwork(nn.Module):
    """Synthesis blocks from 4x4 up to ``img_resolution``.

    Args:
        w_dim, img_resolution (power of two >= 4), img_channels.
        channel_base, channel_max: the channel table (config F defaults).
        **block_kwargs: passed to every ``SynthesisBlock`` (conv_clamp, resample_filter, ...).

    Shapes:
        ``forward(ws [N, num_ws, w_dim], noise_mode='random', fused_modconv=None)``
        -> [N, img_channels, img_resolution, img_resolution].
    """

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, **block_kwargs):
        super().__init__()
        log2 = _log2_resolution("img_resolution", img_resolution)
        w_dim = checks.positive_int("w_dim", w_dim)
        img_channels = checks.positive_int("img_channels", img_channels)
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        channels = channel_table(self.block_resolutions, channel_base, channel_max)
        self.num_ws = 0
        for res in self.block_resolutions:
            in_ch = channels[res // 2] if res > 4 else 0
            block = SynthesisBlock(in_ch, channels[res], w_dim, res, img_channels,
                                   is_last=(res == img_resolution), **block_kwargs)
            self.num_ws += block.num_conv
            if res == img_resolution:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", fused_modconv: Optional[bool] = None):
        checks.tensor("ws", ws, ndim=3, shape_hint=f"[N, {self.num_ws}, {self.w_dim}] ([N, num_ws, w_dim])")
        if tuple(ws.shape[1:]) != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}] ([N, num_ws, w_dim]), "
                             f"got {tuple(ws.shape)}")
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, block_ws, noise_mode=noise_mode, fused_modconv=fused_modconv)
        return img


class Generator(nn.Module):
    """StyleGAN2 generator: ``MappingNetwork`` (z, c -> ws) + ``SynthesisNetwork`` (ws -> image).

    Args:
        z_dim, c_dim, w_dim, img_resolution, img_channels.
        mapping_kwargs: for ``MappingNetwork`` (num_layers, lr_multiplier, w_avg_beta, ...).
        **synthesis_kwargs: for ``SynthesisNetwork`` (channel_base, channel_max, conv_clamp, ...).

    Shapes:
        ``forward(z [N, z_dim], c [N, c_dim] or None, truncation_psi=1, truncation_cutoff=None,
        update_emas=False, noise_mode='random', fused_modconv=None, style_mixing_prob=0,
        return_ws=False)`` -> img [N, img_channels, R, R] (and ws [N, num_ws, w_dim] when
        ``return_ws``, e.g. for the path length penalty). ``style_mixing_prob``: with this
        probability, the layers from a random cutoff on use the w of a second random z
        (StyleGAN2 training uses 0.9; written with ``torch.where`` so it compiles).
    """

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: Optional[dict] = None, **synthesis_kwargs):
        super().__init__()
        z_dim = checks.positive_int("z_dim", z_dim)
        c_dim = checks.positive_int("c_dim", c_dim, minimum=0)
        w_dim = checks.positive_int("w_dim", w_dim)
        img_channels = checks.positive_int("img_channels", img_channels)
        if mapping_kwargs is not None and not isinstance(mapping_kwargs, dict):
            raise TypeError(f"mapping_kwargs must be a dict of MappingNetwork arguments or None, "
                            f"got {type(mapping_kwargs).__name__}")
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **(mapping_kwargs or {}))

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1.0,
                truncation_cutoff: Optional[int] = None, update_emas: bool = False, noise_mode: str = "random",
                fused_modconv: Optional[bool] = None, style_mixing_prob: float = 0.0, return_ws: bool = False):
        style_mixing_prob = checks.probability("style_mixing_prob", style_mixing_prob)
        checks.choice("noise_mode", noise_mode, NOISE_MODES)
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        if style_mixing_prob > 0:
            cutoff = torch.randint(1, self.num_ws, [], device=ws.device) if self.num_ws > 1 else \
                torch.ones([], dtype=torch.long, device=ws.device)
            mix = torch.rand([], device=ws.device) < style_mixing_prob
            cutoff = torch.where(mix, cutoff, torch.full_like(cutoff, self.num_ws))
            ws2 = self.mapping(torch.randn_like(z), c, truncation_psi=truncation_psi,
                               truncation_cutoff=truncation_cutoff)
            layer = torch.arange(self.num_ws, device=ws.device).reshape(1, -1, 1)
            ws = torch.where(layer < cutoff, ws, ws2)
        img = self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv)
        return (img, ws) if return_ws else img


class DiscriminatorBlock(nn.Module):
    """One resolution of the resnet discriminator: (fromrgb), conv0, conv1 (down x2), 1x1 skip (down x2).

    Shapes:
        ``forward(x [N, in_channels, R, R] or None, img [N, img_channels, R, R])``
        -> [N, out_channels, R/2, R/2]. The first block (``in_channels == 0``) reads ``img``.
    """

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int,
                 img_channels: int, architecture: str = "resnet", activation: str = "lrelu",
                 resample_filter: Sequence[float] = (1, 3, 3, 1), conv_clamp: Optional[float] = None,
                 channels_last: bool = False):
        super().__init__()
        if architecture != "resnet":
            raise ValueError(f"architecture must be 'resnet' (the StyleGAN2 discriminator), got {architecture!r}")
        self.in_channels, self.resolution, self.img_channels = in_channels, resolution, img_channels
        common = dict(conv_clamp=conv_clamp, channels_last=channels_last)
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation=activation, **common)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation=activation, **common)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation=activation, down=2,
                                 resample_filter=resample_filter, **common)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2,
                                resample_filter=resample_filter, **common)

    def forward(self, x: Optional[torch.Tensor], img: Optional[torch.Tensor]) -> torch.Tensor:
        if self.in_channels == 0:
            x = self.fromrgb(img)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv0(x)
        x = self.conv1(x, gain=math.sqrt(0.5))
        return y + x


class DiscriminatorEpilogue(nn.Module):
    """4x4 head: minibatch std, 3x3 conv, fully connected, output (projection onto cmap if conditional).

    Shapes:
        ``forward(x [N, in_channels, 4, 4], cmap [N, cmap_dim] or None)`` -> [N, 1].
    """

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int = 4, mbstd_group_size: Optional[int] = 4,
                 mbstd_num_channels: int = 1, activation: str = "lrelu", conv_clamp: Optional[float] = None):
        super().__init__()
        self.in_channels, self.cmap_dim, self.resolution = in_channels, cmap_dim, resolution
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation=activation,
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, cmap: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if self.cmap_dim > 0:
            x = (x * cmap.to(x.dtype)).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """StyleGAN2 resnet discriminator.

    Args:
        c_dim: condition size (0: unconditional; else a mapping network embeds c into
            ``cmap_dim`` and the output is a projection onto it).
        img_resolution (power of two >= 4), img_channels.
        channel_base, channel_max: the channel table (config F defaults).
        conv_clamp, channels_last, resample_filter, activation: for every block.
        mbstd_group_size, mbstd_num_channels: minibatch std of the epilogue (the batch
            size per process must be divisible by min(mbstd_group_size, N)).
        cmap_dim: defaults to the 4x4 channel count.

    Shapes:
        ``forward(img [N, img_channels, R, R], c [N, c_dim] or None)`` -> logits [N, 1].
    """

    def __init__(self, c_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, conv_clamp: Optional[float] = None, cmap_dim: Optional[int] = None,
                 mbstd_group_size: Optional[int] = 4, mbstd_num_channels: int = 1, activation: str = "lrelu",
                 resample_filter: Sequence[float] = (1, 3, 3, 1), channels_last: bool = False,
                 mapping_kwargs: Optional[dict] = None):
        super().__init__()
        log2 = _log2_resolution("img_resolution", img_resolution)
        if img_resolution < 8:
            raise ValueError(f"img_resolution must be >= 8 for the discriminator, got {img_resolution}")
        c_dim = checks.positive_int("c_dim", c_dim, minimum=0)
        img_channels = checks.positive_int("img_channels", img_channels)
        mbstd_num_channels = checks.positive_int("mbstd_num_channels", mbstd_num_channels, minimum=0)
        if mbstd_group_size is not None:
            checks.positive_int("mbstd_group_size", mbstd_group_size)
        check_activation("activation", activation)
        checks.optional_number("conv_clamp", conv_clamp, minimum=0)
        if mapping_kwargs is not None and not isinstance(mapping_kwargs, dict):
            raise TypeError(f"mapping_kwargs must be a dict of MappingNetwork arguments or None, "
                            f"got {type(mapping_kwargs).__name__}")
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        channels = channel_table(self.block_resolutions + [4], channel_base, channel_max)
        if cmap_dim is None:
            cmap_dim = channels[4]
        cmap_dim = checks.positive_int("cmap_dim", cmap_dim)
        if c_dim == 0:
            cmap_dim = 0
        for res in self.block_resolutions:
            in_ch = channels[res] if res < img_resolution else 0
            block = DiscriminatorBlock(in_ch, channels[res], channels[res // 2], res, img_channels,
                                       activation=activation, resample_filter=resample_filter,
                                       conv_clamp=conv_clamp, channels_last=channels_last)
            setattr(self, f"b{res}", block)
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **(mapping_kwargs or {}))
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim, resolution=4, mbstd_group_size=mbstd_group_size,
                                        mbstd_num_channels=mbstd_num_channels, activation=activation,
                                        conv_clamp=conv_clamp)

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        r = self.img_resolution
        checks.tensor("img", img, ndim=4, shape_hint=f"[N, {self.img_channels}, {r}, {r}]")
        if tuple(img.shape[1:]) != (self.img_channels, r, r):
            raise ValueError(f"img must have shape [N, {self.img_channels}, {r}, {r}] ([N, img_channels, "
                             f"img_resolution, img_resolution]), got {tuple(img.shape)}")
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, cmap)

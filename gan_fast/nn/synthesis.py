"""StyleGAN2 synthesis layers: ``ModulatedConv2d``, ``SynthesisLayer`` and ``ToRGB``.

Each has its own affine layer (w -> per-input-channel styles, bias initialised
to 1). In training, ``SynthesisLayer`` and ``ToRGB`` are one
:func:`gan_fast.ops.modulated_conv2d_bias_act` call each; in inference (grouped
convolution) :func:`gan_fast.ops.modulated_conv2d` then ``bias_act``. Parameter names follow
StyleGAN2-ADA (``affine.*``, ``weight``, ``bias``, ``noise_strength``,
``noise_const``), so state dicts map one to one.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from .. import activations, checks, ops
from ._util import check_activation, check_input, make_filter
from .equalized import FullyConnectedLayer

__all__ = ["ModulatedConv2d", "SynthesisLayer", "ToRGB"]

NOISE_MODES = ("random", "const", "none")


def _check_w(w, w_dim: int, batch: int) -> None:
    checks.tensor("w", w, ndim=2, shape_hint=f"[{batch}, {w_dim}] ([N, w_dim])")
    if tuple(w.shape) != (batch, w_dim):
        raise ValueError(f"w must have shape [{batch}, {w_dim}] ([N, w_dim] with N = x.shape[0]), "
                         f"got {tuple(w.shape)}")


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution: ``styles = affine(w)``, then ``ops.modulated_conv2d``.

    Args:
        in_channels, out_channels, w_dim, kernel_size: sizes (square kernel, padding k // 2).
        up, down: resampling factors (1 or 2).
        demodulate: StyleGAN2 weight demodulation. Without it (ToRGB) the styles are
            scaled by 1 / sqrt(fan_in) (equalized lr); with it that scale cancels.
        resample_filter: FIR taps for up/down (registered as the buffer ``resample_filter``);
            None registers no buffer (only allowed when up = down = 1).
        channels_last: store the weight in channels_last format.

    Shapes:
        ``forward(x [N, in_channels, H, W], w [N, w_dim], noise=None, fused_modconv=None)``
        -> [N, out_channels, H * up / down, W * up / down]. ``noise`` broadcastable to the
        output is added; ``fused_modconv=None`` picks grouped convolution in eval mode and
        the shared-weight form in training (the same result, different speed/memory).
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 3, up: int = 1,
                 down: int = 1, demodulate: bool = True, resample_filter: Optional[Sequence[float]] = (1, 3, 3, 1),
                 channels_last: bool = False):
        super().__init__()
        in_channels, out_channels, w_dim, kernel_size, up, down = (
            checks.positive_int(name, value) for name, value in (
                ("in_channels", in_channels), ("out_channels", out_channels), ("w_dim", w_dim),
                ("kernel_size", kernel_size), ("up", up), ("down", down)))
        if resample_filter is None and (up > 1 or down > 1):
            raise ValueError("resample_filter is required when up or down > 1")
        self.in_channels, self.out_channels, self.w_dim = in_channels, out_channels, w_dim
        self.kernel_size, self.up, self.down = kernel_size, up, down
        self.demodulate = bool(demodulate)
        self.padding = kernel_size // 2
        self.style_gain = 1.0 if demodulate else 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format))
        if resample_filter is not None:
            self.register_buffer("resample_filter", make_filter("resample_filter", resample_filter))
        else:
            self.resample_filter = None

    def _check(self, x: torch.Tensor, w: torch.Tensor) -> None:
        check_input("x", x, 4, self.in_channels, "[N, in_channels, H, W]")
        _check_w(w, self.w_dim, x.shape[0])

    def _fused(self, fused_modconv: Optional[bool]) -> bool:
        return (not self.training) if fused_modconv is None else bool(fused_modconv)

    def _modconv(self, x, w, noise, fused_modconv, bias=None, act="linear", gain=1.0, clamp=None):
        """The modulated conv, then (when ``bias`` is given) bias_act.

        Training (shared-weight) form: one ``modulated_conv2d_bias_act`` call, whose
        fast backend fuses everything after the convolution into one pass. Grouped
        form (inference): ``modulated_conv2d`` then ``bias_act``.
        """
        styles = self.affine(w)
        if self.style_gain != 1:
            styles = styles * self.style_gain
        weight, styles = self.weight.to(x.dtype), styles.to(x.dtype)
        f = self.resample_filter if (self.up > 1 or self.down > 1) else None
        b = None if bias is None else bias.to(x.dtype)
        if not self._fused(fused_modconv) and b is not None:
            return ops.modulated_conv2d_bias_act(x, weight, styles, b, noise, up=self.up, down=self.down,
                                                 padding=self.padding, resample_filter=f,
                                                 demodulate=self.demodulate, flip_weight=(self.up == 1), act=act,
                                                 gain=gain, clamp=clamp)
        y = ops.modulated_conv2d(x, weight, styles, noise=noise, up=self.up, down=self.down, padding=self.padding,
                                 resample_filter=f, demodulate=self.demodulate, flip_weight=(self.up == 1),
                                 fused_modconv=self._fused(fused_modconv))
        return y if b is None else ops.bias_act(y, b, act=act, gain=gain, clamp=clamp)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: Optional[torch.Tensor] = None,
                fused_modconv: Optional[bool] = None) -> torch.Tensor:
        self._check(x, w)
        return self._modconv(x, w, noise, fused_modconv)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, w_dim={self.w_dim}, "
                f"kernel_size={self.kernel_size}, up={self.up}, down={self.down}, demodulate={self.demodulate}")


class SynthesisLayer(ModulatedConv2d):
    """Modulated conv + per-pixel noise with a learned strength + fused bias/activation/clamp.

    Args:
        in_channels, out_channels, w_dim: sizes.
        resolution: output resolution (for the constant noise buffer ``noise_const``).
        kernel_size, up, resample_filter, channels_last: as in ``ModulatedConv2d``.
        use_noise: add noise (``noise_strength`` starts at 0).
        activation: any ``bias_act`` activation (default lrelu, gain sqrt 2).
        conv_clamp: clamp the output to +-conv_clamp * gain.

    Shapes:
        ``forward(x [N, in_channels, R / up, R / up], w [N, w_dim], noise_mode='random',
        fused_modconv=None, gain=1)`` -> [N, out_channels, R, R]. ``noise_mode``:
        'random' (fresh N(0, 1) noise), 'const' (the fixed ``noise_const`` buffer), 'none'.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu",
                 resample_filter: Sequence[float] = (1, 3, 3, 1), conv_clamp: Optional[float] = None,
                 channels_last: bool = False):
        super().__init__(in_channels, out_channels, w_dim, kernel_size, up=up, demodulate=True,
                         resample_filter=resample_filter, channels_last=channels_last)
        self.resolution = checks.positive_int("resolution", resolution)
        self.use_noise = bool(use_noise)
        self.activation = check_activation("activation", activation)
        self.act_gain = activations.get(activation).def_gain
        self.conv_clamp = checks.optional_number("conv_clamp", conv_clamp, minimum=0)
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random",
                fused_modconv: Optional[bool] = None, gain: float = 1.0) -> torch.Tensor:
        checks.choice("noise_mode", noise_mode, NOISE_MODES)
        gain = checks.number("gain", gain)
        self._check(x, w)
        in_res = self.resolution // self.up
        if x.shape[2] != in_res or x.shape[3] != in_res:
            raise ValueError(f"x must be [N, {self.in_channels}, {in_res}, {in_res}] (resolution / up), "
                             f"got {tuple(x.shape)}")
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device,
                                dtype=x.dtype) * self.noise_strength.to(x.dtype)
        elif self.use_noise and noise_mode == "const":
            noise = (self.noise_const * self.noise_strength).to(x.dtype)[None, None]
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return self._modconv(x, w, noise, fused_modconv, self.bias, self.activation, self.act_gain * gain, act_clamp)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", resolution={self.resolution}, activation={self.activation}"


class ToRGB(ModulatedConv2d):
    """Non-demodulated modulated conv (kernel 1 by default) + bias, optional clamp: features -> image.

    Shapes:
        ``forward(x [N, in_channels, H, W], w [N, w_dim], fused_modconv=None)`` -> [N, out_channels, H, W].
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: Optional[float] = None, channels_last: bool = False):
        super().__init__(in_channels, out_channels, w_dim, kernel_size, demodulate=False, resample_filter=None,
                         channels_last=channels_last)
        self.conv_clamp = checks.optional_number("conv_clamp", conv_clamp, minimum=0)
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: Optional[bool] = None) -> torch.Tensor:
        self._check(x, w)
        return self._modconv(x, w, None, fused_modconv, self.bias, clamp=self.conv_clamp)

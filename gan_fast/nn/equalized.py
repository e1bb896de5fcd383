"""Equalized-learning-rate layers (StyleGAN2): ``FullyConnectedLayer`` and ``Conv2dLayer``.

Weights are stored N(0, 1) (divided by ``lr_multiplier``) and scaled at run time
by ``lr_multiplier / sqrt(fan_in)``, so every layer learns at the same speed under
Adam. Bias, activation, gain and clamp are one fused ``gan_fast.ops.bias_act``;
resampling convolutions go through ``gan_fast.ops.upfirdn2d``.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from .. import activations, checks, ops
from ._resample import conv2d_resample_unchecked
from ._util import check_activation, check_input, make_filter

__all__ = ["FullyConnectedLayer", "Conv2dLayer"]


class FullyConnectedLayer(nn.Module):
    """Equalized-lr linear layer with fused bias + activation.

    ``y = bias_act(x @ (weight * lr_multiplier / sqrt(in_features)).T, bias * lr_multiplier, activation)``

    Args:
        in_features, out_features: sizes.
        bias: learn a bias.
        activation: any ``bias_act`` activation ('linear', 'lrelu', ...), with its default gain.
        lr_multiplier: learning-rate multiplier, a finite number > 0 (the mapping network uses 0.01).
        bias_init: initial bias value (a finite number, or a sequence of ``out_features`` of them).

    Shapes:
        x: [..., in_features] -> [..., out_features].
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init=0.0):
        super().__init__()
        in_features = checks.positive_int("in_features", in_features)
        out_features = checks.positive_int("out_features", out_features)
        self.in_features = in_features
        self.out_features = out_features
        self.activation = check_activation("activation", activation)
        lr_multiplier = checks.positive_number("lr_multiplier", lr_multiplier)
        init = _bias_init(bias_init, out_features) if bias else None
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        if bias:
            self.bias = nn.Parameter(init)
        else:
            self.register_parameter("bias", None)
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checks.tensor("x", x, shape_hint=f"[..., {self.in_features}] ([..., in_features])")
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape [..., {self.in_features}] (in_features), got {tuple(x.shape)}")
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None and x.ndim == 2:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        x = x.matmul(w.t())
        return ops.bias_act(x, b, dim=x.ndim - 1, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


def _bias_init(value, out_features: int) -> torch.Tensor:
    """bias_init (a number or out_features numbers, all finite) as a float32 [out_features] tensor."""
    try:
        init = torch.as_tensor(value, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"bias_init must be a number or a sequence of {out_features} numbers (out_features), "
                        f"got {value!r}") from None
    if init.ndim > 1 or (init.ndim == 1 and init.shape[0] not in (1, out_features)):
        raise ValueError(f"bias_init must be a number or a sequence of {out_features} numbers (out_features), "
                         f"got shape {tuple(init.shape)}")
    if not bool(torch.isfinite(init).all()):
        raise ValueError(f"bias_init must be finite, got {value!r}")
    return torch.broadcast_to(init, [out_features]).clone()


class Conv2dLayer(nn.Module):
    """Equalized-lr 2-D convolution with optional FIR up/downsampling and fused bias + activation.

    ``y = bias_act(conv2d_resample(x, weight / sqrt(fan_in), up, down), bias, activation,
    gain=act_gain * gain, clamp=conv_clamp * gain)``; padding is ``kernel_size // 2``,
    so up=2 / down=2 exactly double / halve the resolution.

    Args:
        in_channels, out_channels, kernel_size: sizes (square kernel).
        bias: learn a bias.
        activation: any ``bias_act`` activation.
        up, down: 1 or 2 (any integer factor works).
        resample_filter: FIR taps for the resampling (default [1, 3, 3, 1]).
        conv_clamp: clamp the output to +-conv_clamp (None: no clamp).
        channels_last: store the weight in channels_last memory format.
        trainable: False registers weight and bias as buffers.

    Shapes:
        x: [N, in_channels, H, W] -> [N, out_channels, H * up / down, W * up / down].
        ``forward(x, gain=1)``: ``gain`` scales the output (StyleGAN2's resnet uses sqrt(0.5)).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1,
                 resample_filter: Optional[Sequence[float]] = (1, 3, 3, 1), conv_clamp: Optional[float] = None,
                 channels_last: bool = False, trainable: bool = True):
        super().__init__()
        in_channels = checks.positive_int("in_channels", in_channels)
        out_channels = checks.positive_int("out_channels", out_channels)
        kernel_size = checks.positive_int("kernel_size", kernel_size)
        self.up = checks.positive_int("up", up)
        self.down = checks.positive_int("down", down)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.activation = check_activation("activation", activation)
        self.conv_clamp = checks.optional_number("conv_clamp", conv_clamp, minimum=0)
        self.act_gain = activations.get(activation).def_gain
        self.register_buffer("resample_filter", make_filter("resample_filter", resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        b = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(b) if b is not None else None
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", b)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        check_input("x", x, 4, self.in_channels, "[N, in_channels, H, W]")
        gain = checks.number("gain", gain)
        w = self.weight * self.weight_gain
        f = self.resample_filter if (self.up > 1 or self.down > 1) else None
        x = conv2d_resample_unchecked(x, w.to(x.dtype), f, up=self.up, down=self.down, padding=self.padding,
                                      flip_weight=(self.up == 1))
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        b = self.bias.to(x.dtype) if self.bias is not None else None
        return ops.bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"kernel_size={self.kernel_size}, activation={self.activation}, up={self.up}, down={self.down}")

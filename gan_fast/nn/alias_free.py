"""StyleGAN3's alias-free synthesis layer, built from :mod:`gan_fast.ops`.

:class:`AliasFreeSynthesisLayer` is the layer of Karras et al. 2021 ("Alias-Free Generative
Adversarial Networks"): affine (w -> styles) -> modulated convolution with demodulation and an
input gain from a running estimate of the input's magnitude -> ``filtered_lrelu`` (bias, then
upsample with a designed low-pass filter, leaky ReLU at the high rate, low-pass and downsample),
with the layer's sampling rates, cutoffs and transition bands deciding the filters, the
resampling factors and the padding. The ToRGB layer (``is_torgb``) is a 1x1 modulated
convolution without demodulation, scaled by ``1 / sqrt(in_channels)``, plus bias and clamp.

Parameter and buffer names follow StyleGAN3 (``affine.weight``, ``affine.bias``, ``weight``,
``bias``, ``magnitude_ema``, ``up_filter``, ``down_filter``; a filter of one tap is registered
as a ``None`` buffer, so it is absent from the state dict, as there), so state dicts map one to
one. :func:`stylegan3_layer_configs` gives the constructor arguments of every layer of a
StyleGAN3 synthesis network (the paper's geometric schedule of cutoffs and stop-bands).
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .. import checks, ops
from ..filter_design import design_lowpass_filter
from ..ops.filtered_lrelu import filtered_lrelu
from ._util import check_input
from .equalized import FullyConnectedLayer
from .synthesis import NOISE_MODES, _check_w

__all__ = ["AliasFreeSynthesisLayer", "stylegan3_layer_configs"]

Size = Union[int, Sequence[int]]


def _size2(name: str, value: Size) -> Tuple[int, int]:
    """An int or a [width, height] pair (StyleGAN3 broadcasts sizes to [2], width first) as (w, h)."""
    if isinstance(value, (list, tuple)) or (isinstance(value, torch.Tensor) and value.ndim == 1):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a [width, height] pair, got {value!r}")
        pair = tuple(value)
    else:
        pair = (value, value)
    out = []
    for v in pair:
        if isinstance(v, bool):
            raise TypeError(f"{name} must be an int or a [width, height] pair of ints, got bool")
        try:
            v = operator.index(v)  # numpy integers too
        except TypeError:
            raise TypeError(f"{name} must be an int or a [width, height] pair of ints, got {value!r}") from None
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {value!r}")
        out.append(v)
    return out[0], out[1]


def _real(name: str, value, minimum: float = 0.0, strict: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v < minimum or (strict and v == minimum):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {minimum}, got {value!r}")
    return v


def _factor(name: str, high: float, low: float) -> int:
    """The integer resampling factor ``high / low``; ValueError when the rates are not in an integer ratio."""
    factor = int(round(high / low))
    if factor < 1 or low * factor != high:
        raise ValueError(f"{name}: the sampling rates must be in an integer ratio, got {high} / {low}")
    return factor


class AliasFreeSynthesisLayer(nn.Module):
    """StyleGAN3's synthesis layer (and its ToRGB layer with ``is_torgb``).

    With ``tmp = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)``
    the layer computes, for input ``x`` [N, in_channels, in_h, in_w] and latent ``w`` [N, w_dim]:

    1. ``styles = affine(w)`` (equalized-lr linear, bias initialised to 1); ToRGB scales them
       by ``1 / sqrt(in_channels * conv_kernel^2)``.
    2. A modulated convolution (correlation, padding ``conv_kernel - 1`` on every side, so the
       image grows by ``conv_kernel - 1``), demodulated except in ToRGB, its weight times
       ``input_gain = magnitude_ema ** -0.5`` (``magnitude_ema`` tracks ``mean(x^2)`` when
       ``forward(..., update_emas=True)``, with decay ``magnitude_ema_beta``).
    3. ``filtered_lrelu`` with bias ``bias``, upsampling by ``up_factor = tmp / in_sampling_rate``
       through ``up_filter`` (``filter_size * up_factor`` Kaiser taps, cutoff ``in_cutoff``,
       transition ``2 * in_half_width``, at rate ``tmp``), leaky ReLU (slope 0.2, gain sqrt 2;
       ToRGB: linear, gain 1), clamp to ``+-conv_clamp``, then ``down_filter`` (likewise from the
       output's cutoff and half-width; radial (jinc) 2-D when ``use_radial_filters`` and the
       layer is not critically sampled) and downsampling by ``down_factor = tmp /
       out_sampling_rate``. ``padding`` [x0, x1, y0, y1] makes the result exactly ``out_size``,
       with the sample positions of the paper's symmetric interpretation (Appendix C.3). A
       factor of 1 (and ToRGB) has no filter: its buffer is ``None``.

    Args:
        w_dim: latent size.
        is_torgb: the ToRGB form (1x1 conv, no demodulation, linear).
        is_critically_sampled: the last layers (cutoff at Nyquist): no radial down filter.
        use_fp16: run in float16 on CUDA (unless ``forward(force_fp32=True)``).
        in_channels, out_channels: channel counts.
        in_size, out_size: image sizes, an int or [width, height].
        in_sampling_rate, out_sampling_rate: sampling rates (samples per image side).
        in_cutoff, out_cutoff: low-pass cutoffs of the input and output signals.
        in_half_width, out_half_width: half-widths of their transition bands.
        conv_kernel: kernel size of the convolution (ToRGB always uses 1).
        filter_size: taps of the low-pass filters per unit of resampling factor.
        lrelu_upsampling: how much higher than the output's rate the nonlinearity runs.
        use_radial_filters: rotation-equivariant (StyleGAN3-R) down filters.
        conv_clamp: clamp of the output (None: no clamp).
        magnitude_ema_beta: decay of ``magnitude_ema``.

    Shapes:
        ``forward(x [N, in_channels, in_h, in_w], w [N, w_dim], noise_mode='random',
        force_fp32=False, update_emas=False, fused_modconv=None, impl=None)`` ->
        [N, out_channels, out_h, out_w], float16 when ``use_fp16`` on CUDA, float64 for float64
        input, else float32. ``noise_mode`` is accepted (and checked) for StyleGAN3's call
        sites; the layer has no noise. ``fused_modconv``: grouped convolution (None: in eval
        mode) or the shared-weight form (training); the same result. ``impl`` is passed to
        every op (None: automatic).

    Differences from StyleGAN3, all numerically immaterial: the weight and styles are not
    pre-normalised before demodulation in float32 (``modulated_conv2d`` does it in float16;
    demodulation cancels it, only the placement of the 1e-8 epsilon differs); the input gain
    multiplies ``x`` (a scalar, so the same product); float64 input stays float64 (StyleGAN3
    casts to float32), which lets gradcheck run on the layer.
    """

    def __init__(self, w_dim: int, is_torgb: bool, is_critically_sampled: bool, use_fp16: bool,
                 in_channels: int, out_channels: int, in_size: Size, out_size: Size,
                 in_sampling_rate: float, out_sampling_rate: float, in_cutoff: float, out_cutoff: float,
                 in_half_width: float, out_half_width: float, conv_kernel: int = 3, filter_size: int = 6,
                 lrelu_upsampling: int = 2, use_radial_filters: bool = False, conv_clamp: Optional[float] = 256,
                 magnitude_ema_beta: float = 0.999):
        super().__init__()
        self.w_dim = checks.positive_int("w_dim", w_dim)
        self.is_torgb = bool(is_torgb)
        self.is_critically_sampled = bool(is_critically_sampled)
        self.use_fp16 = bool(use_fp16)
        self.in_channels = checks.positive_int("in_channels", in_channels)
        self.out_channels = checks.positive_int("out_channels", out_channels)
        self.in_size = _size2("in_size", in_size)
        self.out_size = _size2("out_size", out_size)
        self.in_sampling_rate = _real("in_sampling_rate", in_sampling_rate)
        self.out_sampling_rate = _real("out_sampling_rate", out_sampling_rate)
        self.in_cutoff = _real("in_cutoff", in_cutoff)
        self.out_cutoff = _real("out_cutoff", out_cutoff)
        self.in_half_width = _real("in_half_width", in_half_width)
        self.out_half_width = _real("out_half_width", out_half_width)
        self.conv_kernel = 1 if self.is_torgb else checks.positive_int("conv_kernel", conv_kernel)
        self.filter_size = checks.positive_int("filter_size", filter_size)
        self.lrelu_upsampling = checks.positive_int("lrelu_upsampling", lrelu_upsampling)
        self.use_radial_filters = bool(use_radial_filters)
        self.conv_clamp = None if conv_clamp is None else _real("conv_clamp", conv_clamp, strict=False)
        self.magnitude_ema_beta = _real("magnitude_ema_beta", magnitude_ema_beta, strict=False)
        if self.magnitude_ema_beta > 1:
            raise ValueError(f"magnitude_ema_beta must be in [0, 1], got {magnitude_ema_beta!r}")
        self.tmp_sampling_rate = (max(self.in_sampling_rate, self.out_sampling_rate)
                                  * (1 if self.is_torgb else self.lrelu_upsampling))

        self.affine = FullyConnectedLayer(self.w_dim, self.in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([self.out_channels, self.in_channels, self.conv_kernel,
                                                self.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([self.out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        # Filters (designed at the intermediate rate, where the nonlinearity runs).
        self.up_factor = _factor("up_factor", self.tmp_sampling_rate, self.in_sampling_rate)
        self.up_taps = self.filter_size * self.up_factor if self.up_factor > 1 and not self.is_torgb else 1
        self.register_buffer("up_filter", design_lowpass_filter(
            self.up_taps, self.in_cutoff, self.in_half_width * 2, self.tmp_sampling_rate))
        self.down_factor = _factor("down_factor", self.tmp_sampling_rate, self.out_sampling_rate)
        self.down_taps = self.filter_size * self.down_factor if self.down_factor > 1 and not self.is_torgb else 1
        self.down_radial = self.use_radial_filters and not self.is_critically_sampled
        self.register_buffer("down_filter", design_lowpass_filter(
            self.down_taps, self.out_cutoff, self.out_half_width * 2, self.tmp_sampling_rate,
            radial=self.down_radial))

        # Padding: what makes the output exactly out_size. Per axis, the upsampled conv output has
        # (in + k - 1) * up samples; the two filters remove up_taps - 1 and down_taps - 1; the
        # output before down-sampling needs (out - 1) * down + 1. Of the total, the low side gets
        # the extra up // 2 that centres the samples (the symmetric interpretation, Appendix C.3).
        pad = []
        for n_in, n_out in zip(self.in_size, self.out_size):
            total = ((n_out - 1) * self.down_factor + 1 - (n_in + self.conv_kernel - 1) * self.up_factor
                     + self.up_taps + self.down_taps - 2)
            lo = (total + self.up_factor) // 2
            pad += [lo, total - lo]
        self.padding = tuple(pad)  # (x0, x1, y0, y1)

        self.act_gain = 1.0 if self.is_torgb else math.sqrt(2)
        self.act_slope = 1.0 if self.is_torgb else 0.2
        # Identity resampling and no padding (ToRGB): the epilogue is a plain bias_act, and in training the
        # whole layer one modulated_conv2d_bias_act call.
        self._plain_epilogue = (self.up_factor == 1 and self.down_factor == 1 and self.up_taps == 1
                                and self.down_taps == 1 and not any(self.padding))

    def _dtype(self, x: torch.Tensor, force_fp32: bool) -> torch.dtype:
        if self.use_fp16 and not force_fp32 and x.device.type == "cuda":
            return torch.float16
        return torch.float64 if x.dtype == torch.float64 else torch.float32

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", force_fp32: bool = False,
                update_emas: bool = False, fused_modconv: Optional[bool] = None,
                impl: Optional[str] = None) -> torch.Tensor:
        checks.choice("noise_mode", noise_mode, NOISE_MODES)
        in_w, in_h = self.in_size
        check_input("x", x, 4, self.in_channels, f"[N, {self.in_channels}, {in_h}, {in_w}]")
        if x.shape[2] != in_h or x.shape[3] != in_w:
            raise ValueError(f"x must be [N, {self.in_channels}, {in_h}, {in_w}] ([N, in_channels, in_h, in_w]), "
                             f"got {tuple(x.shape)}")
        _check_w(w, self.w_dim, x.shape[0])

        if update_emas:
            with torch.no_grad():
                current = x.detach().to(torch.float32).square().mean()
                self.magnitude_ema.copy_(current.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        dtype = self._dtype(x, force_fp32)
        ema = self.magnitude_ema
        input_gain = (ema.to(torch.float64) if dtype == torch.float64 else ema).rsqrt()

        styles = self.affine(w)
        x = x.to(dtype)
        weight = self.weight.to(dtype)
        bias = self.bias.to(dtype)
        fused = (not self.training) if fused_modconv is None else bool(fused_modconv)
        pad = self.conv_kernel - 1
        if self.is_torgb:
            # No demodulation: the input gain and the equalized-lr scale fold into the styles.
            styles = styles * (input_gain / math.sqrt(self.in_channels * self.conv_kernel ** 2))
        else:
            # Demodulation would cancel a gain on the styles or the weight: scale the input instead.
            x = x * input_gain.to(dtype)
        styles = styles.to(dtype)
        demodulate = not self.is_torgb

        if self._plain_epilogue:
            act = "linear" if self.act_slope == 1 else "lrelu"
            if not fused:
                return ops.modulated_conv2d_bias_act(x, weight, styles, bias, None, padding=pad,
                                                     demodulate=demodulate, flip_weight=True, act=act,
                                                     alpha=self.act_slope, gain=self.act_gain,
                                                     clamp=self.conv_clamp, impl=impl)
            y = ops.modulated_conv2d(x, weight, styles, padding=pad, demodulate=demodulate, flip_weight=True,
                                     fused_modconv=True, impl=impl)
            return ops.bias_act(y, bias, act=act, alpha=self.act_slope, gain=self.act_gain, clamp=self.conv_clamp,
                                impl=impl)

        y = ops.modulated_conv2d(x, weight, styles, padding=pad, demodulate=demodulate, flip_weight=True,
                                 fused_modconv=fused, impl=impl)
        return filtered_lrelu(y, self.up_filter, self.down_filter, bias, up=self.up_factor, down=self.down_factor,
                              padding=list(self.padding), gain=self.act_gain, slope=self.act_slope,
                              clamp=self.conv_clamp, impl=impl)

    def extra_repr(self) -> str:
        return "\n".join([
            f"w_dim={self.w_dim:d}, is_torgb={self.is_torgb},",
            f"is_critically_sampled={self.is_critically_sampled}, use_fp16={self.use_fp16},",
            f"in_sampling_rate={self.in_sampling_rate:g}, out_sampling_rate={self.out_sampling_rate:g},",
            f"in_cutoff={self.in_cutoff:g}, out_cutoff={self.out_cutoff:g},",
            f"in_half_width={self.in_half_width:g}, out_half_width={self.out_half_width:g},",
            f"in_size={list(self.in_size)}, out_size={list(self.out_size)},",
            f"in_channels={self.in_channels:d}, out_channels={self.out_channels:d},",
            f"up_factor={self.up_factor}, down_factor={self.down_factor}, padding={list(self.padding)}"])


def stylegan3_layer_configs(img_resolution: int, img_channels: int = 3, w_dim: int = 512,
                            channel_base: int = 32768, channel_max: int = 512, num_layers: int = 14,
                            num_critical: int = 2, first_cutoff: float = 2, first_stopband: float = 2 ** 2.1,
                            last_stopband_rel: float = 2 ** 0.3, margin_size: int = 10, num_fp16_res: int = 4,
                            **layer_kwargs: Any) -> List[Dict[str, Any]]:
    """Constructor arguments of the ``num_layers + 1`` layers of a StyleGAN3 synthesis network
    (the last one ToRGB), from the paper's schedule (Section 3 and Appendix F):

    * cutoffs ``f_c`` and stop-bands ``f_t`` progress geometrically from ``first_cutoff`` /
      ``first_stopband`` to ``img_resolution / 2`` / ``img_resolution / 2 * last_stopband_rel``
      over the first ``num_layers - num_critical`` layers, then stay there (the critically
      sampled layers);
    * sampling rate ``s = 2 ** ceil(log2(min(2 f_t, img_resolution)))``; transition half-width
      ``f_h = max(f_t, s / 2) - f_c``;
    * size ``s + 2 margin_size`` (the last two layers: ``img_resolution``); channels
      ``rint(min(channel_base / 2 / f_c, channel_max))`` (ToRGB: ``img_channels``);
    * float16 where ``s * 2 ** num_fp16_res > img_resolution``.

    Layer i takes layer i-1's (layer 0: its own) channels, size, rate, cutoff and half-width
    as its input's. ``layer_kwargs`` (e.g. ``conv_kernel=1, use_radial_filters=True`` for
    StyleGAN3-R, with ``channel_base=65536, channel_max=1024``) go to every layer.

    Returns:
        a list of dicts, each ``AliasFreeSynthesisLayer(**d)``'s arguments.
    """
    img_resolution = checks.positive_int("img_resolution", img_resolution)
    checks.positive_int("num_layers", num_layers)
    if not 0 <= num_critical < num_layers:
        raise ValueError(f"num_critical must be in [0, num_layers), got {num_critical}")
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    cutoffs, stopbands, rates, half_widths, sizes, channels = [], [], [], [], [], []
    for i in range(num_layers + 1):
        e = min(i / (num_layers - num_critical), 1.0)
        fc = first_cutoff * (last_cutoff / first_cutoff) ** e
        ft = first_stopband * (last_stopband / first_stopband) ** e
        s = 2.0 ** math.ceil(math.log2(min(ft * 2, img_resolution)))
        cutoffs.append(fc)
        stopbands.append(ft)
        rates.append(s)
        half_widths.append(max(ft, s / 2) - fc)
        sizes.append(int(s + margin_size * 2))
        channels.append(int(round(min((channel_base / 2) / fc, channel_max))))
    sizes[-2:] = [img_resolution, img_resolution]
    channels[-1] = img_channels
    configs = []
    for i in range(num_layers + 1):
        p = max(i - 1, 0)
        configs.append(dict(
            w_dim=w_dim, is_torgb=(i == num_layers), is_critically_sampled=(i >= num_layers - num_critical),
            use_fp16=(rates[i] * 2 ** num_fp16_res > img_resolution),
            in_channels=channels[p], out_channels=channels[i], in_size=sizes[p], out_size=sizes[i],
            in_sampling_rate=int(rates[p]), out_sampling_rate=int(rates[i]), in_cutoff=cutoffs[p],
            out_cutoff=cutoffs[i], in_half_width=half_widths[p], out_half_width=half_widths[i], **layer_kwargs))
    return configs

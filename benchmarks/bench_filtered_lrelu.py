"""filtered_lrelu cases: StyleGAN3's filtered leaky ReLU at the shapes of a StyleGAN3-T generator.

The geometry and filters are those of :class:`gan_fast.nn.AliasFreeSynthesisLayer` built from
``stylegan3_layer_configs`` (margin 10; Kaiser low-pass filters of 6 taps per factor: 12 at up/down 2,
24 at up 4; conv clamp 256). The op's input is the layer's convolution output (``in_size + 2`` px):

* ``stylegan2`` / ``stylegan3`` presets, 256 px network, batch 8 (StyleGAN3's per-GPU batch):
  #11 (181 channels, 278 -> 276 px, up 2 / down 2: the largest image; the decisive case, float32 first),
  #10 (256 channels, 150 -> 276 px, up 4 / down 2: the largest ratio), #13 (128 channels, 278 -> 256 px,
  cropping padding); float32 and, on GPU, float16 (StyleGAN3 runs these layers in float16).
* ``ci``: the 16 px network's #1 (8 channels, 38 -> 36 px, up 2 / down 2) and the 256 px network's #3 scaled
  to 8 channels (38 -> 52 px, up 4 / down 2), batch 2.

Backends: eager ``ref`` (the upfirdn2d / bias_act composition), ``torch.compile`` of it, ``triton`` (one
forward and one backward kernel); passes fwd and fwd+bwd (x and b), with peak memory. The issue's goal on a
GPU: triton >= 3x eager fwd+bwd at <= 0.5x its peak memory.
"""

from __future__ import annotations

from typing import List

import torch

from gan_fast.backends import filtered_lrelu as backends
from gan_fast.nn.alias_free import AliasFreeSynthesisLayer, stylegan3_layer_configs
from gan_fast.ops import filtered_lrelu

from . import presets
from .harness import Case

OP = "filtered_lrelu"
SG3_RES, SG3_BATCH = 256, 8
# (layer index, priority in float32; float16 adds 10): the decisive case first.
SG3_LAYERS = ((11, 0), (10, 5), (13, 32))
CI_BATCH, CI_CHANNELS = 2, 8


def _case(cfg, index: int, n: int, dtype: torch.dtype, prio: int, err_batch=None) -> Case:
    layer = AliasFreeSynthesisLayer(**cfg)
    w_in, h_in = layer.in_size
    c, k = layer.out_channels, layer.conv_kernel
    h, w = h_in + k - 1, w_in + k - 1
    fu, fd = layer.up_filter, layer.down_filter
    kw = dict(up=layer.up_factor, down=layer.down_factor, padding=list(layer.padding), gain=layer.act_gain,
              slope=layer.act_slope, clamp=layer.conv_clamp)

    def make(device, dtype, batch):
        nb = n if batch is None else batch
        return {"x": torch.randn(nb, c, h, w, device=device).to(dtype),
                "b": (0.5 * torch.randn(c, device=device)).to(dtype),
                "fu": fu.to(device), "fd": fd.to(device)}

    def run(t, impl):
        return filtered_lrelu(t["x"], t["fu"], t["fd"], t["b"], impl=impl, **kw)

    y = filtered_lrelu(torch.zeros(1, 1, h, w), fu, fd, **kw)  # the output size, StyleGAN3's formula
    shape = (f"#{index} [{n}, {c}, {h}, {w}] -> [{y.shape[2]}, {y.shape[3]}], up {layer.up_factor} "
             f"({layer.up_taps} taps) down {layer.down_factor} ({layer.down_taps} taps) padding {list(layer.padding)}")
    return Case(op=OP, name=f"L{index}_{h}to{y.shape[2]}px_up{layer.up_factor}", shape=shape, dtype=dtype,
                make=make, run=run, diff=("x", "b"), specs=(backends.SPEC,), passes=("fwd", "fwdbwd"),
                err_batch=err_batch, priority=prio,
                note="StyleGAN3-T layer geometry and filters" + (f"; max_abs_err at batch {err_batch}"
                                                                 if err_batch else ""))


def cases(preset: str, device: torch.device) -> List[Case]:
    dts = presets.dtypes(preset, device)
    if preset == "ci":
        small = stylegan3_layer_configs(16, channel_max=CI_CHANNELS)[1]
        up4 = stylegan3_layer_configs(SG3_RES, channel_max=CI_CHANNELS)[3]
        return [_case(cfg, i, CI_BATCH, dt, 0) for cfg, i in ((small, 1), (up4, 3)) for dt in dts]
    if preset in ("stylegan2", "stylegan3"):
        cfgs = stylegan3_layer_configs(SG3_RES)
        return [_case(cfgs[i], i, SG3_BATCH, dt, prio + (0 if dt == torch.float32 else 10), err_batch=1)
                for i, prio in SG3_LAYERS for dt in dts]
    return []

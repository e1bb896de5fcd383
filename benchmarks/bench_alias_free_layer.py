"""alias_free_layer cases: :class:`gan_fast.nn.AliasFreeSynthesisLayer` (StyleGAN3's layer: affine,
modulated conv, filtered leaky ReLU) at StyleGAN3-T 256 px shapes.

Layers (``stylegan3_layer_configs(256)``, margin 10): #10, 362 -> 256 channels, 148 -> 276 px, up 4 (24 taps) and
down 2 (12 taps), the largest upsampling ratio; #11, 256 -> 181 channels at 276 px, up 2 / down 2 (12 taps each),
the largest image. float32, and on CUDA float16 (``use_fp16``, as StyleGAN3 runs these layers: float16 x,
float32 parameters and latents). The module runs through ``torch.func.functional_call`` so that its parameters are
case tensors (their gradients are checked against float64 too). Backends: ``eager`` (every op ``ref``),
``compile`` (``torch.compile`` of that), ``triton`` (forced on modulated_conv2d and filtered_lrelu) and, on CUDA,
``auto`` (``impl=None``: what a user gets). Passes: fwd, fwd+bwd, and ``dbl``, the path-length step's second
order (gradient w.r.t. w with a graph, then backward to everything).
"""

from __future__ import annotations

from typing import Dict, List

import torch
from torch.func import functional_call

from gan_fast.backends import filtered_lrelu as filtered_lrelu_backends
from gan_fast.backends import modulated_conv2d as modconv_backends
from gan_fast.nn.alias_free import AliasFreeSynthesisLayer, stylegan3_layer_configs

from . import presets
from .harness import Case

OP = "alias_free_layer"
SPECS = (filtered_lrelu_backends.SPEC, modconv_backends.SPEC)

SG3_RES = 256
SG3_BATCH = 8          # per-GPU batch of StyleGAN3 at 256 px (its configs: batch 32 over 4-8 GPUs)
SG3_LAYERS = (10, 11)  # up-4 layer; up-2 layer at the largest size
CI_CHANNELS, CI_BATCH, CI_W_DIM = 8, 2, 16
# The ci preset: StyleGAN3-T's 16 px network, whose layers are 36 px at rate 16 (up 2 / down 2, 12 taps).
CI_RES, CI_LAYERS = 16, (1,)

CI_NO_COMPILE_NOTE = ("ci preset: torch.compile of the layer is not timed (about 20 s of compiling on 2 CPU cores); "
                      "the stylegan2/stylegan3 presets time it")

PARAMS = ("weight", "bias", "affine.weight", "affine.bias")
BUFFERS = ("magnitude_ema", "up_filter", "down_filter")


def _layer_case(cfg: Dict, index: int, n: int, dtype: torch.dtype, prio: int, device: torch.device,
                err_batch=None, compile=True) -> Case:
    cfg = dict(cfg, use_fp16=(dtype == torch.float16))
    torch.manual_seed(index)
    layer = AliasFreeSynthesisLayer(**cfg).train()  # stays on the CPU: its state reaches it as case tensors
    w_, h_ = layer.in_size

    def make(device, dtype, batch):
        nb = n if batch is None else batch
        t = {"x": torch.randn(nb, layer.in_channels, h_, w_, device=device).to(dtype),
             "w": torch.randn(nb, layer.w_dim, device=device)}
        for name, value in layer.named_parameters():
            t[name] = value.detach().to(device).clone()
        with torch.no_grad():  # a bias and style spread that exercise the activation and clamp
            t["bias"].normal_(0, 0.5)
            t["affine.bias"].add_(0.2 * torch.randn_like(t["affine.bias"]))
        for name, value in layer.named_buffers():
            t[name] = value.detach().to(device).clone()
        return t

    def run(t, impl):
        # float64 (the error check's reference) stays float64: force_fp32 turns off the float16 cast.
        kwargs = dict(impl=impl, force_fp32=(t["x"].dtype == torch.float64))
        state = {k: t[k] for k in PARAMS + BUFFERS if k in t}
        return functional_call(layer, state, (t["x"], t["w"]), kwargs)

    extra = {}
    if device.type == "cuda":
        extra["auto"] = lambda tensors: ((lambda t: run(t, None)), tensors)
    shape = (f"#{index} x [{n}, {layer.in_channels}, {h_}, {w_}] -> [{n}, {layer.out_channels}, "
             f"{layer.out_size[1]}, {layer.out_size[0]}], up {layer.up_factor} ({layer.up_taps} taps) "
             f"down {layer.down_factor} ({layer.down_taps} taps)")
    return Case(op=OP, name=f"L{index}_{h_}to{layer.out_size[1]}px_up{layer.up_factor}", shape=shape, dtype=dtype,
                make=make, run=run, diff=("x", "w") + PARAMS, first=("w",), specs=SPECS,
                passes=("fwd", "fwdbwd", "dbl"), extra_baselines=extra, err_batch=err_batch, priority=prio,
                compile=compile, compile_note=CI_NO_COMPILE_NOTE,
                note="StyleGAN3-T layer via functional_call; dbl = the path-length second order (grad w.r.t. w "
                     "with a graph, then backward)" + (f"; max_abs_err at batch {err_batch}" if err_batch else ""))


def cases(preset: str, device: torch.device) -> List[Case]:
    dts = presets.dtypes(preset, device)
    if preset == "ci":
        cfgs = stylegan3_layer_configs(CI_RES, w_dim=CI_W_DIM, channel_max=CI_CHANNELS)
        return [_layer_case(cfgs[i], i, CI_BATCH, dt, 3, device, compile=False) for i in CI_LAYERS for dt in dts]
    if preset in ("stylegan2", "stylegan3"):
        cfgs = stylegan3_layer_configs(SG3_RES)
        return [_layer_case(cfgs[i], i, SG3_BATCH, dt, presets.priority(SG3_RES, dt, primary=False), device,
                            err_batch=1)
                for i in SG3_LAYERS for dt in dts]
    return []

"""modulated_conv2d_bias_act cases: a whole StyleGAN2 synthesis layer (3x3 modulated conv, noise, bias, lrelu,
clamp), the one-kernel Triton layer vs the composed layer that ``gan_fast.nn.SynthesisLayer`` runs today.

This is the measurement DESIGN.md asks for before a Triton convolution replaces cuDNN: backend ``triton`` is the
implicit-GEMM kernel; ``composed:IMPL`` is ``bias_act(modulated_conv2d(..., fused_modconv=False))`` with IMPL forced
on both (cuDNN convolution + Triton epilogues).
"""

from __future__ import annotations

from typing import List

import torch

from gan_fast import ops

from . import presets
from .harness import Case, fast_backends, op_module as _op

op_module = _op("modulated_conv2d_bias_act")
composed_modules = (_op("modulated_conv2d"), _op("bias_act"))

OP = "modulated_conv2d_bias_act"
CLAMP = 256.0  # StyleGAN2's conv_clamp under mixed precision


def _layer(t, impl):
    return ops.modulated_conv2d_bias_act(t["x"], t["w"], t["s"], t["b"], t["noise"], padding=1, act="lrelu",
                                         clamp=CLAMP, impl=impl)


def _composed(impl):
    def build(tensors):
        def forward(t):
            y = ops.modulated_conv2d(t["x"], t["w"], t["s"], t["noise"], padding=1, fused_modconv=False, impl=impl)
            return ops.bias_act(y, t["b"], act="lrelu", clamp=CLAMP, impl=impl)
        return forward, tensors
    return build


def _case(n: int, ch: int, res: int, dtype, prio: int, device: torch.device, err_batch=None) -> Case:
    def make(device, dtype, batch):
        nb = n if batch is None else batch
        return {"x": torch.randn(nb, ch, res, res, device=device).to(dtype),
                "w": (torch.randn(ch, ch, 3, 3, device=device) / (9 * ch) ** 0.5).to(dtype),
                "s": (1 + 0.2 * torch.randn(nb, ch, device=device)).to(dtype),
                "b": (0.1 * torch.randn(ch, device=device)).to(dtype),
                "noise": (0.1 * torch.randn(nb, 1, res, res, device=device)).to(dtype)}

    both = [impl for impl in fast_backends(composed_modules[:1], device)[0]
            if impl in fast_backends(composed_modules[1:], device)[0]]
    extra = {f"composed:{impl}": _composed(impl) for impl in both}
    return Case(op=OP, name=f"conv1_{res}px", shape=f"x [{n}, {ch}, {res}, {res}] w [{ch}, {ch}, 3, 3] lrelu",
                dtype=dtype, make=make, run=_layer, diff=("x", "w", "s", "b"), first=("x",),
                op_modules=(op_module,), passes=("fwd", "fwdbwd", "dbl"), extra_baselines=extra,
                err_batch=err_batch, priority=prio,
                note="triton = the one-kernel layer; composed:IMPL = modulated_conv2d + bias_act with IMPL" +
                     (f"; max_abs_err at batch {err_batch}" if err_batch else ""))


def cases(preset: str, device: torch.device) -> List[Case]:
    dts = presets.dtypes(preset, device)
    if preset == "ci":
        return [_case(presets.CI_BATCH, presets.CI_CONV_CH, presets.CI_CONV_RES, dt, 1, device) for dt in dts]
    if preset == "stylegan2":
        return [_case(presets.SG2_BATCH, presets.sg2_channels(res), res, dt,
                      presets.priority(res, dt, primary=False), device, err_batch=4)
                for res in presets.SG2_RES for dt in dts]
    return []

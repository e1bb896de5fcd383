"""modulated_conv2d_bias_act cases: a whole StyleGAN2 synthesis layer (3x3 modulated conv, noise, bias, lrelu,
clamp), at stride 1 and in its up-2 form.

Backends: ``triton`` is what ``gan_fast.nn.SynthesisLayer`` runs in training (cuDNN convolution, then one fused
epilogue kernel); ``triton:implicit_gemm`` the whole stride-1 layer in one Triton kernel — the measurement that
decides whether a Triton convolution replaces cuDNN (``DEFAULT_ALGORITHM`` in ``gan_fast.params.modulated_conv2d``);
``composed:IMPL`` is ``bias_act(modulated_conv2d(..., fused_modconv=False))`` with IMPL on both (two epilogue
passes).
"""

from __future__ import annotations

from typing import List

import torch

from gan_fast import ops
from gan_fast.backends import bias_act as bias_act_backends
from gan_fast.backends import modulated_conv2d as modconv_backends
from gan_fast.backends import modulated_conv2d_bias_act as backends
from gan_fast.params.modulated_conv2d import DEFAULT_ALGORITHM

from . import presets
from .harness import Case, fast_backends

OP = "modulated_conv2d_bias_act"
CLAMP = 256.0  # StyleGAN2's conv_clamp under mixed precision


def _resampling(t):
    """up 2 (StyleGAN2's first layer of a block) when the case made a filter, else stride 1."""
    if "f" not in t:
        return dict(padding=1)
    return dict(up=2, padding=1, resample_filter=t["f"], flip_weight=False)


def _layer(t, impl, algorithm=None):
    return ops.modulated_conv2d_bias_act(t["x"], t["w"], t["s"], t["b"], t["noise"], **_resampling(t), act="lrelu",
                                         clamp=CLAMP, algorithm=algorithm, impl=impl)


def _implicit_gemm(tensors):
    return (lambda t: _layer(t, "triton", "implicit_gemm")), tensors


def _composed(impl):
    def build(tensors):
        def forward(t):
            y = ops.modulated_conv2d(t["x"], t["w"], t["s"], t["noise"], **_resampling(t), fused_modconv=False,
                                     impl=impl)
            return ops.bias_act(y, t["b"], act="lrelu", clamp=CLAMP, impl=impl)
        return forward, tensors
    return build


def _case(n: int, ch: int, res: int, dtype, prio: int, device: torch.device, up: int = 1, err_batch=None) -> Case:
    def make(device, dtype, batch):
        nb = n if batch is None else batch
        t = {"x": torch.randn(nb, ch, res // up, res // up, device=device).to(dtype),
             "w": (torch.randn(ch, ch, 3, 3, device=device) / (9 * ch) ** 0.5).to(dtype),
             "s": (1 + 0.2 * torch.randn(nb, ch, device=device)).to(dtype),
             "b": (0.1 * torch.randn(ch, device=device)).to(dtype),
             "noise": (0.1 * torch.randn(nb, 1, res, res, device=device)).to(dtype)}
        if up > 1:
            t["f"] = ops.setup_filter([1, 3, 3, 1], device=device)
        return t

    both = [impl for impl in fast_backends((modconv_backends.SPEC,), device)[0]
            if impl in fast_backends((bias_act_backends.SPEC,), device)[0]]
    extra = {f"composed:{impl}": _composed(impl) for impl in both}
    if up == 1 and "triton" in fast_backends((backends.SPEC_IMPLICIT_GEMM,), device)[0]:
        extra["triton:implicit_gemm"] = _implicit_gemm
    name = f"conv1_{res}px" if up == 1 else f"conv0_up_{res}px"
    return Case(op=OP, name=name, shape=f"x [{n}, {ch}, {res // up}, {res // up}] w [{ch}, {ch}, 3, 3] "
                f"{'up 2 ' if up > 1 else ''}lrelu",
                dtype=dtype, make=make, run=_layer, diff=("x", "w", "s", "b"), first=("x",),
                specs=(backends.SPEC,), passes=("fwd", "fwdbwd", "dbl"), extra_baselines=extra,
                err_batch=err_batch, priority=prio, count_extras=tuple(extra),
                record_fields={"triton": {"algorithm": DEFAULT_ALGORITHM},
                               "triton:implicit_gemm": {"algorithm": "implicit_gemm"}},
                note="triton = cuDNN conv + one fused epilogue; triton:implicit_gemm = the one-kernel layer; "
                     "composed:IMPL = modulated_conv2d + bias_act with IMPL" +
                     (f"; max_abs_err at batch {err_batch}" if err_batch else ""))


def cases(preset: str, device: torch.device) -> List[Case]:
    dts = presets.dtypes(preset, device)
    if preset == "ci":
        return [_case(presets.CI_BATCH, presets.CI_CONV_CH, presets.CI_CONV_RES, dt, 1, device, up)
                for dt in dts for up in (1, 2)]
    if preset == "stylegan2":
        return [_case(presets.SG2_BATCH, presets.sg2_channels(res), res, dt,
                      presets.priority(res, dt, primary=False), device, up, err_batch=4)
                for res in presets.SG2_RES for dt in dts for up in (1, 2)]
    return []

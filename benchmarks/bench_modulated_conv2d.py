"""modulated_conv2d cases: StyleGAN2 synthesis layers (conv0 with 2x upsampling, conv1), both algorithms."""

from __future__ import annotations

from typing import List

import torch

from gan_fast import ops
from gan_fast.backends import modulated_conv2d as backends

from . import presets
from .harness import Case

OP = "modulated_conv2d"
FIR = [1, 3, 3, 1]
VARIANTS = {"fused": {"fused_modconv": True}, "unfused": {"fused_modconv": False}}


def _case(layer: str, n: int, cin: int, cout: int, res: int, dtype, prio: int, err_batch=None) -> Case:
    up = 2 if layer == "conv0" else 1
    h = res // up

    def make(device, dtype, batch):
        nb = n if batch is None else batch
        return {"x": torch.randn(nb, cin, h, h, device=device).to(dtype),
                "w": torch.randn(cout, cin, 3, 3, device=device).to(dtype),
                "s": (1 + 0.2 * torch.randn(nb, cin, device=device)).to(dtype),
                "noise": (0.1 * torch.randn(nb, 1, res, res, device=device)).to(dtype),
                "f": ops.setup_filter(FIR, device=device)}

    def run(t, impl, fused_modconv):
        return ops.modulated_conv2d(t["x"], t["w"], t["s"], noise=t["noise"], up=up, padding=1,
                                    resample_filter=t["f"] if up > 1 else None, fused_modconv=fused_modconv,
                                    impl=impl)

    return Case(op=OP, name=f"{layer}_{res}px", shape=f"x [{n}, {cin}, {h}, {h}] w [{cout}, {cin}, 3, 3] up {up}",
                dtype=dtype, make=make, run=run, diff=("x", "w", "s"), first=("x",), specs=(backends.SPEC,),
                passes=("fwd", "fwdbwd", "dbl"), variants=VARIANTS, err_batch=err_batch, priority=prio,
                note="speedups vs the faster of eager fused/unfused" +
                     (f"; max_abs_err at batch {err_batch}" if err_batch else ""))


def cases(preset: str, device: torch.device) -> List[Case]:
    dts = presets.dtypes(preset, device)
    if preset == "ci":
        r, c = presets.CI_CONV_RES, presets.CI_CONV_CH
        return [_case("conv1", presets.CI_BATCH, c, c, r, dt, 1) for dt in dts]
    if preset == "stylegan2":
        out = []
        for res in presets.SG2_RES:
            cin0, cout = presets.sg2_channels(res // 2), presets.sg2_channels(res)
            for dt in dts + (presets.half_extra(device) if res == 256 else []):
                out.append(_case("conv1", presets.SG2_BATCH, cout, cout, res, dt, presets.priority(res, dt),
                                 err_batch=4))
                out.append(_case("conv0", presets.SG2_BATCH, cin0, cout, res, dt,
                                 presets.priority(res, dt, primary=False), err_batch=4))
        return out
    return []

"""upfirdn2d cases: FIR 2x upsampling (synthesis network) and 2x downsampling (discriminator)."""

from __future__ import annotations

from typing import List

import torch

from gan_fast import ops
from gan_fast.backends import upfirdn2d as backends

from . import presets
from .harness import Case

OP = "upfirdn2d"
FIR = [1, 3, 3, 1]


def _case(kind: str, n: int, c: int, h: int, dtype, prio: int) -> Case:
    def make(device, dtype, batch):
        nb = n if batch is None else batch
        return {"x": torch.randn(nb, c, h, h, device=device).to(dtype),
                "f": ops.setup_filter(FIR, device=device)}

    if kind == "up2":
        def run(t, impl):
            return ops.upsample2d(t["x"], t["f"], impl=impl)
    else:
        def run(t, impl):
            return ops.downsample2d(t["x"], t["f"], impl=impl)

    out_h = h * 2 if kind == "up2" else h // 2
    return Case(op=OP, name=f"{kind}_{h}to{out_h}", shape=f"[{n}, {c}, {h}, {h}] {kind} f=[1,3,3,1]", dtype=dtype,
                make=make, run=run, diff=("x",), specs=(backends.SPEC,), passes=("fwd", "fwdbwd", "dbl"),
                priority=prio)


def cases(preset: str, device: torch.device) -> List[Case]:
    dts = presets.dtypes(preset, device)
    if preset == "ci":
        return [c for dt in dts for c in (_case("up2", 4, 64, 16, dt, 0), _case("down2", 4, 64, 32, dt, 0))]
    if preset == "stylegan2":
        out = []
        for res in presets.SG2_RES[:-1]:  # 256 .. 16 px outputs of the synthesis network
            for dt in dts:
                out.append(_case("up2", presets.SG2_BATCH, presets.sg2_channels(res), res // 2, dt,
                                 presets.priority(res, dt)))
                # the D's skip path downsamples the activations of the block at this resolution
                out.append(_case("down2", presets.SG2_BATCH, presets.sg2_channels(res), res, dt,
                                 presets.priority(res, dt, primary=False)))
        return out
    return []

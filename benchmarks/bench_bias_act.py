"""bias_act cases: the bias + leaky ReLU (+ clamp) after every StyleGAN2 synthesis convolution."""

from __future__ import annotations

from typing import List

import torch

from gan_fast import ops
from gan_fast.backends import bias_act as backends

from . import presets
from .harness import Case

OP = "bias_act"


def _case(n: int, c: int, h: int, dtype, clamp, name: str, prio: int) -> Case:
    def make(device, dtype, batch):
        nb = n if batch is None else batch
        return {"x": torch.randn(nb, c, h, h, device=device).to(dtype),
                "b": torch.randn(c, device=device).to(dtype)}

    def run(t, impl):
        return ops.bias_act(t["x"], t["b"], act="lrelu", clamp=clamp, impl=impl)

    return Case(op=OP, name=name, shape=f"[{n}, {c}, {h}, {h}] lrelu{' clamp=' + str(clamp) if clamp else ''}",
                dtype=dtype, make=make, run=run, diff=("x", "b"), first=("x",), specs=(backends.SPEC,),
                passes=("fwd", "fwdbwd", "dbl"), priority=prio)


def cases(preset: str, device: torch.device) -> List[Case]:
    if preset == "ci":
        # The shape of the CPU target (cpp fwd+bwd >= 2x eager ref at [8, 256, 32, 32] float32).
        return [_case(8, 256, 32, dt, None, "8x256x32x32", 0) for dt in presets.dtypes(preset, device)]
    if preset == "stylegan2":
        out = []
        for res in presets.SG2_RES:
            for dt in presets.dtypes(preset, device) + (presets.half_extra(device) if res == 256 else []):
                out.append(_case(presets.SG2_BATCH, presets.sg2_channels(res), res, dt, 256,
                                 f"synth{res}", presets.priority(res, dt)))
        return out
    return []

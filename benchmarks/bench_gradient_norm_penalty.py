"""gradient_norm_penalty cases: the R1/R2 penalty ``mean((|g| - c)^2)`` on image-shaped gradients (the op alone;
the whole R1 step through a D is ``bench_r1_step``)."""

from __future__ import annotations

from typing import List

import torch

from gan_fast import ops
from gan_fast.backends import gradient_norm_penalty as backends

from . import presets
from .harness import Case


def _case(n: int, res: int, dtype, prio: int) -> Case:
    def make(device, dtype, batch):
        return {"g": torch.randn(n, 3, res, res, device=device).to(dtype)}

    def run(t, impl):
        return ops.gradient_norm_penalty(t["g"], impl=impl)

    return Case(op="gradient_norm_penalty", name=f"{res}px", shape=f"grads [{n}, 3, {res}, {res}], center 0, mean",
                dtype=dtype, make=make, run=run, diff=("g",), specs=(backends.SPEC,),
                passes=("fwd", "fwdbwd", "dbl"), priority=prio)


def cases(preset: str, device: torch.device) -> List[Case]:
    dts = presets.dtypes(preset, device)
    if preset == "ci":
        return [_case(8, 64, dt, 2) for dt in dts]
    if preset == "stylegan2":
        return [_case(presets.SG2_BATCH, 256, dt, presets.priority(256, dt, primary=False)) for dt in dts]
    return []

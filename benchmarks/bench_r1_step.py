"""r1_step cases: StyleGAN2's lazy R1 step through a config-F resnet D (``benchmarks.nets``): D(x), the input
gradient with ``create_graph``, ``gradient_norm_penalty``, backward to D."""

from __future__ import annotations

from typing import List

import torch

from . import nets, presets
from .harness import Case


def _case(n: int, res: int, base: int, cmax: int, dtype, prio: int, err_batch=None,
          compile=True, passes=("fwd", "fwdbwd", "dbl")) -> Case:
    def make(device, dtype, batch):
        p = nets.d_params(res, base, cmax, device, dtype)
        p["img"] = torch.randn(n if batch is None else batch, 3, res, res, device=device).to(dtype)
        return p

    def run(t, impl):
        return nets.d_forward(t, t["img"], res, impl)

    probe = nets.d_params(res, base, cmax, "meta", torch.float32)
    nparams = sum(t.numel() for k, t in probe.items() if k != "fir")
    return Case(op="r1_step", name=f"D{res}", shape=f"StyleGAN2 resnet D {res}px, batch {n}, "
                f"{nparams / 1e6:.1f}M params", dtype=dtype, make=make, run=run,
                diff=tuple(k for k in probe if k != "fir") + ("img",), specs=nets.D_SPECS, passes=passes,
                steps={"dbl": nets.r1_step}, err_batch=err_batch, priority=prio, items_per_call=n,
                compile=compile, compile_note=presets.CI_NO_COMPILE_NOTE,
                compile_mode=presets.NET_COMPILE_MODE,
                note="dbl = lazy R1 step (D(x), grad with create_graph, penalty, backward to D); fwdbwd = "
                     "plain D backward" + (f"; max_abs_err at batch {err_batch}" if err_batch else ""))


def cases(preset: str, device: torch.device) -> List[Case]:
    dts = presets.dtypes(preset, device)
    if preset == "ci":
        return [_case(presets.CI_BATCH, presets.CI_NET_RES, presets.CI_NET_BASE, presets.CI_NET_CMAX, dt, 2,
                      compile=False, passes=("fwd", "dbl")) for dt in dts]
    if preset == "stylegan2":
        return [_case(presets.SG2_BATCH, 256, presets.SG2_BASE, presets.SG2_CMAX, dt, presets.priority(256, dt),
                      err_batch=2) for dt in dts]
    return []

"""Gradient penalty cases: the ``gradient_norm_penalty`` op on image-shaped gradients, and the
StyleGAN2 lazy R1 step through a config-F resnet D (``benchmarks.nets``)."""

from __future__ import annotations

from typing import List

import torch

from gan_fast import ops

from . import nets, presets
from .harness import Case, op_module as _op

op_module = _op("gradient_norm_penalty")


def _gnp_case(n: int, res: int, dtype, prio: int) -> Case:
    def make(device, dtype, batch):
        return {"g": torch.randn(n, 3, res, res, device=device).to(dtype)}

    def run(t, impl):
        return ops.gradient_norm_penalty(t["g"], impl=impl)

    return Case(op="gradient_norm_penalty", name=f"{res}px", shape=f"grads [{n}, 3, {res}, {res}], center 0, mean",
                dtype=dtype, make=make, run=run, diff=("g",), op_modules=(op_module,),
                passes=("fwd", "fwdbwd", "dbl"), priority=prio)


def _r1_case(n: int, res: int, base: int, cmax: int, dtype, prio: int, err_batch=None,
             compile=True, passes=("fwd", "fwdbwd", "dbl")) -> Case:
    names: List[str] = []

    def make(device, dtype, batch):
        p = nets.d_params(res, base, cmax, device, dtype)
        names[:] = list(p)
        p["img"] = torch.randn(n if batch is None else batch, 3, res, res, device=device).to(dtype)
        return p

    def run(t, impl):
        return nets.d_forward(t, t["img"], res, impl)

    probe = nets.d_params(res, base, cmax, "meta", torch.float32)
    nparams = sum(t.numel() for k, t in probe.items() if k != "fir")
    return Case(op="r1_step", name=f"D{res}", shape=f"StyleGAN2 resnet D {res}px, batch {n}, "
                f"{nparams / 1e6:.1f}M params", dtype=dtype, make=make, run=run,
                diff=tuple(k for k in probe if k != "fir") + ("img",), op_modules=nets.D_OPS, passes=passes,
                steps={"dbl": nets.r1_step}, err_batch=err_batch, priority=prio, items_per_call=n,
                compile=compile, compile_note=presets.CI_NO_COMPILE_NOTE,
                compile_mode=presets.NET_COMPILE_MODE,
                note="dbl = lazy R1 step (D(x), grad with create_graph, penalty, backward to D); fwdbwd = "
                     "plain D backward" + (f"; max_abs_err at batch {err_batch}" if err_batch else ""))


def cases(preset: str, device: torch.device) -> List[Case]:
    dts = presets.dtypes(preset, device)
    if preset == "ci":
        return ([_gnp_case(8, 64, dt, 2) for dt in dts] +
                [_r1_case(presets.CI_BATCH, presets.CI_NET_RES, presets.CI_NET_BASE, presets.CI_NET_CMAX, dt, 2,
                          compile=False, passes=("fwd", "dbl")) for dt in dts])
    if preset == "stylegan2":
        out = [_gnp_case(presets.SG2_BATCH, 256, dt, presets.priority(256, dt, primary=False)) for dt in dts]
        out += [_r1_case(presets.SG2_BATCH, 256, presets.SG2_BASE, presets.SG2_CMAX, dt, presets.priority(256, dt),
                         err_batch=2) for dt in dts]
        return out
    return []

"""path_length_step cases: StyleGAN2's lazy path-length step through a config-F synthesis network
(``benchmarks.nets``, skip architecture, ``fused_modconv=False`` as StyleGAN2-ADA trains)."""

from __future__ import annotations

from typing import List

import torch

from . import nets, presets
from .harness import Case


def _pl_case(n: int, res: int, base: int, cmax: int, w_dim: int, dtype, prio: int, err_batch=None,
             compile=True, passes=("fwd", "fwdbwd", "dbl")) -> Case:
    nws = nets.num_ws(res)

    def make(device, dtype, batch):
        p = nets.g_params(res, base, cmax, w_dim, device, dtype)
        p["ws"] = torch.randn(n if batch is None else batch, nws, w_dim, device=device).to(dtype)
        return p

    def run(t, impl):
        return nets.g_forward(t, t["ws"], res, impl, fused_modconv=False)

    probe = nets.g_params(res, base, cmax, w_dim, "meta", torch.float32)
    diff = tuple(k for k in probe if not k.endswith("noise_const") and k != "fir") + ("ws",)
    nparams = sum(probe[k].numel() for k in diff[:-1])
    return Case(op="path_length_step", name=f"G{res}", shape=f"StyleGAN2 synthesis {res}px, batch {n}, "
                f"{nparams / 1e6:.1f}M params", dtype=dtype, make=make, run=run, diff=diff,
                specs=nets.G_SPECS, passes=passes, steps={"dbl": nets.pl_step},
                err_batch=err_batch, priority=prio, items_per_call=n,
                compile=compile, compile_note=presets.CI_NO_COMPILE_NOTE,
                compile_mode=presets.NET_COMPILE_MODE,
                note="dbl = lazy path-length step (G(ws), J^T y with create_graph, penalty, backward to G)" +
                     (f"; max_abs_err at batch {err_batch}" if err_batch else ""))


def cases(preset: str, device: torch.device) -> List[Case]:
    dts = presets.dtypes(preset, device)
    if preset == "ci":
        return [_pl_case(presets.CI_BATCH, presets.CI_NET_RES, presets.CI_NET_BASE, presets.CI_NET_CMAX,
                         presets.CI_W_DIM, dt, 2, compile=False, passes=("fwd", "dbl")) for dt in dts]
    if preset == "stylegan2":
        return [_pl_case(presets.SG2_PL_BATCH, 256, presets.SG2_BASE, presets.SG2_CMAX, presets.SG2_W_DIM, dt,
                         presets.priority(256, dt), err_batch=2) for dt in dts]
    return []

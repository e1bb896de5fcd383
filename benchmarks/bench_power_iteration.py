"""power_iteration cases: one power iteration (u, v updates and sigma) on the largest spectrally normalised
matrix of a BigGAN-128 D (ci: a 128 x 1152 matrix)."""

from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F

from gan_fast import ops
from gan_fast.backends import power_iteration as backends

from .harness import Case


def _pi_case(h: int, w: int, dtype, name: str) -> Case:
    def make(device, dtype, batch):
        return {"W": (torch.randn(h, w, device=device) / w ** 0.5).to(dtype),
                "u": F.normalize(torch.randn(h, device=device), dim=0).to(dtype),
                "v": F.normalize(torch.randn(w, device=device), dim=0).to(dtype)}

    def run(t, impl):
        return ops.power_iteration(t["W"], t["u"], t["v"], n_iterations=1, impl=impl)

    return Case(op="power_iteration", name=name, shape=f"W [{h}, {w}], 1 iteration", dtype=dtype, make=make, run=run,
                diff=("W",), specs=(backends.SPEC,), passes=("fwd", "fwdbwd"))


def cases(preset: str, device: torch.device) -> List[Case]:
    if preset == "ci":
        return [_pi_case(128, 128 * 9, torch.float32, "128x1152")]
    if preset == "biggan":
        return [_pi_case(1536, 1536 * 9, torch.float32, "1536x13824")]
    return []

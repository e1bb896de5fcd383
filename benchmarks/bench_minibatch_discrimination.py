"""Minibatch discrimination cases: the pairwise op of ``MinibatchDiscrimination`` at the paper's shape
(B = 100 kernels of C = 5 dims, batch N = 64) and at N = 256, forward, backward and the double backward that
R1 through a D with this layer takes. On CUDA the peak memory column shows what the Triton kernels save by
never materialising the [N, N, B, C] differences that ``ref`` (and torch.compile of it) builds."""

from __future__ import annotations

from typing import List

import torch

from gan_fast.backends import minibatch_discrimination as backends
from gan_fast.ops import minibatch_discrimination

from . import presets
from .harness import Case

PAPER_B, PAPER_C = 100, 5


def _case(n: int, dtype, prio: int) -> Case:
    def make(device, dtype, batch):
        gen = torch.Generator().manual_seed(0)
        # M = x @ T of a trained D is O(1) per entry: L1 distances over C = 5 dims of a few units.
        return {"m": (0.3 * torch.randn(n, PAPER_B, PAPER_C, generator=gen)).to(device=device, dtype=dtype)}

    def run(t, impl):
        return minibatch_discrimination(t["m"], impl=impl)

    return Case(op="minibatch_discrimination", name=f"N{n}", shape=f"M [{n}, {PAPER_B}, {PAPER_C}]", dtype=dtype,
                make=make, run=run, diff=("m",), specs=(backends.SPEC,), passes=("fwd", "fwdbwd", "dbl"),
                priority=prio, items_per_call=n,
                note="the pairwise part of MinibatchDiscrimination(A, 100, 5); dbl = its second order (R1)")


def cases(preset: str, device: torch.device) -> List[Case]:
    dts = presets.dtypes(preset, device)
    if preset == "ci":
        return [_case(64, dt, 3) for dt in dts]  # N = 256 materialises 33M-entry tensors in ref: GPU only
    if preset == "stylegan2":
        return [_case(n, dt, 60 + (0 if dt == torch.float32 else 1)) for n in (64, 256) for dt in dts]
    return []

"""The runner's cases under pytest-benchmark: one parametrised test over every ``bench_<op>.py`` module.

``python -m pytest benchmarks`` (the repo's ``testpaths`` is ``tests``, so this file is collected only when asked
for; ``-k bias_act`` selects one op, as the test ids start with the module's op). Environment:

* ``GAN_FAST_BENCH_PRESET``: ci (default), stylegan2, biggan or stylegan3.
* ``GAN_FAST_BENCH_COMPILE=1``: also time ``torch.compile(ref)`` (off by default: compiling takes seconds per case
  on CPU).
* ``GAN_FAST_BENCH_THREADS``: CPU threads (default 1, as the runner).

Each test is one (case, row, pass); tests of one case and pass share a pytest-benchmark group, so its table
compares the rows. The max abs error against the float64 reference goes into ``extra_info``.
"""

from __future__ import annotations

import importlib
import os
from typing import Dict, List

import pytest
import torch

from benchmarks import OP_MODULES
from benchmarks.harness import (BASELINES, Runner, Skipped, TimingConfig, _CaseContext, dtype_name, reset_compiler,
                                synchronize)

PRESET = os.environ.get("GAN_FAST_BENCH_PRESET", "ci")
COMPILE = os.environ.get("GAN_FAST_BENCH_COMPILE", "0") not in ("", "0")
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if DEVICE.type == "cpu":  # as the runner: one thread, OpenMP regions stall on shared cores
    torch.set_num_threads(int(os.environ.get("GAN_FAST_BENCH_THREADS", "1")))
_RUNNER = Runner(DEVICE, TimingConfig(), compile_enabled=COMPILE)
_CONTEXTS: Dict[int, _CaseContext] = {}


def _params() -> List:
    """pytest parameters (case, row, pass) for every measurement of every bench module's cases."""
    out = []
    for module in OP_MODULES:
        for case in importlib.import_module(f"benchmarks.{module}").cases(PRESET, DEVICE):
            if isinstance(case, Skipped):
                out.append(pytest.param(case, None, None, id=f"{case.op}-{case.name}",
                                        marks=pytest.mark.skip(reason=case.note)))
                continue
            lib, comp, missing = _RUNNER.plan(case)
            for row in lib + comp:
                for p in case.passes:
                    vid = f"[{row.variant}]" if row.variant else ""
                    out.append(pytest.param(case, row, p,
                                            id=f"{case.op}-{case.name}-{dtype_name(case.dtype)}-{p}-{row.backend}{vid}"))
            for name, why in missing.items():
                if name == "compile" and not COMPILE:
                    why = "set GAN_FAST_BENCH_COMPILE=1 to time torch.compile"
                out.append(pytest.param(case, None, None, id=f"{case.op}-{case.name}-{name}",
                                        marks=pytest.mark.skip(reason=f"{name} not measured here: {why}")))
    return out


@pytest.mark.parametrize("case,row,pass_name", _params())
def test_benchmark(benchmark, case, row, pass_name):
    ctx = _CONTEXTS.get(id(case))
    if ctx is None:
        ctx = _CONTEXTS[id(case)] = _CaseContext(case, DEVICE)
    if row.backend == "compile":
        reset_compiler()
    ms, fns = _RUNNER._prepare(ctx, row, passes=[pass_name])
    m, fn = ms[0], fns[0]
    if m.status != "ok" or fn is None:
        if row.backend == "compile":
            pytest.skip(f"torch.compile cannot run this pass: {m.error}")
        pytest.fail(f"{case.label} {row.backend} {pass_name}: {m.error or m.note}")
    benchmark.group = f"{case.op}/{case.name} {dtype_name(case.dtype)} {pass_name}"
    benchmark.extra_info.update({"backend": row.backend, "variant": row.variant, "device": str(DEVICE),
                                 "max_abs_err": m.max_abs_err, "ref_max_abs": m.ref_max_abs,
                                 "baseline": row.backend in BASELINES})

    def call():
        fn()
        synchronize(DEVICE)

    rounds = case.reps or (5 if DEVICE.type == "cpu" else 20)
    benchmark.pedantic(call, rounds=rounds, warmup_rounds=1, iterations=case.sample_calls or 1)

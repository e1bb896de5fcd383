"""Shared code of the ``test_bench_*.py`` files: the runner's cases under pytest-benchmark.

``python -m pytest benchmarks`` (the repo's ``testpaths`` is ``tests``, so these are
collected only when asked for). Environment:

* ``GAN_FAST_BENCH_PRESET``: ci (default), stylegan2 or biggan.
* ``GAN_FAST_BENCH_COMPILE=1``: also time ``torch.compile(ref)`` (off by default: compiling
  takes seconds per case on CPU).

Each test is one (case, backend, variant, pass); tests of one case and pass share a
pytest-benchmark group, so its table compares the backends. The max abs error against the
float64 reference goes into ``extra_info``.
"""

from __future__ import annotations

import os
from typing import Dict, List

import pytest
import torch

from .harness import (BASELINES, Runner, Skipped, TimingConfig, _CaseContext, dtype_name, reset_compiler,
                      synchronize)

PRESET = os.environ.get("GAN_FAST_BENCH_PRESET", "ci")
COMPILE = os.environ.get("GAN_FAST_BENCH_COMPILE", "0") not in ("", "0")
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if DEVICE.type == "cpu":  # as the runner: one thread, OpenMP regions stall on shared cores
    torch.set_num_threads(int(os.environ.get("GAN_FAST_BENCH_THREADS", "1")))
_RUNNER = Runner(DEVICE, TimingConfig())
_CONTEXTS: Dict[int, _CaseContext] = {}


def params(cases) -> List:
    """pytest parameters (case, backend, impl, variant, pass) for every measurement of the cases."""
    out = []
    for case in cases:
        if isinstance(case, Skipped):
            out.append(pytest.param(case, None, None, None, None, id=case.label,
                                    marks=pytest.mark.skip(reason=case.note)))
            continue
        backends, unusable = _RUNNER.backends(case)
        first_variant = next(iter(case.variants))
        for backend, impl in backends:
            if backend == "compile" and (not COMPILE or not case.compile):
                continue
            for vname in case.variants:
                if backend in case.extra_baselines and vname != first_variant:
                    continue
                for p in case.passes:
                    vid = f"[{vname}]" if vname and backend not in case.extra_baselines else ""
                    out.append(pytest.param(case, backend, impl, vname, p,
                                            id=f"{case.name}-{dtype_name(case.dtype)}-{p}-{backend}{vid}"))
        for name, why in unusable.items():
            out.append(pytest.param(case, name, name, "", case.passes[0], id=f"{case.name}-{name}",
                                    marks=pytest.mark.skip(reason=f"{name} unavailable: {why}")))
    return out


def run(benchmark, case, backend: str, impl: str, vname: str, pass_name: str) -> None:
    ctx = _CONTEXTS.get(id(case))
    if ctx is None:
        ctx = _CONTEXTS[id(case)] = _CaseContext(case, DEVICE)
    if backend == "compile":
        reset_compiler()
    extra = backend in case.extra_baselines
    ms, fns = _RUNNER._prepare(ctx, backend, impl, "" if extra else vname, case.variants[vname], passes=[pass_name])
    m, fn = ms[0], fns[0]
    if m.status != "ok" or fn is None:
        if backend == "compile":
            pytest.skip(f"torch.compile cannot run this pass: {m.error}")
        pytest.fail(f"{case.label} {backend} {pass_name}: {m.error or m.note}")
    benchmark.group = f"{case.op}/{case.name} {dtype_name(case.dtype)} {pass_name}"
    benchmark.extra_info.update({"backend": backend, "variant": vname, "device": str(DEVICE),
                                 "max_abs_err": m.max_abs_err, "ref_max_abs": m.ref_max_abs,
                                 "baseline": backend in BASELINES})

    def call():
        fn()
        synchronize(DEVICE)

    rounds = case.reps or (5 if DEVICE.type == "cpu" else 20)
    benchmark.pedantic(call, rounds=rounds, warmup_rounds=1, iterations=1)

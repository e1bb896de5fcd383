"""pytest-benchmark: the spectral_norm cases of the runner (see benchmarks/_pytest_support.py)."""

import pytest

from benchmarks import bench_spectral_norm
from benchmarks._pytest_support import DEVICE, PRESET, params, run

CASES = bench_spectral_norm.cases(PRESET, DEVICE)


@pytest.mark.parametrize("case,backend,impl,variant,pass_name", params(CASES))
def test_spectral_norm(benchmark, case, backend, impl, variant, pass_name):
    run(benchmark, case, backend, impl, variant, pass_name)

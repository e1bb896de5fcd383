"""pytest-benchmark: the host-overhead cases of the runner (see benchmarks/_pytest_support.py)."""

import pytest

from benchmarks import bench_overhead
from benchmarks._pytest_support import DEVICE, PRESET, params, run

CASES = bench_overhead.cases(PRESET, DEVICE)


@pytest.mark.parametrize("case,backend,impl,variant,pass_name", params(CASES))
def test_overhead(benchmark, case, backend, impl, variant, pass_name):
    run(benchmark, case, backend, impl, variant, pass_name)

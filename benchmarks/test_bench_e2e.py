"""pytest-benchmark: the e2e cases of the runner (see benchmarks/_pytest_support.py)."""

import pytest

from benchmarks import bench_e2e
from benchmarks._pytest_support import DEVICE, PRESET, params, run

CASES = bench_e2e.cases(PRESET, DEVICE)


@pytest.mark.parametrize("case,backend,impl,variant,pass_name", params(CASES))
def test_e2e(benchmark, case, backend, impl, variant, pass_name):
    run(benchmark, case, backend, impl, variant, pass_name)

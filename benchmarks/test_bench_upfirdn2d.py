"""pytest-benchmark: the upfirdn2d cases of the runner (see benchmarks/_pytest_support.py)."""

import pytest

from benchmarks import bench_upfirdn2d
from benchmarks._pytest_support import DEVICE, PRESET, params, run

CASES = bench_upfirdn2d.cases(PRESET, DEVICE)


@pytest.mark.parametrize("case,backend,impl,variant,pass_name", params(CASES))
def test_upfirdn2d(benchmark, case, backend, impl, variant, pass_name):
    run(benchmark, case, backend, impl, variant, pass_name)

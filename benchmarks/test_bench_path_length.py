"""pytest-benchmark: the path_length cases of the runner (see benchmarks/_pytest_support.py)."""

import pytest

from benchmarks import bench_path_length
from benchmarks._pytest_support import DEVICE, PRESET, params, run

CASES = bench_path_length.cases(PRESET, DEVICE)


@pytest.mark.parametrize("case,backend,impl,variant,pass_name", params(CASES))
def test_path_length(benchmark, case, backend, impl, variant, pass_name):
    run(benchmark, case, backend, impl, variant, pass_name)

"""pytest-benchmark: the filtered_lrelu cases of the runner (see benchmarks/_pytest_support.py)."""

import pytest

from benchmarks import bench_filtered_lrelu
from benchmarks._pytest_support import DEVICE, PRESET, params, run

CASES = bench_filtered_lrelu.cases(PRESET, DEVICE)


@pytest.mark.parametrize("case,backend,impl,variant,pass_name", params(CASES))
def test_filtered_lrelu(benchmark, case, backend, impl, variant, pass_name):
    run(benchmark, case, backend, impl, variant, pass_name)

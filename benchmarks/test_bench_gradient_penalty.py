"""pytest-benchmark: the gradient_penalty cases of the runner (see benchmarks/_pytest_support.py)."""

import pytest

from benchmarks import bench_gradient_penalty
from benchmarks._pytest_support import DEVICE, PRESET, params, run

CASES = bench_gradient_penalty.cases(PRESET, DEVICE)


@pytest.mark.parametrize("case,backend,impl,variant,pass_name", params(CASES))
def test_gradient_penalty(benchmark, case, backend, impl, variant, pass_name):
    run(benchmark, case, backend, impl, variant, pass_name)

"""pytest-benchmark: the minibatch_discrimination cases of the runner (see benchmarks/_pytest_support.py)."""

import pytest

from benchmarks import bench_minibatch_discrimination
from benchmarks._pytest_support import DEVICE, PRESET, params, run

CASES = bench_minibatch_discrimination.cases(PRESET, DEVICE)


@pytest.mark.parametrize("case,backend,impl,variant,pass_name", params(CASES))
def test_minibatch_discrimination(benchmark, case, backend, impl, variant, pass_name):
    run(benchmark, case, backend, impl, variant, pass_name)

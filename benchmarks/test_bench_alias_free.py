"""pytest-benchmark: the alias-free synthesis layer cases of the runner (see benchmarks/_pytest_support.py)."""

import pytest

from benchmarks import bench_alias_free
from benchmarks._pytest_support import DEVICE, PRESET, params, run

CASES = bench_alias_free.cases(PRESET, DEVICE)


@pytest.mark.parametrize("case,backend,impl,variant,pass_name", params(CASES))
def test_alias_free_layer(benchmark, case, backend, impl, variant, pass_name):
    run(benchmark, case, backend, impl, variant, pass_name)

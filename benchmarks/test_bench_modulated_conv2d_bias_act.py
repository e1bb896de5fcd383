"""pytest-benchmark: the modulated_conv2d_bias_act cases of the runner (see benchmarks/_pytest_support.py)."""

import pytest

from benchmarks import bench_modulated_conv2d_bias_act
from benchmarks._pytest_support import DEVICE, PRESET, params, run

CASES = bench_modulated_conv2d_bias_act.cases(PRESET, DEVICE)


@pytest.mark.parametrize("case,backend,impl,variant,pass_name", params(CASES))
def test_modulated_conv2d_bias_act(benchmark, case, backend, impl, variant, pass_name):
    run(benchmark, case, backend, impl, variant, pass_name)

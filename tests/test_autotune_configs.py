"""Every autotune config of every autotuned kernel runs once against ref.

The test suite launches autotuned kernels with their first config only (``GAN_FAST_AUTOTUNE=first``, set in
conftest: tuning every test shape would cost more than the tests), and a benchmark run keeps whichever config
wins: so each config is forced once here, at one shape, on the GPU. On CPU the kernels run under the
interpreter with its own tile sizes, so only the bookkeeping is checked there: the switch works and every
autotuned kernel in gan_fast.kernels has a case below.
"""

import importlib
import pkgutil

import pytest
import torch

import gan_fast.kernels as kernels_pkg
from gan_fast import ops
from gan_fast.kernels import _common
from parity import assert_close_scaled


def _upfirdn2d(channels_last):
    def run(device, impl):
        g = torch.Generator(device=device).manual_seed(0)
        x = torch.randn(2, 67, 19, 21, generator=g, device=device)
        if channels_last:
            x = x.to(memory_format=torch.channels_last)
        f = ops.setup_filter([1, 3, 3, 1], device=device)
        return (ops.upsample2d(x, f, impl=impl), ops.downsample2d(x, f, impl=impl))
    return run


def _implicit_gemm(device, impl):
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(2, 67, 13, 11, generator=g, device=device)
    w = torch.randn(131, 67, 3, 3, generator=g, device=device) / 25
    s = torch.rand(2, 67, generator=g, device=device) + 0.5
    b = torch.randn(131, generator=g, device=device)
    return (ops.modulated_conv2d_bias_act(x, w, s, b, padding=1, act="lrelu", algorithm="implicit_gemm", impl=impl),)


# "module.attribute" of each Tuned kernel -> a run(device, impl) that launches it
CASES = {
    "upfirdn2d._tuned_nchw": _upfirdn2d(False),
    "upfirdn2d._tuned_nhwc": _upfirdn2d(True),
    "modulated_conv2d_bias_act._tuned": _implicit_gemm,
}


def _tuned_kernels():
    found = {}
    for info in pkgutil.iter_modules(kernels_pkg.__path__):
        mod = importlib.import_module(f"gan_fast.kernels.{info.name}")
        for name, obj in vars(mod).items():
            if isinstance(obj, _common.Tuned):
                found[f"{info.name}.{name}"] = obj
    return found


def test_every_autotuned_kernel_has_a_case():
    assert set(_tuned_kernels()) == set(CASES)


def test_tests_run_one_config_and_force_config_switches(monkeypatch):
    tuned = _tuned_kernels()["upfirdn2d._tuned_nchw"]
    launched = []
    monkeypatch.setattr(type(tuned.fn), "__getitem__",
                        lambda self, grid: (lambda *a, **kw: launched.append((kw["BLOCK_P"], kw["num_warps"]))))
    monkeypatch.setenv("GAN_FAST_AUTOTUNE", "first")
    tuned[(1,)]()
    with _common.force_config(2):
        tuned[(1,)]()
    cfg0, cfg2 = tuned.configs[0], tuned.configs[2]
    assert launched == [(cfg0.kwargs["BLOCK_P"], cfg0.num_warps), (cfg2.kwargs["BLOCK_P"], cfg2.num_warps)]


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_config_matches_ref_on_gpu(name):
    tuned = _tuned_kernels()[name]
    want = CASES[name](torch.device("cuda"), "ref")
    for index in range(len(tuned.configs)):
        with _common.force_config(index):
            got = CASES[name](torch.device("cuda"), "triton")
        for a, b in zip(got, want):
            assert_close_scaled(a, b, 5e-3)  # TF32 in the implicit GEMM, as in cuDNN's float32 convolutions

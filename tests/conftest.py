"""Test configuration.

Without a GPU, Triton kernels run on CPU tensors under Triton's interpreter,
which must be switched on before triton is first imported. On a GPU machine
(benchmarks/gpu.sh) the same tests run on CUDA tensors instead.

Backends: a test parametrized with a fast backend (a parameter value 'cpp' or
'triton', or 'triton:...') that cannot run on the test device is skipped with
the reason, at test level, so one missing backend (e.g. the extension's CUDA
kernels on a GPU machine without nvcc) never costs a whole file. Where a
backend must be there (CI builds the extension: ``.ci/run`` sets
``GAN_FAST_REQUIRE_BACKENDS=cpp,triton``), its absence fails the test instead.
"""

import importlib.metadata
import os

HAS_NVIDIA_DEVICE = os.path.exists("/dev/nvidiactl")
if not HAS_NVIDIA_DEVICE:
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported
os.environ.pop("GAN_FAST_IMPL", None)  # tests choose backends explicitly (gan_fast.config reads it at import)

import pytest  # noqa: E402

from gan_fast.version import interpreter_problem  # noqa: E402


def _interpreter_problem():
    try:
        return interpreter_problem(importlib.metadata.version("triton"), importlib.metadata.version("numpy"))
    except importlib.metadata.PackageNotFoundError:
        return None


if not HAS_NVIDIA_DEVICE and _interpreter_problem():  # one line instead of hundreds of interpreter failures
    pytest.exit(_interpreter_problem(), returncode=3)

import torch  # noqa: E402

from gan_fast import backend, config  # noqa: E402

# One autotune config per kernel: tuning every test shape would cost more than the tests
# (tests/test_autotune_configs.py runs every config once).
config.set_autotune("first")

FAST = ("cpp", "triton")


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture
def device() -> torch.device:
    """CUDA on the GPU machine, else CPU."""
    return _device()


def fast_backends(spec) -> list:
    """The fast backends of an op (its ``gan_fast.backends.<op>.SPEC``), for parametrizing tests on this
    machine's test device. A backend that cannot run here is still listed: its tests skip (or, when required,
    fail) with the reason (see the module docstring)."""
    return [b for b in spec.backends if b != "ref"]


def _required() -> set:
    return {b.strip() for b in os.environ.get("GAN_FAST_REQUIRE_BACKENDS", "").split(",") if b.strip()}


def pytest_runtest_setup(item):
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return
    for value in callspec.params.values():
        name = value.partition(":")[0] if isinstance(value, str) else None
        if name not in FAST:
            continue
        ok, why = backend.available_backends(_device())[name]
        if ok:
            continue
        if name in _required():
            pytest.fail(f"fast backend {name!r} is required (GAN_FAST_REQUIRE_BACKENDS) but cannot run: {why}")
        pytest.skip(f"the {name} backend cannot run on {_device().type} here: {why}")


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """One intra-op thread: on 2 shared cores OpenMP's parallel regions stall (a model step
    measured 2.6 s with 2 threads vs 0.06 s with 1), and tests assert values, not speed."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; runs on the GPU machine via benchmarks/gpu.sh")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)

"""Test configuration.

Without a GPU, Triton kernels run on CPU tensors under Triton's interpreter,
which must be switched on before triton is first imported. On a GPU machine
(benchmarks/gpu.sh) the same tests run on CUDA tensors instead.
"""

import os

HAS_NVIDIA_DEVICE = os.path.exists("/dev/nvidiactl")
if not HAS_NVIDIA_DEVICE:
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.pop("GAN_FAST_IMPL", None)  # tests choose backends explicitly

import pytest  # noqa: E402
import torch  # noqa: E402

from gan_fast import backend  # noqa: E402


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture
def device() -> torch.device:
    """CUDA on the GPU machine, else CPU."""
    return _device()


def fast_backends(op_fast_backends) -> list:
    """The fast backends of an op (its ``FAST_BACKENDS`` dict) that can run on this machine's test device.

    Triton counts on CPU only under the interpreter (set above). A backend the
    op has but that cannot run here is an error, not a silent skip, unless it is
    the CUDA-only path on a machine without a GPU.
    """
    dev = _device()
    names = sorted({b for order in op_fast_backends.values() for b in order})
    usable = []
    for name in names:
        ok, why = backend.available_backends(dev)[name]
        if not ok:
            raise RuntimeError(f"fast backend {name!r} cannot run in the test environment: {why}")
        usable.append(name)
    return usable


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

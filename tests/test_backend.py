"""Backend selection: aliases, env override, explicit requests, one fallback warning."""

import subprocess
import sys
import warnings

import pytest
import torch

from gan_fast import backend, ops

CPU = torch.device("cpu")


def test_aliases_and_unknown_names():
    assert backend.normalize_impl("cuda") == "cpp"
    assert backend.normalize_impl("REF") == "ref"
    assert backend.normalize_impl(None) is None
    with pytest.raises(ValueError, match="impl must be None or one of"):
        backend.normalize_impl("cudnn")
    with pytest.raises(TypeError, match="impl must be None"):
        backend.normalize_impl(3)


def test_automatic_choice_without_fast_backends_is_ref():
    assert backend.resolve("op", None, CPU, {}) == "ref"


def test_triton_is_never_automatic_on_cpu(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert backend.resolve("op", None, CPU, {"cpu": ("triton",)}) == "ref"


def test_explicit_backend_the_op_lacks_is_a_value_error():
    with pytest.raises(ValueError, match="no 'triton' backend"):
        backend.resolve("op", "triton", CPU, {"cpu": ("cpp",)})


def test_explicit_unavailable_backend_says_what_is_missing(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(backend.BackendUnavailableError, match="needs CUDA tensors"):
        backend.resolve("op", "triton", CPU, {"cuda": ("triton",)})


def test_env_override(monkeypatch):
    monkeypatch.setenv("GAN_FAST_IMPL", "ref")
    assert backend.resolve("op", None, CPU, {"cpu": ("cpp",)}) == "ref"
    monkeypatch.setenv("GAN_FAST_IMPL", "triton")
    assert backend.resolve("op", None, CPU, {"cpu": ("cpp",)}) == "ref"  # ops without it use ref
    monkeypatch.setenv("GAN_FAST_IMPL", "bogus")
    with pytest.raises(ValueError, match="GAN_FAST_IMPL must be None or one of"):
        backend.resolve("op", None, CPU, {})


def test_fallback_warns_once(monkeypatch):
    monkeypatch.setattr(backend, "cpp_status", lambda: (False, "simulated: extension missing"))
    backend.reset_warnings()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert backend.resolve("op", None, CPU, {"cpu": ("cpp",)}) == "ref"
    msgs = [str(w.message) for w in caught if "gan_fast" in str(w.message)]
    assert len(msgs) == 1 and "simulated: extension missing" in msgs[0]
    with pytest.raises(backend.BackendUnavailableError, match="simulated"):
        backend.resolve("op", "cpp", CPU, {"cpu": ("cpp",)})
    backend.reset_warnings()


def test_available_backends_report():
    report = backend.available_backends("cpu")
    assert set(report) == {"ref", "triton", "cpp"} and report["ref"] == (True, "")


def test_public_ops_honour_impl():
    with pytest.raises(ValueError, match="power_iteration: no 'cpp' backend"):
        ops.power_iteration(torch.ones(2, 2), torch.ones(2), torch.ones(2), impl="cpp")


def test_kernels_are_not_a_top_level_package(tmp_path):
    code = ("import importlib.util, gan_fast.kernels; "
            "print(importlib.util.find_spec('kernels') is None, gan_fast.kernels.__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "gan_fast.kernels"]


def test_kernels_import_from_a_checkout_used_in_place(tmp_path):
    """PYTHONPATH=<checkout> without installing (gpu.sh's fallback): gan_fast.kernels is the checkout's kernels/."""
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for name in ("gan_fast", "kernels"):
        shutil.copytree(root / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    code = "import gan_fast, gan_fast.kernels.upfirdn2d as k; print(gan_fast.__file__); print(k.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
    lines = out.stdout.split()
    assert lines[0].startswith(str(tmp_path / "gan_fast")) and lines[1] == str(tmp_path / "kernels" / "upfirdn2d.py")


def test_an_unhashable_impl_gets_the_message_that_names_impl():
    with pytest.raises(TypeError, match="impl must be None or one of"):
        backend.resolve("op", ["ref"], CPU, {})

"""Backend selection: aliases, forced backends, explicit requests and refusals, one fallback warning, the
choice inside a torch.compile trace."""

import subprocess
import sys
import warnings

import pytest
import torch

from gan_fast import backend, config, ops
from gan_fast.backends.common import OpSpec
from gan_fast.errors import BackendUnavailableError, UnsupportedDtypeError

CPU = torch.device("cpu")
CPP_OP = OpSpec("op", "op", {"cpu": ("cpp",)})
TRITON_OP = OpSpec("op_t", "op_t", {"cuda": ("triton",)})


@pytest.fixture(autouse=True)
def _fresh_choices(monkeypatch):
    backend.reset_warnings()
    # These tests plant 'cpp' backends: they run even where the extension is switched off (GAN_FAST_EXT=0).
    monkeypatch.setattr(config, "extension_mode", lambda: "auto")
    yield
    backend.reset_warnings()


def test_aliases_and_unknown_names():
    assert backend.normalize_impl("cuda") == "cpp"
    assert backend.normalize_impl("REF") == "ref"
    assert backend.normalize_impl(None) is None
    with pytest.raises(ValueError, match="impl must be None or one of"):
        backend.normalize_impl("cudnn")
    with pytest.raises(TypeError, match="impl must be None"):
        backend.normalize_impl(3)


def test_automatic_choice_without_fast_backends_is_ref():
    assert backend.choose(OpSpec("none", "none", {}), None, CPU) == "ref"


def test_triton_is_never_automatic_on_cpu(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert backend.choose(OpSpec("t", "t", {"cpu": ("triton",)}), None, CPU) == "ref"


def test_explicit_backend_the_op_lacks_is_a_value_error():
    with pytest.raises(ValueError, match="op: no 'triton' backend"):
        backend.choose(CPP_OP, "triton", CPU)


def test_explicit_unavailable_backend_says_what_is_missing(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(BackendUnavailableError, match="needs CUDA tensors.*impl='ref' runs it"):
        backend.choose(TRITON_OP, "triton", CPU)


def test_forced_backend(monkeypatch):
    monkeypatch.setattr(backend, "_device_status", lambda b, d: (True, ""))
    with config.use_backend("ref"):
        assert backend.choose(CPP_OP, None, CPU) == "ref"
    with config.use_backend("triton"):
        assert backend.choose(CPP_OP, None, CPU) == "ref"  # ops without it use ref
    with config.use_backend("cpp"):
        assert backend.choose(CPP_OP, None, CPU, torch.float32, numel=1) == "cpp"  # forced: whatever the size
        assert backend.choose(CPP_OP, "ref", CPU) == "ref"  # the call's impl wins
    with config.use_backend(op="cpp"):  # per op, by the public op's name
        assert backend.choose(CPP_OP, None, CPU) == "cpp"
    with pytest.raises(ValueError, match="must be None or one of"):
        with config.use_backend("bogus"):
            pass


def test_set_backend_is_process_wide_and_use_backend_overrides_it(monkeypatch):
    monkeypatch.setattr(backend, "_device_status", lambda b, d: (True, ""))
    try:
        config.set_backend("cpp")
        assert config.forced_backend("op") == "cpp"
        with config.use_backend(None):
            assert config.forced_backend("op") is None
    finally:
        config.set_backend()
    assert config.forced_backend("op") is None


def test_use_backend_is_thread_local():
    import threading

    seen = {}
    with config.use_backend("ref"):
        t = threading.Thread(target=lambda: seen.setdefault("other", config.forced_backend("bias_act")))
        t.start()
        t.join()
        seen["this"] = config.forced_backend("bias_act")
    assert seen == {"other": None, "this": "ref"}


def test_environment_is_read_once_and_a_bad_value_names_the_variable():
    def run(env):
        code = "import gan_fast.config as c; print(c.forced_backend('bias_act'), c.extension_mode())"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**__import__("os").environ, **env})

    out = run({"GAN_FAST_IMPL": "CUDA", "GAN_FAST_EXT": "0"})
    assert out.returncode == 0 and out.stdout.split() == ["cpp", "off"], out.stderr
    bad = run({"GAN_FAST_IMPL": "bogus"})
    assert bad.returncode != 0 and "GAN_FAST_IMPL" in bad.stderr and "'ref', 'triton', 'cpp'" in bad.stderr
    bad = run({"GAN_FAST_EXT": "sometimes"})
    assert bad.returncode != 0 and "GAN_FAST_EXT='sometimes' is invalid" in bad.stderr


def test_refusals_are_explicit_and_the_automatic_choice_takes_ref(monkeypatch):
    monkeypatch.setattr(backend, "_device_status", lambda b, d: (True, ""))
    spec = OpSpec("r", "r", {"cpu": ("cpp",)}, cannot={"cpp": {"float64": "it computes in float32",
                                                              "learned filter": "the filter is a constant"}})
    with pytest.raises(UnsupportedDtypeError, match="impl='cpp' cannot run this call: it computes in float32"):
        backend.choose(spec, "cpp", CPU, torch.float64, needs=("float64",))
    with pytest.raises(TypeError):  # a dtype refusal is also a TypeError
        backend.choose(spec, "cpp", CPU, torch.float64, needs=("float64",))
    with pytest.raises(BackendUnavailableError, match="the filter is a constant.*impl='ref' runs it"):
        backend.choose(spec, "cpp", CPU, torch.float32, needs=("learned filter",))
    with config.use_backend("cpp"):  # a forced backend is automatic: ref takes what it refuses
        assert backend.choose(spec, None, CPU, torch.float64, needs=("float64",)) == "ref"
        assert backend.choose(spec, None, CPU, torch.float64) == "cpp"


def test_fallback_warns_once_at_the_callers_line(monkeypatch):
    monkeypatch.setattr(backend, "cpp_status", lambda: (False, "simulated: extension missing"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            assert backend.choose(CPP_OP, None, CPU) == "ref"
    msgs = [w for w in caught if "gan_fast" in str(w.message)]
    assert len(msgs) == 1 and "simulated: extension missing" in str(msgs[0].message)
    assert msgs[0].filename == __file__  # the warning points at the caller, not inside gan_fast
    with pytest.raises(BackendUnavailableError, match="simulated"):
        backend.choose(CPP_OP, "cpp", CPU)


def test_available_backends_tells_the_truth_here():
    report = backend.available_backends("cpu")
    assert set(report) == {"ref", "triton", "cpp"} and report["ref"] == (True, "")
    if not torch.cuda.is_available():
        cuda = backend.available_backends("cuda")
        assert cuda["ref"] == (True, "")
        for name in ("triton", "cpp"):
            assert cuda[name][0] is False and "CUDA is not available" in cuda[name][1]


def test_public_ops_honour_impl():
    with pytest.raises(ValueError, match="power_iteration: no 'cpp' backend"):
        ops.power_iteration(torch.ones(2, 2), torch.ones(2), torch.ones(2), impl="cpp")


def test_kernels_are_not_a_top_level_package(tmp_path):
    code = ("import importlib.util, gan_fast.kernels; "
            "print(importlib.util.find_spec('kernels') is None, gan_fast.kernels.__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "gan_fast.kernels"]


def test_an_unhashable_impl_gets_the_message_that_names_impl():
    with pytest.raises(TypeError, match="impl must be None or one of"):
        backend.choose(CPP_OP, ["ref"], CPU)


# ------------------------------------------------------------------------------------------- torch.compile


def test_a_compiled_call_reads_the_eager_choice_and_retraces_when_it_is_made(monkeypatch):
    """Inside a trace no self-test runs: before any eager choice the graph runs ref; once an eager call has
    chosen the fast backend, Dynamo's guard on the choice retraces and the graph runs it. A use_backend block
    around a compiled call is not seen by the trace (a ContextVar); the process-wide set_backend is."""
    monkeypatch.setattr(backend, "_device_status", lambda b, d: (True, ""))
    monkeypatch.setattr(backend.self_test, "passed", lambda *a, **k: (True, ""))
    spec = OpSpec("traced_op", "traced_op", {"cpu": ("cpp",)})

    def f(x):
        return x * (2.0 if backend.choose(spec, None, x.device, x.dtype) == "cpp" else 3.0)

    compiled = torch.compile(f, backend="eager", fullgraph=True)
    x = torch.ones(3)
    assert compiled(x)[0].item() == 3.0  # no eager choice yet: ref
    assert backend.choose(spec, None, CPU, torch.float32) == "cpp"  # the eager choice
    assert compiled(x)[0].item() == 2.0  # retraced: the chosen backend
    with config.use_backend("ref"):
        assert compiled(x)[0].item() == 2.0  # a use_backend block is baked out of the compiled graph
    try:
        config.set_backend("ref")
        assert compiled(x)[0].item() == 3.0  # the process-wide setting is guarded: retraced
    finally:
        config.set_backend()
    torch.compiler.reset()

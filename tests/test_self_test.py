"""The first-use self-test: every fast backend passes it here; every kind of wrong kernel fails it; the automatic
choice falls back to ref once, with one warning, and never picks an op that registers no case."""

import glob
import math
import warnings

import pytest
import torch

from gan_fast import backend, config, ops, self_test
from gan_fast.backends import SPECS
from gan_fast.backends.common import OpSpec
from gan_fast.self_test import cache, cli
from gan_fast.self_test.judge import Entry

CPU = torch.device("cpu")
CASES = [(spec.name, impl) for spec in SPECS for impl in spec.backends if impl != "ref"]


@pytest.fixture(autouse=True)
def _fresh_verdicts(tmp_path):
    old = config.cache_dir()
    config.set_cache_dir(tmp_path / "cache")  # no verdict from another test or run is read
    self_test.reset()
    backend.reset_warnings()
    yield
    self_test.reset()
    backend.reset_warnings()
    config.set_cache_dir(old)


def test_every_op_registers_a_case():
    assert set(self_test.registered()) >= {spec.name for spec in SPECS}


# Known: the Triton filtered_lrelu backward in float16 is about 10x less accurate than ref in float16 (first-order dx
# 6.6e-3 against ref's 6.0e-4 at RMS 0.2 on case 0), so its self-test sends float16 calls to ref, with one warning.
# Strict: the day the kernel is fixed this fails, and the mark goes.
_KNOWN_FAILING = {("filtered_lrelu", "triton", torch.float16)}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("op, impl", CASES)
def test_fast_backends_pass_their_self_test(op, impl, dtype, device, request):
    """The real kernels pass in float32 and float16 (here under the interpreter; on the GPU machine for real)."""
    if (op, impl, dtype) in _KNOWN_FAILING:
        request.applymarker(pytest.mark.xfail(strict=True, reason="filtered_lrelu's float16 backward: see above"))
    ok, why = self_test.check(op, impl, device, (dtype,))
    assert ok, why


# ------------------------------------------------------------------------------------------------ planted kernels
# A nonlinear op y = 1.5 tanh(x) over 3 x 37 x 41 = 4551 elements (more than one GPU block of 1024), whose 'ref'
# is exact and whose 'cpp' is a planted kernel: honest, or wrong in exactly one way.

N_BLOCK = 1024  # the planted defects start after the first block, as a launch bug past program 0 would


def _past_first_block(t, factor):
    scale = torch.ones(t.numel(), dtype=t.dtype, device=t.device)
    scale[N_BLOCK:] = factor
    return t * scale.view(t.shape)


class _Planted(torch.autograd.Function):
    """y = 1.5 tanh(x) computed another way (1.5 (2 sigmoid(2x) - 1)); backward per ``defect``."""

    @staticmethod
    def forward(ctx, x, defect):
        ctx.save_for_backward(x)
        ctx.defect = defect
        y = 1.5 * (2 * torch.sigmoid(2 * x) - 1)
        if defect == "forward_past_first_block":
            y = _past_first_block(y, 1.001)
        if defect == "fp16_only" and x.dtype == torch.float16:
            y = y + 0.02 * y.abs().max()
        return y

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        if ctx.defect == "backward_not_differentiable":
            with torch.no_grad():
                return dy * 1.5 * (1 - torch.tanh(x) ** 2), None
        dx = dy * 1.5 * (1 - torch.tanh(x) ** 2)  # differentiable: built from torch ops
        if ctx.defect == "backward_past_first_block":
            dx = _past_first_block(dx, 0.999)
        return dx, None


def _planted_case(defect):
    def case(device, gen):
        x = torch.randn(3, 37, 41, generator=gen, device=device).requires_grad_()

        def run(impl, t):
            x = t[0]
            return (1.5 * torch.tanh(x) if impl == "ref" else _Planted.apply(x, defect),)
        return run, [x]
    return case


def _plant(monkeypatch, op, case):
    self_test.registered()  # the built-in cases are loaded first: a planted op is added to them
    monkeypatch.setitem(self_test._CASES, op, Entry((case,), ("cpp",)))


def test_the_honest_planted_kernel_passes(monkeypatch):
    _plant(monkeypatch, "planted", _planted_case(None))
    assert self_test.check("planted", "cpp", CPU, (torch.float32, torch.float16)) == (True, "")


@pytest.mark.parametrize("defect, where", [
    ("forward_past_first_block", "forward"),
    ("backward_past_first_block", "gradient"),
    ("backward_not_differentiable", "second-order gradient"),
])
def test_a_wrong_planted_kernel_is_rejected(monkeypatch, defect, where):
    _plant(monkeypatch, "planted", _planted_case(defect))
    ok, why = self_test.check("planted", "cpp", CPU)
    assert not ok and f"AssertionError: {where} 0" in why, why


def test_a_kernel_wrong_only_in_float16_is_rejected_where_float16_is_checked(monkeypatch):
    _plant(monkeypatch, "planted", _planted_case("fp16_only"))
    assert self_test.check("planted", "cpp", CPU, (torch.float32,)) == (True, "")
    # The dtype list is injectable: on CUDA it is float32, float16 and bfloat16.
    monkeypatch.setattr(self_test, "dtypes", lambda device: (torch.float32, torch.float16))
    ok, why = self_test.passed("planted", "cpp", CPU)
    assert not ok and "float16" in why and "forward" in why, why
    # A call in float32 is resolved on its own dtype's verdict, one in float16 on float16's.
    assert self_test.passed("planted", "cpp", CPU, torch.float32) == (True, "")
    assert not self_test.passed("planted", "cpp", CPU, torch.float16)[0]


def _round_mantissa(t, bits=10):
    """t with its float32 mantissa rounded to ``bits`` bits, as TF32 tensor cores read their inputs."""
    m, e = torch.frexp(t.float())
    return torch.ldexp(torch.round(m * 2 ** (bits + 1)) / 2 ** (bits + 1), e).to(t.dtype)


def _matmul_case(fast_error):
    """y = x @ w where, as under TF32, ``ref`` in float32 rounds its inputs to 10 mantissa bits; the planted fast
    kernel rounds them too and adds ``fast_error`` times TF32's rounding error of its own."""
    def case(device, gen):
        x = torch.randn(64, 256, generator=gen, device=device).requires_grad_()
        w = torch.randn(256, 48, generator=gen, device=device).requires_grad_()

        def run(impl, t):
            x, w = t
            if x.dtype == torch.float64:
                return (x @ w,)
            if impl == "ref":
                return (_round_mantissa(x) @ _round_mantissa(w),)
            y = _round_mantissa(x) @ _round_mantissa(w)
            return (y + fast_error * (y - x @ w).detach(),)
        return run, [x, w]
    return case


def test_tf32_rounding_shared_by_ref_passes_and_a_kernel_much_worse_fails(monkeypatch):
    """The judge scales with ref's own error in the caller's precision settings: an honest TF32 kernel (error
    ~1e-3, far above a fixed float32 tolerance) passes; one 30 times worse than ref does not."""
    _plant(monkeypatch, "planted_tf32", _matmul_case(0.5))
    assert self_test.check("planted_tf32", "cpp", CPU) == (True, "")
    _plant(monkeypatch, "planted_tf32", _matmul_case(30.0))
    ok, why = self_test.check("planted_tf32", "cpp", CPU)
    assert not ok and "forward 0" in why, why


def test_judge_floor_is_the_rms_not_the_max():
    """A result that zeroes a third of its entries fails even in bfloat16 (a floor at the max would let it pass)."""
    truth = torch.randn(3000, dtype=torch.float64)
    truth[0] = 100.0  # one large entry
    base = truth.to(torch.bfloat16)
    got = base.clone()
    got[1000:2000] = 0
    with pytest.raises(AssertionError, match="exceeds"):
        self_test.judge(got, base, truth, "forward 0")
    self_test.judge(base.clone(), base, truth, "forward 0")  # ref itself passes


def test_judge_rejects_nan_where_truth_and_ref_are_finite():
    truth = torch.ones(10, dtype=torch.float64)
    got = torch.ones(10)
    got[3] = math.nan
    with pytest.raises(AssertionError, match="NaN or infinity"):
        self_test.judge(got, truth.float(), truth, "forward 0")


# ------------------------------------------------------------------------------------------------ fallback


def test_a_wrong_backend_falls_back_to_ref_with_one_warning(monkeypatch):
    _plant(monkeypatch, "wrong_op", _planted_case("forward_past_first_block"))
    _cpp_runs_here(monkeypatch)
    spec = OpSpec("wrong_op", "wrong_op", {"cpu": ("cpp",)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        picks = [backend.choose(spec, None, CPU, torch.float32) for _ in range(3)]
        explicit = backend.choose(spec, "cpp", CPU)
    assert picks == ["ref"] * 3 and explicit == "cpp"  # an explicit request is honoured
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and "self-test failed" in msgs[0] and "forward" in msgs[0]


def _cpp_runs_here(monkeypatch):
    """The planted ops' 'cpp' backend is usable, even where the extension is switched off (GAN_FAST_EXT=0)."""
    monkeypatch.setattr(backend, "_device_status", lambda b, d: (True, ""))
    monkeypatch.setattr(backend.config, "extension_mode", lambda: "auto")


def test_an_op_without_a_case_is_never_chosen_automatically(monkeypatch):
    _cpp_runs_here(monkeypatch)
    assert "case_less_op" not in self_test.registered()
    spec = OpSpec("case_less_op", "case_less_op", {"cpu": ("cpp",)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert backend.choose(spec, None, CPU) == "ref"
    assert any("registers no self-test case" in str(w.message) for w in caught)
    assert backend.choose(spec, "cpp", CPU) == "cpp"


def test_a_raising_backend_falls_back(monkeypatch):
    def case(device, gen):
        x = torch.randn(3, generator=gen, device=device).requires_grad_()

        def run(impl, t):
            if impl != "ref":
                raise RuntimeError("simulated: no kernel image for this GPU")
            return (t[0].exp(),)
        return run, [x]

    _plant(monkeypatch, "raising_op", case)
    ok, why = self_test.check("raising_op", "triton", CPU)
    assert not ok and "no kernel image" in why


def test_self_test_ignores_the_callers_modes():
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ok, why = self_test.check("bias_act", "ref", CPU)
    assert ok, why


def test_command_line_reports_ops_and_fails_on_a_wrong_backend(monkeypatch, capsys, device):
    """``gan-fast-self-test``: one line per (op, fast backend), exit status 1 only when one fails."""
    assert cli.main(["--device", device.type, "--op", "^bias_act$"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert lines and {line.split()[0] for line in lines} == {"bias_act"}
    assert all(line.split()[2] in ("ok", "unavailable:") for line in lines)

    _plant(monkeypatch, "wrong_op", _planted_case("backward_past_first_block"))
    monkeypatch.setattr(backend, "available_backends", lambda d: {"cpp": (True, ""), "triton": (True, "")})
    assert cli.main(["--device", device.type, "--op", "wrong_op"]) == 1
    out = capsys.readouterr().out
    assert "wrong_op" in out and "cpp     FAILED" in out and "gradient 0" in out


def test_the_anchor_of_the_gpu_tests_passes_ref_and_rejects_a_wrong_kernel():
    """tests/parity.assert_anchored (the float64 anchor of the full-size GPU tests) on CPU."""
    from parity import assert_anchored

    x = torch.randn(2, 5, 6, 7)
    b = torch.randn(5)

    def run(impl, scale=1.0):
        def fn(t):
            x, b = (u.detach().requires_grad_() for u in t)
            y = ops.bias_act(x, b, act="swish", impl="ref") * scale
            return y, torch.autograd.grad(y.square().sum(), [x, b])
        return fn

    assert_anchored(run("ref"), run("ref"), [x, b], torch.float32)
    with pytest.raises(AssertionError, match="result 0"):
        assert_anchored(run("ref", 1.001), run("ref"), [x, b], torch.float32)


def test_judge_tf32_allowance_is_bounded():
    """An op registered with tf32=True gets TF32's rounding (2^-11 at the RMS, times TF32_EPS) on top of ref's
    exact-float32 error, and no more."""
    truth = torch.randn(4000, dtype=torch.float64)
    base = truth.float()
    allowance = self_test.TF32_EPS * 2.0 ** -11
    rms = truth.square().mean().sqrt().item()
    self_test.judge(base + 0.5 * allowance * rms, base, truth, "forward 0", allowance)
    with pytest.raises(AssertionError, match="exceeds"):
        self_test.judge(base + 0.5 * allowance * rms, base, truth, "forward 0")  # exact float32: no allowance
    with pytest.raises(AssertionError, match="exceeds"):
        self_test.judge(base + 2 * allowance * rms, base, truth, "forward 0", allowance)


def test_command_line_usage_errors(capsys):
    assert cli.main(["--op", "no_such_op"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "matches no op" in err and "bias_act" in err
    if not torch.cuda.is_available():
        assert cli.main(["--device", "cuda"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "CUDA is not available" in err


# ------------------------------------------------------------------------------------------ the verdict cache


def _counting_case(counter, fail=None):
    def case(device, gen):
        counter.append(1)
        x = torch.randn(5, generator=gen, device=device).requires_grad_()

        def run(impl, t):
            if impl != "ref" and fail is not None:
                raise fail
            return (t[0].tanh(),)
        return run, [x]
    return case


def test_a_verdict_is_kept_on_disk_and_read_by_a_new_process(monkeypatch):
    runs = []
    _plant(monkeypatch, "cached_op", _counting_case(runs))
    assert self_test.passed("cached_op", "cpp", CPU, torch.float32) == (True, "")
    assert runs and len(glob.glob(cache.directory() + "/cached_op-cpp-*.json")) == 1
    runs.clear()
    self_test.reset()  # a new process: nothing in memory
    assert self_test.passed("cached_op", "cpp", CPU, torch.float32) == (True, "")
    assert runs == []  # read from disk, not run again
    monkeypatch.setattr(cache, "sources_digest", lambda: "another-kernel-source")
    self_test.reset()
    assert self_test.passed("cached_op", "cpp", CPU, torch.float32) == (True, "")
    assert runs  # the key names the kernels' sources: changed sources run the check again


def test_a_transient_failure_is_not_written(monkeypatch):
    runs = []
    _plant(monkeypatch, "oom_op", _counting_case(runs, fail=torch.cuda.OutOfMemoryError("CUDA out of memory")))
    ok, why = self_test.passed("oom_op", "cpp", CPU, torch.float32)
    assert not ok and "out of memory" in why
    assert glob.glob(cache.directory() + "/oom_op-*.json") == []
    _plant(monkeypatch, "wrong_op", _counting_case(runs, fail=RuntimeError("no kernel image for this GPU")))
    assert not self_test.passed("wrong_op", "cpp", CPU, torch.float32)[0]
    assert len(glob.glob(cache.directory() + "/wrong_op-*.json")) == 1  # a real failure is kept


def test_a_read_only_cache_directory_keeps_verdicts_in_memory(monkeypatch, tmp_path):
    runs = []
    _plant(monkeypatch, "ro_op", _counting_case(runs))
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache directory should be")
    config.set_cache_dir(blocker)  # makedirs fails: as a read-only location does
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning either
        assert self_test.passed("ro_op", "cpp", CPU, torch.float32) == (True, "")
    runs.clear()
    assert self_test.passed("ro_op", "cpp", CPU, torch.float32) == (True, "")
    assert runs == []  # the verdict is held in memory


def test_a_corrupt_verdict_file_is_ignored_with_one_warning_and_replaced(monkeypatch):
    runs = []
    _plant(monkeypatch, "corrupt_op", _counting_case(runs))
    self_test.passed("corrupt_op", "cpp", CPU, torch.float32)
    (path,) = glob.glob(cache.directory() + "/corrupt_op-cpp-*.json")
    with open(path, "w") as f:
        f.write("{not json")
    self_test.reset()
    runs.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert self_test.passed("corrupt_op", "cpp", CPU, torch.float32) == (True, "")
        self_test.reset()
        self_test.passed("corrupt_op", "cpp", CPU, torch.float32)  # replaced: read cleanly now
    assert runs == [1]
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and "unreadable self-test verdict" in msgs[0], msgs


def test_clear_cache_removes_the_stored_verdicts(monkeypatch, capsys):
    _plant(monkeypatch, "clear_op", _counting_case([]))
    self_test.passed("clear_op", "cpp", CPU, torch.float32)
    assert glob.glob(cache.directory() + "/*.json")
    assert cli.main(["--clear-cache"]) == 0
    assert "removed" in capsys.readouterr().out
    assert glob.glob(cache.directory() + "/*.json") == []

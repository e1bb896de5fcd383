"""The first-use self-test: every fast backend passes it here; a broken one falls back to ref once."""

import warnings

import pytest
import torch

from gan_fast import backend, ops, self_test  # noqa: F401 - importing ops registers the cases
from conftest import fast_backends

OPS = {
    "bias_act": ops.bias_act, "upfirdn2d": ops.upfirdn2d, "modulated_conv2d": ops.modulated_conv2d,
    "power_iteration": ops.power_iteration, "spectral_normalize": ops.spectral_normalize,
    "gradient_norm_penalty": ops.gradient_norm_penalty, "modulated_conv2d_bias_act": ops.modulated_conv2d_bias_act,
}
CASES = [(op, impl) for op in OPS for impl in fast_backends(__import__(f"gan_fast.ops.{op}", fromlist=["x"]).FAST_BACKENDS)]
# modulated_conv2d_bias_act registers one case per algorithm
CASES += [("modulated_conv2d_bias_act:implicit_gemm", impl) for op, impl in CASES if op == "modulated_conv2d_bias_act"]


def test_every_op_registers_a_case():
    assert set(self_test._CASES) >= set(OPS)


@pytest.mark.parametrize("op, impl", CASES)
def test_fast_backends_pass_their_self_test(op, impl, device):
    ok, why = self_test._run(op, impl, device)
    assert ok, why


def test_a_wrong_backend_falls_back_to_ref_with_one_warning(monkeypatch):
    def case(device, gen):
        x = torch.randn(3, 4, generator=gen, device=device).requires_grad_()
        return (lambda impl: (x * (2.0 if impl == "ref" else 2.01),)), [x]

    monkeypatch.setitem(self_test._CASES, "wrong_op", case)
    monkeypatch.setattr(backend, "_device_status", lambda b, d: (True, ""))
    self_test.reset()
    backend.reset_warnings()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        picks = [backend.resolve("wrong_op", None, torch.device("cpu"), {"cpu": ("cpp",)}) for _ in range(3)]
        explicit = backend.resolve("wrong_op", "cpp", torch.device("cpu"), {"cpu": ("cpp",)})
    assert picks == ["ref"] * 3 and explicit == "cpp"  # an explicit request is honoured
    msgs = [str(w.message) for w in caught]
    assert len(msgs) == 1 and "self-test failed" in msgs[0] and "forward" in msgs[0]
    self_test.reset()
    backend.reset_warnings()


def test_a_raising_backend_falls_back(monkeypatch):
    def case(device, gen):
        x = torch.randn(3, generator=gen, device=device).requires_grad_()

        def run(impl):
            if impl != "ref":
                raise RuntimeError("simulated: no kernel image for this GPU")
            return (x.exp(),)
        return run, [x]

    monkeypatch.setitem(self_test._CASES, "raising_op", case)
    ok, why = self_test._run("raising_op", "triton", torch.device("cpu"))
    assert not ok and "no kernel image" in why


def test_self_test_ignores_the_callers_modes():
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ok, why = self_test._run("bias_act", "ref", torch.device("cpu"))
    assert ok, why


def test_command_line_reports_every_op_and_fails_on_a_wrong_backend(monkeypatch, capsys, device):
    """``gan-fast-self-test``: one line per (op, fast backend), exit status 1 only when one fails."""
    assert self_test.main(["--device", device.type]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert {line.split()[0] for line in lines} == set(self_test._CASES)
    assert all(line.split()[2] in ("ok", "unavailable:") for line in lines)

    def case(device, gen):
        x = torch.randn(3, generator=gen, device=device).requires_grad_()
        return (lambda impl: (x * (2.0 if impl == "ref" else 2.5),)), [x]

    monkeypatch.setitem(self_test._CASES, "wrong_op", case)
    monkeypatch.setitem(self_test._BACKENDS, "wrong_op", ("cpp",))
    monkeypatch.setattr(backend, "available_backends", lambda d: {"cpp": (True, ""), "triton": (True, "")})
    self_test.reset()
    assert self_test.main(["--device", device.type]) == 1
    assert "wrong_op                     cpp     FAILED: its self-test failed" in capsys.readouterr().out
    self_test.reset()

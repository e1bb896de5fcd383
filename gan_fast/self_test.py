"""First-use self-test of a fast backend: a kernel that fails on this machine falls back to ``ref``.

The first time ``impl=None`` would pick a fast backend for an op on a device,
a tiny case runs through it and through ``ref`` — forward, gradient (both the
plain backward of a training step and the differentiable one of a penalty)
and second-order gradient. If the fast path raises (a Triton kernel that does not
compile for this GPU, a missing CUDA arch in the extension) or disagrees, that
op uses ``ref`` on that device from then on, with one warning saying why. The
check costs a few tiny launches once per (op, backend, device type), runs with
its own RNG, and ignores the caller's autocast / no-grad / inference mode.
"""

from __future__ import annotations

import threading
from typing import Callable, Dict, Sequence, Tuple

import torch

# op name -> case(device, generator) -> (run(impl) -> tuple of outputs, differentiable inputs)
Case = Callable[[torch.device, torch.Generator], Tuple[Callable[[str], Sequence[torch.Tensor]], Sequence[torch.Tensor]]]
_CASES: Dict[str, Case] = {}
_BACKENDS: Dict[str, Tuple[str, ...]] = {}  # op -> the fast backends it has (on any device)
_results: Dict[Tuple[str, str, str], Tuple[bool, str]] = {}
_lock = threading.Lock()
RTOL, ATOL = 1e-3, 1e-4


def register(op: str, case: Case, fast_backends: Dict[str, Sequence[str]]) -> None:
    """Registers the tiny case that checks ``op``'s fast backends (called by each op module with its
    ``FAST_BACKENDS``)."""
    _CASES[op] = case
    _BACKENDS[op] = tuple(sorted({b for order in fast_backends.values() for b in order}))


def passed(op: str, impl: str, device: torch.device) -> Tuple[bool, str]:
    """(ok, reason-if-not) for ``impl`` of ``op`` on ``device``'s type; runs the check once."""
    key = (op, impl, device.type)
    with _lock:
        if key not in _results:
            _results[key] = _run(op, impl, device) if op in _CASES else (True, "")
        return _results[key]


def reset() -> None:
    with _lock:
        _results.clear()


def _run(op: str, impl: str, device: torch.device) -> Tuple[bool, str]:
    try:
        with torch.inference_mode(False), torch.enable_grad(), torch.autocast(device.type, enabled=False):
            gen = torch.Generator(device=device).manual_seed(0)
            run, inputs = _CASES[op](device, gen)
            _compare(run, inputs, impl, gen)
        return True, ""
    except Exception as exc:  # noqa: BLE001 - any failure means: do not use this backend here
        return False, f"its self-test failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _differentiate(outs, inputs, weights):
    """(plain gradient, gradient under create_graph, second-order gradient) of sum <out, weight>."""
    def zeros_for_none(gs):
        return [torch.zeros_like(i) if g is None else g for g, i in zip(gs, inputs)]

    s = sum((o * w).sum() for o, w in zip(outs, weights) if o.requires_grad)
    # Fast backends may take a different path when no second order will follow (one fused pass).
    plain = zeros_for_none(torch.autograd.grad(s, inputs, retain_graph=True, allow_unused=True))
    g1 = zeros_for_none(torch.autograd.grad(s, inputs, create_graph=True, allow_unused=True))
    second = [g.square().sum() for g in g1 if g.requires_grad]
    if not second:
        return plain, g1, [torch.zeros_like(i) for i in inputs]
    return plain, g1, zeros_for_none(torch.autograd.grad(sum(second), inputs, allow_unused=True))


def _compare(run, inputs, impl, gen):
    want = run("ref")
    got = run(impl)
    weights = [torch.randn(o.shape, generator=gen, device=o.device, dtype=o.dtype) for o in want]
    for name, a, b in [("forward", got, want)] + list(zip(
            ("gradient", "gradient (create_graph)", "second-order gradient"),
            _differentiate(got, inputs, weights), _differentiate(want, inputs, weights))):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=RTOL, atol=ATOL, msg=lambda m, name=name: f"{name}: {m}")


def main(argv=None) -> int:
    """``gan-fast-self-test [--device DEVICE]``: every op's self-test on each of its fast backends here.

    Prints one line per (op, backend): ok, FAILED with the reason, or unavailable with why;
    exits 1 when a backend that can run here fails.
    """
    import argparse  # noqa: PLC0415

    from . import backend, ops  # noqa: F401, PLC0415 - importing ops registers every case

    ap = argparse.ArgumentParser(prog="gan-fast-self-test", description=main.__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(ap.parse_args(argv).device)
    status = backend.available_backends(device)
    failed = False
    print(f"gan_fast self-test on {device} (torch {torch.__version__})")
    for op in sorted(_CASES):
        for impl in _BACKENDS[op]:
            usable, why = status[impl]
            if not usable:
                print(f"  {op:28s} {impl:7s} unavailable: {why}")
                continue
            ok, reason = _run(op, impl, device)
            failed |= not ok
            print(f"  {op:28s} {impl:7s} {'ok' if ok else 'FAILED: ' + reason}")
    return 1 if failed else 0

"""First-use self-test of a fast backend: a kernel that is wrong or fails on this machine falls back to ``ref``.

The first time ``impl=None`` would pick a fast backend for an op on a device and
dtype, the op's registered cases run through it and are judged against
``ref``. It fails closed:

* an op with no registered case is never chosen automatically;
* every case checks the forward, the plain gradient (the one-pass backward of a
  training step), the gradient under ``create_graph`` and the second-order
  gradient, taken with respect to the inputs *and* the cotangent (the path a
  deep network's R1 backward differentiates, where a backward that is not
  itself differentiable would otherwise pass);
* the judge is a float64 ``ref`` run on the same values. The fast result may
  be off by a small multiple (:data:`ERROR_FACTOR`) of what ``ref`` itself is
  off in the caller's dtype and precision settings (TF32 included), plus a
  floor of a few units of the dtype's rounding at the RMS of the true result,
  never by more. So a kernel that is wrong in one block, one dtype or one
  memory layout fails, and an honest kernel running as it runs in training
  (TF32, fp16 accumulation around it) does not.

Cases (registered by each op module, see :func:`register`) are sized so that
every kernel runs more than one program along every grid axis at its GPU
block sizes, and include channels_last or sliced inputs; on CUDA they run in
float32, float16 and bfloat16 (:func:`dtypes`, injectable for tests).

The check runs once per (op, backend, device type, dtype), with its own RNG,
ignoring the caller's autocast / no-grad / inference mode. If the fast path
raises (a Triton kernel that does not compile for this GPU, a missing CUDA
arch in the extension) or disagrees, that op uses ``ref`` on that device and
dtype from then on, with one warning saying why.
"""

from __future__ import annotations

import contextlib
import math
import threading
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

__all__ = ["register", "passed", "dtypes", "reset", "check", "check_case", "judge", "main", "ERROR_FACTOR"]

# run(impl, leaves) -> the op's outputs; leaves are the case's tensors cast to the dtype under test.
Run = Callable[[str, Sequence[torch.Tensor]], Sequence[torch.Tensor]]
# case(device, generator) -> (run, float32 leaves); leaves that require grad are differentiated.
Case = Callable[[torch.device, torch.Generator], Tuple[Run, Sequence[torch.Tensor]]]

_CASES: Dict[str, Tuple[Case, ...]] = {}
_BACKENDS: Dict[str, Tuple[str, ...]] = {}  # op -> the fast backends it has (on any device)
_TF32_OPS: set = set()
_results: Dict[Tuple[str, str, str, torch.dtype], Tuple[bool, str]] = {}
_lock = threading.Lock()  # guards the dicts; each verdict has its own lock, so checks of other keys run meanwhile
_key_locks: Dict[Tuple[str, str, str, torch.dtype], threading.Lock] = {}

# A fast result may be off by this many times ref's own error in the same dtype ...
ERROR_FACTOR = 8.0
# ... plus this many units of the dtype's rounding (eps) at the RMS of the float64 result ...
FLOOR_EPS = {torch.float32: 64.0, torch.float64: 64.0, torch.float16: 4.0, torch.bfloat16: 4.0}
# ... plus, for an op registered with tf32=True running float32 on CUDA with TF32 allowed, this many units of
# TF32's rounding (2^-11) at that RMS. ref itself runs with TF32 off, so its error bounds exact arithmetic.
TF32_EPS = 16.0


def register(op: str, cases: Union[Case, Sequence[Case]], fast_backends: Dict[str, Sequence[str]],
             tf32: bool = False) -> None:
    """Registers the cases that check ``op``'s fast backends (called by each op module with its
    ``FAST_BACKENDS``). ``cases``: one case or a sequence of them. ``tf32``: the fast path may compute float32
    products in TF32 where the caller allows it (``torch.backends.cudnn.allow_tf32``: cuDNN convolutions, the
    implicit GEMM), which adds TF32's rounding to its bound; every other fast path is judged as exact float32."""
    _CASES[op] = (cases,) if callable(cases) else tuple(cases)
    _BACKENDS[op] = tuple(sorted({b for order in fast_backends.values() for b in order}))
    if tf32:
        _TF32_OPS.add(op)
    else:
        _TF32_OPS.discard(op)


def dtypes(device: torch.device) -> Tuple[torch.dtype, ...]:
    """The dtypes a device's self-test covers when none is named: float32, and on CUDA float16 and bfloat16."""
    if device.type == "cuda":
        return (torch.float32, torch.float16, torch.bfloat16)
    return (torch.float32,)


def passed(op: str, impl: str, device: torch.device, dtype: Optional[torch.dtype] = None) -> Tuple[bool, str]:
    """(ok, reason-if-not) for ``impl`` of ``op`` on ``device``'s type; runs the check once.

    ``dtype``: the dtype of the call being resolved (its check runs, in float32 for float64 and
    other dtypes outside :func:`dtypes`); None checks every dtype of :func:`dtypes`.
    """
    wanted = dtypes(device) if dtype is None else (dtype if dtype in dtypes(device) else torch.float32,)
    for dt in wanted:
        key = (op, impl, device.type, dt)
        verdict = _results.get(key)
        if verdict is None:
            with _lock:
                key_lock = _key_locks.setdefault(key, threading.Lock())
            with key_lock:  # one check per key; other ops and dtypes are not held up meanwhile
                verdict = _results.get(key)
                if verdict is None:
                    verdict = check(op, impl, device, (dt,))
                    with _lock:
                        _results[key] = verdict
        if not verdict[0]:
            return verdict
    return True, ""


_reset_hooks: List[Callable[[], None]] = []


def on_reset(hook: Callable[[], None]) -> None:
    """Calls ``hook`` whenever :func:`reset` forgets the verdicts (the backend's cached choices)."""
    _reset_hooks.append(hook)


def reset() -> None:
    """Forgets every verdict (tests use this)."""
    with _lock:
        _results.clear()
    for hook in _reset_hooks:
        hook()


def check(op: str, impl: str, device: torch.device,
          dtype_list: Optional[Sequence[torch.dtype]] = None) -> Tuple[bool, str]:
    """Runs every case of ``op`` through ``impl`` in each dtype (default :func:`dtypes`); (ok, reason)."""
    if op not in _CASES:
        return False, f"{op} registers no self-test case, so its fast backends are never chosen automatically"
    for dt in (dtypes(device) if dtype_list is None else dtype_list):
        for i in range(len(_CASES[op])):
            ok, why = check_case(op, i, impl, device, dt)
            if not ok:
                return ok, why
    return True, ""


def check_case(op: str, index: int, impl: str, device: torch.device, dtype: torch.dtype) -> Tuple[bool, str]:
    """Runs case ``index`` of ``op`` through ``impl`` in ``dtype``; (ok, reason)."""
    try:
        with torch.inference_mode(False), torch.enable_grad(), torch.autocast(device.type, enabled=False):
            gen = torch.Generator(device=device).manual_seed(index)
            run, leaves = _CASES[op][index](device, gen)
            _compare(run, leaves, impl, dtype, gen, op in _TF32_OPS)
        return True, ""
    except Exception as exc:  # noqa: BLE001 - any failure means: do not use this backend here
        msg = str(exc).strip().splitlines()
        where = f"case {index}, {str(dtype).replace('torch.', '')}"
        return False, f"its self-test failed ({where}): {type(exc).__name__}: {msg[0] if msg else ''}"


def _cast(leaves: Sequence[torch.Tensor], dtype: torch.dtype) -> List[torch.Tensor]:
    """Fresh leaves of ``dtype`` (memory format kept), requiring grad where the originals do."""
    return [t.detach().to(dtype).requires_grad_(t.requires_grad) if t.is_floating_point() else t for t in leaves]


def _passes(run: Run, impl: str, leaves: Sequence[torch.Tensor], weights: Sequence[torch.Tensor]):
    """{pass name: results} of one backend: forward, plain gradient, gradient under create_graph, and the
    second-order gradient of sum |g|^2 with respect to the inputs and the cotangent ``weights``."""
    outs = tuple(run(impl, leaves))
    diff = [t for t in leaves if t.requires_grad]
    pairs = [(o, w) for o, w in zip(outs, weights) if o.requires_grad]
    results = {"forward": list(outs)}
    if not diff or not pairs:
        return results
    s = sum((o * w).sum() for o, w in pairs)

    def filled(gs, like):
        return [torch.zeros_like(t) if g is None else g for g, t in zip(gs, like)]

    # Fast backends may take a different path when no second order will follow (one fused pass).
    results["gradient"] = filled(torch.autograd.grad(s, diff, retain_graph=True, allow_unused=True), diff)
    g1 = torch.autograd.grad(s, diff, create_graph=True, allow_unused=True)
    results["gradient (create_graph)"] = filled(g1, diff)
    wrt = diff + [w for _, w in pairs]
    # mean, not sum: keeps the second-order gradients inside float16's range (float64 stays float64)
    second = [g.to(torch.promote_types(g.dtype, torch.float32)).square().mean()
              for g in g1 if g is not None and g.requires_grad]
    if second:
        results["second-order gradient"] = filled(torch.autograd.grad(sum(second), wrt, allow_unused=True), wrt)
    else:
        results["second-order gradient"] = [torch.zeros_like(t) for t in wrt]
    return results


@contextlib.contextmanager
def _exact_float32():
    """TF32 off for cuDNN and matmuls (ref's own error then bounds exact float32 arithmetic)."""
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        cudnn = torch.backends.cudnn
        with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                         allow_tf32=False):
            yield
    finally:
        torch.set_float32_matmul_precision(old)


def _compare(run: Run, leaves: Sequence[torch.Tensor], impl: str, dtype: torch.dtype, gen: torch.Generator,
             tf32: bool = False) -> None:
    low = _cast(leaves, dtype)
    high = _cast(low, torch.float64)  # the same values, exactly
    truth_outs = tuple(run("ref", high))
    weights = [torch.randn(o.shape, generator=gen, device=o.device).to(dtype) for o in truth_outs]

    def cot(dt):  # every backend gets the same cotangent values (the low dtype's, exactly)
        return [w.to(dt).requires_grad_() for w in weights]

    truth = _passes(run, "ref", _cast(high, torch.float64), cot(torch.float64))
    with _exact_float32():
        base = _passes(run, "ref", _cast(low, dtype), cot(dtype))
    got = _passes(run, impl, _cast(low, dtype), cot(dtype))
    tf32_eps = 0.0
    if tf32 and dtype == torch.float32 and low and low[0].device.type == "cuda" and torch.backends.cudnn.allow_tf32:
        tf32_eps = TF32_EPS * 2.0 ** -11
    for name, want in truth.items():
        if name not in got or len(got[name]) != len(want):
            raise AssertionError(f"{name}: the {impl} backend returned {len(got.get(name, []))} results, "
                                 f"ref {len(want)}")
        for k, (g, b, t) in enumerate(zip(got[name], base[name], want)):
            judge(g, b, t, f"{name} {k}", tf32_eps)


def judge(got: torch.Tensor, base: torch.Tensor, truth: torch.Tensor, what: str, extra_eps: float = 0.0) -> None:
    """Raises AssertionError unless ``got`` (fast, in some dtype) is as close to ``truth`` (float64 ref)
    as ``base`` (ref in the same dtype) is, up to :data:`ERROR_FACTOR`, plus the dtype's floor (and
    ``extra_eps`` at the result's RMS: TF32's allowance)."""
    if got.shape != truth.shape:
        raise AssertionError(f"{what}: shape {tuple(got.shape)}, expected {tuple(truth.shape)}")
    if got.dtype != base.dtype:
        raise AssertionError(f"{what}: dtype {got.dtype}, expected {base.dtype} (ref's)")
    if truth.numel() == 0:
        return
    t = truth.detach().double()
    g = got.detach().double()
    b = base.detach().double()
    # Where ref in the caller's dtype overflows (or the truth is not finite), the dtype sets no bound: only
    # the non-finite values themselves must agree with the truth there.
    judged = torch.isfinite(t) & torch.isfinite(b)
    odd = ~judged & ~torch.isfinite(t)
    gv, tv = g[odd], t[odd]
    if not (torch.equal(torch.isnan(gv), torch.isnan(tv)) and torch.equal(torch.isinf(gv), torch.isinf(tv))
            and torch.equal(gv[torch.isinf(tv)], tv[torch.isinf(tv)])):
        raise AssertionError(f"{what}: NaN or infinities differ from the float64 reference")
    if not bool(torch.isfinite(g[judged]).all()):
        raise AssertionError(f"{what}: NaN or infinity where the float64 reference and ref in "
                             f"{str(base.dtype).replace('torch.', '')} are finite")
    if not bool(judged.any()):
        return
    t, g, b = t[judged], g[judged], b[judged]
    err = (g - t).abs().max().item()
    ref_err = (b - t).abs().max().item()
    rms = t.square().mean().sqrt().item()
    eps = torch.finfo(base.dtype).eps
    bound = ERROR_FACTOR * ref_err + (FLOOR_EPS.get(base.dtype, 64.0) * eps + extra_eps) * (rms if rms > 0 else 1.0)
    if not err <= bound or math.isnan(err):
        raise AssertionError(f"{what}: max error {err:.3g} against float64 exceeds {bound:.3g} "
                             f"({ERROR_FACTOR:g} x ref's own {ref_err:.3g} + floor; rms {rms:.3g})")


def main(argv=None) -> int:
    """``gan-fast-self-test [--device DEVICE] [--op REGEX]``: every op's self-test on each of its fast backends.

    Prints one line per (op, backend, dtype): ok, FAILED with the reason, or unavailable with why;
    exits 1 when a backend that can run here fails.
    """
    import argparse  # noqa: PLC0415
    import re  # noqa: PLC0415
    import time  # noqa: PLC0415

    from . import backend, ops  # noqa: F401, PLC0415 - importing ops registers every case

    ap = argparse.ArgumentParser(prog="gan-fast-self-test", description=main.__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--op", default=None, help="only ops whose name matches this regex")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    status = backend.available_backends(device)
    failed = False
    names = [dt for dt in (str(d).replace("torch.", "") for d in dtypes(device))]
    print(f"gan_fast self-test on {device} (torch {torch.__version__}; dtypes {', '.join(names)})", flush=True)
    for op in sorted(_CASES):
        if args.op and not re.search(args.op, op):
            continue
        for impl in _BACKENDS[op]:
            usable, why = status[impl]
            if not usable:
                print(f"  {op:40s} {impl:7s} unavailable: {why}", flush=True)
                continue
            for dt in dtypes(device):  # one line per dtype as it finishes: a run cut short keeps what it checked
                t0 = time.perf_counter()
                ok, reason = check(op, impl, device, (dt,))
                failed |= not ok
                took = f"{str(dt).replace('torch.', '')} ({time.perf_counter() - t0:.1f} s)"
                print(f"  {op:40s} {impl:7s} {'ok ' + took if ok else 'FAILED ' + took + ': ' + reason}",
                      flush=True)
    return 1 if failed else 0


if __name__ == "__main__":  # python -m gan_fast.self_test: run the registry's module, not this __main__ copy
    import sys

    from gan_fast.self_test import main as _main

    sys.exit(_main())

"""The self-test's judge: a fast backend's results against a float64 ``ref`` run of the same values.

The fast result may be off by a small multiple (:data:`ERROR_FACTOR`) of what ``ref`` itself is off in the
caller's dtype and precision settings (TF32 included), plus a floor of a few units of the dtype's rounding at
the RMS of the true result, never by more. So a kernel that is wrong in one block, one dtype or one memory
layout fails, and an honest kernel running as it runs in training (TF32, fp16 accumulation around it) does not.

Every case is compared on its forward, its plain gradient (the one-pass backward of a training step), its
gradient under ``create_graph`` and its second-order gradient, taken with respect to the inputs *and* the
cotangent (the path a deep network's R1 backward differentiates, where a backward that is not itself
differentiable would otherwise pass).
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, List, NamedTuple, Sequence, Tuple

import torch

__all__ = ["Run", "Case", "Entry", "compare", "judge", "ERROR_FACTOR", "FLOOR_EPS", "TF32_EPS"]

# run(impl, leaves) -> the op's outputs; leaves are the case's tensors cast to the dtype under test.
Run = Callable[[str, Sequence[torch.Tensor]], Sequence[torch.Tensor]]
# case(device, generator) -> (run, float32 leaves); leaves that require grad are differentiated.
Case = Callable[[torch.device, torch.Generator], Tuple[Run, Sequence[torch.Tensor]]]


class Entry(NamedTuple):
    """An op's self-test: its cases, the fast backends they check, and whether its fast path may use TF32
    where the caller allows it (cuDNN convolutions, the implicit GEMM), which adds TF32's rounding to the
    bound; every other fast path is judged as exact float32."""
    cases: Tuple[Case, ...]
    backends: Tuple[str, ...]
    tf32: bool = False

# A fast result may be off by this many times ref's own error in the same dtype ...
ERROR_FACTOR = 8.0
# ... plus this many units of the dtype's rounding (eps) at the RMS of the float64 result ...
FLOOR_EPS = {torch.float32: 64.0, torch.float64: 64.0, torch.float16: 4.0, torch.bfloat16: 4.0}
# ... plus, for an op registered with tf32=True running float32 on CUDA with TF32 allowed, this many units of
# TF32's rounding (2^-11) at that RMS. ref itself runs with TF32 off, so its error bounds exact arithmetic.
TF32_EPS = 16.0


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


def compare(run: Run, leaves: Sequence[torch.Tensor], impl: str, dtype: torch.dtype, gen: torch.Generator,
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

"""Shared assertions of the parity tests: a fast backend's outputs and gradients against ``ref``'s."""

from typing import Callable, Optional, Sequence

import torch

from gan_fast import self_test


def assert_close_scaled(a: torch.Tensor, b: torch.Tensor, tol: float = 2e-4) -> None:
    """|a - b| <= tol * |b| + tol * rms(b): relative, with an absolute floor at b's RMS.

    The floor is the RMS, not the max: a floor at the largest element would let a result that zeroes a
    large share of its small entries pass at half-precision tolerances.
    """
    b64 = b.double()
    rms = b64.square().mean().sqrt().item() if b.numel() else 0.0
    torch.testing.assert_close(a.double(), b64, rtol=tol, atol=tol * rms if rms > 0 else tol)


def assert_parity(y: torch.Tensor, grads: Sequence[torch.Tensor], y_ref: torch.Tensor,
                  grads_ref: Sequence[torch.Tensor], dtype: torch.dtype, tol_y: float, tol_grad: float) -> None:
    """The output has ``dtype``, each gradient its reference's dtype and shape, all within the tolerances."""
    assert y.dtype == dtype, (y.dtype, dtype)
    assert y.shape == y_ref.shape
    assert_close_scaled(y, y_ref, tol_y)
    assert len(grads) == len(grads_ref)
    for a, b in zip(grads, grads_ref):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert_close_scaled(a, b, tol_grad)


def _flat(out) -> list:
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for item in out if item is not None for t in _flat(item)]


def assert_anchored(run_fast: Callable, run_ref: Callable, inputs: Sequence[Optional[torch.Tensor]],
                    dtype: torch.dtype) -> None:
    """The float64 anchor of a full-size GPU test, at a small batch: ``run_fast(tensors)`` (outputs and
    gradients, any nesting) on ``inputs`` cast to ``dtype`` must be as close to ``run_ref`` in float64 as
    ``run_ref`` in ``dtype`` is, up to the self-test's factor (``gan_fast.self_test.judge``). A comparison with
    ref in the same low precision alone could hide an error both share."""
    low = [None if t is None else t.detach().to(dtype) for t in inputs]
    high = [None if t is None else t.double() for t in low]
    truth, base, got = _flat(run_ref(high)), _flat(run_ref(low)), _flat(run_fast(low))
    assert len(got) == len(truth) == len(base)
    for k, (g, b, t) in enumerate(zip(got, base, truth)):
        self_test.judge(g, b, t, f"result {k}")

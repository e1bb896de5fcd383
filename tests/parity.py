"""Shared assertions of the parity tests: a fast backend's outputs and gradients against ``ref``'s."""

from typing import Sequence

import torch


def assert_close_scaled(a: torch.Tensor, b: torch.Tensor, tol: float = 2e-4) -> None:
    """|a - b| <= tol * |b| + tol * max(1, max|b|): relative, with an absolute floor at b's scale."""
    torch.testing.assert_close(a.double(), b.double(), rtol=tol, atol=tol * max(1.0, b.abs().max().item()))


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

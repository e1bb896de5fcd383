"""The reference minibatch-discrimination pairwise op against its formula, written here as loops; gradcheck and
gradgradcheck in float64; identical rows; empty shapes; the module."""

import math

import pytest
import torch

from gan_fast.nn.minibatch_discrimination import MinibatchDiscrimination
from gan_fast.ops.minibatch_discrimination import minibatch_discrimination


def _formula(m: torch.Tensor) -> torch.Tensor:
    """o_b(x_i) = sum_{j != i} exp(-||M_ib - M_jb||_1), entry by entry in Python floats."""
    n, nb, nc = m.shape
    out = torch.zeros(n, nb, dtype=torch.float64)
    mm = m.double().tolist()
    for i in range(n):
        for b in range(nb):
            out[i, b] = sum(math.exp(-sum(abs(mm[i][b][c] - mm[j][b][c]) for c in range(nc)))
                            for j in range(n) if j != i)
    return out


@pytest.mark.parametrize("shape", [(6, 3, 5), (1, 2, 3), (2, 1, 1), (7, 4, 2)])
def test_matches_formula(shape):
    m = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.7
    torch.testing.assert_close(minibatch_discrimination(m, impl="ref"), _formula(m), rtol=1e-14, atol=1e-15)


def test_float32_and_sliced_input():
    m = torch.randn(5, 3, 8, generator=torch.Generator().manual_seed(1))
    sl = m[:, :, ::2]
    out = minibatch_discrimination(sl, impl="ref")
    assert out.dtype == torch.float32 and out.shape == (5, 3)
    torch.testing.assert_close(out.double(), _formula(sl), rtol=1e-6, atol=1e-7)


def test_small_values_keep_their_precision():
    # Far-apart rows: o is tiny; subtracting the j = i term (1) instead of masking it would give 0.
    m = torch.tensor([[[0.0]], [[30.0]]])
    out = minibatch_discrimination(m, impl="ref")
    torch.testing.assert_close(out, torch.full((2, 1), math.exp(-30.0)), rtol=1e-6, atol=0)


def test_gradcheck_gradgradcheck_float64():
    m = (torch.randn(5, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 0.5)
    m.requires_grad_()
    fn = lambda x: minibatch_discrimination(x, impl="ref")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (m,))
    assert torch.autograd.gradgradcheck(fn, (m,))


def test_identical_rows_finite_zero_subgradient():
    base = torch.randn(3, 2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    m = torch.cat([base, base[:1], base[:1]]).requires_grad_()  # rows 0, 3 and 4 identical: mode collapse
    out = minibatch_discrimination(m, impl="ref")
    g = torch.randn_like(out)
    (dm,) = torch.autograd.grad(out, m, g, create_graph=True)
    assert torch.isfinite(dm).all()
    # The zero subgradient: the identical pairs contribute nothing; only pairs with other rows do.
    want = torch.zeros_like(m)
    for i in range(5):
        for j in range(5):
            diff = m[i] - m[j]
            s = torch.exp(-diff.abs().sum(-1))  # [B]
            want[i] -= ((g[i] + g[j]) * s)[:, None] * torch.sign(diff)
    torch.testing.assert_close(dm, want.detach(), rtol=1e-12, atol=1e-14)
    (d2,) = torch.autograd.grad(dm.square().sum(), m)
    assert torch.isfinite(d2).all()
    # All rows identical: o = N - 1 everywhere, gradient exactly 0.
    same = base[:1].expand(4, -1, -1).clone().requires_grad_()
    out = minibatch_discrimination(same, impl="ref")
    torch.testing.assert_close(out, torch.full_like(out, 3.0))
    (d,) = torch.autograd.grad(out.sum(), same)
    assert torch.equal(d, torch.zeros_like(d))


@pytest.mark.parametrize("shape,value", [((0, 3, 2), None), ((4, 0, 2), None), ((3, 2, 0), 2.0), ((1, 3, 2), 0.0)])
def test_empty_and_degenerate(shape, value):
    m = torch.randn(shape, dtype=torch.float64).requires_grad_()
    out = minibatch_discrimination(m, impl="ref")
    assert out.shape == shape[:2]
    if value is not None:
        torch.testing.assert_close(out, torch.full(shape[:2], value, dtype=torch.float64))
    (d,) = torch.autograd.grad(out.sum(), m)
    assert d.shape == m.shape and torch.equal(d, torch.zeros_like(d))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"m must be 3-D of shape \[N, B, C\]"):
        minibatch_discrimination(torch.zeros(4, 5))
    with pytest.raises(TypeError, match="m must have a floating-point dtype"):
        minibatch_discrimination(torch.zeros(4, 5, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match="m must be a torch.Tensor"):
        minibatch_discrimination([[[0.0]]])
    with pytest.raises(ValueError, match="impl"):
        minibatch_discrimination(torch.zeros(2, 2, 2), impl="fast")


def test_module_output_weight_and_init():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(64, 100, 5)
    assert layer.weight.shape == (64, 500)
    assert abs(layer.weight.std().item() - 0.05) < 0.003 and abs(layer.weight.mean().item()) < 0.003
    x = torch.randn(7, 64, dtype=torch.float64)
    layer = layer.double()
    y = layer(x)
    assert y.shape == (7, 164)
    assert torch.equal(y[:, :64], x)
    m = (x @ layer.weight).view(7, 100, 5)
    torch.testing.assert_close(y[:, 64:], _formula(m), rtol=1e-12, atol=1e-14)
    assert "kernel_dims=5" in repr(layer)


def test_module_second_order_under_r1():
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.LeakyReLU(0.2),
                            MinibatchDiscrimination(6, 4, 3, impl="ref"), torch.nn.Linear(10, 1)).double()
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: D(t), (x,))
    (g,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    g.square().sum().backward()  # the R1 penalty's backward reaches every weight
    assert all(torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0 for w in (D[0].weight, D[2].weight, D[3].weight))


def test_module_bad_arguments():
    with pytest.raises(ValueError, match="kernel_dims"):
        MinibatchDiscrimination(4, 3, 0)
    with pytest.raises(TypeError, match="out_features"):
        MinibatchDiscrimination(4, 2.0, 3)
    with pytest.raises(ValueError, match="impl"):
        MinibatchDiscrimination(4, 3, 2, impl="fast")
    layer = MinibatchDiscrimination(4, 3, 2)
    with pytest.raises(ValueError, match=r"x must have shape \[N, 4\]"):
        layer(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="x must be 2-D"):
        layer(torch.zeros(2, 4, 1))

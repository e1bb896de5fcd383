"""Reference gradient_norm_penalty against independent per-sample norms; gradcheck; errors."""

import pytest
import torch

from gan_fast import ops


@pytest.mark.parametrize("center, one_sided", [(0.0, False), (1.0, False), (1.0, True), (0.5, True)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_independent_formula(center, one_sided, reduction):
    g = torch.randn(5, 3, 4, 2, dtype=torch.float64) * 0.4
    norms = torch.stack([torch.sqrt((gi ** 2).sum()) for gi in g])
    per = [(max(n.item() - center, 0.0) if one_sided else n.item() - center) ** 2 for n in norms]
    want = torch.tensor(per, dtype=torch.float64)
    want = {"mean": want.mean(), "sum": want.sum(), "none": want}[reduction]
    got = ops.gradient_norm_penalty(g, center=center, one_sided=one_sided, reduction=reduction, impl="ref")
    torch.testing.assert_close(got, want)


def test_one_sided_is_zero_below_center_and_low_precision_accumulates_in_fp32():
    g = torch.full((3, 10), 0.01)
    assert ops.gradient_norm_penalty(g, center=1.0, one_sided=True).item() == 0.0
    assert ops.gradient_norm_penalty(g, center=1.0).item() > 0.9
    big = torch.full((2, 70000), 1.0, dtype=torch.float16)  # sum of squares overflows fp16
    out = ops.gradient_norm_penalty(big)
    assert out.dtype == torch.float32 and out.item() == 70000.0


@pytest.mark.parametrize("center, one_sided", [(0.0, False), (1.0, False), (1.0, True)])
def test_gradcheck_gradgradcheck(center, one_sided):
    g = (torch.randn(4, 3, dtype=torch.float64) * 0.8).requires_grad_()
    fn = lambda g: ops.gradient_norm_penalty(g, center=center, one_sided=one_sided, reduction="none")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (g,))
    assert torch.autograd.gradgradcheck(fn, (g,))


def test_errors():
    with pytest.raises(ValueError, match="reduction must be one of"):
        ops.gradient_norm_penalty(torch.ones(2, 3), reduction="avg")
    with pytest.raises(ValueError, match="center must be >= 0"):
        ops.gradient_norm_penalty(torch.ones(2, 3), center=-1.0)
    with pytest.raises(ValueError, match=r"grads must be \[N, ...\]"):
        ops.gradient_norm_penalty(torch.ones(()))
    with pytest.raises(TypeError, match="grads must be a torch.Tensor"):
        ops.gradient_norm_penalty([1.0])


@pytest.mark.parametrize("center, one_sided", [(0.0, False), (0.0, True), (1.0, False), (1.0, True)])
def test_all_zero_sample_gets_the_zero_subgradient(center, one_sided):
    # A sample whose gradient is exactly zero (a dead critic region, a ReLU critic far from the data)
    # must not poison the batch with the NaN of d sqrt(x)/dx at 0.
    g = (torch.randn(3, 4, dtype=torch.float64) * 0.8)
    g[1] = 0
    g.requires_grad_()
    p = ops.gradient_norm_penalty(g, center=center, one_sided=one_sided, reduction="sum")
    (dg,) = torch.autograd.grad(p, g, create_graph=True)
    (d2g,) = torch.autograd.grad((dg * torch.randn_like(dg)).sum(), g)
    assert torch.isfinite(dg).all() and torch.isfinite(d2g).all()
    assert (dg[1] == 0).all()
    expected_row = (g.detach()[1].norm() - center).clamp(min=0 if one_sided else -1e9) ** 2
    assert (ops.gradient_norm_penalty(g.detach(), center=center, one_sided=one_sided, reduction="none")[1]
            == expected_row)


def test_wgan_gp_with_a_critic_flat_on_one_sample_has_finite_parameter_gradients():
    from gan_fast.regularizers import wgan_gp
    w = torch.randn(6, requires_grad=True)
    dead = torch.tensor([1.0, 0.0, 1.0])  # the critic ignores sample 1 entirely: its input gradient is 0
    critic = lambda x: (x.flatten(1) @ w) * dead  # noqa: E731
    real, fake = torch.randn(3, 2, 3), torch.randn(3, 2, 3)
    for one_sided in (False, True):
        (dw,) = torch.autograd.grad(wgan_gp(critic, real, fake, one_sided=one_sided), w)
        assert torch.isfinite(dw).all()

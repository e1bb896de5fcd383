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

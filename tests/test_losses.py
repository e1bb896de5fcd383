"""gan_fast.losses: formulas against independent expressions, stability at extreme logits, errors."""

import math

import pytest
import torch

from gan_fast import losses

KINDS = losses.KINDS
LOG2 = math.log(2.0)


def _sig(x):
    return 1 / (1 + torch.exp(-x))


# Nowozin et al. 2016, Table 2: output activation g_f(v) and Fenchel conjugate f*(t), written naively.
FGAN = {
    "kl": (lambda v: v, lambda t: torch.exp(t - 1)),
    "reverse_kl": (lambda v: -torch.exp(-v), lambda t: -1 - torch.log(-t)),
    "pearson": (lambda v: v, lambda t: t * t / 4 + t),
    "squared_hellinger": (lambda v: 1 - torch.exp(-v), lambda t: t / (1 - t)),
    "jensen_shannon": (lambda v: LOG2 - torch.log(1 + torch.exp(-v)), lambda t: -torch.log(2 - torch.exp(t))),
}


def naive_d(r, f, kind):
    """Independent (naive, float64-only) discriminator losses."""
    if kind in ("saturating", "nonsaturating"):
        return -torch.log(_sig(r)).mean() - torch.log(1 - _sig(f)).mean()
    if kind == "wasserstein":
        return f.mean() - r.mean()
    if kind == "hinge":
        return torch.clamp(1 - r, min=0).mean() + torch.clamp(1 + f, min=0).mean()
    if kind == "least_squares":
        return ((r - 1) ** 2).mean() / 2 + (f ** 2).mean() / 2
    if kind == "relativistic":
        return -torch.log(_sig(r - f)).mean()
    g, fstar = FGAN[kind]
    return -(g(r).mean() - fstar(g(f)).mean())


def naive_g(f, r, kind):
    if kind == "saturating":
        return torch.log(1 - _sig(f)).mean()
    if kind == "nonsaturating":
        return -torch.log(_sig(f)).mean()
    if kind in ("wasserstein", "hinge"):
        return -f.mean()
    if kind == "least_squares":
        return ((f - 1) ** 2).mean() / 2
    if kind == "relativistic":
        return -torch.log(_sig(f - r)).mean()
    g, _ = FGAN[kind]
    return -g(f).mean()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(7,), (5, 1), (3, 2, 2)])
def test_formulas_match_independent_expressions(kind, shape):
    gen = torch.Generator().manual_seed(0)
    r = torch.randn(shape, generator=gen, dtype=torch.float64) * 3
    f = torch.randn(shape, generator=gen, dtype=torch.float64) * 3
    torch.testing.assert_close(losses.d_loss(r, f, kind), naive_d(r, f, kind), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(losses.g_loss(f, r, kind), naive_g(f, r, kind), rtol=1e-10, atol=1e-12)
    assert losses.d_loss(r, f, kind).shape == ()


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "relativistic"])
def test_unpaired_batch_sizes_are_means_of_each_side(kind):
    gen = torch.Generator().manual_seed(1)
    r = torch.randn(6, generator=gen, dtype=torch.float64)
    f = torch.randn(4, 1, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(losses.d_loss(r, f, kind), naive_d(r, f, kind), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(losses.g_loss(f, kind=kind), naive_g(f, None, kind), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck(kind):
    gen = torch.Generator().manual_seed(2)
    r = (torch.randn(5, generator=gen, dtype=torch.float64) * 2).requires_grad_()
    f = (torch.randn(5, generator=gen, dtype=torch.float64) * 2).requires_grad_()
    # Keep hinge away from its kinks.
    if kind == "hinge":
        r, f = (r.detach() + 0.1).requires_grad_(), (f.detach() + 0.1).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: losses.d_loss(a, b, kind), (r, f))
    assert torch.autograd.gradcheck(lambda a, b: losses.g_loss(a, b, kind), (f, r))


# (loss, which input is extreme, value) whose true value is +inf in float32: exp/expm1 of ~1e4.
INFINITE = {
    ("d", "fake", "kl", 1e4),
    ("d", "real", "reverse_kl", -1e4),
    ("g", "fake", "reverse_kl", -1e4),
    ("d", "real", "squared_hellinger", -1e4),
    ("d", "fake", "squared_hellinger", 1e4),
    ("g", "fake", "squared_hellinger", -1e4),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("value", [80.0, -80.0, 1e4, -1e4])
@pytest.mark.parametrize("side", ["real", "fake", "both"])
def test_extreme_logits_finite_in_float32(kind, value, side):
    base = torch.tensor([0.5, -1.0, 2.0, -0.3])
    r = (torch.full_like(base, value) if side in ("real", "both") else base).clone().requires_grad_()
    f = (torch.full_like(base, value) if side in ("fake", "both") else base).clone().requires_grad_()
    for which, fn in (("d", lambda: losses.d_loss(r, f, kind)), ("g", lambda: losses.g_loss(f, r, kind))):
        if which == "g" and side == "real" and kind != "relativistic":
            continue  # g ignores the real logits
        sides = ("real", "fake") if side == "both" else (side,)
        if any((which, s, kind, value) in INFINITE for s in sides):
            assert fn().item() == math.inf
            continue
        out = fn()
        r.grad = f.grad = None
        out.backward()
        assert torch.isfinite(out), (which, kind, value, side, out)
        for t in (r, f):
            assert t.grad is None or torch.isfinite(t.grad).all(), (which, kind, value, side, t.grad)
        if abs(value) == 80.0:
            # float32 loses nothing to cancellation: agrees with the same loss in float64.
            r64, f64 = r.detach().double(), f.detach().double()
            ref = losses.d_loss(r64, f64, kind) if which == "d" else losses.g_loss(f64, r64, kind)
            torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_logits_give_float32(dtype):
    r = torch.full((4,), 1e4, dtype=dtype)
    f = torch.full((4,), -1e4, dtype=dtype)
    out = losses.d_loss(r, f, "nonsaturating")
    assert out.dtype == torch.float32 and out.item() == 0.0
    assert losses.g_loss(f, r, "relativistic").item() == pytest.approx(2e4, rel=1e-2)


def test_unknown_kind_lists_valid_kinds():
    r = torch.zeros(3)
    with pytest.raises(ValueError, match="kind must be one of") as e:
        losses.d_loss(r, r, "wgan")
    assert all(k in str(e.value) for k in KINDS)
    with pytest.raises(ValueError, match="relativistic"):
        losses.g_loss(r, kind="nope")
    with pytest.raises(ValueError, match="kind must be one of"):
        losses.g_loss(r)  # kind missing


def test_relativistic_needs_paired_logits():
    with pytest.raises(ValueError, match="same shape"):
        losses.d_loss(torch.zeros(4), torch.zeros(5), "relativistic")
    with pytest.raises(ValueError, match="same shape"):
        losses.g_loss(torch.zeros(4, 1), torch.zeros(4), "relativistic")
    with pytest.raises(ValueError, match="needs real_logits"):
        losses.g_loss(torch.zeros(4), kind="relativistic")


def test_bad_inputs_name_the_argument():
    with pytest.raises(TypeError, match="real_logits"):
        losses.d_loss([1.0], torch.zeros(2), "hinge")
    with pytest.raises(TypeError, match="fake_logits"):
        losses.d_loss(torch.zeros(2), torch.zeros(2, dtype=torch.long), "hinge")
    with pytest.raises(ValueError, match="fake_logits"):
        losses.d_loss(torch.zeros(2), torch.zeros(0), "hinge")
    with pytest.raises(ValueError, match="real_logits"):
        losses.d_loss(torch.tensor(1.0), torch.zeros(2), "hinge")
    with pytest.raises(TypeError, match="kind='hinge'"):
        losses.g_loss(torch.zeros(2), "hinge")

"""gan_fast.unrolled.unrolled_logits: against an independent unrolling written here, against k SGD steps on a
copy, and D left untouched (parameters, buffers, .grad), with plain, BatchNorm and spectral-norm discriminators."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_fast.nn.spectral_norm import spectral_norm, spectral_norm_step
from gan_fast.unrolled import unrolled_logits

# The D losses, written out here (independent of gan_fast.losses).
D_LOSS = {
    "nonsaturating": lambda r, f: F.softplus(-r).mean() + F.softplus(f).mean(),
    "hinge": lambda r, f: F.relu(1 - r).mean() + F.relu(1 + f).mean(),
    "least_squares": lambda r, f: 0.5 * (r - 1).square().mean() + 0.5 * f.square().mean(),
    "wasserstein": lambda r, f: f.mean() - r.mean(),
    "relativistic": lambda r, f: F.softplus(-(r - f)).mean(),
}


def _mlp(act=nn.LeakyReLU(0.2), width=16, dtype=torch.float64):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, width), act, nn.Linear(width, width), act, nn.Linear(width, 1)).to(dtype)


def _manual_forward(ws, x, act):
    """The MLP of _mlp as plain tensor arithmetic on a list [W0, b0, W1, b1, W2, b2]."""
    h = x
    for i in range(0, len(ws), 2):
        h = h @ ws[i].t() + ws[i + 1]
        if i + 2 < len(ws):
            h = act(h)
    return h


def _independent(D, fake, real, steps, lr, kind, differentiable, act):
    ws = [p.detach().clone().requires_grad_() for p in D.parameters()]
    f_steps = fake if differentiable else fake.detach()
    for _ in range(steps):
        loss = D_LOSS[kind](_manual_forward(ws, real, act), _manual_forward(ws, f_steps, act))
        gs = torch.autograd.grad(loss, ws, create_graph=differentiable)
        ws = [w - lr * g for w, g in zip(ws, gs)]
        if not differentiable:
            ws = [w.detach().requires_grad_() for w in ws]
    if not differentiable:
        ws = [w.detach() for w in ws]
    return _manual_forward(ws, fake, act)


def _data(n=12, dtype=torch.float64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    real = torch.randn(n, 2, generator=gen, dtype=dtype)
    fake = torch.randn(n, 2, generator=gen, dtype=dtype).requires_grad_()
    return fake, real


@pytest.mark.parametrize("differentiable", [True, False])
@pytest.mark.parametrize("kind,steps", [("nonsaturating", 0), ("nonsaturating", 1), ("nonsaturating", 5),
                                        ("hinge", 3), ("least_squares", 2), ("wasserstein", 4),
                                        ("relativistic", 3)])
def test_matches_independent_unrolling(kind, steps, differentiable):
    act = nn.LeakyReLU(0.2)
    D = _mlp(act)
    fake, real = _data()
    lr = 0.05
    got = unrolled_logits(D, fake, real, steps=steps, lr=lr, kind=kind, differentiable=differentiable)
    want = _independent(D, fake, real, steps, lr, kind, differentiable, act)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    w = torch.randn_like(want)
    g_got, = torch.autograd.grad((got * w).sum(), fake)
    g_want, = torch.autograd.grad((want * w).sum(), fake)
    torch.testing.assert_close(g_got, g_want, rtol=1e-10, atol=1e-12)


def test_the_two_modes_agree_on_values_and_differ_in_gradient():
    D = _mlp()
    fake, real = _data()
    a = unrolled_logits(D, fake, real, steps=3, lr=0.1, differentiable=True)
    b = unrolled_logits(D, fake, real, steps=3, lr=0.1, differentiable=False)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    ga, = torch.autograd.grad(F.softplus(-a).mean(), fake)
    gb, = torch.autograd.grad(F.softplus(-b).mean(), fake)
    assert (ga - gb).abs().max() > 1e-6  # the look-ahead's dependence on fake is kept only when differentiable


def test_gradcheck_through_the_steps():
    D = _mlp(nn.Tanh(), width=6)
    fake, real = _data(n=5)
    torch.autograd.gradcheck(lambda f: unrolled_logits(D, f, real, steps=2, lr=0.2), (fake,))


def _sgd_on_copy(D, fake, real, steps, lr, kind):
    Dc = copy.deepcopy(D)
    opt = torch.optim.SGD(Dc.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        D_LOSS[kind](Dc(real), Dc(fake.detach())).backward()
        opt.step()
    return Dc(fake)


def _bn_d(dtype=torch.float64):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.BatchNorm1d(16), nn.LeakyReLU(0.2), nn.Linear(16, 1)).to(dtype)


def _sn_d(dtype=torch.float64):
    torch.manual_seed(0)
    return nn.Sequential(spectral_norm(nn.Linear(2, 16)), nn.LeakyReLU(0.2), spectral_norm(nn.Linear(16, 16)),
                         nn.LeakyReLU(0.2), spectral_norm(nn.Linear(16, 1))).to(dtype)


@pytest.mark.parametrize("make", [_mlp, _bn_d, _sn_d], ids=["mlp", "batchnorm", "spectral_norm"])
@pytest.mark.parametrize("kind,steps", [("nonsaturating", 4), ("hinge", 2)])
def test_first_order_equals_sgd_steps_on_a_copy(make, kind, steps):
    D = make()
    fake, real = _data()
    got = unrolled_logits(D, fake, real, steps=steps, lr=0.05, kind=kind, differentiable=False)
    want = _sgd_on_copy(D, fake, real, steps, 0.05, kind)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    g_got, = torch.autograd.grad(got.sum(), fake)
    g_want, = torch.autograd.grad(want.sum(), fake)
    torch.testing.assert_close(g_got, g_want, rtol=1e-12, atol=1e-12)


def _state(D):
    return ({n: p.detach().clone() for n, p in D.named_parameters()},
            {n: b.clone() for n, b in D.named_buffers()},
            {n: None if p.grad is None else p.grad.clone() for n, p in D.named_parameters()})


def _assert_same_state(D, before):
    params, buffers, grads = _state(D)
    for a, b in zip((params, buffers, grads), before):
        assert a.keys() == b.keys()
        for k in a:
            if b[k] is None:
                assert a[k] is None, k
            else:
                assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("make", [_mlp, _bn_d, _sn_d], ids=["mlp", "batchnorm", "spectral_norm"])
@pytest.mark.parametrize("differentiable", [True, False])
def test_leaves_d_untouched(make, differentiable):
    D = make()
    fake, real = _data()
    assert len(list(D.buffers())) == {"_mlp": 0, "_bn_d": 3, "_sn_d": 6}[make.__name__]
    before = _state(D)
    out = unrolled_logits(D, fake, real, steps=3, lr=0.1, differentiable=differentiable)
    F.softplus(-out).mean().backward()
    assert fake.grad is not None and torch.isfinite(fake.grad).all()
    _assert_same_state(D, before)
    # Existing .grad values are not added to either.
    for p in D.parameters():
        p.grad = torch.ones_like(p)
    before = _state(D)
    unrolled_logits(D, fake, real, steps=2, lr=0.1, differentiable=differentiable).sum().backward()
    _assert_same_state(D, before)
    # A D in training mode still is, and a forward of D itself still updates its own buffers.
    assert D.training


def test_frozen_d_gives_the_same_result():
    D = _sn_d()
    fake, real = _data()
    want = unrolled_logits(D, fake, real, steps=3, lr=0.1)
    g_want, = torch.autograd.grad(want.sum(), fake)
    D.requires_grad_(False)
    got = unrolled_logits(D, fake, real, steps=3, lr=0.1)
    g_got, = torch.autograd.grad(got.sum(), fake)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(g_got, g_want, rtol=0, atol=0)
    assert all(p.grad is None for p in D.parameters())


def test_eval_mode_spectral_norm_and_no_grad_mode():
    D = _sn_d().eval()
    fake, real = _data()
    before = _state(D)
    with torch.no_grad():
        out = unrolled_logits(D, fake, real, steps=2, lr=0.1)
    assert not out.requires_grad
    torch.testing.assert_close(out, unrolled_logits(D, fake, real, steps=2, lr=0.1, differentiable=False))
    _assert_same_state(D, before)


def test_spectral_norm_step_precomputed_weights_do_not_shadow_the_look_ahead():
    D = _sn_d(torch.float32)
    fake, real = (t.float() for t in _data())
    fake.requires_grad_()
    want = unrolled_logits(D, fake, real, steps=3, lr=0.1)
    sns = [m for m in D.modules() if type(m).__name__ == "SpectralNorm"]
    # As spectral_norm_step leaves them: a precomputed W / sigma on each layer (here deliberately wrong).
    junk = [torch.full_like(m._u, 7.0)[:, None].expand(-1, m._v.numel()).clone() for m in sns]
    for m, j in zip(sns, junk):
        m.precomputed = j
    got = unrolled_logits(D, fake, real, steps=3, lr=0.1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert all(m.precomputed is j for m, j in zip(sns, junk))  # restored for the rest of the step
    for m in sns:
        m.precomputed = None
    # The real context (the Triton interpreter serves the batched launch on CPU here). Entering it advances
    # D's u/v by one power iteration (training mode); the look-ahead starts from those.
    D2 = copy.deepcopy(D)
    with spectral_norm_step(D2, impl="triton"):
        served = [m.precomputed is not None for m in D2.modules() if type(m).__name__ == "SpectralNorm"]
        advanced = {n: b.clone() for n, b in D2.named_buffers()}
        got2 = unrolled_logits(D2, fake, real, steps=3, lr=0.1)
    assert all(served)
    D3 = copy.deepcopy(D)
    D3.load_state_dict({**D3.state_dict(), **advanced})
    want2 = unrolled_logits(D3, fake, real, steps=3, lr=0.1)
    torch.testing.assert_close(got2, want2, rtol=1e-5, atol=1e-6)


def test_parametrize_cached_refused():
    D = _sn_d()
    fake, real = _data()
    with torch.nn.utils.parametrize.cached():
        with pytest.raises(RuntimeError, match="parametrize.cached"):
            unrolled_logits(D, fake, real)


def test_bad_arguments():
    D = _mlp()
    fake, real = _data()
    with pytest.raises(ValueError, match="lr"):
        unrolled_logits(D, fake, real, lr=0.0)
    with pytest.raises(ValueError, match="lr"):
        unrolled_logits(D, fake, real, lr=float("nan"))
    with pytest.raises(ValueError, match="lr"):
        unrolled_logits(D, fake, real, lr=float("inf"))
    with pytest.raises(TypeError, match="lr"):
        unrolled_logits(D, fake, real, lr="0.1")
    with pytest.raises(ValueError, match="steps"):
        unrolled_logits(D, fake, real, steps=-1)
    with pytest.raises(TypeError, match="steps"):
        unrolled_logits(D, fake, real, steps=2.0)
    with pytest.raises(ValueError, match="kind must be one of"):
        unrolled_logits(D, fake, real, kind="minimax")
    with pytest.raises(TypeError, match="D must be an nn.Module"):
        unrolled_logits(lambda x: x, fake, real)
    with pytest.raises(TypeError, match="fake"):
        unrolled_logits(D, fake.numpy(force=True), real)
    with pytest.raises(TypeError, match="differentiable"):
        unrolled_logits(D, fake, real, differentiable=1)
    with pytest.raises(TypeError, match="D.module"):
        unrolled_logits(nn.DataParallel(D), fake, real)
    with pytest.raises(ValueError, match="relativistic"):
        unrolled_logits(D, fake, real[:5], kind="relativistic")

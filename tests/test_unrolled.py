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
    _assert_same_state_tuple(_state(D), before)


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


# ---------------------------------------------------------------------------------------------------------------
# optimizer=: the look-ahead takes D's own optimizer update (Adam, AdamW, SGD), as Metz et al. unroll it.

from gan_fast import unrolled as unrolled_mod  # noqa: E402

# (optimizer class, keyword arguments); every case also has two parameter groups with different learning rates,
# a parameter without state, a parameter that gets no gradient, a D parameter outside the optimizer and an
# optimizer parameter outside D.
OPTIMIZER_CASES = {
    "adam": (torch.optim.Adam, dict(betas=(0.5, 0.999), eps=1e-8)),
    "adam_amsgrad": (torch.optim.Adam, dict(betas=(0.5, 0.9), amsgrad=True)),
    "adam_maximize": (torch.optim.Adam, dict(maximize=True)),
    "adam_l2": (torch.optim.Adam, dict(weight_decay=0.1, eps=1e-6)),
    "adam_decoupled": (torch.optim.Adam, dict(weight_decay=0.1, decoupled_weight_decay=True)),
    "adamw": (torch.optim.AdamW, dict(weight_decay=0.05, betas=(0.8, 0.99))),
    "adamw_amsgrad_maximize": (torch.optim.AdamW, dict(amsgrad=True, maximize=True)),
    "adam_flags_ignored": (torch.optim.Adam, dict(foreach=False, capturable=False, differentiable=False)),
    "sgd": (torch.optim.SGD, dict()),
    "sgd_momentum_dampening": (torch.optim.SGD, dict(momentum=0.9, dampening=0.3)),
    "sgd_nesterov_l2": (torch.optim.SGD, dict(momentum=0.8, nesterov=True, weight_decay=0.01)),
    "sgd_maximize_momentum": (torch.optim.SGD, dict(momentum=0.5, maximize=True)),
}


class _DWithUnused(nn.Module):
    """A tanh MLP (float64) plus a parameter that never reaches the output (its gradient is None)."""

    def __init__(self, act=None, width=8):
        super().__init__()
        torch.manual_seed(0)
        act = act or nn.Tanh()
        self.net = nn.Sequential(nn.Linear(2, width), act, nn.Linear(width, width), act, nn.Linear(width, 1))
        self.unused = nn.Parameter(torch.randn(3))
        self.double()

    def forward(self, x):
        return self.net(x)


def _make_optimizer(D, cls, kw, lrs=(0.02, 0.005), tensor_lr=False):
    """Groups: [net.0.*, unused, a foreign tensor] at lrs[0], [net.2.*, net.4.weight] at lrs[1]; net.4.bias is
    in no group. Two warm-up steps give every parameter but net.4.weight (frozen meanwhile) a state."""
    n = D.net
    foreign = nn.Parameter(torch.randn(4, dtype=torch.float64))
    lr0 = torch.tensor(lrs[0], dtype=torch.float64) if tensor_lr else lrs[0]
    opt = cls([{"params": [n[0].weight, n[0].bias, D.unused, foreign], "lr": lr0},
               {"params": [n[2].weight, n[2].bias, n[4].weight], "lr": lrs[1]}], **kw)
    gen = torch.Generator().manual_seed(5)
    n[4].weight.requires_grad_(False)
    for _ in range(2):
        x, y = (torch.randn(10, 2, generator=gen, dtype=torch.float64) for _ in range(2))
        opt.zero_grad(set_to_none=True)
        (D_LOSS["nonsaturating"](D(x), D(y)) + 0.1 * foreign.square().sum()).backward()
        opt.step()
    n[4].weight.requires_grad_(True)
    assert opt.state.get(n[4].weight) is None and opt.state.get(D.unused) is None
    return opt


def _snapshot(D, opt):
    """Everything a call could change: D's parameters, buffers, .grad, requires_grad; the optimizer's state
    (entries and tensor values) and param_groups."""
    def clone(v):
        return v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)
    return (_state(D), [p.requires_grad for p in D.parameters()],
            [(id(p), {k: clone(v) for k, v in s.items()}) for p, s in opt.state.items()],
            [({k: clone(v) for k, v in g.items() if k != "params"}, [id(p) for p in g["params"]])
             for g in opt.param_groups])


def _assert_same_snapshot(a, b):
    _assert_same_state_tuple(a[0], b[0])
    assert a[1] == b[1]
    assert [i for i, _ in a[2]] == [i for i, _ in b[2]]  # no state entry inserted or removed
    for (_, sa), (_, sb) in zip(a[2], b[2]):
        assert sa.keys() == sb.keys()
        for k in sa:
            assert _equal(sa[k], sb[k]), k
    assert len(a[3]) == len(b[3])
    for (ga, pa), (gb, pb) in zip(a[3], b[3]):
        assert pa == pb and ga.keys() == gb.keys()
        for k in ga:
            assert _equal(ga[k], gb[k]), k


def _equal(a, b):
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    return a == b


def _assert_same_state_tuple(now, before):
    for a, b in zip(now, before):
        assert a.keys() == b.keys()
        for k in a:
            if b[k] is None:
                assert a[k] is None, k
            else:
                assert torch.equal(a[k], b[k]), k


def _reference_steps(D, opt, fake, real, steps, kind="nonsaturating"):
    """``steps`` real optimizer steps on deep copies of D and its optimizer (the copies share nothing)."""
    D2, opt2 = copy.deepcopy((D, opt))
    D2.requires_grad_(True)
    for _ in range(steps):
        opt2.zero_grad(set_to_none=True)
        D_LOSS[kind](D2(real), D2(fake.detach())).backward()
        opt2.step()
    return D2, opt2


def _close(a, b, what):
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("differentiable", [True, False])
@pytest.mark.parametrize("case", list(OPTIMIZER_CASES))
def test_optimizer_look_ahead_matches_optimizer_step(case, differentiable):
    cls, kw = OPTIMIZER_CASES[case]
    D = _DWithUnused()
    opt = _make_optimizer(D, cls, kw, tensor_lr=case == "adam")
    fake, real = _data()
    D.requires_grad_(False)  # frozen for G's step: the parameters in the optimizer move all the same
    before = _snapshot(D, opt)
    outs, params, state = unrolled_mod._lookahead(D, fake, real, 3, 1e-2, "nonsaturating", differentiable, opt,
                                                  (fake, real))
    D2, opt2 = _reference_steps(D, opt, fake, real, 3)
    _close(outs[0], D2(fake), "logits on fake")
    _close(outs[1], D2(real), "logits on real")
    p2 = dict(D2.named_parameters())
    assert params.keys() == p2.keys()
    for name, p in p2.items():
        _close(params[name], p, name)
    n = D.net
    torch.testing.assert_close(params["net.4.bias"], n[4].bias, rtol=0, atol=0)  # not in the optimizer: constant
    torch.testing.assert_close(params["unused"], D.unused, rtol=0, atol=0)  # no gradient: skipped
    assert not torch.equal(params["net.4.weight"], n[4].weight)  # no state yet: started fresh, and moved
    assert state.keys() == {name for name in p2 if name != "net.4.bias"}
    for name, st in state.items():
        ref = opt2.state.get(p2[name], {})
        if name == "unused":  # skipped: its state is still the initial one (step() never created it)
            assert not ref
            assert cls is torch.optim.SGD or (st["step"] == 0 and not st["exp_avg"].any())
            continue
        if cls is torch.optim.SGD and not kw.get("momentum"):
            assert st == {} and set(ref) <= {"momentum_buffer"}
            continue
        assert st.keys() == ref.keys(), name
        for k, v in st.items():
            if k == "step":
                assert v == ref[k].item(), name
            else:
                _close(v, ref[k], f"{name} {k}")
    if cls is not torch.optim.SGD:
        assert state["net.4.weight"]["step"] == 3 and state["net.0.weight"]["step"] == 5
    _assert_same_snapshot(_snapshot(D, opt), before)


def test_optimizer_look_ahead_leaves_d_and_optimizer_untouched_through_backward():
    for cls, kw in (OPTIMIZER_CASES["adam_amsgrad"], OPTIMIZER_CASES["sgd_nesterov_l2"]):
        D = _DWithUnused()
        opt = _make_optimizer(D, cls, kw)
        for p in D.parameters():  # existing .grad values are neither added to nor cleared
            p.grad = torch.full_like(p, 0.5)
        fake, real = _data()
        before = _snapshot(D, opt)
        out = unrolled_logits(D, fake, real, 3, optimizer=opt)
        F.softplus(-out).mean().backward()
        assert fake.grad is not None and torch.isfinite(fake.grad).all()
        _assert_same_snapshot(_snapshot(D, opt), before)
        # A fresh optimizer (no state at all) gets no entries either, and a BatchNorm D keeps its statistics.
        Dbn = _bn_d()
        opt = torch.optim.Adam(Dbn.parameters(), lr=1e-3)
        before = _snapshot(Dbn, opt)
        unrolled_logits(Dbn, fake, real, 2, optimizer=opt).sum().backward()
        assert len(opt.state) == 0
        _assert_same_snapshot(_snapshot(Dbn, opt), before)


def test_optimizer_look_ahead_gradcheck_and_first_order():
    """The gradient through D's Adam steps (moments, normaliser) against finite differences; the first-order
    variant has the same values and the gradient of a constant theta_k."""
    D = _DWithUnused(width=5)
    opt = _make_optimizer(D, torch.optim.Adam, dict(betas=(0.5, 0.999)), lrs=(0.05, 0.02))
    fake, real = _data(n=5)
    torch.autograd.gradcheck(lambda f: unrolled_logits(D, f, real, steps=2, optimizer=opt), (fake,))
    a = unrolled_logits(D, fake, real, 3, optimizer=opt)
    b = unrolled_logits(D, fake, real, 3, optimizer=opt, differentiable=False)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    _, params, _ = unrolled_mod._lookahead(D, fake, real, 3, 1e-2, "nonsaturating", False, opt, ())
    gb, = torch.autograd.grad(b.sum(), fake)
    fb = fake.detach().requires_grad_()
    want = torch.func.functional_call(D, params, (fb,))
    gw, = torch.autograd.grad(want.sum(), fb)
    torch.testing.assert_close(gb, gw, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_zero_second_moment_gives_finite_gradients(amsgrad, monkeypatch):
    """A dead ReLU unit (pre-activation < 0 on every input) gets exact-zero gradients, so under a fresh Adam its
    second moment stays exactly 0; sqrt's derivative there (inf) times 0 must not reach G as NaN."""
    D = _DWithUnused(act=nn.ReLU(), width=6)
    with torch.no_grad():
        D.net[0].weight[2] = 0.0
        D.net[0].bias[2] = -1.0  # unit 2 of the first layer is dead
        D.net[2].weight[:, 2] = 0.0
        D.net[2].weight[4] = 0.0
        D.net[2].bias[4] = -1.0  # and unit 4 of the second
    opt = torch.optim.Adam(D.parameters(), lr=1e-2, betas=(0.5, 0.999), amsgrad=amsgrad)
    fake, real = _data()
    _, _, state = unrolled_mod._lookahead(D, fake, real, 3, 1e-2, "nonsaturating", True, opt, ())
    assert (state["net.0.weight"]["exp_avg_sq"][2] == 0).all()  # the case under test happens
    assert (state["net.2.weight"]["exp_avg_sq"][4] == 0).all()
    out = unrolled_logits(D, fake, real, 3, optimizer=opt)
    g, = torch.autograd.grad(F.softplus(-out).mean(), fake)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    # The same with torch.sqrt: NaN (so this test detects the problem it guards against).
    monkeypatch.setattr(unrolled_mod, "_sqrt0", torch.sqrt)
    out = unrolled_logits(D, fake, real, 3, optimizer=opt)
    g, = torch.autograd.grad(F.softplus(-out).mean(), fake)
    assert torch.isnan(g).any()


@pytest.mark.parametrize("case", ["adam", "adamw", "sgd_nesterov_l2"])
def test_optimizer_step_as_a_number_and_missing_keys(case):
    """A ``step`` stored as a number (older torch), and groups lacking keys that this torch version added (read
    with defaults; AdamW's weight decay stays decoupled without the key), give the same look-ahead."""
    D = _DWithUnused()
    opt = _make_optimizer(D, *OPTIMIZER_CASES[case])
    fake, real = _data()
    want = unrolled_logits(D, fake, real, 3, optimizer=opt)
    for s in opt.state.values():
        if "step" in s:
            s["step"] = int(s["step"].item())
    for g in opt.param_groups:
        for k in ("decoupled_weight_decay", "maximize", "foreach", "capturable", "differentiable", "fused"):
            g.pop(k, None)
    got = unrolled_logits(D, fake, real, 3, optimizer=opt)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_optimizer_bad_arguments():
    D = _DWithUnused()
    fake, real = _data()

    class MyAdam(torch.optim.Adam):
        def step(self, closure=None):
            return super().step(closure)

    for bad in (MyAdam(D.parameters()), torch.optim.RMSprop(D.parameters()), torch.optim.Adagrad(D.parameters())):
        with pytest.raises(TypeError, match="torch.optim.Adam, torch.optim.AdamW or torch.optim.SGD"):
            unrolled_logits(D, fake, real, optimizer=bad)
    with pytest.raises(TypeError, match="optimizer"):
        unrolled_logits(D, fake, real, optimizer={"lr": 1e-3})
    opt = torch.optim.Adam(D.parameters())
    with pytest.raises(ValueError, match="not both"):
        unrolled_logits(D, fake, real, 5, 0.1, optimizer=opt)
    with pytest.raises(ValueError, match="not both"):
        unrolled_logits(D, fake, real, lr=1e-3, optimizer=opt)
    unrolled_logits(D, fake, real, lr=1e-2, optimizer=opt)  # the default value is not "both"
    with pytest.raises(ValueError, match="none of D's parameters"):
        unrolled_logits(D, fake, real, optimizer=torch.optim.Adam([nn.Parameter(torch.zeros(2))]))
    with pytest.raises(TypeError):
        unrolled_logits(D, fake, real, 5, 1e-2, "nonsaturating", True, opt)  # optimizer is keyword-only

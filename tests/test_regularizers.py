"""gan_fast.regularizers: formulas, double backward against finite differences, state, errors."""

import math
import os
import tempfile

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_fast import regularizers as R
from gan_fast.conv2d_gradfix import conv2d as gf_conv2d

F64 = torch.float64


def _critic(d_in=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, 16), nn.Tanh(), nn.Linear(16, 16), nn.Softplus(), nn.Linear(16, 1)).to(F64)


def _fd_check(module, penalty_fn, h=1e-6, rtol=1e-6, seed=0):
    """d penalty / d theta (via .backward(): double backward for exact penalties), projected on a random
    parameter direction v, against the central difference (P(theta + h v) - P(theta - h v)) / 2h."""
    params = [p for p in module.parameters()]
    for p in params:
        p.grad = None
    penalty_fn().backward()
    gen = torch.Generator().manual_seed(seed + 123)
    vs = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    analytic = sum(((p.grad if p.grad is not None else torch.zeros_like(p)) * v).sum() for p, v in zip(params, vs))
    with torch.no_grad():
        for p, v in zip(params, vs):
            p.add_(h * v)
    plus = penalty_fn().item()
    with torch.no_grad():
        for p, v in zip(params, vs):
            p.sub_(2 * h * v)
    minus = penalty_fn().item()
    with torch.no_grad():
        for p, v in zip(params, vs):
            p.add_(h * v)
    numeric = (plus - minus) / (2 * h)
    assert abs(analytic.item()) > 1e-4, "degenerate direction"
    assert analytic.item() == pytest.approx(numeric, rel=rtol, abs=1e-9)


# ---------------------------------------------------------------------------- gradient_penalty / R1 / R2

def _quadratic(x, scale):
    """outputs[i] = scale[i] / 2 * ||x[i]||^2, so the input gradient is scale[i] * x[i]."""
    return 0.5 * scale * x.flatten(1).square().sum(1)


@pytest.mark.parametrize("center,one_sided", [(0.0, False), (1.0, False), (1.5, True), (0.0, True)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradient_penalty_formula(center, one_sided, reduction):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 2, 3, generator=gen, dtype=F64).requires_grad_()
    scale = torch.rand(6, generator=gen, dtype=F64) + 0.2
    out = R.gradient_penalty(_quadratic(x, scale), x, center, one_sided, reduction)
    n = scale * torch.sqrt((x.detach() ** 2).sum(dim=(1, 2)))
    want = torch.clamp(n - center, min=0) ** 2 if one_sided else (n - center) ** 2
    want = {"mean": want.mean(), "sum": want.sum(), "none": want}[reduction]
    torch.testing.assert_close(out, want)


def test_outputs_of_any_shape_are_summed():
    x = torch.randn(4, 3, dtype=F64, requires_grad=True)
    w = torch.randn(3, 2, dtype=F64)
    out = R.gradient_penalty(x @ w, x, reduction="none")  # [4, 2] outputs: g = w.sum(1) for each sample
    torch.testing.assert_close(out, (w.sum(1) ** 2).sum().expand(4))


def test_r1_r2_are_zero_centred_batch_means():
    x = torch.randn(5, 3, dtype=F64, requires_grad=True)
    scale = torch.linspace(0.5, 2, 5, dtype=F64)
    want = (scale ** 2 * (x.detach() ** 2).sum(1)).mean()
    torch.testing.assert_close(R.r1_penalty(_quadratic(x, scale), x), want)
    torch.testing.assert_close(R.r2_penalty(_quadratic(x, scale)[:, None], x), want)


@pytest.mark.parametrize("which", ["r1", "r2", "gp_center0", "gp_center1_sum", "gp_one_sided_none"])
def test_double_backward_matches_finite_difference(which):
    D = _critic()
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(1), dtype=F64)

    def penalty():
        xi = x.clone().requires_grad_()
        out = D(xi)
        if which == "r1":
            return R.r1_penalty(out, xi)
        if which == "r2":
            return R.r2_penalty(out, xi)
        if which == "gp_center0":
            return R.gradient_penalty(out, xi)
        if which == "gp_center1_sum":
            return R.gradient_penalty(out, xi, center=1.0, reduction="sum")
        # One-sided with the centre among the norms: some samples active, some not.
        per = R.gradient_penalty(out, xi, center=0.05, one_sided=True, reduction="none")
        return (per * torch.arange(1, 9, dtype=F64)).sum()

    _fd_check(D, penalty)


def test_parameters_that_do_not_reach_the_input_gradient():
    D = _critic()
    x = torch.randn(4, 3, dtype=F64, requires_grad=True)
    R.r1_penalty(D(x), x).backward()
    last_bias = D[-1].bias
    assert last_bias.grad is None  # the final bias does not influence d D / d x
    assert all(p.grad is not None for p in D.parameters() if p is not last_bias)


class _ConvCritic(nn.Module):
    def __init__(self, conv):
        super().__init__()
        torch.manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(4, 2, 3, 3, dtype=F64) * 0.3)
        self.w2 = nn.Parameter(torch.randn(1, 4, 3, 3, dtype=F64) * 0.3)
        self.conv = conv

    def forward(self, x):
        return self.conv(torch.tanh(self.conv(x, self.w1, padding=1)), self.w2).flatten(1).sum(1)


def test_r1_through_gan_fast_convolutions_matches_plain_conv():
    """The no_weight_gradients context inside r1_penalty keeps weight gradients of the penalty exact."""
    x = torch.randn(3, 2, 5, 5, dtype=F64)
    grads = []
    for conv in (F.conv2d, gf_conv2d):
        D = _ConvCritic(conv)
        xi = x.clone().requires_grad_()
        R.r1_penalty(D(xi), xi).backward()
        grads.append([D.w1.grad, D.w2.grad])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)
    D = _ConvCritic(gf_conv2d)

    def penalty():
        xi = x.clone().requires_grad_()
        return R.r1_penalty(D(xi), xi)

    _fd_check(D, penalty)


# ---------------------------------------------------------------------------- WGAN-GP

def test_wgan_gp_interpolates_per_sample_on_the_segment():
    n = 4000
    gen = torch.Generator().manual_seed(3)
    real = torch.rand(n, 1, generator=gen, dtype=F64) + 3.0  # in [3, 4]
    fake = torch.rand(n, 1, generator=gen, dtype=F64)         # in [0, 1]
    # Critic 0.5 x^2: gradient x_hat, so the per-sample norm is x_hat itself (positive).
    per = R.wgan_gp(lambda x: 0.5 * x.square().sum(1), real, fake, center=0.0, reduction="none")
    e = (per.sqrt() - fake[:, 0]) / (real[:, 0] - fake[:, 0])
    assert e.min() >= -1e-12 and e.max() <= 1 + 1e-12
    assert len(torch.unique(e.round(decimals=6))) > n // 2  # one coefficient per sample, not a shared one
    assert e.mean().item() == pytest.approx(0.5, abs=0.03)
    assert e.var().item() == pytest.approx(1 / 12, abs=0.01)


@pytest.mark.parametrize("wnorm,one_sided", [(0.5, False), (0.5, True), (2.0, True), (2.0, False)])
def test_wgan_gp_center_and_one_sided(wnorm, one_sided):
    w = torch.tensor([0.6, 0.8], dtype=F64) * wnorm
    real, fake = torch.randn(5, 2, dtype=F64), torch.randn(5, 2, dtype=F64)
    out = R.wgan_gp(lambda x: x @ w, real, fake, one_sided=one_sided)
    want = 0.0 if (one_sided and wnorm < 1) else (wnorm - 1) ** 2
    assert out.item() == pytest.approx(want, abs=1e-12)


def test_wgan_gp_double_backward_matches_finite_difference():
    D = _critic(d_in=3, seed=1)
    gen = torch.Generator()
    real = torch.randn(6, 3, generator=gen.manual_seed(5), dtype=F64)
    fake = torch.randn(6, 3, generator=gen, dtype=F64)

    def penalty():
        return R.wgan_gp(D, real, fake, generator=gen.manual_seed(7))

    _fd_check(D, penalty)
    for one_sided in (False, True):  # the seeded generator makes it deterministic
        a = R.wgan_gp(D, real, fake, one_sided=one_sided, generator=gen.manual_seed(7))
        b = R.wgan_gp(D, real, fake, one_sided=one_sided, generator=gen.manual_seed(7))
        assert a.item() == b.item()


# ---------------------------------------------------------------------------- approximate R1/R2

def test_approximate_penalty_formula():
    w = torch.tensor([[0.3], [-1.2], [0.5]], dtype=F64)
    x = torch.randn(7, 3, dtype=F64)
    sigma = 0.1
    out = R.approximate_gradient_penalty(lambda t: t @ w, x, sigma, reduction="none",
                                         generator=torch.Generator().manual_seed(11))
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(11), dtype=F64)
    torch.testing.assert_close(out, (eps @ w)[:, 0] ** 2)  # linear critic: ((w . sigma eps) / sigma)^2
    raw = R.approximate_r1(lambda t: t @ w, x, sigma, normalize=False, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(raw, sigma ** 2 * out.mean())
    outputs = x @ w
    same = R.approximate_r2(lambda t: t @ w, x, sigma, outputs, generator=torch.Generator().manual_seed(11))
    torch.testing.assert_close(same, out.mean())


def test_approximate_penalty_bias_matches_documented_expansion():
    """Quadratic critic 0.5 x^T A x: E = ||A x||^2 + sigma^2 ((tr A)^2 + 2 ||A||_F^2) / 4 exactly."""
    a = torch.tensor([[1.0, 0.4], [0.4, -0.5]], dtype=F64)
    x0 = torch.tensor([0.7, -0.2], dtype=F64)
    sigma, n = 0.5, 200_000
    x = x0.expand(n, 2)
    per = R.approximate_gradient_penalty(lambda t: 0.5 * ((t @ a) * t).sum(1), x, sigma, reduction="none",
                                         generator=torch.Generator().manual_seed(0))
    exact_r1 = ((a @ x0) ** 2).sum()
    bias = sigma ** 2 * (torch.trace(a) ** 2 + 2 * (a ** 2).sum()) / 4
    stderr = per.std() / math.sqrt(n)
    assert abs(per.mean() - (exact_r1 + bias)) < 4 * stderr
    assert abs(per.mean() - exact_r1) > 4 * stderr  # the bias is real and visible at this sigma


def test_approximate_penalty_gradient_matches_finite_difference():
    D = _critic(seed=2)
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(4), dtype=F64)
    gen = torch.Generator()
    _fd_check(D, lambda: R.approximate_r1(D, x, 0.05, generator=gen.manual_seed(9)))


# ---------------------------------------------------------------------------- path length

def _linear_generator(w_dim=5, num_ws=None, c=2, h=3, w=4, seed=0):
    """images[i] = sum_k ws[i, k] @ M[k], reshaped to [C, H, W]; also returns M [num_ws or 1, w_dim, C*H*W]."""
    gen = torch.Generator().manual_seed(seed)
    m = torch.randn(num_ws or 1, w_dim, c * h * w, generator=gen, dtype=F64)

    def synth(ws):
        wk = ws if ws.ndim == 3 else ws[:, None]
        return torch.einsum("nkd,kdp->np", wk, m).reshape(ws.shape[0], c, h, w)

    return synth, m


@pytest.mark.parametrize("num_ws,ws_reduction", [(None, "mean"), (3, "mean"), (3, "sum")])
def test_path_length_formula_and_ema(num_ws, ws_reduction):
    n, hh, ww = 4, 3, 4
    synth, m = _linear_generator(num_ws=num_ws, h=hh, w=ww)
    ws = torch.randn((n, num_ws, 5) if num_ws else (n, 5), dtype=F64, requires_grad=True)
    pl = R.PathLengthPenalty(decay=0.1, ws_reduction=ws_reduction).to(F64)
    noise = torch.randn(n, 2, hh, ww, dtype=F64)
    # Independent: J^T y for sample i and layer k is M[k] @ y_i, y = noise / sqrt(H W).
    y = noise.reshape(n, -1) / math.sqrt(hh * ww)
    jty = torch.einsum("kdp,np->nkd", m, y)  # [n, K, w_dim]
    sq = (jty ** 2).sum(2)
    lengths = (sq.mean(1) if ws_reduction == "mean" else sq.sum(1)).sqrt()
    a1 = 0.0 + 0.1 * (lengths.mean() - 0.0)
    torch.testing.assert_close(pl(synth(ws), ws, noise), (lengths - a1) ** 2)
    assert pl.pl_mean.item() == pytest.approx(a1.item())
    a2 = a1 + 0.1 * (lengths.mean() - a1)
    torch.testing.assert_close(pl(synth(ws), ws, noise), (lengths - a2) ** 2)
    assert pl.pl_mean.item() == pytest.approx(a2.item())
    pl.eval()  # eval: the buffer is the target and stays unchanged
    torch.testing.assert_close(pl(synth(ws), ws, noise), (lengths - a2) ** 2)
    assert pl.pl_mean.item() == pytest.approx(a2.item())


class _Synth(nn.Module):
    """Tiny nonlinear generator: ws [N, num_ws, w_dim] -> images [N, 2, 3, 3]."""

    def __init__(self, w_dim=4, num_ws=2):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(w_dim, 18).to(F64)
        self.mix = nn.Parameter(torch.randn(num_ws, dtype=F64))

    def forward(self, ws):
        h = torch.tanh(self.fc(ws))  # [N, num_ws, 18]
        return (h * self.mix[:, None]).sum(1).reshape(-1, 2, 3, 3) ** 2


def test_path_length_buffer_is_updated_in_place_and_detached():
    synth = _Synth()
    ws = torch.randn(3, 2, 4, dtype=F64, requires_grad=True)
    pl = R.PathLengthPenalty().to(F64)
    buf = pl.pl_mean
    ptr = buf.data_ptr()
    pl(synth(ws), ws).mean().backward()
    assert pl.pl_mean is buf and buf.data_ptr() == ptr  # DDP keeps references to buffers
    assert not buf.requires_grad and buf.grad_fn is None and buf.item() > 0


def test_path_length_state_dict_round_trip():
    synth, _ = _linear_generator()
    ws = torch.randn(3, 5, dtype=F64, requires_grad=True)
    pl = R.PathLengthPenalty(decay=0.5).to(F64)
    pl(synth(ws), ws)
    sd = pl.state_dict()
    assert list(sd) == ["pl_mean"]
    other = R.PathLengthPenalty(decay=0.5).to(F64)
    other.load_state_dict(sd)
    assert other.pl_mean.item() == pl.pl_mean.item() != 0
    noise = torch.randn(3, 2, 3, 4, dtype=F64)
    torch.testing.assert_close(other(synth(ws), ws, noise), pl(synth(ws), ws, noise))


@pytest.mark.parametrize("training", [True, False])
def test_path_length_double_backward_matches_finite_difference(training):
    G = _Synth()
    pl = R.PathLengthPenalty(decay=0.3).to(F64).train(training)
    ws0 = torch.randn(5, 2, 4, generator=torch.Generator().manual_seed(2), dtype=F64)
    noise = torch.randn(5, 2, 3, 3, generator=torch.Generator().manual_seed(3), dtype=F64)

    def penalty():
        pl.pl_mean.fill_(0.2)  # same EMA state for every evaluation
        ws = ws0.clone().requires_grad_()
        return pl(G(ws), ws, noise).mean()

    _fd_check(G, penalty)


def _ddp_worker(rank, world, init_file, results):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        class Wrapper(nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = nn.Linear(4, 18).to(F64)
                self.pl = R.PathLengthPenalty(decay=0.5).to(F64)

            def forward(self, x):
                return self.lin(x)

        model = Wrapper()
        ddp = nn.parallel.DistributedDataParallel(model)  # broadcast_buffers=True by default
        # Each rank updates its EMA on its own data: the buffers disagree.
        ws = torch.randn(3, 4, generator=torch.Generator().manual_seed(rank), dtype=F64, requires_grad=True)
        images = torch.tanh(model.lin(ws)).reshape(3, 2, 3, 3)
        model.pl(images, ws).mean().backward()
        before = model.pl.pl_mean.item()
        ddp(torch.zeros(1, 4, dtype=F64)).sum().backward()  # DDP broadcasts rank 0's buffers here
        results[rank] = (before, model.pl.pl_mean.item())
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_path_length_buffer_is_broadcast_by_ddp():
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        # spawn, not fork: a parent whose autograd engine has started (any earlier test's backward; on a CUDA
        # build of torch) cannot run autograd in a forked child.
        results = mp.get_context("spawn").Manager().dict()
        mp.start_processes(_ddp_worker, args=(2, os.path.join(tmp, "init"), results), nprocs=2, join=True,
                           start_method="spawn")
        (before0, after0), (before1, after1) = results[0], results[1]
    assert before0 != before1
    assert after0 == after1 == before0


# ---------------------------------------------------------------------------- lazy regularisation

@pytest.mark.parametrize("k", [1, 4, 16])
def test_lazy_schedule_and_adam(k):
    lazy = R.LazyRegularization(k)
    assert [lazy.is_due(t) for t in range(2 * k + 1)] == [t % k == 0 for t in range(2 * k + 1)]
    assert lazy(0) == (True, float(k)) and lazy.gain == k
    mb_ratio = k / (k + 1)
    got = lazy.adam(0.002, (0.0, 0.99))
    assert got["lr"] == pytest.approx(0.002 * mb_ratio)
    assert got["betas"] == pytest.approx((0.0, 0.99 ** mb_ratio))
    torch.optim.Adam([nn.Parameter(torch.zeros(1))], **got)  # usable as is


# ---------------------------------------------------------------------------- errors

def test_gradient_penalty_errors():
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="inputs must require grad"):
        R.gradient_penalty(x.sum(1), x)
    xg = x.clone().requires_grad_()
    other = torch.randn(3, 2, requires_grad=True)
    with pytest.raises(ValueError, match="not connected to inputs"):
        R.gradient_penalty((other ** 2).sum(1), xg)
    with torch.no_grad():
        nograd = (xg ** 2).sum(1)
    with pytest.raises(ValueError, match="outputs has no autograd graph"):
        R.gradient_penalty(nograd, xg)
    with pytest.raises(ValueError, match="reduction"):
        R.gradient_penalty((xg ** 2).sum(1), xg, reduction="avg")
    with pytest.raises(ValueError, match="center"):
        R.gradient_penalty((xg ** 2).sum(1), xg, center=-1.0)
    with pytest.raises(TypeError, match="inputs"):
        R.gradient_penalty((xg ** 2).sum(1), [1.0])
    with pytest.raises(ValueError, match="real must require grad"):
        R.r1_penalty(x.sum(1), x)
    with pytest.raises(ValueError, match="fake_logits is not connected to fake"):
        R.r2_penalty((other ** 2).sum(1), xg)


def test_wgan_gp_and_approximate_errors():
    real = torch.randn(3, 2)
    with pytest.raises(TypeError, match="critic"):
        R.wgan_gp(None, real, real)
    with pytest.raises(ValueError, match="fake must have the shape of real"):
        R.wgan_gp(lambda t: t.sum(1), real, torch.randn(4, 2))
    with pytest.raises(TypeError, match="fake must have the dtype"):
        R.wgan_gp(lambda t: t.sum(1), real, real.double())
    with pytest.raises(ValueError, match="sigma"):
        R.approximate_r1(lambda t: t.sum(1), real, sigma=0.0)
    with pytest.raises(ValueError, match="outputs"):
        R.approximate_r1(lambda t: t.sum(1), real, real_logits=torch.zeros(5))


def test_path_length_and_lazy_errors():
    with pytest.raises(ValueError, match="decay"):
        R.PathLengthPenalty(decay=0.0)
    with pytest.raises(ValueError, match="ws_reduction"):
        R.PathLengthPenalty(ws_reduction="max")
    pl = R.PathLengthPenalty()
    ws = torch.randn(2, 3, requires_grad=True)
    img = ws.sum(1).reshape(2, 1, 1, 1).expand(2, 1, 2, 2)
    with pytest.raises(ValueError, match="ws must be 2-D or 3-D"):
        pl(img, ws[:, :, None, None])
    with pytest.raises(ValueError, match="ws must be"):
        pl(img[:1], ws)
    with pytest.raises(ValueError, match="ws must require grad"):
        pl(img, ws.detach())
    with pytest.raises(ValueError, match="noise must have the shape"):
        pl(img, ws, torch.randn(2, 1, 3, 3))
    with pytest.raises(ValueError, match="interval"):
        R.LazyRegularization(0)
    with pytest.raises(TypeError, match="interval"):
        R.LazyRegularization(2.0)

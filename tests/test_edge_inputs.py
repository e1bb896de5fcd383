"""Edge and bad inputs at every public op, module, regularizer and model (issue 16).

* Scalars: NaN, +-inf and out-of-range values raise ValueError naming the argument, before any kernel runs
  (the fast paths are replaced by a tripwire in those tests).
* setup_filter: taps that are not finite or sum to zero (with normalize), separable=True with a 2-D filter.
* Empty dimensions: the mathematically right (empty or zero) result and gradients, the same on every backend.
* Output sizes beyond int64 raise before anything is allocated.
* float64: the automatic choice never runs a float32-only kernel on float64; an explicit request for one
  raises; the backends that keep float64 agree with ref to 1e-12.
* Mixed dtypes: secondary tensors take x's dtype, with the same result on every backend.
* Named errors where PyTorch would raise an internal one.
On CPU the Triton backend runs under TRITON_INTERPRET=1 (conftest), at small shapes.
"""

import ast
import copy
import importlib
import inspect
import math
import pkgutil

import numpy as np
import pytest
import torch
from torch import nn

import gan_fast.backends
from gan_fast import config, losses, models, ops
from gan_fast import nn as gnn
from gan_fast.errors import UnsupportedDtypeError
from gan_fast import regularizers as R
from gan_fast.nn.spectral_norm import find_spectral_norm_layers
from gan_fast.ops.minibatch_discrimination import minibatch_discrimination
from gan_fast.ops.modulated_conv2d_bias_act import modulated_conv2d_bias_act as mcba
from gan_fast.ops.upfirdn2d import setup_filter

NAN, INF = float("nan"), float("inf")
F4 = setup_filter([1, 3, 3, 1])
ALL = ("ref", "cpp", "triton")
TR = ("ref", "triton")


def rnd(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed + sum(shape) * 7 + len(shape))
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


def leaf(*shape, dtype=torch.float32, seed=0):
    return rnd(*shape, dtype=dtype, seed=seed).requires_grad_()


@pytest.fixture
def tripwire(monkeypatch):
    """Every backend entry point raises for a fast backend: a test that passes with it never reached a kernel
    (every op calls ``gan_fast.backends.<op>.run`` once it has validated its arguments and chosen)."""
    for dtype in (torch.float32, torch.float64):  # the automatic choice's self-test runs before the wire is set
        ops.bias_act(torch.ones(1, 2, dtype=dtype))

    for info in pkgutil.iter_modules(gan_fast.backends.__path__):
        module = importlib.import_module(f"gan_fast.backends.{info.name}")
        real = getattr(module, "run", None)
        if real is None:
            continue

        def trip(impl, *args, _real=real, **kwargs):
            if impl != "ref":
                raise AssertionError("a fast kernel was reached before the argument error")
            return _real(impl, *args, **kwargs)
        monkeypatch.setattr(module, "run", trip)


def _x():
    return rnd(2, 3, 6, 6)


def _mc_args():
    return rnd(2, 3, 6, 6), rnd(4, 3, 3, 3), rnd(2, 3) + 1.5


# --------------------------------------------------------------------------------------------- item 3: scalars

def _scalar_cases():
    cases = []
    for impl in ALL:
        for name in ("alpha", "gain", "clamp"):
            for v in (NAN, INF, -INF):
                cases.append((f"bias_act-{name}-{v}-{impl}", lambda n=name, v=v, i=impl: ops.bias_act(
                    _x(), rnd(3), act="lrelu", impl=i, **{n: v}), ValueError, name))
        for v in (NAN, INF):
            cases.append((f"upfirdn2d-gain-{v}-{impl}", lambda v=v, i=impl: ops.upfirdn2d(_x(), F4, gain=v, impl=i),
                          ValueError, "gain must be finite"))
    for impl in TR:
        for v in (NAN, INF, 0.0, -1.0):
            cases.append((f"power_iteration-eps-{v}-{impl}", lambda v=v, i=impl: ops.power_iteration(
                rnd(3, 4), rnd(3), rnd(4), 1, v, impl=i), ValueError, "eps must be"))
            cases.append((f"spectral_normalize-eps-{v}-{impl}", lambda v=v, i=impl: ops.spectral_normalize(
                rnd(3, 4), rnd(3), rnd(4), 0, 1, v, impl=i), ValueError, "eps must be"))
        for v in (NAN, INF, -1.0):
            cases.append((f"gradient_norm_penalty-center-{v}-{impl}", lambda v=v, i=impl: ops.gradient_norm_penalty(
                rnd(2, 3), center=v, impl=i), ValueError, "center must be"))
            cases.append((f"mcba-clamp-{v}-{impl}", lambda v=v, i=impl: mcba(*_mc_args(), act="lrelu", clamp=v, impl=i),
                          ValueError, "clamp must be"))
        cases.append((f"filtered_lrelu-slope-inf-{impl}", lambda i=impl: ops.filtered_lrelu(
            _x(), slope=INF, impl=i), ValueError, "slope must be finite"))
    crit = lambda x: x.flatten(1).sum(1)  # noqa: E731
    cases += [
        ("setup_filter-gain-nan", lambda: setup_filter([1, 2, 1], gain=NAN), ValueError, "gain must be finite"),
        ("filter2d-gain-inf", lambda: ops.filter2d(_x(), F4, gain=INF), ValueError, "gain must be finite"),
        ("upsample2d-gain-str", lambda: ops.upsample2d(_x(), F4, gain="2"), TypeError, "gain must be a number"),
        ("gradient_penalty-center-nan", lambda: R.gradient_penalty(crit(t := leaf(2, 3)), t, center=NAN),
         ValueError, "center must be finite"),
        ("wgan_gp-center-inf", lambda: R.wgan_gp(crit, rnd(2, 3), rnd(2, 3), center=INF), ValueError, "center"),
        ("approximate_r1-sigma-nan", lambda: R.approximate_r1(crit, rnd(2, 3), sigma=NAN), ValueError, "sigma"),
        ("approximate_r1-sigma-inf", lambda: R.approximate_r1(crit, rnd(2, 3), sigma=INF), ValueError, "sigma"),
        ("approximate-normalize-str", lambda: R.approximate_gradient_penalty(crit, rnd(2, 3), normalize="yes"),
         TypeError, "normalize"),
        ("PathLengthPenalty-decay-nan", lambda: R.PathLengthPenalty(decay=NAN), ValueError, "decay"),
        ("LazyRegularization.adam-lr-nan", lambda: R.LazyRegularization(4).adam(NAN), ValueError, "lr"),
        ("LazyRegularization.adam-lr-inf", lambda: R.LazyRegularization(4).adam(INF), ValueError, "lr"),
        ("AdaIN-eps-nan", lambda: gnn.AdaIN(3, 5, eps=NAN), ValueError, "eps"),
        ("AdaIN-eps-0", lambda: gnn.AdaIN(3, 5, eps=0), ValueError, "eps must be > 0"),
        ("adaptive_instance_norm-eps-inf", lambda: gnn.adaptive_instance_norm(_x(), rnd(2, 3), rnd(2, 3), eps=INF),
         ValueError, "eps"),
        ("normalize_2nd_moment-eps-nan", lambda: gnn.normalize_2nd_moment(rnd(2, 3), eps=NAN), ValueError, "eps"),
        ("FullyConnectedLayer-lr_multiplier-0", lambda: gnn.FullyConnectedLayer(3, 4, lr_multiplier=0),
         ValueError, "lr_multiplier must be > 0"),
        ("FullyConnectedLayer-lr_multiplier-nan", lambda: gnn.FullyConnectedLayer(3, 4, lr_multiplier=NAN),
         ValueError, "lr_multiplier"),
        ("FullyConnectedLayer-bias_init-nan", lambda: gnn.FullyConnectedLayer(3, 4, bias_init=NAN),
         ValueError, "bias_init"),
        ("FullyConnectedLayer-bias_init-len", lambda: gnn.FullyConnectedLayer(3, 4, bias_init=[1, 2]),
         ValueError, "bias_init"),
        ("Conv2dLayer-conv_clamp-inf", lambda: gnn.Conv2dLayer(3, 4, 3, conv_clamp=INF), ValueError, "conv_clamp"),
        ("Conv2dLayer-forward-gain-nan", lambda: gnn.Conv2dLayer(3, 4, 3)(_x(), gain=NAN), ValueError, "gain"),
        ("SynthesisLayer-forward-gain-inf", lambda: gnn.SynthesisLayer(3, 4, 5, 6)(_x(), rnd(2, 5), gain=INF),
         ValueError, "gain"),
        ("SynthesisLayer-conv_clamp-nan", lambda: gnn.SynthesisLayer(3, 4, 5, 6, conv_clamp=NAN),
         ValueError, "conv_clamp"),
        ("MappingNetwork-w_avg_beta-1", lambda: gnn.MappingNetwork(4, 0, 5, 3, w_avg_beta=1.0), ValueError,
         "w_avg_beta"),
        ("MappingNetwork-w_avg_beta-neg", lambda: gnn.MappingNetwork(4, 0, 5, 3, w_avg_beta=-0.1), ValueError,
         "w_avg_beta"),
        ("MappingNetwork-w_avg_beta-nan", lambda: gnn.MappingNetwork(4, 0, 5, 3, w_avg_beta=NAN), ValueError,
         "w_avg_beta"),
        ("MappingNetwork-lr_multiplier-0", lambda: gnn.MappingNetwork(4, 0, 5, 3, lr_multiplier=0), ValueError,
         "lr_multiplier"),
        ("MappingNetwork-truncation_psi-nan", lambda: gnn.MappingNetwork(4, 0, 5, 3, 2)(rnd(2, 4), truncation_psi=NAN),
         ValueError, "truncation_psi"),
        ("MappingNetwork-truncation_psi-inf", lambda: gnn.MappingNetwork(4, 0, 5, 3, 2)(rnd(2, 4), truncation_psi=INF),
         ValueError, "truncation_psi"),
        ("spectral_norm-eps-inf", lambda: gnn.spectral_norm(nn.Linear(3, 4), eps=INF), ValueError, "eps"),
        ("apply_spectral_norm-eps-nan", lambda: gnn.apply_spectral_norm(nn.Linear(3, 4), eps=NAN), ValueError, "eps"),
        ("Generator-style_mixing_prob-2", lambda: _generator()(rnd(2, 4), style_mixing_prob=2), ValueError,
         "style_mixing_prob"),
        ("Generator-truncation_psi-nan", lambda: _generator()(rnd(2, 4), truncation_psi=NAN), ValueError,
         "truncation_psi"),
        ("Generator-noise_mode", lambda: _generator()(rnd(2, 4), noise_mode="fixed"), ValueError, "noise_mode"),
        ("make_adam-lr-nan", lambda: models.make_adam(nn.Linear(2, 2).parameters(), lr=NAN), ValueError, "lr"),
        ("make_adam-reg_interval-0", lambda: models.make_adam(nn.Linear(2, 2).parameters(), reg_interval=0),
         ValueError, "reg_interval"),
    ]
    for arg, value, match in (("r1_gamma", NAN, "r1_gamma"), ("r1_gamma", -1, "r1_gamma"), ("r2_gamma", INF, "r2_gamma"),
                              ("pl_weight", NAN, "pl_weight"), ("pl_interval", 0, "pl_interval"),
                              ("r1_interval", 0, "r1_interval"), ("pl_decay", NAN, "pl_decay"),
                              ("style_mixing_prob", 2, "style_mixing_prob"), ("style_mixing_prob", NAN,
                                                                               "style_mixing_prob"),
                              ("ema_kimg", NAN, "ema_kimg"), ("ema_rampup", -1, "ema_rampup"),
                              ("noise_mode", "fixed", "noise_mode")):
        cases.append((f"StyleGAN2Trainer-{arg}-{value}", lambda a=arg, v=value: _trainer(**{a: v}), ValueError, match))
    return cases


def _generator():
    torch.manual_seed(0)
    return models.Generator(4, 0, 4, 8, 3, channel_base=32, channel_max=4)


def _discriminator(**kw):
    torch.manual_seed(0)
    return models.Discriminator(kw.pop("c_dim", 0), 8, 3, channel_base=32, channel_max=4, mbstd_group_size=2, **kw)


def _trainer(**kw):
    g, d = _generator(), _discriminator()
    return models.StyleGAN2Trainer(g, d, models.make_adam(g.parameters()), models.make_adam(d.parameters()), **kw)


SCALAR_CASES = _scalar_cases()


@pytest.mark.parametrize("case", SCALAR_CASES, ids=[c[0] for c in SCALAR_CASES])
def test_non_finite_and_out_of_range_scalars_raise_named_errors(case, tripwire):
    _, fn, exc, match = case
    with pytest.raises(exc, match=match):
        fn()


def test_numpy_scalars_are_numbers():
    x = leaf(1, 2, 4, 4)
    y = ops.upfirdn2d(x, F4, up=np.int64(2), padding=np.int32(1), gain=np.float32(4.0), impl="ref")
    torch.testing.assert_close(y, ops.upfirdn2d(x, F4, up=2, padding=1, gain=4.0, impl="ref"))
    torch.testing.assert_close(ops.bias_act(x, dim=np.int64(1), gain=np.float64(2.0)), 2 * x)


# ------------------------------------------------------------------------------------------ item 4: setup_filter

@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(f=[1, -1]), ValueError, "the taps sum to 0"),
    (dict(f=[[1, -1], [2, -2]]), ValueError, "the taps sum to 0"),
    (dict(f=[1, NAN, 1]), ValueError, "f must have finite taps"),
    (dict(f=[1, INF, 1], normalize=False), ValueError, "f must have finite taps"),
    (dict(f=torch.tensor([1.0, -INF])), ValueError, "f must have finite taps"),
    (dict(f=[[1, 2], [2, 1]], separable=True), ValueError, "separable=True needs a 1-D filter"),
    (dict(f=[1, 2, 1], separable="yes"), TypeError, "separable must be a bool"),
    (dict(f=[]), ValueError, "f must have at least one tap"),
    (dict(f=torch.ones(0, 3)), ValueError, "f must have at least one tap"),
    (dict(f=torch.ones(2, 2, 2)), ValueError, "f must be a scalar, 1-D or 2-D"),
    (dict(f="abc"), TypeError, "f must be None, a number"),
    (dict(f=torch.ones(3, dtype=torch.complex64)), TypeError, "f must hold real numbers"),
    (dict(f=[1] * 8, gain=-1), ValueError, "gain must be >= 0 for a separable filter"),
    (dict(f=[1e30, 1e30], normalize=False, gain=1e20), ValueError, "overflow"),
])
def test_setup_filter_rejects_bad_taps(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        setup_filter(**kwargs)


def test_setup_filter_valid_edges():
    torch.testing.assert_close(setup_filter([1, -1], normalize=False), torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
    torch.testing.assert_close(setup_filter(None), torch.ones(1, 1))
    torch.testing.assert_close(setup_filter(torch.tensor([1, 1], dtype=torch.int64)), torch.full((2, 2), 0.25))
    assert setup_filter([1, 2, 1], separable=True).shape == (3,)


# --------------------------------------------------------------------------------------- item 5: empty dimensions

def _run(fn, leaves):
    """(outputs, gradients of sum(out * fixed weights) w.r.t. the leaves), as detached tensors."""
    out = fn()
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    g = torch.Generator().manual_seed(3)
    total = sum((o * torch.randn(o.shape, generator=g, dtype=o.dtype)).sum() for o in outs if o.requires_grad)
    grads = torch.autograd.grad(total, leaves, allow_unused=True, materialize_grads=True) if leaves else []
    return [o.detach() for o in outs], [d.detach() for d in grads]


def _same_on_backends(make, impls, check=None):
    """make(impl) -> (fn, leaves); every impl gives exactly ref's outputs and gradients (and ``check`` holds)."""
    results = {impl: _run(*make(impl)) for impl in impls}
    want_out, want_grads = results["ref"]
    if check is not None:
        check(want_out, want_grads)
    for impl, (outs, grads) in results.items():
        for a, b in zip(outs + grads, want_out + want_grads):
            assert a.shape == b.shape and a.dtype == b.dtype, (impl, a.shape, b.shape, a.dtype, b.dtype)
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=lambda m: f"{impl}: {m}")


def _shapes(*shapes):
    def check(outs, grads):
        assert [tuple(o.shape) for o in outs] == [tuple(s) for s in shapes]
    return check


@pytest.mark.parametrize("shape,kw,out", [
    ((2, 0, 6, 7), dict(up=2, padding=1), (2, 0, 11, 13)),
    ((0, 3, 6, 7), dict(down=2), (0, 3, 2, 2)),
    ((1, 2, 0, 3), dict(padding=2), (1, 2, 1, 4)),  # no rows, but padding: an output of zeros
])
def test_upfirdn2d_empty(shape, kw, out):
    def make(impl):
        x = leaf(*shape)
        return (lambda: ops.upfirdn2d(x, F4, impl=impl, **kw)), [x]

    def check(outs, grads):
        assert outs[0].shape == out and not outs[0].any()
        assert grads[0].shape == shape
    _same_on_backends(make, ALL, check)
    for fn in (ops.upsample2d, ops.downsample2d, ops.filter2d):
        for impl in ALL:
            assert fn(rnd(0, 2, 4, 4), F4, impl=impl).shape[:2] == (0, 2)


@pytest.mark.parametrize("shape,b", [((0, 3, 4), 3), ((2, 0, 4), 0), ((2, 3, 0), 3)])
def test_bias_act_empty(shape, b):
    def make(impl):
        x, bb = leaf(*shape), leaf(b)
        return (lambda: ops.bias_act(x, bb, act="swish", clamp=1.0, impl=impl)), [x, bb]
    _same_on_backends(make, ALL, lambda outs, grads: torch.testing.assert_close(grads[1], torch.zeros(b)))


MC_EMPTY = {  # name: (x, weight, styles, noise) shapes
    "N0": ((0, 3, 6, 6), (4, 3, 3, 3), (0, 3), None),
    "O0": ((2, 3, 6, 6), (0, 3, 3, 3), (2, 3), None),
    "I0": ((2, 0, 6, 6), (4, 0, 3, 3), (2, 0), (2, 1, 6, 6)),
    "I0-no-noise": ((2, 0, 6, 6), (4, 0, 3, 3), (2, 0), None),
}


@pytest.mark.parametrize("name", list(MC_EMPTY))
@pytest.mark.parametrize("variant", ["fused-demod", "shared-demod", "shared-plain", "up2", "down2"])
def test_modulated_conv2d_empty(name, variant):
    xs, ws, ss, ns = MC_EMPTY[name]
    kw = dict(padding=1, fused_modconv=variant.startswith("fused"), demodulate=not variant.endswith("plain"))
    if variant == "up2":
        kw.update(up=2, resample_filter=F4, flip_weight=False)
    if variant == "down2":
        kw.update(down=2, resample_filter=F4)
    if ns is not None and variant in ("up2", "down2"):
        ns = (2, 1, 12, 12) if variant == "up2" else (2, 1, 3, 3)

    def make(impl):
        t = [leaf(*xs), leaf(*ws, seed=1), leaf(*ss, seed=2)] + ([leaf(*ns, seed=3)] if ns else [])
        return (lambda: ops.modulated_conv2d(*t[:3], noise=t[3] if ns else None, impl=impl, **kw)), t

    def check(outs, grads):
        y = outs[0]
        if name.startswith("I0"):  # no input channels: the convolution is zero, the output is the noise
            assert y.shape[:2] == (2, 4) and y.numel() > 0
            want = torch.zeros_like(y) if ns is None else torch.broadcast_to(rnd(*ns, seed=3), y.shape)
            torch.testing.assert_close(y, want)
        else:
            assert y.numel() == 0
        assert [g.shape for g in grads[:3]] == [torch.Size(xs), torch.Size(ws), torch.Size(ss)]
    _same_on_backends(make, TR, check)


@pytest.mark.parametrize("name", list(MC_EMPTY))
@pytest.mark.parametrize("impl", ["triton", None])
def test_modulated_conv2d_bias_act_empty(name, impl):
    xs, ws, ss, ns = MC_EMPTY[name]
    out_ch = ws[0]

    def make(backend_impl):
        t = [leaf(*xs), leaf(*ws, seed=1), leaf(*ss, seed=2), leaf(out_ch, seed=4)] + ([leaf(*ns, seed=3)] if ns else [])
        chosen = backend_impl if backend_impl == "ref" else impl
        return (lambda: mcba(*t[:4], noise=t[4] if ns else None, padding=1, act="lrelu", clamp=0.5,
                             impl=chosen)), t

    def check(outs, grads):
        if name.startswith("I0"):
            z = torch.zeros(2, 4, 6, 6) if ns is None else torch.broadcast_to(rnd(*ns, seed=3), (2, 4, 6, 6))
            want = ops.bias_act(z + 0, rnd(out_ch, seed=4), act="lrelu", clamp=0.5)
            torch.testing.assert_close(outs[0], want)
    _same_on_backends(make, TR, check)


@pytest.mark.parametrize("fused_modconv", [True, False])
def test_synthesis_layer_and_models_with_no_samples(fused_modconv):
    torch.manual_seed(0)
    layer = gnn.SynthesisLayer(3, 4, 5, 8, up=2)
    x, w = leaf(0, 3, 4, 4), leaf(0, 5)
    y = layer(x, w, noise_mode="const", fused_modconv=fused_modconv)
    assert y.shape == (0, 4, 8, 8)
    dx, dw = torch.autograd.grad(y.sum(), (x, w), materialize_grads=True)
    assert dx.shape == x.shape and dw.shape == w.shape
    assert gnn.ToRGB(3, 3, 5)(rnd(0, 3, 4, 4), rnd(0, 5)).shape == (0, 3, 4, 4)
    assert gnn.MinibatchStdLayer(4)(rnd(0, 3, 4, 4)).shape == (0, 4, 4, 4)
    assert _generator()(rnd(0, 4), noise_mode="const", fused_modconv=fused_modconv).shape == (0, 3, 8, 8)
    assert _discriminator()(rnd(0, 3, 8, 8)).shape == (0, 1)
    assert _discriminator(c_dim=2)(rnd(0, 3, 8, 8), rnd(0, 2)).shape == (0, 1)
    assert models.SNDiscriminator(8, 3, 4, (1, 1), c_dim=2)(rnd(0, 3, 8, 8), rnd(0, 2)).shape == (0, 1)
    assert gnn.AdaIN(3, 5)(rnd(0, 3, 4, 4), rnd(0, 5)).shape == (0, 3, 4, 4)
    with pytest.raises(ValueError, match="update_emas=True needs at least one sample"):
        gnn.MappingNetwork(4, 0, 5, 3, 2)(rnd(0, 4), update_emas=True)


@pytest.mark.parametrize("shape,dim", [((0, 7), 0), ((5, 0), 0), ((0, 3, 2), 0), ((4, 0, 2), 1), ((4, 0, 2), 0)])
def test_spectral_normalize_and_power_iteration_empty(shape, dim):
    h = shape[dim]
    w = math.prod(s for i, s in enumerate(shape) if i != dim)
    u, v = torch.ones(h) / max(h, 1), torch.ones(w) / max(w, 1)

    def make(impl):
        W = leaf(*shape)
        return (lambda: ops.spectral_normalize(W, u, v, dim, 2, impl=impl)), [W]

    def check(outs, grads):
        y, u_new, v_new = outs
        assert y.shape == shape and u_new.shape == (h,) and v_new.shape == (w,)
        assert not u_new.any() and not v_new.any()  # normalised zeros: the empty matrix maps everything to 0
    _same_on_backends(make, TR, check)
    if len(shape) == 2 and dim == 0:
        def make_pi(impl):
            W = leaf(*shape)
            return (lambda: ops.power_iteration(W, u, v, 2, impl=impl)), [W]
        # sigma of an empty matrix is 0 on every backend (the Triton kernel is never launched for it)
        _same_on_backends(make_pi, TR, lambda outs, grads: torch.testing.assert_close(outs[0], torch.tensor(0.0)))


@pytest.mark.parametrize("impl", TR)
def test_penalties_over_no_samples(impl):
    g = leaf(0, 3, 4)
    none = ops.gradient_norm_penalty(g, center=1.0, reduction="none", impl=impl)
    assert none.shape == (0,) and none.dtype == torch.float32
    total = ops.gradient_norm_penalty(g, center=1.0, reduction="sum", impl=impl)
    assert total.shape == () and total.item() == 0
    (dg,) = torch.autograd.grad(total, g, materialize_grads=True)
    assert dg.shape == g.shape
    with pytest.raises(ValueError, match="reduction='mean' over an empty batch"):
        ops.gradient_norm_penalty(g, impl=impl)
    # samples with no entries: norm 0, penalty center^2
    torch.testing.assert_close(ops.gradient_norm_penalty(leaf(3, 0), center=2.0, reduction="none", impl=impl),
                               torch.full((3,), 4.0))


def test_regularizers_over_no_samples():
    crit = lambda x: (2 * x).flatten(1).sum(1)  # noqa: E731
    x = leaf(0, 3)
    assert R.gradient_penalty(crit(x), x, reduction="none").shape == (0,)
    assert R.gradient_penalty(crit(x), x, reduction="sum").item() == 0
    assert R.wgan_gp(crit, rnd(0, 3), rnd(0, 3), reduction="none").shape == (0,)
    assert R.approximate_gradient_penalty(crit, rnd(0, 3), reduction="sum").item() == 0
    for fn, match in ((lambda: R.r1_penalty(crit(t := leaf(0, 3, 4, 4)), t), "real has N = 0"),
                      (lambda: R.r2_penalty(crit(t := leaf(0, 3)), t), "fake has N = 0"),
                      (lambda: R.gradient_penalty(crit(t := leaf(0, 3)), t), "reduction='mean' over an empty batch"),
                      (lambda: R.wgan_gp(crit, rnd(0, 3), rnd(0, 3)), "real has N = 0"),
                      (lambda: R.approximate_r1(crit, rnd(0, 3)), "real has N = 0"),
                      (lambda: R.PathLengthPenalty()(leaf(0, 3, 4, 4), leaf(0, 5)), "ws must be")):
        with pytest.raises(ValueError, match=match):
            fn()


def test_minibatch_discrimination_empty():
    for shape in ((0, 3, 2), (4, 0, 2), (4, 3, 0), (1, 3, 2)):
        def make(impl, shape=shape):
            m = leaf(*shape)
            return (lambda: minibatch_discrimination(m, impl=impl)), [m]
        _same_on_backends(make, TR, _shapes(shape[:2]))


def test_filtered_lrelu_empty():
    f = torch.ones(4) / 4
    for shape in ((0, 2, 8, 8), (1, 0, 8, 8)):
        def make(impl, shape=shape):
            x, b = leaf(*shape), leaf(shape[1])
            return (lambda: ops.filtered_lrelu(x, f, f, b, up=2, down=2, padding=3, impl=impl)), [x, b]
        _same_on_backends(make, TR, _shapes(shape))


# ----------------------------------------------------------------------------------------- item 6: output sizes

@pytest.mark.parametrize("impl", ALL)
@pytest.mark.parametrize("kw", [dict(up=2**62), dict(up=(1, 2**62)), dict(padding=2**62), dict(down=2**64),
                                dict(padding=[0, 0, -2**63, 0])], ids=str)
def test_upfirdn2d_sizes_beyond_int64_raise_before_allocating(impl, kw, tripwire):
    with pytest.raises(ValueError, match="int64|no output"):
        ops.upfirdn2d(_x(), F4, impl=impl, **kw)
    with pytest.raises(ValueError, match="int64|no output|factor"):
        ops.upfirdn2d(rnd(0, 3, 6, 6), F4, impl=impl, **kw)  # an empty x too: the factors themselves


def test_modulated_conv2d_sizes_beyond_int64_raise(tripwire):
    for impl in TR:
        with pytest.raises(ValueError, match="int64"):
            ops.modulated_conv2d(*_mc_args(), up=2**62, resample_filter=F4, impl=impl)
        with pytest.raises(ValueError, match="int64"):
            mcba(*_mc_args(), up=2**40, resample_filter=F4, impl=impl)


# -------------------------------------------------------------------------------------------- item 7: float64

def _f64_cases():
    x, b = rnd(2, 3, 5, 6, dtype=torch.float64), rnd(3, dtype=torch.float64)
    w, s = rnd(4, 3, 3, 3, dtype=torch.float64), rnd(2, 3, dtype=torch.float64) + 1.5
    W = rnd(7, 11, dtype=torch.float64)
    u, v = torch.nn.functional.normalize(rnd(7, dtype=torch.float64), dim=0), \
        torch.nn.functional.normalize(rnd(11, dtype=torch.float64), dim=0)
    m = rnd(6, 3, 4, dtype=torch.float64) * 0.3
    return {
        "bias_act": ([x, b], lambda t, i: ops.bias_act(t[0], t[1], act="elu", clamp=1.5, impl=i)),
        "gradient_norm_penalty": ([x], lambda t, i: ops.gradient_norm_penalty(t[0], center=1.0, reduction="none",
                                                                              impl=i)),
        "power_iteration": ([W], lambda t, i: ops.power_iteration(t[0], u, v, 3, impl=i)[0]),
        "spectral_normalize": ([W], lambda t, i: ops.spectral_normalize(t[0], u, v, 0, 3, impl=i)[0]),
        "minibatch_discrimination": ([m], lambda t, i: minibatch_discrimination(t[0], impl=i)),
        "mcba-cudnn": ([x, w, s, b[:1].repeat(4)], lambda t, i: mcba(*t, padding=1, act="lrelu", algorithm="cudnn",
                                                                    impl=i)),
        "mcba-up2": ([x, w, s, b[:1].repeat(4)], lambda t, i: mcba(*t, up=2, padding=1, resample_filter=F4,
                                                                  flip_weight=False, act="lrelu", impl=i)),
        "mcba-implicit_gemm": ([x, w, s, b[:1].repeat(4)], lambda t, i: mcba(*t, padding=1, act="swish",
                                                                            algorithm="implicit_gemm", impl=i)),
    }


F64 = _f64_cases()


@pytest.mark.parametrize("name", list(F64))
def test_float64_triton_is_exact_where_it_keeps_float64(name):
    """The ops whose Triton path keeps float64 compute it exactly: 1e-12 relative to ref, forward and gradient."""
    inputs, fn = F64[name]
    got, want = [_run(lambda: fn(t, impl), t) for impl, t in
                 (("triton", [a.clone().requires_grad_() for a in inputs]),
                  ("ref", [a.clone().requires_grad_() for a in inputs]))]
    for a, b in zip(got[0] + got[1], want[0] + want[1]):
        assert a.dtype == torch.float64
        scale = b.abs().max().item()
        assert (a - b).abs().max().item() <= 1e-12 * max(scale, 1.0), name


F32_ONLY = {
    "upfirdn2d": lambda x, i: ops.upfirdn2d(x, F4, up=2, padding=1, impl=i),
    "upsample2d": lambda x, i: ops.upsample2d(x, F4, impl=i),
    "modulated_conv2d": lambda x, i: ops.modulated_conv2d(x, rnd(4, 3, 3, 3), rnd(2, 3), padding=1, impl=i),
    "filtered_lrelu": lambda x, i: ops.filtered_lrelu(x, torch.ones(4) / 4, torch.ones(4) / 4, up=2, down=2,
                                                      padding=3, impl=i),
}


@pytest.mark.parametrize("name", list(F32_ONLY))
def test_float64_never_reaches_a_float32_kernel(name):
    """upfirdn2d, modulated_conv2d and filtered_lrelu compute in float32 on Triton: an explicit impl='triton'
    refuses float64 (UnsupportedDtypeError, a TypeError naming the dtype) before any kernel; the automatic choice
    (here forced to triton with gan_fast.config.use_backend, as on a GPU) runs ref, exactly."""
    fn = F32_ONLY[name]
    x = rnd(2, 3, 6, 6, dtype=torch.float64)
    with pytest.raises(UnsupportedDtypeError, match="float64"):
        fn(x, "triton")
    want = fn(x, "ref")
    with config.use_backend("triton"):
        got = fn(x, None)
    assert got.dtype == torch.float64
    assert torch.equal(got, want)


def test_complex_weights_run_ref_and_triton_refuses_them():
    W = rnd(5, 7).to(torch.complex64)
    u, v = torch.ones(5, dtype=torch.complex64) / 5 ** 0.5, torch.ones(7, dtype=torch.complex64) / 7 ** 0.5
    with pytest.raises(TypeError, match="complex"):
        ops.power_iteration(W, u, v, impl="triton")
    with pytest.raises(TypeError, match="complex"):
        ops.spectral_normalize(W, u, v, impl="triton")
    sigma, _, _ = ops.power_iteration(W, u, v, 50)
    torch.testing.assert_close(sigma.real, torch.linalg.matrix_norm(W, 2), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------ item 8: mixed dtypes

def _mixed_cases():
    f64 = torch.float64
    return {
        "bias_act-x64-b32": (ALL, lambda i: ([x := leaf(2, 3, 4, dtype=f64), b := leaf(3)],
                                             lambda: ops.bias_act(x, b, act="elu", impl=i))),
        "bias_act-x32-b64": (ALL, lambda i: ([x := leaf(2, 3, 4), b := leaf(3, dtype=f64)],
                                             lambda: ops.bias_act(x, b, act="elu", impl=i))),
        "upfirdn2d-x32-f64": (ALL, lambda i: ([x := leaf(1, 2, 5, 6)],
                                              lambda: ops.upfirdn2d(x, F4.double(), up=2, impl=i))),
        "upfirdn2d-x64-f32": (("ref", "cpp"), lambda i: ([x := leaf(1, 2, 5, 6, dtype=f64)],
                                                         lambda: ops.upfirdn2d(x, F4, up=2, impl=i))),
        "modconv-x32-w64": (TR, lambda i: ([x := leaf(2, 3, 5, 5), w := leaf(4, 3, 3, 3, dtype=f64),
                                            s := leaf(2, 3, dtype=f64)],
                                           lambda: ops.modulated_conv2d(x, w, s, noise=rnd(2, 1, 5, 5, dtype=f64),
                                                                        padding=1, impl=i))),
        "mcba-x32-w64-b64": (TR, lambda i: ([x := leaf(2, 3, 5, 5), w := leaf(4, 3, 3, 3, dtype=f64),
                                             s := leaf(2, 3), b := leaf(4, dtype=f64)],
                                            lambda: mcba(x, w, s, b, padding=1, act="lrelu", impl=i))),
        "mcba-x64-w32": (TR, lambda i: ([x := leaf(2, 3, 5, 5, dtype=f64), w := leaf(4, 3, 3, 3), s := leaf(2, 3)],
                                        lambda: mcba(x, w, s, padding=1, act="lrelu", impl=i))),
        "power_iteration-u32-v64": (TR, lambda i: ([W := leaf(5, 7)], lambda: ops.power_iteration(
            W, rnd(5), rnd(7, dtype=f64), 2, impl=i))),
        "power_iteration-W64-u32": (TR, lambda i: ([W := leaf(5, 7, dtype=f64)], lambda: ops.power_iteration(
            W, rnd(5), rnd(7), 2, impl=i))),
        "spectral_normalize-u64": (TR, lambda i: ([W := leaf(5, 3, 2)], lambda: ops.spectral_normalize(
            W, rnd(5, dtype=f64), rnd(6), 0, 2, impl=i))),
        "filtered_lrelu-b64-f64": (TR, lambda i: ([x := leaf(1, 2, 8, 8), b := leaf(2, dtype=f64)],
                                                  lambda: ops.filtered_lrelu(x, torch.ones(4, dtype=f64) / 4,
                                                                             torch.ones(4) / 4, b, up=2, down=2,
                                                                             padding=3, impl=i))),
    }


MIXED = _mixed_cases()


@pytest.mark.parametrize("name", list(MIXED))
def test_mixed_dtypes_follow_x_on_every_backend(name):
    """Secondary tensors are cast to the main tensor's dtype: the output has x's dtype, each gradient its
    input's dtype, and every backend agrees (float32 tolerance where x is float32)."""
    impls, make = MIXED[name]
    results = {}
    for impl in impls:
        leaves, fn = make(impl)
        results[impl] = _run(fn, leaves)
        main = leaves[0].dtype
        assert all(o.dtype == main for o in results[impl][0] if o.is_floating_point()), name
        assert [g.dtype for g in results[impl][1]] == [t.dtype for t in leaves]
    want = results["ref"]
    for impl, got in results.items():
        for a, b in zip(got[0] + got[1], want[0] + want[1]):
            torch.testing.assert_close(a, b, rtol=2e-4, atol=2e-5, msg=lambda m: f"{impl}: {m}")


# ---------------------------------------------------------------------------------------- item 9: named errors

NAMED = [
    (lambda: ops.modulated_conv2d(*_mc_args(), noise=rnd(2, 4, 5, 5), padding=1), ValueError,
     r"noise must be broadcastable to the output \[2, 4, 6, 6\]"),
    (lambda: ops.modulated_conv2d(*_mc_args(), noise=rnd(3, 1, 6, 6), padding=1), ValueError, "noise must be"),
    (lambda: gnn.ModulatedConv2d(3, 4, 5)(rnd(2, 3, 6, 6), rnd(2, 5), noise=rnd(2, 4, 5, 5)), ValueError, "noise"),
    (lambda: ops.modulated_conv2d(*_mc_args(), up=2, resample_filter=torch.ones(0)), ValueError,
     "resample_filter must have at least one tap"),
    (lambda: ops.upsample2d(_x(), torch.ones(0)), ValueError, "f must have at least one tap"),
    (lambda: gnn.conv2d_resample(_x(), rnd(4, 3, 3)), ValueError, "w must be 4-D"),
    (lambda: gnn.conv2d_resample(rnd(3, 6, 6), rnd(4, 3, 3, 3)), ValueError, "x must be 4-D"),
    (lambda: gnn.conv2d_resample(_x(), rnd(4, 2, 3, 3)), ValueError, r"w must have shape \[O, 3, kh, kw\]"),
    (lambda: gnn.conv2d_resample(_x(), rnd(4, 3, 3, 3), up=2), ValueError, "f is required"),
    (lambda: gnn.conv2d_resample(_x(), rnd(4, 3, 3, 3), padding="same"), TypeError, "padding must be an int"),
    (lambda: gnn.conv2d_resample(_x(), rnd(4, 3, 3, 3), groups=0), ValueError, "groups must be >= 1"),
    (lambda: ops.conv2d(_x(), rnd(4, 3, 3)), ValueError, "weight must be a 4-D tensor"),
    (lambda: ops.conv_transpose2d(rnd(6, 6), rnd(3, 4, 3, 3)), ValueError, "input must be a 4-D"),
    (lambda: gnn.apply_spectral_norm(nn.Linear(3, 4), types=int), TypeError, "types must hold nn.Module subclasses"),
    (lambda: gnn.apply_spectral_norm(nn.Linear(3, 4), types="Linear"), TypeError, "types must be"),
    (lambda: gnn.apply_spectral_norm(nn.Linear(3, 4), predicate=3), TypeError, "predicate must be"),
    (lambda: gnn.apply_spectral_norm(3), TypeError, "model must be an nn.Module"),
    (lambda: gnn.SpectralNorm(torch.tensor(1.0)), ValueError, "weight must have at least one dimension"),
    (lambda: gnn.SpectralNorm(torch.ones(3, 4, dtype=torch.int64)), TypeError, "weight must have a floating-point"),
    (lambda: gnn.SpectralNorm([[1.0]]), TypeError, "weight must be a torch.Tensor"),
    (lambda: gnn.spectral_norm(nn.Linear(3, 4), dim=True), TypeError, "dim must be an int"),
    (lambda: gnn.spectral_norm(nn.Linear(3, 4), name=3), TypeError, "name must be a str"),
    (lambda: gnn.spectral_norm_step(3).__enter__(), TypeError, "model must be an nn.Module"),
    (lambda: R.r1_penalty(((t := leaf(0, 3)) * 2).sum(1), t), ValueError, "reduction='mean' over an empty batch"),
    (lambda: _trainer(pl_interval=0), ValueError, "pl_interval must be >= 1"),
    (lambda: _trainer(r1_interval=1.5), TypeError, "r1_interval must be an int"),
    (lambda: models.Generator(4, 0, 4, 8, 3, channel_base=0), ValueError, "channel_base must be >= 1"),
    (lambda: models.Generator(4, 0, 4, 8, 3, channel_max=1.5), TypeError, "channel_max must be an int"),
    (lambda: models.Generator(4, 0, 4, 8, 0), ValueError, "img_channels must be >= 1"),
    (lambda: models.Generator(4, 0, 4, 8, 3, mapping_kwargs=3), TypeError, "mapping_kwargs must be a dict"),
    (lambda: models.Discriminator(0, 8, 3, mbstd_num_channels=-1), ValueError, "mbstd_num_channels must be >= 0"),
    (lambda: models.Discriminator(0, 8, 3, mbstd_group_size=0), ValueError, "mbstd_group_size must be >= 1"),
    (lambda: models.Discriminator(0, 8, 3, activation="gelu"), ValueError, "activation must be one of"),
    (lambda: models.SNDiscriminator(channel_multipliers=3), TypeError, "channel_multipliers must be a list"),
    (lambda: models.SNDiscriminator(min_resolution=0), ValueError, "min_resolution must be >= 1"),
    (lambda: gnn.FullyConnectedLayer(3, 4, activation="gelu"), ValueError, "activation must be one of"),
    (lambda: gnn.FullyConnectedLayer(3, 4, bias_init="a"), TypeError, "bias_init must be a number"),
    (lambda: gnn.Conv2dLayer(3, 4, 3, resample_filter=[1, -1]), ValueError, "resample_filter: f: the taps sum to 0"),
    (lambda: gnn.Conv2dLayer(3, 4, 3, resample_filter=[]), ValueError, "resample_filter: f must have at least"),
    (lambda: gnn.SynthesisLayer(3, 4, 5, 8, activation="gelu"), ValueError, "activation must be one of"),
    (lambda: gnn.MappingNetwork(4, 0, 5, 3, layer_features=-2), ValueError, "layer_features must be >= 1"),
    (lambda: gnn.MappingNetwork(4, 0, 5, 3, 2)(rnd(2, 4), truncation_psi="1"), TypeError, "truncation_psi"),
    (lambda: gnn.MappingNetwork(4, 0, 5, 3, 2)(rnd(2, 4), truncation_psi=0.5, truncation_cutoff=1.5), TypeError,
     "truncation_cutoff must be an int"),
    (lambda: ops.bias_act(_x(), rnd(3).long()), TypeError, "b must have a floating-point dtype"),
    (lambda: ops.gradient_norm_penalty(torch.tensor(1.0)), ValueError, "grads must be"),
    (lambda: R.PathLengthPenalty(no_weight_gradients="yes"), TypeError, "no_weight_gradients must be a bool"),
    (lambda: losses.d_loss(rnd(0), rnd(3), "hinge"), ValueError, "real_logits must be"),
]


@pytest.mark.parametrize("case", NAMED, ids=[str(i) for i in range(len(NAMED))])
def test_errors_name_the_argument(case, tripwire):
    fn, exc, match = case
    with pytest.raises(exc, match=match):
        fn()


def test_apply_spectral_norm_checks_before_changing_any_module():
    from torch.nn.utils import parametrize
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="eps"):
        gnn.apply_spectral_norm(model, eps=NAN)
    assert not any(parametrize.is_parametrized(m) for m in model)


def test_spectral_norm_dim_out_of_range_is_both_index_and_value_error():
    for exc in (IndexError, ValueError):  # PyTorch raises IndexError; gan_fast's argument errors are ValueErrors
        with pytest.raises(exc, match="dim must be in"):
            gnn.spectral_norm(nn.Linear(3, 4), dim=2)


# --------------------------------------------------------------------------------- structure: one home for the step

@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors is a no-op")
def test_spectral_norm_step_leaves_complex_and_empty_layers_to_themselves():
    """The batched (Triton) step serves real non-empty weights; complex and empty ones compute themselves (ref),
    with the results the per-layer path gives."""
    torch.manual_seed(0)
    net = nn.ModuleList([gnn.spectral_norm(nn.Linear(3, 4)), gnn.spectral_norm(nn.Linear(3, 2, dtype=torch.complex64)),
                         gnn.spectral_norm(nn.Linear(3, 0)), gnn.spectral_norm(nn.Linear(0, 2))])
    assert [m for m, _, _ in find_spectral_norm_layers(net)] == [net[0]]
    ref = copy.deepcopy(net)
    with gnn.spectral_norm_step(net, impl="triton"):
        got = [m.weight for m in net]
    want = [m.weight for m in ref]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    from gan_fast.ops import spectral_normalize_many
    with pytest.raises(ValueError, match=r"weights\[0\] must be a real floating tensor"):
        spectral_normalize_many([torch.ones(0, 3)], [torch.ones(0)], [torch.ones(3)], [0], 1, 1e-12, False)


def test_the_multi_tensor_step_does_not_import_nn():
    """nn depends on ops, never the reverse: gan_fast.backends.spectral_norm_multi names no gan_fast.nn."""
    mod = importlib.import_module("gan_fast.backends.spectral_norm_multi")
    tree = ast.parse(inspect.getsource(mod))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert not (node.module or "").startswith(("nn", "gan_fast.nn")) and not (
                node.level == 2 and (node.module or "").startswith("nn")), ast.dump(node)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            assert "nn" not in ast.dump(node)

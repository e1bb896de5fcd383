"""StyleGAN2-ADA / StyleGAN3 call sites run unchanged against gan_fast.compat (checked against definitions
written here, never against the originals' code)."""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from gan_fast import backend, config
from gan_fast.compat import bias_act, conv2d_gradfix, conv2d_resample, fma, upfirdn2d
from gan_fast.reference.conv2d_resample import conv2d_resample as ref_conv2d_resample


def test_stylegan2_call_sites():
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64)
    y = bias_act.bias_act(x, b, act="lrelu", gain=1.0, clamp=256, impl="ref")
    torch.testing.assert_close(y, F.leaky_relu(x + b[None, :, None, None], 0.2))
    f = upfirdn2d.setup_filter([1, 3, 3, 1], device=x.device).double()
    assert upfirdn2d.upsample2d(x, f).shape == (2, 4, 16, 16)
    assert upfirdn2d.downsample2d(x, f).shape == (2, 4, 4, 4)
    assert upfirdn2d.filter2d(x, f, padding=1).shape == (2, 4, 10, 10)
    w = torch.randn(3, 4, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(conv2d_gradfix.conv2d(x, w, padding=1), F.conv2d(x, w, padding=1))
    assert conv2d_gradfix.enabled


@pytest.mark.parametrize("up, down, groups", [(1, 1, 1), (2, 1, 1), (1, 2, 2), (2, 1, 2)])
def test_conv2d_resample_matches_reference(up, down, groups):
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, 3, 3, dtype=torch.float64)
    f = upfirdn2d.setup_filter([1, 3, 3, 1]).double()
    got = conv2d_resample.conv2d_resample(x, w, f, up=up, down=down, padding=1, groups=groups)
    torch.testing.assert_close(got, ref_conv2d_resample(x, w, f, up, down, (1, 1, 1, 1), groups=groups))
    with pytest.raises(ValueError, match="w must have shape"):
        conv2d_resample.conv2d_resample(x, w[:, :1], f, groups=groups)
    with pytest.raises(ValueError, match="f is required"):
        conv2d_resample.conv2d_resample(x, w, None, up=2, groups=groups)


# ------------------------------------------------------------------------------ the rest of the surface

SQRT2 = math.sqrt(2)
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805
# name: (def_alpha, def_gain, cuda_idx, ref, has_2nd_grad, definition(x, alpha)) as the originals define them
ACTS = {
    "linear": (0, 1, 1, "", False, lambda x, a: x),
    "relu": (0, SQRT2, 2, "y", False, lambda x, a: torch.where(x > 0, x, 0 * x)),
    "lrelu": (0.2, SQRT2, 3, "y", False, lambda x, a: torch.where(x >= 0, x, a * x)),
    "tanh": (0, 1, 4, "y", True, lambda x, a: (x.exp() - (-x).exp()) / (x.exp() + (-x).exp())),
    "sigmoid": (0, 1, 5, "y", True, lambda x, a: 1 / (1 + (-x).exp())),
    "elu": (0, 1, 6, "y", True, lambda x, a: torch.where(x >= 0, x, x.exp() - 1)),  # alpha ignored there
    "selu": (0, 1, 7, "y", True, lambda x, a: SELU_SCALE * torch.where(x >= 0, x, SELU_ALPHA * (x.exp() - 1))),
    "softplus": (0, 1, 8, "y", True, lambda x, a: (1 + x.exp()).log()),
    "swish": (0, SQRT2, 9, "x", True, lambda x, a: x / (1 + (-x).exp())),
}


def test_compat_exports():
    import gan_fast.compat as compat

    assert set(compat.__all__) >= {"bias_act", "conv2d_gradfix", "conv2d_resample", "fma", "grid_sample_gradfix",
                                   "upfirdn2d"}
    for name in ["setup_filter", "upfirdn2d", "filter2d", "upsample2d", "downsample2d"]:
        assert callable(getattr(upfirdn2d, name))


def test_activation_funcs_table():
    assert set(bias_act.activation_funcs) == set(ACTS)
    x = torch.linspace(-3, 3, 13, dtype=torch.float64)
    for name, (def_alpha, def_gain, cuda_idx, ref, has_2nd_grad, definition) in ACTS.items():
        spec = bias_act.activation_funcs[name]
        assert set(spec) == {"func", "def_alpha", "def_gain", "cuda_idx", "ref", "has_2nd_grad"}
        assert all(getattr(spec, key) is spec[key] for key in spec)  # attribute and item access
        assert (spec.cuda_idx, spec.ref, spec.has_2nd_grad) == (cuda_idx, ref, has_2nd_grad), name
        assert (spec.def_alpha, spec.def_gain) == pytest.approx((def_alpha, def_gain)), name
        alpha = 0.3 if name == "lrelu" else def_alpha
        # The originals call func(x, alpha=alpha), and their functions take and ignore extra keywords.
        torch.testing.assert_close(spec.func(x, alpha=0.3, gain=7.0, unused="yes"), definition(x, alpha))
        torch.testing.assert_close(spec.func(x, alpha=def_alpha), definition(x, def_alpha))
    with pytest.raises(AttributeError):
        bias_act.activation_funcs["lrelu"].no_such_field


@pytest.mark.parametrize("act", sorted(ACTS))
def test_compat_bias_act_matches_definition(act):
    def_alpha, def_gain, *_, definition = ACTS[act]
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=g)
    b = torch.randn(3, dtype=torch.float64, generator=g)
    v = x + b[None, :, None, None]
    torch.testing.assert_close(bias_act.bias_act(x, b, act=act), definition(v, def_alpha) * def_gain)
    alpha = 0.3 if act == "lrelu" else def_alpha  # only lrelu reads alpha, as in the originals (elu too)
    want = (definition(v, alpha) * 0.7).clamp(-0.5, 0.5)
    torch.testing.assert_close(bias_act.bias_act(x, b, act=act, alpha=0.3, gain=0.7, clamp=0.5), want)


def _record_choices(monkeypatch):
    """Records (op, impl argument, chosen backend) of every backend choice."""
    calls = []
    choose = backend.choose

    def spy(spec, impl, *args, **kwargs):
        chosen = choose(spec, impl, *args, **kwargs)
        calls.append((spec.name, impl, chosen))
        return chosen
    monkeypatch.setattr(backend, "choose", spy)
    return calls


def _compat_calls(impl):
    """Every compat function that takes impl, called the StyleGAN2-ADA way on small CPU tensors."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 6, 6, generator=g)
    b = torch.randn(3, generator=g)
    f = upfirdn2d.setup_filter([1, 3, 3, 1])
    kw = {} if impl is _DEFAULT else {"impl": impl}
    return [bias_act.bias_act(x, b, act="lrelu", **kw), upfirdn2d.upfirdn2d(x, f, up=2, padding=1, **kw),
            upfirdn2d.filter2d(x, f, **kw), upfirdn2d.upsample2d(x, f, **kw), upfirdn2d.downsample2d(x, f, **kw)]


_DEFAULT = object()


def test_impl_cuda_is_the_automatic_choice(monkeypatch):
    calls = _record_choices(monkeypatch)
    for impl in [_DEFAULT, "cuda", "CUDA"]:
        _compat_calls(impl)
    assert calls and all(impl is None for _, impl, _ in calls)
    calls.clear()
    _compat_calls("ref")
    assert calls and all(impl == "ref" == chosen for _, impl, chosen in calls)
    # A forced backend still applies to the automatic choice (Triton runs on CPU under the test interpreter).
    calls.clear()
    with config.use_backend("triton"):
        _compat_calls("cuda")
    assert calls and all(chosen == "triton" for _, _, chosen in calls)


@pytest.mark.parametrize("extension_loads", [True, False])
def test_impl_cuda_never_raises_on_cpu_tensors(extension_loads, monkeypatch):
    """With the extension and without it (its loader simulated failing), impl='cuda' through compat runs
    on CPU tensors and gives the reference's results, as the originals do; the core API stays strict."""
    from gan_fast import extension, ops
    from gan_fast.compat import rosinality

    if not extension_loads:
        monkeypatch.setattr(extension, "status", lambda: (False, "simulated: no C++ compiler"))
    backend.reset_warnings()  # forget earlier backend choices, made with the real extension
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the one fallback warning, when it falls back
            got = _compat_calls("cuda") + _compat_calls(_DEFAULT)
            x = torch.randn(2, 3, 4, 4)
            got.append(rosinality.fused_leaky_relu(x, torch.randn(3)))
            got.append(rosinality.upfirdn2d(x, torch.ones(2, 2), up=2, pad=(1, 0)))
        want = _compat_calls("ref") * 2
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b)
        assert all(torch.isfinite(t).all() for t in got)
        if not extension_loads:
            with pytest.raises(backend.BackendUnavailableError, match="simulated"):
                ops.bias_act(x, impl="cuda")
    finally:
        backend.reset_warnings()


def test_weight_gradients_disabled_is_a_live_bool():
    from gan_fast import conv2d_gradfix as core

    assert conv2d_gradfix.weight_gradients_disabled is False
    assert not conv2d_gradfix.weight_gradients_disabled  # `if ...weight_gradients_disabled:` reads the flag
    assert "weight_gradients_disabled" in dir(conv2d_gradfix)
    with conv2d_gradfix.no_weight_gradients():
        assert conv2d_gradfix.weight_gradients_disabled is True
        with conv2d_gradfix.no_weight_gradients(disable=False):  # StyleGAN3's argument keeps the outer state
            assert conv2d_gradfix.weight_gradients_disabled is True
    assert conv2d_gradfix.weight_gradients_disabled is False
    ns = {}
    exec("from gan_fast.compat.conv2d_gradfix import *", ns)
    assert ns["weight_gradients_disabled"] is False
    x = torch.randn(1, 2, 4, 4, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, requires_grad=True)
    try:
        conv2d_gradfix.weight_gradients_disabled = True  # assigning sets the flag, as the originals' global
        assert core.weight_gradients_disabled()
        assert torch.autograd.grad(conv2d_gradfix.conv2d(x, w).sum(), [x, w], allow_unused=True)[1] is None
    finally:
        conv2d_gradfix.weight_gradients_disabled = False
    assert not core.weight_gradients_disabled()


@pytest.mark.parametrize("enabled", [True, False])
def test_enabled_is_honoured(enabled, monkeypatch):
    """enabled=False: plain convolutions, whose weight gradients no_weight_gradients() does not skip
    (conv2d, conv_transpose2d and conv2d_resample's convolutions); True: skipped."""
    monkeypatch.setattr(conv2d_gradfix, "enabled", enabled)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(5, 4, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    wt = torch.randn(4, 5, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    f = upfirdn2d.setup_filter([1, 3, 3, 1]).double()
    outs = [conv2d_gradfix.conv2d(x, w, padding=1), conv2d_gradfix.conv_transpose2d(x, wt, stride=2),
            conv2d_resample.conv2d_resample(x, w, f, up=2, padding=1),
            conv2d_resample.conv2d_resample(x, w, f, down=2, padding=1)]
    torch.testing.assert_close(outs[0], F.conv2d(x, w, padding=1))
    for y, weight in zip(outs, [w, wt, w, w]):
        with conv2d_gradfix.no_weight_gradients():
            gx, gw = torch.autograd.grad(y.square().sum(), [x, weight], allow_unused=True)
        assert gx is not None
        assert (gw is not None) == (not enabled)


@pytest.mark.parametrize("shapes", [[(2, 3, 4), (2, 3, 4), (2, 3, 4)], [(3, 1, 5), (4, 1), (1,)],
                                    [(1, 4), (3, 1), (2, 3, 4)]])
def test_fma(shapes):
    g = torch.Generator().manual_seed(7)
    a, b, c = (torch.randn(*s, dtype=torch.float64, generator=g, requires_grad=True) for s in shapes)
    y = fma.fma(a, b, c)
    torch.testing.assert_close(y, a * b + c)
    grads = torch.autograd.grad(y.square().sum(), [a, b, c])
    assert [t.shape for t in grads] == [a.shape, b.shape, c.shape]
    assert torch.autograd.gradgradcheck(fma.fma, (a, b, c))

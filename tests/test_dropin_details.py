"""Drop-in details real client code trips on (issue 24, part 2).

* ``FusedLeakyReLU``'s older signature ``(channel, negative_slope, scale)`` (BasicSR, GFPGAN, e4e, pSp)
  next to the current ``(channel, bias, negative_slope, scale)``.
* ``conv2d_gradfix.no_weight_gradients()`` keeps the gradient of a computed weight (NVlabs' path-length
  step with fused modulated convolution) and skips those of leaf-derived weights, reading the flag at
  backward time.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import gan_fast.compat.conv2d_gradfix as nv_gradfix
import gan_fast.compat.rosinality.conv2d_gradfix as ros_gradfix
from gan_fast import conv2d_gradfix, regularizers
from gan_fast.compat.rosinality import FusedLeakyReLU

F64 = torch.float64
GRADFIX_MODULES = [conv2d_gradfix, nv_gradfix, ros_gradfix]
MODULE_IDS = ["core", "nvlabs", "rosinality"]


def _lrelu(x, bias, slope, scale):
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.ndim - 2)))
    return F.leaky_relu(x, slope) * scale


# ----------------------------------------------------------------------------------------- FusedLeakyReLU

SIGNATURES = r"FusedLeakyReLU\(channel, bias=True, negative_slope=0\.2.*FusedLeakyReLU\(channel, negative_slope=0\.2"


@pytest.mark.parametrize("args, kwargs, bias, slope, scale", [
    # the older signature: (channel, negative_slope, scale), always with a bias
    ((4, 0.1), {}, True, 0.1, 2 ** 0.5),
    ((4, 0.1, 1.0), {}, True, 0.1, 1.0),
    ((4, 0), {}, True, 0, 2 ** 0.5),  # an int is a slope too
    ((4, 1, 2), {}, True, 1, 2),
    ((4, np.float32(0.25)), {}, True, 0.25, 2 ** 0.5),  # numpy scalars are numbers
    ((4, 0.1), {"scale": 1.0}, True, 0.1, 1.0),
    # the current signature: (channel, bias, negative_slope, scale)
    ((4,), {}, True, 0.2, 2 ** 0.5),
    ((4, True), {}, True, 0.2, 2 ** 0.5),
    ((4, False), {}, False, 0.2, 2 ** 0.5),
    ((4, True, 0.1), {}, True, 0.1, 2 ** 0.5),
    ((4, False, 0.1, 1.0), {}, False, 0.1, 1.0),
    ((4, True), {"scale": 1.0}, True, 0.2, 1.0),
    ((4, False, 0.3), {"scale": 1.5}, False, 0.3, 1.5),
    # keyword forms, the same in both
    ((4,), {"negative_slope": 0.1}, True, 0.1, 2 ** 0.5),
    ((4,), {"negative_slope": 0.1, "scale": 1.0}, True, 0.1, 1.0),
    ((4,), {"bias": False, "negative_slope": 0.1}, False, 0.1, 2 ** 0.5),
    ((), {"channel": 4, "bias": True, "negative_slope": 0.05, "scale": 3.0}, True, 0.05, 3.0),
])
def test_fused_leaky_relu_both_signatures(args, kwargs, bias, slope, scale):
    m = FusedLeakyReLU(*args, **kwargs)
    assert m.negative_slope == slope and m.scale == scale
    assert (m.bias is not None) == bias
    if bias:
        assert list(m.state_dict()) == ["bias"] and torch.equal(m.bias.detach(), torch.zeros(4))
        assert isinstance(m.bias, torch.nn.Parameter)
        m.load_state_dict({"bias": torch.arange(4.0)})
    else:
        assert not m.state_dict()
    x = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(m(x), _lrelu(x, m.bias, float(slope), float(scale)))


def test_fused_leaky_relu_old_signature_is_not_a_bias():
    """The bug: FusedLeakyReLU(4, 0.1) used to mean bias=0.1 (truthy) with slope 0.2."""
    old = FusedLeakyReLU(4, 0.1)
    assert old.negative_slope == 0.1 and old.scale == 2 ** 0.5 and old.bias is not None
    x = -torch.ones(1, 4, 2, 2)
    torch.testing.assert_close(old(x), torch.full_like(x, -0.1 * 2 ** 0.5))
    # A checkpoint of the older module loads into the current one, and back.
    new = FusedLeakyReLU(4, True, 0.1)
    new.load_state_dict(old.state_dict())
    old.load_state_dict(new.state_dict())
    assert "negative_slope=0.1" in repr(old)


@pytest.mark.parametrize("args, kwargs", [
    ((4, 0.1), {"negative_slope": 0.3}),  # conflicting positional and keyword slope
    ((4, 0.1), {"negative_slope": 0.1}),  # given twice, even with the same value
    ((4, 0.1, 1.0), {"scale": 2.0}),
    ((4, True, 0.1), {"negative_slope": 0.3}),
    ((4, True, 0.1, 1.0), {"scale": 2.0}),
    ((4, True), {"bias": False}),
    ((4, 0.1), {"bias": True}),  # the older signature has no bias argument
    ((4, 0.1, 1.0, 2.0), {}),  # too many for the older signature
    ((4, True, 0.1, 1.0, 2.0), {}),  # too many for the current one
    ((4, "0.1"), {}),
    ((4, None), {}),
    ((4, torch.tensor(0.1)), {}),
])
def test_fused_leaky_relu_signature_errors_name_both(args, kwargs):
    with pytest.raises(TypeError, match=SIGNATURES):
        FusedLeakyReLU(*args, **kwargs)


def test_fused_leaky_relu_bad_numbers():
    with pytest.raises(TypeError, match="scale must be a number"):
        FusedLeakyReLU(4, 0.1, "x")
    with pytest.raises(TypeError, match="negative_slope must be a number"):
        FusedLeakyReLU(4, True, None)
    with pytest.raises(ValueError, match="negative_slope must be finite"):
        FusedLeakyReLU(4, negative_slope=float("nan"))


# ----------------------------------------------------------------------------------------- is_leaf_derived


def test_is_leaf_derived():
    g = torch.Generator().manual_seed(0)
    p = torch.randn(4, 3, 3, 3, dtype=F64, generator=g, requires_grad=True)
    styles = torch.randn(2, 3, dtype=F64, generator=g, requires_grad=True)
    leaf_derived = [
        p, p.float(), p.to(torch.float16), p * 0.5, p * torch.tensor(0.5, dtype=F64), (p.float() * 2)[None],
        p.reshape(4, 27).view(4, 3, 3, 3), p.transpose(0, 1).contiguous(), p * p, p.split(2)[0],
        torch.randn(4, 3, 3, 3),  # no grad at all: a leaf
        p[None] * styles.detach()[:, None, :, None, None],  # styles without grad: a constant
    ]
    for w in leaf_derived:
        assert conv2d_gradfix.is_leaf_derived(w), w.grad_fn
    computed = [
        p[None] * styles[:, None, :, None, None],  # the fused modulated convolution
        (p[None] * styles[:, None, :, None, None]).reshape(-1, 3, 3, 3).float(),
        p + styles[0, :, None, None, None].mean(),
        torch.cat([p, p.detach()]) * styles.sum(),
    ]
    for w in computed:
        assert not conv2d_gradfix.is_leaf_derived(w), w.grad_fn


def test_skip_weight_gradient_reads_the_flag_now():
    assert not conv2d_gradfix.skip_weight_gradient(True)
    with conv2d_gradfix.no_weight_gradients():
        assert conv2d_gradfix.skip_weight_gradient(True)
        assert not conv2d_gradfix.skip_weight_gradient(False)
    assert not conv2d_gradfix.skip_weight_gradient(True)


# ----------------------------------------------------------------------------------------- NVlabs path length


def _modulated_conv2d(conv, conv_t, x, weight, styles, demodulate=True, up=False):
    """StyleGAN2-ADA's modulated_conv2d with fused_modconv=True: per-sample weights, one grouped conv."""
    n = x.shape[0]
    co, ci, kh, kw = weight.shape
    w = weight[None] * styles[:, None, :, None, None]  # [N, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()[:, :, None, None, None]
    x = x.reshape(1, -1, *x.shape[2:])
    if up:
        w = w.transpose(1, 2).reshape(n * ci, co, kh, kw)
        out = conv_t(x, w, stride=2, groups=n)
    else:
        out = conv(x, w.reshape(n * co, ci, kh, kw), padding=kh // 2, groups=n)
    return out.reshape(n, co, *out.shape[2:])


class _Generator(torch.nn.Module):
    """mapping -> const -> modconv (up 2) -> modconv -> toRGB (no demod), all fused_modconv=True."""

    def __init__(self, w_dim=5, c=4):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        p = lambda *s: torch.nn.Parameter(torch.randn(*s, dtype=F64, generator=g))  # noqa: E731
        self.mapping = p(w_dim, w_dim)
        self.const = p(c, 4, 4)
        self.weights = torch.nn.ParameterList([p(c, c, 3, 3), p(c, c, 3, 3), p(3, c, 1, 1)])
        self.affines = torch.nn.ParameterList([p(c, w_dim), p(c, w_dim), p(c, w_dim)])

    def run(self, z, conv, conv_t):
        ws = (z @ self.mapping).tanh()[:, None].repeat(1, 3, 1)  # gen_ws: not a leaf, as in NVlabs
        x = self.const[None].repeat(z.shape[0], 1, 1, 1)
        for i, (weight, affine) in enumerate(zip(self.weights, self.affines)):
            styles = ws[:, i] @ affine.T + 1
            x = _modulated_conv2d(conv, conv_t, x, weight, styles, demodulate=i < 2, up=i == 0)
            if i < 2:
                x = F.leaky_relu(x, 0.2)
        return x, ws


def _pl_step(gen, gradfix, plain):
    """NVlabs' StyleGAN2-ADA path-length step: grads of (img * pl_noise).sum() w.r.t. gen_ws inside
    no_weight_gradients(), then the penalty's gradients w.r.t. every parameter."""
    z = torch.randn(2, 5, dtype=F64, generator=torch.Generator().manual_seed(2))
    conv, conv_t = (F.conv2d, F.conv_transpose2d) if plain else (gradfix.conv2d, gradfix.conv_transpose2d)
    img, gen_ws = gen.run(z, conv, conv_t)
    pl_noise = torch.randn(img.shape, dtype=F64, generator=torch.Generator().manual_seed(3)) / math.sqrt(
        img.shape[2] * img.shape[3])
    with gradfix.no_weight_gradients():
        pl_grads = torch.autograd.grad(outputs=[(img * pl_noise).sum()], inputs=[gen_ws], create_graph=True,
                                       only_inputs=True)[0]
    pl_lengths = pl_grads.square().sum(2).mean(1).sqrt()
    penalty = (pl_lengths - 0.5).square().sum()
    return pl_grads, torch.autograd.grad(penalty, list(gen.parameters()))


@pytest.mark.parametrize("gradfix", GRADFIX_MODULES, ids=MODULE_IDS)
def test_nvlabs_path_length_with_fused_modconv(gradfix):
    gen = _Generator()
    got, got_params = _pl_step(gen, gradfix, plain=False)
    want, want_params = _pl_step(gen, gradfix, plain=True)
    assert got.abs().sum() > 0
    torch.testing.assert_close(got, want)
    for a, b in zip(got_params, want_params):
        torch.testing.assert_close(a, b)
    assert not conv2d_gradfix.weight_gradients_disabled()


def test_path_length_penalty_default_with_fused_modconv():
    """PathLengthPenalty's default (inside no_weight_gradients) now works for fused modconv."""
    gen = _Generator()
    z = torch.randn(2, 5, dtype=F64, generator=torch.Generator().manual_seed(2))
    noise = torch.randn(2, 3, 9, 9, dtype=F64, generator=torch.Generator().manual_seed(3))
    img, ws = gen.run(z, conv2d_gradfix.conv2d, conv2d_gradfix.conv_transpose2d)
    got = regularizers.PathLengthPenalty().path_lengths(img, ws, noise)
    img, ws = gen.run(z, F.conv2d, F.conv_transpose2d)
    want = regularizers.PathLengthPenalty(no_weight_gradients=False).path_lengths(img, ws, noise)
    torch.testing.assert_close(got, want)


def test_path_length_penalty_explains_a_leaf_ws_used_as_weight():
    """The one way left to lose ws: ws itself (a leaf) cast to a convolution weight."""
    ws = torch.randn(1, 9, dtype=F64, requires_grad=True)
    x = torch.randn(1, 1, 4, 4)
    img = conv2d_gradfix.conv2d(x, ws.float().reshape(1, 1, 3, 3), padding=1)
    with pytest.raises(ValueError, match="weight gradients are off.*is_leaf_derived.*no_weight_gradients=False"):
        regularizers.PathLengthPenalty().path_lengths(img, ws)


# ----------------------------------------------------------------------------------------- leaf-derived weights


def _conv_data():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 6, 6, generator=g, requires_grad=True)
    w64 = torch.randn(4, 3, 3, 3, dtype=F64, generator=g, requires_grad=True)  # cast to float32 in the forward
    w = torch.randn(4, 3, 3, 3, generator=g, requires_grad=True)
    styles = torch.randn(2, 3, generator=g, requires_grad=True)
    return x, w64, w, styles


@pytest.mark.parametrize("gradfix", GRADFIX_MODULES, ids=MODULE_IDS)
def test_cast_weight_still_skipped(gradfix):
    """NVlabs' non-fused layers run weight.to(dtype) (float16 on CUDA); here float64 -> float32."""
    x, w64, _, _ = _conv_data()
    y = gradfix.conv2d(x, (w64 * 0.5).to(torch.float32), padding=1)
    with gradfix.no_weight_gradients():
        gx, gw = torch.autograd.grad(y.square().sum(), [x, w64], create_graph=True, allow_unused=True)
    assert gw is None
    torch.testing.assert_close(gx, torch.autograd.grad(F.conv2d(x, (w64 * 0.5).float(), padding=1).square().sum(),
                                                       x)[0])
    with gradfix.no_weight_gradients():
        gradfix.conv2d(x, w64.float(), padding=1).sum().backward()
    assert w64.grad is None and x.grad is not None


@pytest.mark.parametrize("gradfix", GRADFIX_MODULES, ids=MODULE_IDS)
def test_backward_on_leaf_weight_inside_context(gradfix):
    x, _, w, _ = _conv_data()
    with gradfix.no_weight_gradients():
        gradfix.conv2d(x, w, padding=1).sum().backward()
        gradfix.conv_transpose2d(x, w.transpose(0, 1), stride=2).sum().backward()
    assert w.grad is None and x.grad is not None


@pytest.mark.parametrize("gradfix", GRADFIX_MODULES, ids=MODULE_IDS)
def test_backward_on_computed_weight_inside_context(gradfix):
    """.backward() through a fused modulated conv inside the context: the weight's gradient is computed
    (it is the styles' path), so both the weight and the styles get the plain convolution's gradients."""
    x, _, w, styles = _conv_data()

    def run(conv, conv_t):
        x.grad = w.grad = styles.grad = None
        with gradfix.no_weight_gradients():
            y = _modulated_conv2d(conv, conv_t, x, w, styles)
            y.square().sum().backward()
        return x.grad, w.grad, styles.grad

    got = run(gradfix.conv2d, gradfix.conv_transpose2d)
    want = run(F.conv2d, F.conv_transpose2d)
    for a, b in zip(got, want):
        assert a is not None
        torch.testing.assert_close(a, b)


def test_flag_is_read_at_backward_time():
    x, _, w, _ = _conv_data()
    y = conv2d_gradfix.conv2d(x, w.to(torch.float32), padding=1)  # forward outside the context
    with conv2d_gradfix.no_weight_gradients():  # entered only around autograd.grad, as NVlabs does
        gx, gw = torch.autograd.grad(y.sum(), [x, w], allow_unused=True)
    assert gw is None and gx is not None
    with conv2d_gradfix.no_weight_gradients():  # forward inside, backward after: the weight gets its gradient
        y = conv2d_gradfix.conv2d(x, w, padding=1)
    gw = torch.autograd.grad(y.sum(), w)[0]
    torch.testing.assert_close(gw, torch.autograd.grad(F.conv2d(x, w, padding=1).sum(), w)[0])


def test_autocast_weight_still_skipped():
    """Under autocast the weight is cast before the convolution: still leaf-derived."""
    x, _, w, _ = _conv_data()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv2d_gradfix.conv2d(x, w, padding=1)
    with conv2d_gradfix.no_weight_gradients():
        gx, gw = torch.autograd.grad(y.float().sum(), [x, w], allow_unused=True)
    assert gw is None and gx is not None

"""gan_fast.compat.rosinality: rosinality's ``op`` API, checked against definitions written here."""

import contextlib
import importlib
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gan_fast.compat.rosinality as op
from gan_fast import backend, config, conv2d_gradfix as core_gradfix, regularizers
from gan_fast.compat.rosinality import FusedLeakyReLU, conv2d_gradfix, fused_leaky_relu, upfirdn2d
from parity import assert_close_scaled

F64 = torch.float64


# ----------------------------------------------------------------------------------------- definitions


def def_fused_leaky_relu(x, bias=None, negative_slope=0.2, scale=2 ** 0.5):
    """leaky_relu(x + bias[dim 1], slope) * scale."""
    v = x if bias is None else x + bias.reshape(1, -1, *([1] * (x.ndim - 2)))
    return torch.where(v >= 0, v, v * negative_slope) * scale


def def_upfirdn2d(x, kernel, up=1, down=1, pad=(0, 0)):
    """rosinality's upfirdn2d: insert up-1 zeros after each sample, pad (x0, x1, y0, y1) (a pair (p0, p1)
    is before/after on both axes; negative pads crop), true convolution with kernel, every down-th sample."""
    ux, uy = (up, up) if isinstance(up, int) else up
    dx, dy = (down, down) if isinstance(down, int) else down
    x0, x1, y0, y1 = (pad[0], pad[1], pad[0], pad[1]) if len(pad) == 2 else pad
    n, c, h, w = x.shape
    z = x.new_zeros(n, c, h * uy, w * ux)
    z[:, :, ::uy, ::ux] = x
    z = F.pad(z, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    z = z[:, :, max(-y0, 0):z.shape[2] - max(-y1, 0), max(-x0, 0):z.shape[3] - max(-x1, 0)]
    kh, kw = kernel.shape
    oh, ow = z.shape[2] - kh + 1, z.shape[3] - kw + 1
    out = sum(z[:, :, a:a + oh, b:b + ow] * kernel[kh - 1 - a, kw - 1 - b] for a in range(kh) for b in range(kw))
    return out[:, :, ::dy, ::dx]


class DefFusedLeakyReLU(nn.Module):
    def __init__(self, channel, bias=True, negative_slope=0.2, scale=2 ** 0.5):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channel)) if bias else None
        self.negative_slope, self.scale = negative_slope, scale

    def forward(self, x):
        return def_fused_leaky_relu(x, self.bias, self.negative_slope, self.scale)


# The op package of the definitions: plain torch convolutions (no weight-gradient switch needed).
DEF_OP = SimpleNamespace(
    FusedLeakyReLU=DefFusedLeakyReLU, fused_leaky_relu=def_fused_leaky_relu, upfirdn2d=def_upfirdn2d,
    conv2d_gradfix=SimpleNamespace(conv2d=F.conv2d, conv_transpose2d=F.conv_transpose2d,
                                   no_weight_gradients=contextlib.nullcontext))


# ----------------------------------------------------------------------------------------- imports


def test_imports_mirror_the_op_package():
    from gan_fast.compat.rosinality.conv2d_gradfix import conv2d, conv_transpose2d, no_weight_gradients  # noqa: F401
    from gan_fast.compat.rosinality.fused_act import FusedLeakyReLU as A, fused_leaky_relu as a
    from gan_fast.compat.rosinality.upfirdn2d import upfirdn2d as u

    assert A is FusedLeakyReLU and a is fused_leaky_relu and u is upfirdn2d
    assert callable(op.upfirdn2d)  # the function, as op/__init__.py rebinds the name
    assert importlib.import_module("gan_fast.compat.rosinality.upfirdn2d").upfirdn2d is upfirdn2d
    assert op.conv2d_gradfix is conv2d_gradfix
    assert set(op.__all__) >= {"FusedLeakyReLU", "fused_leaky_relu", "upfirdn2d", "conv2d_gradfix"}
    assert conv2d_gradfix.enabled is True and conv2d_gradfix.weight_gradients_disabled is False


# ----------------------------------------------------------------------------------------- fused_leaky_relu


@pytest.mark.parametrize("shape", [(3, 5), (2, 5, 7), (2, 5, 4, 3), (1, 5, 2, 3, 2)])
def test_fused_leaky_relu_matches_definition(shape):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(*shape, dtype=F64, generator=g, requires_grad=True)
    b = torch.randn(5, dtype=F64, generator=g, requires_grad=True)
    for slope, scale in [(0.2, 2 ** 0.5), (0.05, 1.0)]:  # the slope is honoured on CPU too
        torch.testing.assert_close(fused_leaky_relu(x, b, slope, scale), def_fused_leaky_relu(x, b, slope, scale))
    torch.testing.assert_close(fused_leaky_relu(x), def_fused_leaky_relu(x))
    assert torch.autograd.gradgradcheck(lambda x, b: fused_leaky_relu(x, b, 0.1, 1.3), (x, b))


def test_fused_leaky_relu_module_state_and_errors():
    m = FusedLeakyReLU(4)
    assert list(m.state_dict()) == ["bias"] and torch.equal(m.bias, torch.zeros(4))
    m.load_state_dict({"bias": torch.arange(4.0)})
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(m(x), def_fused_leaky_relu(x, torch.arange(4.0)))
    n = FusedLeakyReLU(4, bias=False, negative_slope=0.1, scale=1.0)
    assert n.bias is None and not n.state_dict()
    torch.testing.assert_close(n(x), def_fused_leaky_relu(x, None, 0.1, 1.0))
    with pytest.raises(ValueError, match="bias must have shape"):
        fused_leaky_relu(x, torch.zeros(3))
    with pytest.raises(ValueError, match="input must be"):
        fused_leaky_relu(torch.zeros(4))


# ----------------------------------------------------------------------------------------- upfirdn2d


@pytest.mark.parametrize("up, down, pad", [
    (1, 1, (2, 1)),               # p0 != p1: before/after on both axes
    (2, 1, (2, 1)),               # rosinality's Upsample pads
    (1, 2, (1, 1)),
    ((2, 1), (1, 2), (0, 2, 1, -1)),  # per-axis factors, 4-tuple with a crop
    (2, 2, (-1, 3)),
])
def test_upfirdn2d_matches_definition(up, down, pad):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 6, 5, dtype=F64, generator=g, requires_grad=True)
    k = torch.randn(3, 4, dtype=F64, generator=g)  # asymmetric: flipping or transposing it changes the result
    got = upfirdn2d(x, k, up=up, down=down, pad=pad)
    torch.testing.assert_close(got, def_upfirdn2d(x, k, up, down, pad))
    assert torch.autograd.gradgradcheck(lambda x: upfirdn2d(x, k, up=up, down=down, pad=pad), (x,))


def test_upfirdn2d_pair_pad_is_not_px_py():
    x = torch.randn(1, 1, 5, 5, dtype=F64)
    k = torch.randn(2, 3, dtype=F64)
    torch.testing.assert_close(upfirdn2d(x, k, pad=(3, 0)), upfirdn2d(x, k, pad=(3, 0, 3, 0)))
    assert upfirdn2d(x, k, pad=(3, 0)).shape == (1, 1, 5 + 3 - 1, 5 + 3 - 2)


def test_upfirdn2d_errors():
    x = torch.randn(1, 2, 5, 5)
    with pytest.raises(ValueError, match="pad must be"):
        upfirdn2d(x, torch.ones(3, 3), pad=(1, 1, 1))
    with pytest.raises(ValueError, match="kernel must be 2-D"):
        upfirdn2d(x, torch.ones(3), pad=(1, 1))
    with pytest.raises(ValueError, match="up"):
        upfirdn2d(x, torch.ones(3, 3), up=0)


# ----------------------------------------------------------------------------------------- conv2d_gradfix


def test_conv2d_gradfix_flag_and_enabled(monkeypatch):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 5, 5, dtype=F64, generator=g, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=F64, generator=g, requires_grad=True)
    wt = torch.randn(3, 4, 3, 3, dtype=F64, generator=g, requires_grad=True)
    torch.testing.assert_close(conv2d_gradfix.conv2d(x, w, padding=1), F.conv2d(x, w, padding=1))
    torch.testing.assert_close(conv2d_gradfix.conv_transpose2d(x, wt, stride=2),
                               F.conv_transpose2d(x, wt, stride=2))
    y, yt = conv2d_gradfix.conv2d(x, w, padding=1), conv2d_gradfix.conv_transpose2d(x, wt, stride=2)
    with conv2d_gradfix.no_weight_gradients():
        assert conv2d_gradfix.weight_gradients_disabled is True
        gx, gw, gwt = torch.autograd.grad(y.sum() + yt.sum(), [x, w, wt], allow_unused=True)
    assert conv2d_gradfix.weight_gradients_disabled is False
    assert gx is not None and gw is None and gwt is None
    monkeypatch.setattr(conv2d_gradfix, "enabled", False)  # plain convolutions: weight gradients always
    y = conv2d_gradfix.conv2d(x, w, padding=1)
    with conv2d_gradfix.no_weight_gradients():
        assert torch.autograd.grad(y.sum(), w)[0] is not None


# ----------------------------------------------------------------------------------------- a generator block


def make_kernel(taps):
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


class Blur(nn.Module):
    def __init__(self, op, taps, pad, upsample_factor=1):
        super().__init__()
        self.op, self.pad = op, pad
        self.register_buffer("kernel", make_kernel(taps) * upsample_factor ** 2)

    def forward(self, x):
        return self.op.upfirdn2d(x, self.kernel, pad=self.pad)


class ModulatedConv2d(nn.Module):
    """rosinality-style fused modulated convolution: per-sample weights, one grouped convolution;
    upsample = stride-2 transposed convolution followed by a blur."""

    def __init__(self, op, cin, cout, k, style_dim, demodulate=True, upsample=False, taps=(1, 3, 3, 1)):
        super().__init__()
        self.op, self.cin, self.cout, self.k = op, cin, cout, k
        self.demodulate, self.upsample = demodulate, upsample
        if upsample:
            p = (len(taps) - 2) - (k - 1)
            self.blur = Blur(op, taps, pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)
        self.scale = 1 / math.sqrt(cin * k * k)
        self.weight = nn.Parameter(torch.randn(1, cout, cin, k, k))
        self.modulation = nn.Linear(style_dim, cin)
        nn.init.ones_(self.modulation.bias)

    def forward(self, x, style):
        n, c, h, w = x.shape
        weight = self.scale * self.weight * self.modulation(style).view(n, 1, c, 1, 1)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.square().sum([2, 3, 4]) + 1e-8).view(n, self.cout, 1, 1, 1)
        x = x.reshape(1, n * c, h, w)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(n * c, self.cout, self.k, self.k)
            out = self.op.conv2d_gradfix.conv_transpose2d(x, weight, padding=0, stride=2, groups=n)
            return self.blur(out.reshape(n, self.cout, out.shape[2], out.shape[3]))
        weight = weight.reshape(n * self.cout, c, self.k, self.k)
        out = self.op.conv2d_gradfix.conv2d(x, weight, padding=self.k // 2, groups=n)
        return out.reshape(n, self.cout, h, w)


class Block(nn.Module):
    """StyledConv(up) -> StyledConv -> ToRGB with an upsampled skip, as in rosinality's generator."""

    def __init__(self, op, cin=3, cout=4, style_dim=5):
        super().__init__()
        self.op = op
        self.conv1 = ModulatedConv2d(op, cin, cout, 3, style_dim, upsample=True)
        self.noise_weight = nn.Parameter(torch.full([], 0.3))
        self.act1 = op.FusedLeakyReLU(cout)
        self.conv2 = ModulatedConv2d(op, cout, cout, 3, style_dim)
        self.act2 = op.FusedLeakyReLU(cout, negative_slope=0.1)
        self.torgb = ModulatedConv2d(op, cout, 3, 1, style_dim, demodulate=False)
        self.rgb_bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.register_buffer("up_kernel", make_kernel([1, 3, 3, 1]) * 4)

    def forward(self, x, skip, style, noise):
        h = self.act1(self.conv1(x, style) + self.noise_weight * noise)
        h = self.act2(self.conv2(h, style))
        h = h + self.op.fused_leaky_relu(h, self.act2.bias, 0.2, 1.0)  # the functional form too
        return self.torgb(h, style) + self.rgb_bias + self.op.upfirdn2d(skip, self.up_kernel, up=2, pad=(2, 1))


def _block_pair(dtype):
    torch.manual_seed(0)
    ours = Block(op).to(dtype)
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if "bias" in name:
                p.normal_()
    definition = Block(DEF_OP).to(dtype)
    definition.load_state_dict(ours.state_dict())
    g = torch.Generator().manual_seed(5)
    inputs = [torch.randn(*s, dtype=dtype, generator=g) for s in [(2, 3, 4, 4), (2, 3, 4, 4), (2, 5), (2, 4, 8, 8)]]
    return ours, definition, inputs


def _r1_step(block, inputs):
    """Output, R1 penalty on (x, skip) through the block (inside no_weight_gradients), and the penalty's
    gradients w.r.t. every parameter, the style and the inputs: second order throughout."""
    x, skip, style, noise = [t.detach().clone().requires_grad_() for t in inputs]
    y = block(x, skip, style, noise)
    probe = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    with block.op.conv2d_gradfix.no_weight_gradients():
        gx, gs = torch.autograd.grad((y * probe).sum(), [x, skip], create_graph=True)
    penalty = gx.square().sum() + gs.square().sum()
    params = [p for _, p in sorted(block.named_parameters())]
    grads = torch.autograd.grad(penalty, params + [style, x], materialize_grads=True)  # rgb_bias: zero
    return y, penalty, grads


def _assert_steps_close(got, want):
    """float32 fast backends vs ref: output, penalty and its gradients."""
    assert_close_scaled(got[0], want[0], 1e-5)
    assert_close_scaled(got[1], want[1], 1e-4)
    for a, b in zip(got[2], want[2]):
        assert_close_scaled(a, b, 1e-4)


def test_generator_block_matches_definition_to_second_order():
    ours, definition, inputs = _block_pair(F64)
    with config.use_backend("ref"):
        y, pen, grads = _r1_step(ours, inputs)
    y_d, pen_d, grads_d = _r1_step(definition, inputs)
    torch.testing.assert_close(y, y_d)
    torch.testing.assert_close(pen, pen_d)
    for a, b in zip(grads, grads_d):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("impl", ["cpp", "triton"])
def test_generator_block_fast_backends_match_ref(impl):
    """The block on each fast backend (forced with gan_fast.config.use_backend; Triton under the interpreter
    here) against impl='ref': output, R1 penalty and its gradients (second order)."""
    if not backend.available_backends("cpu")[impl][0]:
        pytest.skip(f"{impl} cannot run on CPU tensors here")
    ours, _, inputs = _block_pair(torch.float32)
    with config.use_backend("ref"):
        want = _r1_step(ours, inputs)
    with config.use_backend(impl):
        got = _r1_step(ours, inputs)
    _assert_steps_close(got, want)


@pytest.mark.gpu
def test_generator_block_on_cuda_matches_ref():
    """CUDA tensors, the automatic backends (Triton / the CUDA extension) against impl='ref'."""
    ours, _, inputs = _block_pair(torch.float32)
    ours, inputs = ours.cuda(), [t.cuda() for t in inputs]
    got = _r1_step(ours, inputs)
    with config.use_backend("ref"):
        want = _r1_step(ours, inputs)
    _assert_steps_close(got, want)


def test_path_length_through_fused_modconv():
    """rosinality's modulated conv reaches the styles only through computed conv weights, whose gradients
    no_weight_gradients() keeps: the default and no_weight_gradients=False both give the definition's lengths."""
    ours, definition, (x, skip, style, noise) = _block_pair(F64)
    pl_noise = torch.randn(2, 3, 8, 8, dtype=F64, generator=torch.Generator().manual_seed(9))

    def lengths(block, **kw):
        s = style.detach().clone().requires_grad_()
        return regularizers.PathLengthPenalty(**kw).path_lengths(block(x, skip, s, noise), s, pl_noise), s

    want, s_d = lengths(definition)
    want_grad = torch.autograd.grad(want.sum(), s_d)[0]
    for kw in ({}, {"no_weight_gradients": False}):
        got, s = lengths(ours, **kw)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(torch.autograd.grad(got.sum(), s)[0], want_grad)
    assert core_gradfix.weight_gradients_disabled() is False


def test_path_length_unconnected_error_unchanged():
    ws = torch.randn(2, 3, requires_grad=True)
    images = torch.randn(2, 1, 4, 4, requires_grad=True)
    with pytest.raises(ValueError, match="not connected to ws"):
        regularizers.PathLengthPenalty()(images * 2, ws)


def test_fused_leaky_relu_names_its_own_arguments():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="scale must be finite"):
        fused_leaky_relu(x, scale=float("nan"))
    with pytest.raises(ValueError, match="negative_slope must be finite"):
        fused_leaky_relu(x, negative_slope=float("inf"))
    with pytest.raises(TypeError, match="negative_slope must be a number"):
        fused_leaky_relu(x, negative_slope=None)

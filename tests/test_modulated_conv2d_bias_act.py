"""modulated_conv2d_bias_act: the one-kernel synthesis layer against its definition and its reference.

The reference is the composition bias_act(modulated_conv2d(...)); the Triton
backend (one implicit-GEMM kernel, backward on cuDNN + the bias_act VJP) is
checked against it on forward, all first-order gradients and the second order
(path length through the styles, R1 through x), on odd shapes, channels_last,
non-contiguous inputs and every noise shape. On CPU the kernel runs under
TRITON_INTERPRET=1 at small shapes; the gpu tests repeat it at config-F sizes.
"""

import importlib
import math

import pytest
import torch
from torch.library import opcheck

from conftest import fast_backends
from gan_fast import conv2d_gradfix, ops

op_mod = importlib.import_module("gan_fast.ops.modulated_conv2d_bias_act")
BACKENDS = fast_backends(op_mod.FAST_BACKENDS)

# name: (kernel, padding) — the 3x3 synthesis conv, ToRGB's 1x1, and a [px, py] pair that changes the size.
LAYERS = {"conv3": (3, 1), "torgb": (1, 0), "pad_pair": (3, [0, 1])}
# (act, clamp) as StyleGAN2 uses them (lrelu with conv_clamp, linear ToRGB) and one smooth activation.
ACTS = [("lrelu", 1.5), ("linear", None), ("swish", None)]


def _inputs(device, layer="conv3", n=2, i=5, o=6, h=7, w=6, dtype=torch.float32, noise="per_sample", seed=0):
    k, pad = LAYERS[layer]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, i, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(o, i, k, k, generator=g, dtype=torch.float64)
    styles = torch.randn(n, i, generator=g, dtype=torch.float64) + 1.0
    bias = torch.randn(o, generator=g, dtype=torch.float64)
    px, py = (pad, pad) if isinstance(pad, int) else pad
    oh, ow = h + 2 * py - k + 1, w + 2 * px - k + 1
    nz = {"per_sample": lambda: torch.randn(n, 1, oh, ow, generator=g, dtype=torch.float64),
          "full": lambda: torch.randn(n, o, oh, ow, generator=g, dtype=torch.float64),
          "shared": lambda: torch.randn(1, 1, oh, ow, generator=g, dtype=torch.float64),
          None: lambda: None}[noise]()
    cast = lambda t: None if t is None else t.to(device=device, dtype=dtype)  # noqa: E731
    return [cast(x), cast(weight), cast(styles), cast(bias), cast(nz)], pad


def _run(impl, args, pad, act, clamp, demodulate=True, seed=1):
    """(y, grads of <y, r> w.r.t. every input)."""
    leaves = [None if a is None else a.detach().clone().requires_grad_() for a in args]
    y = ops.modulated_conv2d_bias_act(*leaves, padding=pad, demodulate=demodulate, act=act, clamp=clamp, impl=impl)
    r = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    used = [a for a in leaves if a is not None]
    return y, torch.autograd.grad((y * r.to(y)).sum(), used)


def _close(a, b, tol=2e-4):
    torch.testing.assert_close(a.double(), b.double(), rtol=tol, atol=tol * max(1.0, b.abs().max().item()))


# ---- the reference ------------------------------------------------------------------------------


@pytest.mark.parametrize("act,clamp", ACTS)
def test_reference_is_the_composition(act, clamp):
    """Against the other algorithm (fused_modconv=True, grouped conv) of modulated_conv2d, then bias_act."""
    (x, w, s, b, nz), pad = _inputs(torch.device("cpu"), dtype=torch.float64)
    y = ops.modulated_conv2d_bias_act(x, w, s, b, nz, padding=pad, act=act, clamp=clamp, impl="ref")
    want = ops.bias_act(ops.modulated_conv2d(x, w, s, nz, padding=pad, fused_modconv=True, impl="ref"), b,
                        act=act, clamp=clamp, impl="ref")
    torch.testing.assert_close(y, want)


def test_reference_gradcheck_gradgradcheck():
    (x, w, s, b, nz), pad = _inputs(torch.device("cpu"), n=1, i=2, o=2, h=4, w=3, dtype=torch.float64)
    leaves = [t.requires_grad_() for t in (x, w, s, b, nz)]
    fn = lambda x, w, s, b, nz: ops.modulated_conv2d_bias_act(x, w, s, b, nz, padding=pad, act="swish",  # noqa
                                                               impl="ref")
    assert torch.autograd.gradcheck(fn, leaves)
    assert torch.autograd.gradgradcheck(fn, leaves)


def test_validation_names_the_argument():
    (x, w, s, b, nz), _ = _inputs(torch.device("cpu"))
    with pytest.raises(ValueError, match=r"bias must have shape \[6\]"):
        ops.modulated_conv2d_bias_act(x, w, s, b[:3])
    with pytest.raises(ValueError, match=r"styles must have shape \[2, 5\]"):
        ops.modulated_conv2d_bias_act(x, w, s[:, :4], b)
    with pytest.raises(ValueError, match="padding"):
        ops.modulated_conv2d_bias_act(x, w, s, b, padding=[1, 1, 1, 1])
    with pytest.raises(ValueError, match="padding"):
        ops.modulated_conv2d_bias_act(x, w, s, b, padding=-1)
    with pytest.raises(ValueError, match="leaves no output"):
        ops.modulated_conv2d_bias_act(x[:, :, :2, :2], w, s, b)
    with pytest.raises(ValueError, match="act must be one of"):
        ops.modulated_conv2d_bias_act(x, w, s, b, act="gelu")
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        ops.modulated_conv2d_bias_act(x.numpy(), w, s, b)


# ---- the fast backend against the reference -------------------------------------------------------


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("act,clamp", ACTS)
@pytest.mark.parametrize("demodulate", [True, False])
def test_forward_and_grads(impl, layer, act, clamp, demodulate, device):
    args, pad = _inputs(device, layer, seed=2)
    y_ref, g_ref = _run("ref", args, pad, act, clamp, demodulate)
    y, g = _run(impl, args, pad, act, clamp, demodulate)
    assert y.shape == y_ref.shape and y.dtype == y_ref.dtype
    _close(y, y_ref)
    for name, a, b in zip(("x", "weight", "styles", "bias", "noise"), g, g_ref):
        assert a.shape == b.shape and a.dtype == b.dtype, name
        _close(a, b)


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("noise", [None, "shared", "full"])
def test_noise_shapes(impl, noise, device):
    args, pad = _inputs(device, noise=noise, seed=3)
    y_ref, g_ref = _run("ref", args, pad, "lrelu", None)
    y, g = _run(impl, args, pad, "lrelu", None)
    _close(y, y_ref)
    for a, b in zip(g, g_ref):
        assert a.shape == b.shape
        _close(a, b)


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("layout", ["channels_last", "sliced"])
def test_layouts(impl, layout, device):
    args, pad = _inputs(device, seed=4, w=9)
    if layout == "channels_last":
        args[0] = args[0].to(memory_format=torch.channels_last)
    else:  # a non-contiguous view: every other column
        args[0] = args[0][:, :, :, ::2]
        args[4] = None
    y_ref, g_ref = _run("ref", args, pad, "lrelu", 1.0)
    y, g = _run(impl, args, pad, "lrelu", 1.0)
    _close(y, y_ref)
    for a, b in zip(g, g_ref):
        _close(a, b)
    if layout == "channels_last":
        assert y.is_contiguous(memory_format=torch.channels_last)


def _second_order(impl, args, pad, wrt):
    """grad of |d<y, r>/d args[wrt]|^2 w.r.t. x, weight, styles, bias: path length (wrt styles), R1 (wrt x)."""
    leaves = [None if a is None else a.detach().clone().requires_grad_() for a in args]
    y = ops.modulated_conv2d_bias_act(*leaves, padding=pad, act="lrelu", clamp=1.5, impl=impl)
    r = torch.randn(y.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64).to(y)
    (gi,) = torch.autograd.grad((y * r).sum(), [leaves[wrt]], create_graph=True)
    return gi, torch.autograd.grad(gi.square().sum(), leaves[:4], allow_unused=True, materialize_grads=True)


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("wrt", [2, 0], ids=["path_length", "r1"])
def test_second_order(impl, wrt, device):
    args, pad = _inputs(device, seed=5)
    gi_ref, want = _second_order("ref", args, pad, wrt)
    gi, got = _second_order(impl, args, pad, wrt)
    _close(gi, gi_ref)
    for a, b in zip(got, want):
        _close(a, b, tol=5e-4)


@pytest.mark.parametrize("impl", BACKENDS)
def test_gradcheck_gradgradcheck_float64(impl, device):
    (x, w, s, b, nz), pad = _inputs(device, n=1, i=2, o=2, h=4, w=3, dtype=torch.float64, seed=6)
    leaves = [t.requires_grad_() for t in (x, w, s, b, nz)]
    fn = lambda x, w, s, b, nz: ops.modulated_conv2d_bias_act(x, w, s, b, nz, padding=pad, act="lrelu",  # noqa
                                                               impl=impl)
    assert torch.autograd.gradcheck(fn, leaves)
    assert torch.autograd.gradgradcheck(fn, leaves)


@pytest.mark.parametrize("impl", BACKENDS)
def test_float16(impl, device):
    args, pad = _inputs(device, dtype=torch.float16, seed=9)
    y_ref, g_ref = _run("ref", args, pad, "lrelu", 256.0)
    y, g = _run(impl, args, pad, "lrelu", 256.0)
    assert y.dtype == torch.float16
    _close(y, y_ref, tol=1e-2)
    for a, b in zip(g, g_ref):
        assert a.dtype == b.dtype
        _close(a, b, tol=2e-2)


@pytest.mark.parametrize("impl", BACKENDS)
def test_no_weight_gradients_and_no_grad(impl, device):
    args, pad = _inputs(device, noise=None, seed=8)
    x, w, s = (t.detach().clone().requires_grad_() for t in args[:3])
    # Without demodulation the convolution is weight's only use (with it, d depends on weight too).
    y = ops.modulated_conv2d_bias_act(x, w, s, args[3], padding=pad, act="lrelu", demodulate=False, impl=impl)
    with conv2d_gradfix.no_weight_gradients():
        y.square().sum().backward()
    assert w.grad is None and x.grad is not None and s.grad is not None
    with torch.no_grad():  # inference: the kernel skips the saved conv output
        y2 = ops.modulated_conv2d_bias_act(x, w, s, args[3], padding=pad, act="lrelu", demodulate=False,
                                           impl=impl)
    _close(y2, y.detach())


@pytest.mark.parametrize("impl", BACKENDS)
def test_opcheck(impl, device):
    from gan_fast.fused import modulated_conv2d_bias_act as fused

    (x, w, s, b, nz), _ = _inputs(device, seed=10)
    d = torch.rand(x.shape[0], w.shape[0], device=device) + 0.5
    opcheck(fused._fwd_op, (x, w, s, d, nz, b, 1, 1, 2, 0.2, math.sqrt(2), 1.0, True),
            test_utils=("test_schema", "test_faketensor"))


# ---- full size on a GPU ----------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(8, 512, 512, 16, "conv3"), (8, 128, 128, 64, "conv3"),
                                   (8, 512, 3, 32, "torgb")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_full_size_gpu(shape, dtype, channels_last):
    n, i, o, h, layer = shape
    args, pad = _inputs(torch.device("cuda"), layer, n=n, i=i, o=o, h=h, w=h, dtype=dtype, seed=12)
    args[1] = args[1] / (i * LAYERS[layer][0] ** 2) ** 0.5
    if channels_last:
        args[0] = args[0].to(memory_format=torch.channels_last)
    act, clamp = ("linear", None) if layer == "torgb" else ("lrelu", 256.0)
    y_ref, g_ref = _run("ref", [None if a is None else a.float() for a in args], pad, act, clamp, layer != "torgb")
    y, g = _run("triton", args, pad, act, clamp, layer != "torgb")
    tol = {torch.float32: 5e-3, torch.float16: 2e-2, torch.bfloat16: 8e-2}[dtype]
    _close(y, y_ref, tol)
    for a, b in zip(g, g_ref):
        _close(a, b, tol)

"""modulated_conv2d: the fast backends (impl='triton') against the reference.

On CPU the Triton kernels run under TRITON_INTERPRET=1 (conftest) at small
shapes; the ``gpu`` tests repeat the checks at StyleGAN2 sizes in fp32/fp16/bf16.
Checked: forward, first-order gradients w.r.t. x, weight, styles and noise, the
second order (path-length-like: through the styles; R1-like: through x), both
algorithms (fused_modconv True/False), up/down 2, 1x1 (ToRGB), noise,
demodulate on/off, channels_last, and the kernels on their own.
"""

import pytest
import torch

from conftest import fast_backends
from gan_fast import backend, config, ops
from gan_fast.backends import modulated_conv2d as backends
from gan_fast.errors import BackendUnavailableError, UnsupportedDtypeError
from gan_fast.kernels import modulated_conv2d as K
from gan_fast.ops.upfirdn2d import setup_filter
from gan_fast.params.modulated_conv2d import ModulatedConv2dParams
from parity import assert_close_scaled as _close
from parity import assert_anchored, assert_parity

BACKENDS = fast_backends(backends.SPEC)


def test_modulated_conv2d_has_a_fast_backend():
    assert "triton" in BACKENDS, "modulated_conv2d lost its triton backend: every test below would be empty"

# (kernel, up, down, padding): the StyleGAN2 layers (3x3 conv, 3x3 up 2, 3x3 down 2, 1x1 ToRGB) plus odd cases.
LAYERS = {
    "conv3": (3, 1, 1, 1),
    "up2": (3, 2, 1, 1),
    "down2": (3, 1, 2, 1),
    "torgb": (1, 1, 1, 0),
    "k1up2": (1, 2, 1, 0),
    "k3pad0": (3, 1, 1, (0, 1, 1, 0)),
}


def _inputs(device, layer, n=2, i=4, o=5, h=6, w=7, dtype=torch.float32, noise="per_sample", seed=0,
            channels_last=False):
    k, up, down, pad = LAYERS[layer]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, i, h, w, generator=g)
    weight = torch.randn(o, i, k, k, generator=g)
    styles = torch.randn(n, i, generator=g) + 1.0
    f = setup_filter([1, 3, 3, 1]) if (up > 1 or down > 1) else None
    ref = ops.modulated_conv2d(x, weight, styles, up=up, down=down, padding=pad, resample_filter=f, impl="ref")
    oh, ow = ref.shape[2:]
    nz = {"per_sample": torch.randn(n, 1, oh, ow, generator=g), "shared": torch.randn(1, 1, oh, ow, generator=g),
          "full": torch.randn(n, o, oh, ow, generator=g), None: None}[noise]
    x = x.to(device=device, dtype=dtype)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    args = [x, weight.to(device), styles.to(device), None if nz is None else nz.to(device)]
    kw = dict(up=up, down=down, padding=pad, resample_filter=None if f is None else f.to(device))
    return args, kw


def _run(impl, args, kw, demodulate, fused, grads=True, seed=1):
    args = [None if a is None else a.detach().clone().requires_grad_(a.is_floating_point()) for a in args]
    y = ops.modulated_conv2d(*args, demodulate=demodulate, fused_modconv=fused, impl=impl, **kw)
    if not grads:
        return y, None
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(y.shape, generator=g).to(device=y.device, dtype=y.dtype)
    leaves = [a for a in args if a is not None]
    gr = torch.autograd.grad((y * r).sum(), leaves)
    return y, gr


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("demodulate", [True, False])
def test_forward_and_grads(impl, layer, fused, demodulate, device):
    args, kw = _inputs(device, layer)
    y_ref, g_ref = _run("ref", args, kw, demodulate, fused)
    y, g = _run(impl, args, kw, demodulate, fused)
    assert y.shape == y_ref.shape and y.dtype == y_ref.dtype
    _close(y, y_ref)
    for name, a, b in zip(("x", "weight", "styles", "noise"), g, g_ref):
        assert a.shape == b.shape, name
        _close(a, b)


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("noise", [None, "shared", "full"])
@pytest.mark.parametrize("fused", [False, True])
def test_noise_shapes(impl, noise, fused, device):
    args, kw = _inputs(device, "conv3", noise=noise, seed=3)
    y_ref, g_ref = _run("ref", args, kw, True, fused)
    y, g = _run(impl, args, kw, True, fused)
    _close(y, y_ref)
    for a, b in zip(g, g_ref):
        _close(a, b)


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("layer", ["conv3", "up2", "down2", "torgb"])
@pytest.mark.parametrize("fused", [False, True])
def test_channels_last(impl, layer, fused, device):
    args, kw = _inputs(device, layer, channels_last=True, seed=4)
    y_ref, g_ref = _run("ref", args, kw, layer != "torgb", fused)
    y, g = _run(impl, args, kw, layer != "torgb", fused)
    _close(y, y_ref)
    for a, b in zip(g, g_ref):
        _close(a, b)
    if not fused:  # the shared conv keeps channels_last, and so do the Triton passes around it
        assert y.is_contiguous(memory_format=torch.channels_last)


def _second_order(impl, args, kw, demodulate, fused, wrt):
    """grad of |d<y, r>/d wrt|^2 w.r.t. every input: path length (wrt styles) or R1 (wrt x)."""
    args = [None if a is None else a.detach().clone().requires_grad_() for a in args]
    y = ops.modulated_conv2d(*args, demodulate=demodulate, fused_modconv=fused, impl=impl, **kw)
    g = torch.Generator().manual_seed(7)
    r = torch.randn(y.shape, generator=g).to(device=y.device, dtype=y.dtype)
    (gi,) = torch.autograd.grad((y * r).sum(), [args[wrt]], create_graph=True)
    pen = gi.square().sum()
    leaves = args[:3]
    got = torch.autograd.grad(pen, leaves, allow_unused=True, materialize_grads=True)
    return got, gi


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("layer", ["conv3", "up2", "down2", "torgb"])
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("wrt", [2, 0], ids=["path_length", "r1"])
def test_second_order(impl, layer, fused, wrt, device):
    args, kw = _inputs(device, layer, noise=None, seed=5)
    demod = layer != "torgb"
    want, gi_ref = _second_order("ref", args, kw, demod, fused, wrt)
    got, gi = _second_order(impl, args, kw, demod, fused, wrt)
    _close(gi, gi_ref)
    for a, b in zip(got, want):
        _close(a, b, tol=5e-4)


@pytest.mark.parametrize("impl", BACKENDS)
def test_third_order_runs_and_matches(impl, device):
    """Differentiating the second-order graph again still matches (the backwards are differentiable)."""
    args, kw = _inputs(device, "conv3", noise=None, n=1, i=3, o=2, h=4, w=4, seed=6)

    def third(impl):
        a = [t.detach().clone().requires_grad_() for t in args[:3]]
        y = ops.modulated_conv2d(*a, demodulate=True, fused_modconv=False, impl=impl, **kw)
        (gs,) = torch.autograd.grad(y.square().sum(), [a[2]], create_graph=True)
        (gx,) = torch.autograd.grad(gs.square().sum(), [a[0]], create_graph=True)
        return torch.autograd.grad(gx.sum(), [a[1]])[0]

    _close(third(impl), third("ref"), tol=1e-3)


@pytest.mark.parametrize("impl", BACKENDS)
def test_no_weight_gradients(impl, device):
    from gan_fast import conv2d_gradfix

    args, kw = _inputs(device, "conv3", noise=None, seed=8)
    a = [t.detach().clone().requires_grad_() for t in args[:3]]
    with conv2d_gradfix.no_weight_gradients():
        y = ops.modulated_conv2d(*a, fused_modconv=False, impl=impl, **kw)
        y.square().sum().backward()
    assert a[0].grad is not None and a[2].grad is not None


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("layer", ["conv3", "up2"])
@pytest.mark.parametrize("fused", [False, True])
def test_fp16_small(impl, layer, fused, device):
    """fp16 activations (fp32 weight/styles): the reference's pre-normalisation, fp32 compute in the kernels."""
    args, kw = _inputs(device, layer, dtype=torch.float16, seed=14)
    y_ref, g_ref = _run("ref", args, kw, True, fused)
    y, g = _run(impl, args, kw, True, fused)
    assert_parity(y, g, y_ref, g_ref, torch.float16, 1e-2, 2e-2)


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("fused", [False, True])
def test_float16_autocast_large_styles(impl, fused, device):
    """float32 inputs under float16 autocast: pre-normalised like the reference, so no fp16 overflow."""
    args, kw = _inputs(device, "conv3", seed=15)
    args[0], args[1], args[2] = args[0] * 10, args[1] * 300, args[2] * 300
    with torch.autocast(device.type, dtype=torch.float16):
        y_ref, _ = _run("ref", args, kw, True, fused, grads=False)
        y, _ = _run(impl, args, kw, True, fused, grads=False)
    assert y.dtype == y_ref.dtype and torch.isfinite(y).all()
    _close(y, y_ref, tol=1e-2)


# ---- the kernels on their own ----------------------------------------------------------------------


def test_kernel_demod(device):
    g = torch.Generator().manual_seed(9)
    for (n, i, o, k) in [(3, 20, 24, 3), (1, 7, 5, 1), (17, 70, 33, 3)]:
        s = torch.randn(n, i, generator=g).to(device)
        w = torch.randn(o, i, k, k, generator=g).to(device)
        want = ((w[None] * s[:, None, :, None, None]).square().sum([2, 3, 4]) + 1e-8).rsqrt()
        _close(K.demod_coefs(s, w), want, tol=1e-5)
        _close(K.demod_coefs(s.t().contiguous().t(), w.transpose(0, 1).contiguous().transpose(0, 1)), want, tol=1e-5)


def test_kernel_scale_channels_and_channel_dot(device):
    g = torch.Generator().manual_seed(10)
    x = torch.randn(3, 6, 5, 7, generator=g).to(device)
    s = torch.randn(3, 6, generator=g).to(device)
    nz = torch.randn(3, 1, 5, 7, generator=g).to(device)
    other = torch.randn(3, 6, 5, 7, generator=g).to(device)
    for xx in (x, x.to(memory_format=torch.channels_last)):
        y = K.scale_channels(xx, s, nz)
        assert y.stride() == xx.stride()
        _close(y, x * s[:, :, None, None] + nz, tol=1e-6)
        _close(K.scale_channels(xx, None, nz[:1]), x + nz[:1], tol=1e-6)
        _close(K.scale_channels(xx, s[:1]), x * s[:1, :, None, None], tol=1e-6)
        _close(K.channel_dot(xx, other), (x * other).sum([2, 3]), tol=1e-5)
        _close(K.channel_dot(other, xx), (x * other).sum([2, 3]), tol=1e-5)
    _close(K.channel_dot(x[:, :, 1:, ::2], other[:, :, 1:, ::2]), (x * other)[:, :, 1:, ::2].sum([2, 3]), tol=1e-5)


def test_kernel_modulate_weight(device):
    g = torch.Generator().manual_seed(11)
    w = torch.randn(5, 4, 3, 3, generator=g).to(device)
    s = torch.randn(2, 4, generator=g).to(device)
    d = torch.rand(2, 5, generator=g).to(device)
    _close(K.modulate_weight(w, s, d, torch.float32), w[None] * s[:, None, :, None, None] * d[:, :, None, None, None],
           tol=1e-6)
    _close(K.modulate_weight(w, s, None, torch.float16), w[None] * s[:, None, :, None, None], tol=1e-3)


@pytest.mark.parametrize("fused", [False, True])
def test_compile_traces_fused_entry_point(fused, device):
    """fullgraph torch.compile (aot_eager: fake tensors through register_fake) of the Triton path, fwd + grads."""
    args, kw = _inputs(device, "up2", seed=15)
    a = [t.detach().clone().requires_grad_() for t in args]
    f = kw["resample_filter"]
    p = ModulatedConv2dParams(2, 1, (1, 1, 1, 1), True, True, fused)
    fn = torch.compile(lambda x, w, s, nz: backends.run("triton", p, x, w, s, nz, f), fullgraph=True,
                       backend="aot_eager")
    y = fn(*a)
    g = torch.autograd.grad(y.square().sum(), a)
    b = [t.detach().clone().requires_grad_() for t in args]
    y_ref = ops.modulated_conv2d(*b, fused_modconv=fused, impl="ref", **kw)
    g_ref = torch.autograd.grad(y_ref.square().sum(), b)
    _close(y, y_ref)
    for p, q in zip(g, g_ref):
        _close(p, q)


def test_opcheck_custom_ops(device):
    glue = backends
    g = torch.Generator().manual_seed(16)
    x = torch.randn(2, 3, 4, 5, generator=g).to(device)
    s = torch.randn(2, 3, generator=g).to(device)
    w = torch.randn(4, 3, 3, 3, generator=g).to(device)
    nz = torch.randn(2, 1, 4, 5, generator=g).to(device)
    d = torch.rand(2, 4, generator=g).to(device)
    tests = ("test_schema", "test_faketensor")
    torch.library.opcheck(glue._demod_op, (s, w), test_utils=tests)
    torch.library.opcheck(glue._scale_op, (x, s, nz), test_utils=tests)
    torch.library.opcheck(glue._scale_op, (x.to(memory_format=torch.channels_last), None, nz), test_utils=tests)
    torch.library.opcheck(glue._channel_dot_op, (x, x), test_utils=tests)
    torch.library.opcheck(glue._modulate_op, (w, s, d, torch.float16), test_utils=tests)


def test_automatic_choice_is_ref_on_cpu():
    assert backend.choose(backends.SPEC, None, torch.device("cpu"), torch.float32) == "ref"
    assert "triton" in backends.SPEC.fast.get("cuda", ())


@pytest.mark.parametrize("impl", BACKENDS)
def test_what_triton_refuses_runs_ref_automatically(impl, device):
    """float64 (the Triton kernels compute in float32) and a resample filter that requires grad (the Triton FIR
    takes it as a constant): an explicit impl='triton' refuses them naming why; the automatic choice, here forced
    to triton, runs ref exactly (with the filter's gradient)."""
    args, kw = _inputs(device, "up2", dtype=torch.float64, seed=17)
    kw["resample_filter"] = kw["resample_filter"].double()
    with pytest.raises(UnsupportedDtypeError, match="float64"):
        ops.modulated_conv2d(*args, impl=impl, **kw)
    args, kw = _inputs(device, "up2", seed=17)
    f = kw.pop("resample_filter").clone().requires_grad_()
    with pytest.raises(BackendUnavailableError, match="resample_filter that requires grad.*impl='ref' runs it"):
        ops.modulated_conv2d(*args, resample_filter=f, impl=impl, **kw)
    with torch.no_grad():  # nothing to differentiate: the filter is a constant, the kernels run
        _close(ops.modulated_conv2d(*args, resample_filter=f, impl=impl, **kw),
               ops.modulated_conv2d(*args, resample_filter=f, impl="ref", **kw))
    with config.use_backend(impl):
        y = ops.modulated_conv2d(*args, resample_filter=f, **kw)
    (gf,) = torch.autograd.grad(y.square().sum(), [f])
    (want,) = torch.autograd.grad(ops.modulated_conv2d(*args, resample_filter=f, impl="ref", **kw).square().sum(), [f])
    torch.testing.assert_close(gf, want, rtol=0, atol=0)


# ---- which gradients exist: None where ref's are None, zeros where ref's are zeros (issue 24) ------------------


def gradient_kinds(fn, leaves):
    """{(order, of, wrt): 'None' | 'zeros' | 'values'} of fn(*leaves) against a fixed cotangent: the plain and the
    create_graph first-order gradients w.r.t. every leaf, and the second-order gradients of |g|^2 for each
    first-order g w.r.t. every leaf ('no graph' where that g does not require grad)."""
    leaves = [t.detach().clone().requires_grad_() for t in leaves]
    y = fn(*leaves)
    r = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(y)
    n = range(len(leaves))

    def kind(g):
        return "None" if g is None else "zeros" if not bool(g.ne(0).any()) else "values"
    out = {}
    plain = torch.autograd.grad((y * r).sum(), leaves, allow_unused=True, retain_graph=True)
    first = torch.autograd.grad((y * r).sum(), leaves, allow_unused=True, create_graph=True)
    for i in n:
        out[("plain", None, i)], out[("first", None, i)] = kind(plain[i]), kind(first[i])
        if first[i] is None or not first[i].requires_grad:
            out.update({("second", i, j): "no graph" for j in n})
            continue
        second = torch.autograd.grad(first[i].square().sum(), leaves, allow_unused=True, retain_graph=True)
        out.update({("second", i, j): kind(second[j]) for j in n})
    return out


def assert_same_gradient_kinds(got, want, names):
    """A backend's gradients are None exactly where ref's are (or have no graph where ref's have none), and zeros
    wherever ref's are zeros."""
    bad = []
    for key, w in want.items():
        g = got[key]
        if (w in ("None", "no graph")) != (g in ("None", "no graph")) or (w == "zeros" and g != "zeros"):
            order, of, wrt = key
            bad.append(f"{order}{'' if of is None else ' of d/d' + names[of]} w.r.t. {names[wrt]}: ref {w}, got {g}")
    assert not bad, "; ".join(bad)


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("layer", ["conv3", "up2", "torgb"])
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("demodulate", [True, False])
def test_gradients_are_none_or_zeros_as_refs(impl, layer, fused, demodulate, device):
    args, kw = _inputs(device, layer, seed=18)

    def run(which):
        return gradient_kinds(lambda x, w, s, nz: ops.modulated_conv2d(x, w, s, nz, demodulate=demodulate,
                                                                          fused_modconv=fused, impl=which, **kw), args)
    assert_same_gradient_kinds(run(impl), run("ref"), ("x", "weight", "styles", "noise"))


# ---- full size on a GPU ----------------------------------------------------------------------------

GPU_LAYERS = [
    # (N, I, O, H, layer): StyleGAN2 config-F-like shapes.
    (8, 512, 512, 16, "conv3"),
    (8, 512, 512, 16, "up2"),
    (8, 256, 512, 32, "down2"),
    (8, 128, 128, 64, "conv3"),
    (8, 512, 3, 32, "torgb"),
]


@pytest.mark.gpu
@pytest.mark.parametrize("shape", GPU_LAYERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_full_size_gpu(shape, dtype, fused, channels_last):
    n, i, o, h, layer = shape
    args, kw = _inputs(torch.device("cuda"), layer, n=n, i=i, o=o, h=h, w=h, dtype=dtype, seed=12,
                       channels_last=channels_last)
    args[1] = args[1] / (i * LAYERS[layer][0] ** 2) ** 0.5
    demod = layer != "torgb"
    y_ref, g_ref = _run("ref", [a.float() if a is not None else None for a in args], kw, demod, fused)
    y, g = _run("triton", args, kw, demod, fused)
    tol = {torch.float32: 2e-3, torch.float16: 2e-2, torch.bfloat16: 8e-2}[dtype]
    _close(y, y_ref, tol)
    for a, b in zip(g, g_ref):
        _close(a, b, tol)
    # the float64 anchor at batch 2 (x, styles, noise have the batch dimension)
    small = [None if a is None else a[:2] if k in (0, 2, 3) else a for k, a in enumerate(args)]
    assert_anchored(lambda t: _run("triton", t, kw, demod, fused), lambda t: _run("ref", t, kw, demod, fused),
                    small, dtype)


@pytest.mark.gpu
@pytest.mark.parametrize("fused", [False, True])
def test_full_size_second_order_gpu(fused):
    args, kw = _inputs(torch.device("cuda"), "up2", n=4, i=256, o=256, h=16, w=16, noise=None, seed=13)
    args[1] = args[1] / (256 * 9) ** 0.5
    want, _ = _second_order("ref", args, kw, True, fused, 2)
    got, _ = _second_order("triton", args, kw, True, fused, 2)
    for a, b in zip(got, want):
        _close(a, b, 2e-3)
    small = [a[:2] if k in (0, 2) else a for k, a in enumerate(args)]
    assert_anchored(lambda t: _second_order("triton", t, kw, True, fused, 2),
                    lambda t: _second_order("ref", t, kw, True, fused, 2), small, torch.float32)

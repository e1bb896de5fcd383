"""modulated_conv2d_bias_act: the fused synthesis layer against its definition and its reference.

The reference is the composition bias_act(modulated_conv2d(...)); the Triton
backend — both algorithms: cuDNN convolution + one fused epilogue kernel, and
the one-kernel implicit GEMM — is checked against it on forward, all
first-order gradients and the second order (path length through the styles,
R1 through x), on the StyleGAN2 layers (3x3, up 2, down 2, 1x1 ToRGB), odd
shapes, channels_last, non-contiguous inputs and every noise shape. On CPU the
kernels run under TRITON_INTERPRET=1 at small shapes; the gpu tests repeat it
at config-F sizes.
"""

import contextlib
import math

import pytest
import torch
from torch.library import opcheck

from conftest import fast_backends
from gan_fast import backend, config, conv2d_gradfix, ops
from gan_fast.backends import modulated_conv2d_bias_act as backends
from gan_fast.checks import padding4
from gan_fast.errors import BackendUnavailableError
from gan_fast.params import modulated_conv2d as params
from gan_fast.params.modulated_conv2d import ALGORITHMS, DEFAULT_ALGORITHM, check_output_size
from parity import assert_close_scaled as _close
from parity import assert_anchored, assert_parity
from test_modulated_conv2d_backends import assert_same_gradient_kinds, gradient_kinds

# "triton:cudnn", "triton:implicit_gemm": each fast backend with each of its algorithms.
BACKENDS = [f"{impl}:{alg}" for impl in fast_backends(backends.SPEC) for alg in ALGORITHMS]
CUDNN_BACKENDS = [b for b in BACKENDS if b.endswith(":cudnn")]

# name: (kernel, up, down, padding) — the 3x3 synthesis conv, its up-2 form, a down-2 conv, ToRGB's 1x1,
# and a [px, py] pair that changes the size. The implicit GEMM takes the stride-1 ones.
LAYERS = {"conv3": (3, 1, 1, 1), "up2": (3, 2, 1, 1), "down2": (3, 1, 2, 1), "torgb": (1, 1, 1, 0),
          "pad_pair": (3, 1, 1, [0, 1])}
STRIDE1 = ("conv3", "torgb", "pad_pair")
# (act, clamp) as StyleGAN2 uses them (lrelu with conv_clamp, linear ToRGB) and one smooth activation.
ACTS = [("lrelu", 1.5), ("linear", None), ("swish", None)]


def _layer_kwargs(layer, device):
    k, up, down, pad = LAYERS[layer]
    f = ops.setup_filter([1, 3, 3, 1], device=device) if up > 1 or down > 1 else None
    return dict(up=up, down=down, padding=pad, resample_filter=f, flip_weight=up == 1)


def _inputs(device, layer="conv3", n=2, i=5, o=6, h=7, w=6, dtype=torch.float32, noise="per_sample", seed=0):
    k = LAYERS[layer][0]
    kw = _layer_kwargs(layer, device)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, i, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(o, i, k, k, generator=g, dtype=torch.float64)
    styles = torch.randn(n, i, generator=g, dtype=torch.float64) + 1.0
    bias = torch.randn(o, generator=g, dtype=torch.float64)
    oh, ow = check_output_size("test", x, weight, kw["resample_filter"], kw["up"], kw["down"],
                               padding4("padding", kw["padding"]))
    nz = {"per_sample": lambda: torch.randn(n, 1, oh, ow, generator=g, dtype=torch.float64),
          "full": lambda: torch.randn(n, o, oh, ow, generator=g, dtype=torch.float64),
          "shared": lambda: torch.randn(1, 1, oh, ow, generator=g, dtype=torch.float64),
          None: lambda: None}[noise]()
    cast = lambda t: None if t is None else t.to(device=device, dtype=dtype)  # noqa: E731
    if kw["resample_filter"] is not None and dtype == torch.float64:
        kw["resample_filter"] = kw["resample_filter"].double()
    return [cast(x), cast(weight), cast(styles), cast(bias), cast(nz)], kw


def _impl(backend):
    """'triton:cudnn' -> dict(impl='triton', algorithm='cudnn'); 'ref' -> dict(impl='ref')."""
    impl, _, alg = backend.partition(":")
    return dict(impl=impl, algorithm=alg or None)


def _layer(backend, *args, **kw):
    return ops.modulated_conv2d_bias_act(*args, **kw, **_impl(backend))


def _run(backend, args, kw, act, clamp, demodulate=True, seed=1):
    """(y, grads of <y, r> w.r.t. every input)."""
    leaves = [None if a is None else a.detach().clone().requires_grad_() for a in args]
    y = _layer(backend, *leaves, **kw, demodulate=demodulate, act=act, clamp=clamp)
    r = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    used = [a for a in leaves if a is not None]
    return y, torch.autograd.grad((y * r.to(y)).sum(), used)


def _combos(layers):
    """(backend, layer) pairs; the implicit GEMM takes the stride-1 layers (others: a ValueError, tested)."""
    return [(b, layer) for b in BACKENDS for layer in layers
            if layer in STRIDE1 or not b.endswith(":implicit_gemm")]


# ---- the reference ------------------------------------------------------------------------------


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("act,clamp", ACTS)
def test_reference_is_the_composition(layer, act, clamp):
    """Against the other algorithm (fused_modconv=True, grouped conv) of modulated_conv2d, then bias_act."""
    (x, w, s, b, nz), kw = _inputs(torch.device("cpu"), layer, dtype=torch.float64)
    y = ops.modulated_conv2d_bias_act(x, w, s, b, nz, **kw, act=act, clamp=clamp, impl="ref")
    want = ops.bias_act(ops.modulated_conv2d(x, w, s, nz, **kw, fused_modconv=True, impl="ref"), b,
                        act=act, clamp=clamp, impl="ref")
    torch.testing.assert_close(y, want)


def test_reference_gradcheck_gradgradcheck():
    (x, w, s, b, nz), kw = _inputs(torch.device("cpu"), n=1, i=2, o=2, h=4, w=3, dtype=torch.float64)
    leaves = [t.requires_grad_() for t in (x, w, s, b, nz)]
    fn = lambda x, w, s, b, nz: ops.modulated_conv2d_bias_act(x, w, s, b, nz, **kw, act="swish",  # noqa: E731
                                                               impl="ref")
    assert torch.autograd.gradcheck(fn, leaves)
    assert torch.autograd.gradgradcheck(fn, leaves)


def test_validation_names_the_argument():
    (x, w, s, b, nz), _ = _inputs(torch.device("cpu"))
    f = ops.setup_filter([1, 3, 3, 1])
    with pytest.raises(ValueError, match=r"bias must have shape \[6\]"):
        ops.modulated_conv2d_bias_act(x, w, s, b[:3])
    with pytest.raises(ValueError, match=r"styles must have shape \[2, 5\]"):
        ops.modulated_conv2d_bias_act(x, w, s[:, :4], b)
    with pytest.raises(ValueError, match="padding"):
        ops.modulated_conv2d_bias_act(x, w, s, b, padding=[1, 1, 1])
    with pytest.raises(ValueError, match="leaves no output"):
        ops.modulated_conv2d_bias_act(x[:, :, :2, :2], w, s, b)
    with pytest.raises(ValueError, match="act must be one of"):
        ops.modulated_conv2d_bias_act(x, w, s, b, act="gelu")
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        ops.modulated_conv2d_bias_act(x.numpy(), w, s, b)
    with pytest.raises(ValueError, match=r"noise must be broadcastable to the output \[2, 6, 5, 4\]"):
        ops.modulated_conv2d_bias_act(x, w, s, b, nz)  # nz fits padding 1; without padding the output shrinks
    with pytest.raises(ValueError, match="resample_filter is required"):
        ops.modulated_conv2d_bias_act(x, w, s, b, up=2, padding=1)
    with pytest.raises(ValueError, match="algorithm must be None or one of"):
        ops.modulated_conv2d_bias_act(x, w, s, b, padding=1, algorithm="winograd")
    with pytest.raises(ValueError, match="implicit_gemm' needs up = down = 1"):
        ops.modulated_conv2d_bias_act(x, w, s, b, up=2, padding=1, resample_filter=f, algorithm="implicit_gemm")
    with pytest.raises(ValueError, match="implicit_gemm' needs an int or"):
        ops.modulated_conv2d_bias_act(x, w, s, b, padding=[1, 0, 1, 1], algorithm="implicit_gemm")
    with pytest.raises(ValueError, match="flip_weight=True"):
        ops.modulated_conv2d_bias_act(x, w, s, b, padding=1, flip_weight=False, algorithm="implicit_gemm")


# ---- the fast backend against the reference -------------------------------------------------------


@pytest.mark.parametrize("impl,layer", _combos(LAYERS))
@pytest.mark.parametrize("act,clamp", ACTS)
@pytest.mark.parametrize("demodulate", [True, False])
def test_forward_and_grads(impl, layer, act, clamp, demodulate, device):
    args, kw = _inputs(device, layer, seed=2)
    y_ref, g_ref = _run("ref", args, kw, act, clamp, demodulate)
    y, g = _run(impl, args, kw, act, clamp, demodulate)
    assert_parity(y, g, y_ref, g_ref, y_ref.dtype, 2e-4, 2e-4)


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("noise", [None, "shared", "full"])
def test_noise_shapes(impl, noise, device):
    args, kw = _inputs(device, noise=noise, seed=3)
    y_ref, g_ref = _run("ref", args, kw, "lrelu", None)
    y, g = _run(impl, args, kw, "lrelu", None)
    assert_parity(y, g, y_ref, g_ref, y_ref.dtype, 2e-4, 2e-4)


@pytest.mark.parametrize("impl,layer", _combos(["conv3", "up2"]))
@pytest.mark.parametrize("layout", ["channels_last", "sliced"])
def test_layouts(impl, layer, layout, device):
    args, kw = _inputs(device, layer, seed=4, w=9)
    if layout == "channels_last":
        args[0] = args[0].to(memory_format=torch.channels_last)
    else:  # a non-contiguous view: every other column
        args[0] = args[0][:, :, :, ::2]
        args[4] = None
    y_ref, g_ref = _run("ref", args, kw, "lrelu", 1.0)
    y, g = _run(impl, args, kw, "lrelu", 1.0)
    assert_parity(y, g, y_ref, g_ref, y_ref.dtype, 2e-4, 2e-4)
    if layout == "channels_last":
        assert y.is_contiguous(memory_format=torch.channels_last)


def _second_order(impl, args, kw, wrt):
    """grad of |d<y, r>/d args[wrt]|^2 w.r.t. x, weight, styles, bias: path length (wrt styles), R1 (wrt x)."""
    leaves = [None if a is None else a.detach().clone().requires_grad_() for a in args]
    y = _layer(impl, *leaves, **kw, act="lrelu", clamp=1.5)
    r = torch.randn(y.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64).to(y)
    (gi,) = torch.autograd.grad((y * r).sum(), [leaves[wrt]], create_graph=True)
    return gi, torch.autograd.grad(gi.square().sum(), leaves[:4], allow_unused=True, materialize_grads=True)


@pytest.mark.parametrize("impl,layer", _combos(["conv3", "up2"]))
@pytest.mark.parametrize("wrt", [2, 0], ids=["path_length", "r1"])
def test_second_order(impl, layer, wrt, device):
    args, kw = _inputs(device, layer, seed=5)
    gi_ref, want = _second_order("ref", args, kw, wrt)
    gi, got = _second_order(impl, args, kw, wrt)
    _close(gi, gi_ref)
    for a, b in zip(got, want):
        _close(a, b, tol=5e-4)


@pytest.mark.parametrize("impl,layer", _combos(["conv3", "up2"]))
def test_gradcheck_gradgradcheck_float64(impl, layer, device):
    (x, w, s, b, nz), kw = _inputs(device, layer, n=1, i=2, o=2, h=4, w=3, dtype=torch.float64, seed=6)
    leaves = [t.requires_grad_() for t in (x, w, s, b, nz)]
    fn = lambda x, w, s, b, nz: _layer(impl, x, w, s, b, nz, **kw, act="lrelu")  # noqa: E731
    assert torch.autograd.gradcheck(fn, leaves)
    assert torch.autograd.gradgradcheck(fn, leaves)


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision(impl, dtype, device):
    """fp16/bf16 end to end. A smooth activation: at lrelu's kink, rounding in either path may flip the slope
    of a single element (the fast epilogue forms the pre-activation in float32, the composition in x's dtype)."""
    args, kw = _inputs(device, dtype=dtype, seed=9)
    y_ref, g_ref = _run("ref", args, kw, "swish", 256.0)
    y, g = _run(impl, args, kw, "swish", 256.0)
    tol = {torch.float16: 1e-2, torch.bfloat16: 5e-2}[dtype]
    assert_parity(y, g, y_ref, g_ref, dtype, tol, 2 * tol)


@pytest.mark.parametrize("impl", BACKENDS)
def test_plain_and_create_graph_backward_agree(impl, device):
    """The plain backward (one fused Triton pass) and the differentiable one (under create_graph) give the
    same first-order gradients, for the noise shapes the fused pass sums (per-sample and shared)."""
    for noise in ("per_sample", "shared"):
        args, kw = _inputs(device, noise=noise, seed=13)
        leaves = [a.detach().clone().requires_grad_() for a in args]
        y = _layer(impl, *leaves, **kw, act="lrelu", clamp=1.5)
        r = torch.randn(y.shape, generator=torch.Generator().manual_seed(3)).to(y)
        plain = torch.autograd.grad((y * r).sum(), leaves, retain_graph=True)
        differentiable = torch.autograd.grad((y * r).sum(), leaves, create_graph=True)
        for a, b in zip(plain, differentiable):
            _close(a, b.detach(), tol=1e-5)


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("x_dtype", [torch.float32, torch.float16])
def test_autocast_runs_in_the_autocast_dtype(impl, x_dtype, device):
    """float32 or float16 x under bfloat16 (CPU) / float16 (GPU: float32 x only) autocast: the output has the
    autocast dtype, as the composed layer's does (autocast's convolution casts every non-float64 input)."""
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    if x_dtype == dtype:
        x_dtype = torch.bfloat16
    args, kw = _inputs(device, seed=11)
    args[0] = args[0].to(x_dtype)
    with torch.autocast(device.type, dtype=dtype):  # a smooth activation: no kink for rounding to flip
        y_ref, g_ref = _run("ref", args, kw, "swish", 256.0)
        y, g = _run(impl, args, kw, "swish", 256.0)
    assert y_ref.dtype == dtype
    assert_parity(y, g, y_ref, g_ref, dtype, 5e-2, 1e-1)


@pytest.mark.parametrize("impl", BACKENDS)
def test_nan_stays_nan_through_the_clamp(impl, device):
    args, kw = _inputs(device, seed=12)
    args[0][0, 1, 3, 2] = float("nan")
    y_ref = _layer("ref", *args, **kw, act="lrelu", clamp=0.5)
    y = _layer(impl, *args, **kw, act="lrelu", clamp=0.5)
    assert y_ref.isnan().any()
    assert torch.equal(y.isnan(), y_ref.isnan())
    _close(y.nan_to_num(), y_ref.nan_to_num())


@pytest.mark.parametrize("impl", BACKENDS)
def test_no_weight_gradients_and_no_grad(impl, device):
    args, kw = _inputs(device, noise=None, seed=8)
    x, w, s = (t.detach().clone().requires_grad_() for t in args[:3])
    # Without demodulation the convolution is weight's only use (with it, d depends on weight too).
    y = _layer(impl, x, w, s, args[3], **kw, act="lrelu", demodulate=False)
    with conv2d_gradfix.no_weight_gradients():
        y.square().sum().backward()
    assert w.grad is None and x.grad is not None and s.grad is not None
    with torch.no_grad():  # inference: the implicit GEMM skips the saved conv output
        y2 = _layer(impl, x, w, s, args[3], **kw, act="lrelu", demodulate=False)
    _close(y2, y.detach())


@pytest.mark.parametrize("impl", BACKENDS)
def test_opcheck(impl, device):
    fused = backends
    (x, w, s, b, nz), _ = _inputs(device, seed=10)
    d = torch.rand(x.shape[0], w.shape[0], device=device) + 0.5
    if impl.endswith(":implicit_gemm"):
        opcheck(fused._fwd_op, (x, w, s, d, nz, b, 1, 1, 2, 0.2, math.sqrt(2), 1.0, True),
                test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))
    else:
        c = torch.randn(2, 6, 7, 6, device=device).to(memory_format=torch.channels_last)
        opcheck(fused._epilogue_op, (c, d, nz, b, 2, 0.2, math.sqrt(2), 1.0),
                test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))
        gy = torch.randn(2, 6, 7, 6, device=device)
        opcheck(fused._epilogue_bwd_op, (gy, c, d, nz, b, 2, 0.2, math.sqrt(2), 1.0, True, True, True, True),
                test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))


def test_each_algorithm_has_its_spec_and_the_default_is_cudnn():
    """One decision per call: the algorithm (None: DEFAULT_ALGORITHM) picks the spec whose self-test verdict
    applies; both are the public op modulated_conv2d_bias_act for use_backend. No automatic triton on CPU."""
    assert DEFAULT_ALGORITHM == "cudnn"
    assert {a: s.name for a, s in backends.SPEC_BY_ALGORITHM.items()} == {
        "cudnn": "modulated_conv2d_bias_act", "implicit_gemm": "modulated_conv2d_bias_act:implicit_gemm"}
    assert {s.op for s in backends.SPECS} == {"modulated_conv2d_bias_act"}
    for spec in backends.SPECS:
        assert backend.choose(spec, None, torch.device("cpu"), torch.float32) == "ref"
        assert "triton" in spec.fast["cuda"] and "float64" not in spec.cannot.get("triton", {})


@pytest.mark.parametrize("impl", BACKENDS)
def test_impl_none_without_the_fused_backend_is_the_composition(impl, device, monkeypatch):
    """impl=None where the fused backend does not run (CPU): modulated_conv2d then bias_act, each on its own
    backend; forced to triton (use_backend), the fused layer runs; impl='ref' is the reference composition."""
    args, kw = _inputs(device, seed=15)
    calls = []
    real = backends.run

    def counting(chosen, p, *tensors):
        calls.append((chosen, p.algorithm))
        return real(chosen, p, *tensors)
    monkeypatch.setattr(backends, "run", counting)
    alg = _impl(impl)["algorithm"]
    want = ops.bias_act(ops.modulated_conv2d(*args[:3], args[4], **kw, fused_modconv=False, impl="ref"), args[3],
                        act="lrelu", clamp=1.5, impl="ref")
    y_ref = _layer("ref", *args, **kw, act="lrelu", clamp=1.5)
    assert calls == [("ref", DEFAULT_ALGORITHM)]
    torch.testing.assert_close(y_ref, want, rtol=0, atol=0)
    calls.clear()
    if device.type == "cpu":
        y = ops.modulated_conv2d_bias_act(*args, **kw, act="lrelu", clamp=1.5, algorithm=alg)
        assert calls == []  # the public ops' composition, not this op's backends
        _close(y, want)
    with config.use_backend(modulated_conv2d_bias_act="triton"):
        y = ops.modulated_conv2d_bias_act(*args, **kw, act="lrelu", clamp=1.5, algorithm=alg)
    assert calls == [("triton", alg)]
    _close(y, want)


@pytest.mark.parametrize("impl", BACKENDS)
def test_compile_traces_the_backend_entry_point(impl, device):
    """fullgraph torch.compile (aot_eager: fake tensors through register_fake) of the fused layer's Functions,
    forward and gradients, against ref."""
    args, kw = _inputs(device, seed=18)
    p = params.validate_bias_act(*args, kw["up"], kw["down"], kw["padding"], None, True, True, "lrelu", None, None,
                                 1.5, _impl(impl)["algorithm"])
    a = [t.detach().clone().requires_grad_() for t in args]
    fn = torch.compile(lambda *t: backends.run("triton", p, *t, None), fullgraph=True, backend="aot_eager")
    y = fn(*a)
    g = torch.autograd.grad(y.square().sum(), a)
    b = [t.detach().clone().requires_grad_() for t in args]
    y_ref = backends.run("ref", p, *b, None)
    g_ref = torch.autograd.grad(y_ref.square().sum(), b)
    assert_parity(y, g, y_ref, g_ref, y_ref.dtype, 2e-4, 2e-4)


@pytest.mark.parametrize("impl", CUDNN_BACKENDS)
def test_learned_resample_filter_is_refused_by_triton(impl, device):
    """The Triton FIR takes the filter as a constant: a filter that requires grad is refused by impl='triton',
    and impl=None gives the composition's exact gradient for it."""
    args, kw = _inputs(device, "up2", seed=16)
    f = kw.pop("resample_filter").clone().requires_grad_()
    with pytest.raises(BackendUnavailableError, match="resample_filter that requires grad.*impl='ref' runs it"):
        _layer(impl, *args, **kw, resample_filter=f, act="lrelu")
    y = ops.modulated_conv2d_bias_act(*args, **kw, resample_filter=f, act="lrelu")
    (gf,) = torch.autograd.grad(y.square().sum(), [f])
    (want,) = torch.autograd.grad(_layer("ref", *args, **kw, resample_filter=f, act="lrelu").square().sum(), [f])
    _close(gf, want)


@pytest.mark.parametrize("impl", BACKENDS)
def test_no_weight_gradients_keeps_a_computed_weights_gradient(impl, device):
    """Issue 24, NVlabs' path-length step: inside no_weight_gradients() (pl_no_weight_grad) the gradient w.r.t. ws
    through a weight computed from ws (not leaf-derived) is kept, so pl_grads and the penalty's gradients are
    those without the context; a parameter weight inside the context still gets no gradient."""
    args, kw = _inputs(device, noise=None, seed=17)
    x, param, b = args[0], args[1].detach().clone().requires_grad_(), args[3]
    g = torch.Generator().manual_seed(17)
    ws = torch.randn(2, 3, 4, generator=g).to(device).requires_grad_()  # [N, num_ws, w_dim]
    affine = torch.randn(4, x.shape[1], generator=g).to(device).requires_grad_()
    pl_noise = torch.randn(2, param.shape[0], 7, 6, generator=g).to(device) / math.sqrt(7 * 6)

    def pl_step(context):
        for t in (ws, affine, param):
            t.grad = None
        with context:
            styles = ws[:, 0] @ affine + 1
            weight = param * (1 + ws[:, 1].mean())  # computed from ws: its gradient is part of d img / d ws
            img = _layer(impl, x, weight, styles, b, **kw, act="lrelu", clamp=2.0)
            (pl_grads,) = torch.autograd.grad((img * pl_noise).sum(), [ws], create_graph=True)
        pl_grads.square().sum(2).mean(1).sqrt().sum().backward()
        return pl_grads.detach(), [t.grad for t in (ws, affine, param)]

    want = pl_step(contextlib.nullcontext())
    got = pl_step(conv2d_gradfix.no_weight_gradients())
    _close(got[0], want[0], tol=1e-5)
    for a, w in zip(got[1], want[1]):
        _close(a, w, tol=1e-4)
    # a parameter weight (leaf): skipped inside the context; styles still get theirs
    s = args[2].detach().clone().requires_grad_()
    param.grad = None
    y = _layer(impl, x, param, s, b, **kw, act="lrelu", demodulate=False)
    with conv2d_gradfix.no_weight_gradients():
        y.square().sum().backward()
    assert param.grad is None and s.grad is not None


# Which inputs' gradients exist, first and second order: (backend, layer, activation, clamp) x demodulation.
KIND_COMBOS = [(b, layer, act, clamp)
               for b, layer in _combos(["conv3", "up2"])
               for act, clamp in [("linear", None), ("linear", 1.0), ("relu", None), ("lrelu", 1.0), ("swish", None)]]


@pytest.mark.parametrize("impl,layer,act,clamp", KIND_COMBOS)
@pytest.mark.parametrize("demodulate", [True, False])
def test_gradients_are_none_or_zeros_as_refs(impl, layer, act, clamp, demodulate, device):
    """Issue 24: for x, weight, styles, bias and noise, plain and create_graph first-order gradients and every
    second-order one are None where ref's are None and zeros where ref's are zeros (e.g. the bias's second-order
    gradient under lrelu: zeros, as torch's leaky_relu_backward gives)."""
    args, kw = _inputs(device, layer, seed=19)

    def run(which):
        return gradient_kinds(lambda *t: _layer(which, *t, **kw, demodulate=demodulate, act=act, clamp=clamp), args)
    assert_same_gradient_kinds(run(impl), run("ref"), ("x", "weight", "styles", "bias", "noise"))


# ---- full size on a GPU ----------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("algorithm,shape", [
    (a, shape) for a in ALGORITHMS
    for shape in [(8, 512, 512, 16, "conv3"), (8, 128, 128, 64, "conv3"), (8, 512, 256, 32, "up2"),
                  (8, 512, 3, 32, "torgb")]
    if a == "cudnn" or shape[4] in STRIDE1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_full_size_gpu(algorithm, shape, dtype, channels_last):
    n, i, o, h, layer = shape
    args, kw = _inputs(torch.device("cuda"), layer, n=n, i=i, o=o, h=h, w=h, dtype=dtype, seed=12)
    args[1] = args[1] / (i * LAYERS[layer][0] ** 2) ** 0.5
    if channels_last:
        args[0] = args[0].to(memory_format=torch.channels_last)
    act, clamp = ("linear", None) if layer == "torgb" else ("lrelu", 256.0)
    y_ref, g_ref = _run("ref", [None if a is None else a.float() for a in args], kw, act, clamp, layer != "torgb")
    y, g = _run(f"triton:{algorithm}", args, kw, act, clamp, layer != "torgb")
    # float32: both sides use TF32 convolutions (PyTorch's cuDNN default), hence 5e-3.
    tol = {torch.float32: 5e-3, torch.float16: 2e-2, torch.bfloat16: 8e-2}[dtype]
    _close(y, y_ref, tol)
    for a, b in zip(g, g_ref):
        _close(a, b, tol)
    # the float64 anchor at batch 2 (x, styles, noise have the batch dimension)
    small = [None if a is None else a[:2] if k in (0, 2, 4) else a for k, a in enumerate(args)]
    assert_anchored(lambda t: _run(f"triton:{algorithm}", t, kw, act, clamp, layer != "torgb"),
                    lambda t: _run("ref", t, kw, act, clamp, layer != "torgb"), small, dtype)


def test_an_experimental_algorithm_is_never_chosen_automatically():
    """algorithm=None is DEFAULT_ALGORITHM, which may not be experimental (the implicit GEMM misses the static sm_90
    bars: kernels/modulated_conv2d_bias_act.py)."""
    from gan_fast.params import modulated_conv2d as P

    assert P.DEFAULT_ALGORITHM not in P.EXPERIMENTAL_ALGORITHMS
    assert "implicit_gemm" in P.EXPERIMENTAL_ALGORITHMS
    assert P.check_algorithm(None, 1, 1, (1, 1, 1, 1), True) == P.DEFAULT_ALGORITHM

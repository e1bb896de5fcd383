"""bias_act fast backends (cpp = the compiled extension, triton) against the reference.

Forward, gradient and second-order gradient for every activation, with and
without clamp, several dims, contiguous / channels_last / non-contiguous inputs,
odd shapes; gradcheck and gradgradcheck of the C++ CPU path in float64; that
the public op really runs the extension's kernels; torch.compile and torch.func.
On CPU the Triton backend runs under TRITON_INTERPRET=1 (conftest), at small shapes.
"""

import math

import pytest
import torch

from conftest import fast_backends
from gan_fast import activations, backend, config, extension, ops
from gan_fast.backends import bias_act as backends

BACKENDS = fast_backends(backends.SPEC)
ACTS = sorted(activations.ACTIVATIONS)
TOL32 = dict(rtol=1e-4, atol=2e-5)


def _all_orders(impl, x, b, dim, act, clamp, seed=1):
    """y, (dx, db) and the second-order gradients of <dx, v> + <db, vb> w.r.t. (x, b, dy)."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    x = x.detach().requires_grad_(True)
    b = None if b is None else b.detach().requires_grad_(True)
    y = ops.bias_act(x, b, dim=dim, act=act, clamp=clamp, impl=impl)
    dy = torch.randn(y.shape, generator=g, device=x.device, dtype=x.dtype).requires_grad_(True)
    inputs = (x,) if b is None else (x, b)
    first = torch.autograd.grad(y, inputs, dy, create_graph=True)
    s = sum((d * torch.randn(d.shape, generator=g, device=x.device, dtype=x.dtype)).sum() for d in first)
    second = torch.autograd.grad(s, inputs + (dy,), materialize_grads=True)
    return (y,) + tuple(first) + tuple(second)


def _check_parity(impl, x, b, dim, act, clamp, **tol):
    got = _all_orders(impl, x, b, dim, act, clamp)
    want = _all_orders("ref", x, b, dim, act, clamp)
    names = ["y", "dx", "db", "d2x", "d2b", "d2dy"] if b is not None else ["y", "dx", "d2x", "d2dy"]
    for name, a, e in zip(names, got, want):
        torch.testing.assert_close(a, e, **(tol or TOL32), msg=lambda m, n=name: f"{impl} {act} clamp={clamp}: {n}: {m}")
    return got


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("clamp", [None, 0.6])
@pytest.mark.parametrize("act", ACTS)
def test_parity_all_orders(impl, act, clamp, device):
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(3, 5, 7, 3, generator=g, device=device) * 2
    b = torch.randn(5, generator=g, device=device)
    y = _check_parity(impl, x, b, 1, act, clamp)[0]
    if clamp is not None:
        assert y.abs().max() <= clamp
        assert (y.abs() == clamp).any(), "the test input should saturate the clamp"


LAYOUTS = ["contiguous", "channels_last", "transposed", "sliced"]


def _layout(x, layout):
    if layout == "channels_last":
        return x.contiguous(memory_format=torch.channels_last)
    if layout == "transposed":
        return x.transpose(2, 3).contiguous().transpose(2, 3)  # dense, permuted
    if layout == "sliced":
        return torch.cat([x, x], dim=3)[..., ::2]  # not dense
    return x


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_layouts_and_dims(impl, layout, dim, device):
    g = torch.Generator(device=device).manual_seed(2)
    x = _layout(torch.randn(3, 5, 4, 7, generator=g, device=device) * 2, layout)
    b = torch.randn(x.shape[dim], generator=g, device=device)
    y = _check_parity(impl, x, b, dim, "swish", 1.5)[0]
    assert y.stride() == torch.empty_like(x).stride()  # the memory format is kept
    if layout == "channels_last":
        assert y.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("shape,dim", [((7,), 0), ((6, 5), 1), ((6, 5), 0), ((2, 3, 2, 3, 5), 2), ((1, 1, 3), 1)])
def test_shapes_without_bias_and_with(impl, shape, dim, device):
    g = torch.Generator(device=device).manual_seed(3)
    x = torch.randn(shape, generator=g, device=device) * 2
    b = torch.randn(shape[dim], generator=g, device=device)
    _check_parity(impl, x, b, dim, "lrelu", None)
    _check_parity(impl, x, None, dim, "elu", 0.8)


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("clamp", [None, 0.5])
def test_nan_and_large_inputs(impl, act, clamp, device):
    """NaN propagates as in the reference (forward and gradient), through the clamp too (torch.clamp keeps
    NaN; clamping it to -clamp would hide a diverging G); saturated regions stay exact."""
    x = torch.tensor([[float("nan"), -100.0, -30.0, -0.3, 0.0, 0.2, 30.0, 100.0]], device=device)
    x = x.requires_grad_(True)
    dy = torch.ones_like(x)
    got = ops.bias_act(x, None, dim=1, act=act, clamp=clamp, impl=impl)
    want = ops.bias_act(x, None, dim=1, act=act, clamp=clamp, impl="ref")
    torch.testing.assert_close(got, want, equal_nan=True, **TOL32)
    g_got, g_want = torch.autograd.grad(got, x, dy)[0], torch.autograd.grad(want, x, dy)[0]
    if clamp is not None:  # at NaN the clamp's mask gives 0 here; ref's chain rule may give 0 * NaN = NaN
        g_got, g_want = g_got[:, 1:], g_want[:, 1:]
    torch.testing.assert_close(g_got, g_want, equal_nan=True, **TOL32)


@pytest.mark.parametrize("impl", BACKENDS)
def test_alpha_gain_and_bias_only_grad(impl, device):
    g = torch.Generator(device=device).manual_seed(4)
    x = torch.randn(4, 6, 5, generator=g, device=device) * 3
    b = torch.randn(6, generator=g, device=device, requires_grad=True)
    for act in ("lrelu", "elu"):
        y = ops.bias_act(x, b, act=act, alpha=0.35, gain=-1.7, clamp=2.0, impl=impl)
        r = ops.bias_act(x, b, act=act, alpha=0.35, gain=-1.7, clamp=2.0, impl="ref")
        torch.testing.assert_close(y, r, **TOL32)
        (db,) = torch.autograd.grad(y.square().sum(), b)  # x needs no grad: only db is asked for
        (rb,) = torch.autograd.grad(r.square().sum(), b)
        torch.testing.assert_close(db, rb, rtol=1e-4, atol=1e-4)


def test_public_op_runs_the_extension(monkeypatch):
    assert "cpp" in BACKENDS
    assert extension.status() == (True, "")
    assert extension.info()["how"] in ("prebuilt", "jit-built", "jit-cached")
    assert backend.choose(backends.SPEC, None, torch.device("cpu"), torch.float32, 1 << 20) == "cpp"
    calls = []
    real = backends.kernel_set("cpp")
    assert real.fwd is torch.ops.gan_fast.bias_act_fwd.default

    def counting(name):
        def f(*args):
            calls.append(name)
            return getattr(real, name)(*args)
        return f

    monkeypatch.setattr(backends, "_CPP", backends.KernelSet(*(counting(n) for n in backends.KernelSet._fields)))
    x = torch.randn(2, 3, 4, requires_grad=True)
    y = ops.bias_act(x, torch.randn(3), act="tanh", impl="cuda")  # 'cuda' is an alias of 'cpp'
    (dx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    dx.square().sum().backward()
    assert calls == ["fwd", "grad", "grad2"]
    calls.clear()
    b = torch.randn(3, requires_grad=True)  # the bias gradient comes out of the gradient kernels (one pass each)
    y = ops.bias_act(x, b, act="tanh", impl="cpp")
    dx, db = torch.autograd.grad(y.sum(), [x, b], create_graph=True)
    (dx.square().sum() + db.square().sum()).backward()
    assert calls == ["fwd", "grad_db", "grad2_db"]
    calls.clear()
    ops.bias_act(torch.randn(4, 4096), act="relu")  # automatic choice on CPU: the kernel from 16K elements
    assert calls == ["fwd"]
    calls.clear()
    ops.bias_act(torch.randn(2, 3), act="relu")  # below, the plain chain is faster (SPEC.min_numel)
    assert calls == []
    with config.use_backend("cpp"):  # a forced backend runs whatever the size
        ops.bias_act(torch.randn(2, 3), act="relu")
    assert calls == ["fwd"]


@pytest.mark.parametrize("act", ACTS)
def test_gradcheck_float64_cpp_cpu(act):
    g = torch.Generator().manual_seed(5)
    x = (torch.randn(2, 3, 5, generator=g, dtype=torch.float64) * 2).requires_grad_(True)
    b = torch.randn(3, generator=g, dtype=torch.float64).requires_grad_(True)
    for clamp in (None, 0.9):
        def fn(x, b):
            return ops.bias_act(x, b, act=act, clamp=clamp, impl="cpp")
        assert torch.autograd.gradcheck(fn, (x, b))
        assert torch.autograd.gradgradcheck(fn, (x, b))
    xc = x.detach().transpose(0, 2).contiguous().transpose(0, 2).requires_grad_(True)  # permuted layout
    assert torch.autograd.gradgradcheck(lambda x: ops.bias_act(x, None, act=act, gain=0.7, impl="cpp"), (xc,))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_cpp_cpu(dtype):
    g = torch.Generator().manual_seed(6)
    x = (torch.randn(2, 8, 3, 3, generator=g) * 2).to(dtype).contiguous(memory_format=torch.channels_last)
    b = torch.randn(8, generator=g)  # float32 bias: cast to x's dtype, as the reference does
    for act in ("lrelu", "swish", "tanh"):
        y = ops.bias_act(x, b, act=act, clamp=1.0, impl="cpp")
        assert y.dtype == dtype and y.is_contiguous(memory_format=torch.channels_last)
        ref = ops.bias_act(x.float(), b.to(dtype).float(), act=act, clamp=1.0, impl="ref").to(dtype)
        torch.testing.assert_close(y, ref, rtol=2e-2, atol=2e-2)


def test_third_order_raises_clearly():
    x = torch.randn(2, 3, requires_grad=True)
    y = ops.bias_act(x, None, act="tanh", impl="cpp")
    (dx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (ddx,) = torch.autograd.grad(dx.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="third-order"):
        ddx.sum().backward()


def test_fake_matches_kernel_opcheck():
    x = torch.randn(2, 5, 3, 4).contiguous(memory_format=torch.channels_last)
    b = torch.randn(5)
    backends.kernel_set("cpp")
    args = (x, b, 8, 0.0, 1.4, 0.5, 5, 12)
    torch.library.opcheck(torch.ops.gan_fast.bias_act_fwd.default, args,
                          test_utils=("test_schema", "test_faketensor"))
    torch.library.opcheck(torch.ops.gan_fast.bias_act_grad2.default, (torch.randn_like(x), torch.randn(2, 5, 3, 4),
                                                                      x, b, 3, 0.0, 1.0, None, 5, 12),
                          test_utils=("test_schema", "test_faketensor"))
    for name, extra in (("bias_act_grad_db", ()), ("bias_act_grad2_db", (torch.randn(2, 5, 3, 4),))):
        torch.library.opcheck(getattr(torch.ops.gan_fast, name).default,
                              extra + (torch.randn(2, 5, 3, 4), x, b, 4, 0.0, 1.0, 0.3, 5, 12),
                              test_utils=("test_schema", "test_faketensor"))


# Memory as [O, C, S] (S = the bias dim's stride): runs along channels (S > 1; the Triton kernel switches to
# row-wise tiles from S = 512), rows of channels (S = 1), one channel, an empty batch.
DB_CASES = [((2, 3, 16, 32), 1, "contiguous"), ((3, 5, 7, 3), 1, "contiguous"), ((3, 5, 7, 3), 1, "channels_last"),
            ((2, 3, 4, 5), 3, "transposed"), ((6, 40), 1, "contiguous"), ((40, 6), 0, "contiguous"),
            ((3, 1, 700), 1, "contiguous"), ((5, 1), 1, "contiguous"), ((0, 4, 3), 1, "contiguous")]


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("shape,dim,layout", DB_CASES)
def test_bias_gradient_in_the_gradient_kernels(impl, shape, dim, layout, device):
    """grad_db / grad2_db return the gradient kernels' outputs and their per-channel sums (the bias gradients)."""
    g = torch.Generator(device=device).manual_seed(8)
    x, dy, ddx = (_layout(torch.randn(shape, generator=g, device=device) * 2, layout) if len(shape) == 4 else
                  torch.randn(shape, generator=g, device=device) * 2 for _ in range(3))
    b = torch.randn(shape[dim], generator=g, device=device)
    ks = backends.kernel_set(impl)
    inner = math.prod(shape[dim + 1:])
    args = (8, 0.0, 1.3, 0.9, shape[dim], inner)  # swish with a clamp
    dims = [d for d in range(x.ndim) if d != dim]
    for (out, db), plain in ((ks.grad_db(dy, x, b, *args), ks.grad(dy, x, b, *args)),
                             (ks.grad2_db(ddx, dy, x, b, *args), ks.grad2(ddx, dy, x, b, *args))):
        assert torch.equal(out, plain) and out.stride() == plain.stride()
        assert db.shape == b.shape and db.dtype == x.dtype
        torch.testing.assert_close(db, plain.double().sum(dims).float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_cpp_bias_gradient_is_deterministic(dtype, layout):
    """The C++ bias gradient is cut into units of fixed size: the same bits on any number of threads."""
    g = torch.Generator().manual_seed(9)
    x, dy = (_layout(torch.randn(4, 64, 32, 33, generator=g), layout).to(dtype) for _ in range(2))
    b = torch.randn(64, generator=g).to(dtype)
    ks = backends.kernel_set("cpp")
    args = (2, 0.2, 1.4, None, 64, 32 * 33)
    old = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(ks.grad_db(dy, x, b, *args)[1])
    finally:
        torch.set_num_threads(old)
    assert all(torch.equal(r, results[0]) for r in results)
    want = ks.grad(dy, x, b, *args).double().sum((0, 2, 3))
    torch.testing.assert_close(results[0].double(), want, rtol=1e-2 if dtype == torch.bfloat16 else 1e-5, atol=1e-3)


def test_torch_compile_fullgraph_cpp():
    x = torch.randn(3, 4, 5, 5).contiguous(memory_format=torch.channels_last)
    b = torch.randn(4)
    ops.bias_act(x, b, act="lrelu", impl="cpp")  # the first call loads the extension eagerly

    def f(x, b):
        return ops.bias_act(x, b, act="lrelu", clamp=1.0, impl="cpp") * 2

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    xe, xc = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ye, yc = f(xe, b), compiled(xc, b)
    torch.testing.assert_close(yc, ye)
    ye.square().sum().backward()
    yc.square().sum().backward()
    torch.testing.assert_close(xc.grad, xe.grad)


@pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")  # vmap's per-sample fallback
def test_torch_func_grad_and_jacrev_cpp():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 4, 5, generator=g)
    b = torch.randn(4, generator=g)

    def loss(impl):
        return lambda x: ops.bias_act(x, b, act="swish", clamp=1.5, impl=impl).square().sum()

    torch.testing.assert_close(torch.func.grad(loss("cpp"))(x), torch.func.grad(loss("ref"))(x), **TOL32)

    def penalty(impl):  # an R1-style penalty: gradient norm, differentiated again
        return lambda x: torch.func.grad(loss(impl))(x).square().sum()

    torch.testing.assert_close(torch.func.grad(penalty("cpp"))(x), torch.func.grad(penalty("ref"))(x),
                               rtol=1e-4, atol=1e-4)
    xs = x[:, :, 0]
    jac = torch.func.jacrev(lambda x: ops.bias_act(x, b, act="tanh", impl="cpp"))(xs)
    torch.testing.assert_close(jac, torch.func.jacrev(lambda x: ops.bias_act(x, b, act="tanh", impl="ref"))(xs))


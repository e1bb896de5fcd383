"""upfirdn2d fast backends (cpp = the compiled extension, triton) against the reference.

Forward, gradient and second-order gradient over up/down/padding/crop/flip/gain
configurations, 2-D and separable filters (one- and two-pass), contiguous /
channels_last / non-dense inputs, odd shapes; gradcheck and gradgradcheck of
the C++ CPU path in float64; that the public op runs the extension; a learned
filter (f requiring grad) falls back to the reference; torch.compile.
On CPU the Triton backend runs under TRITON_INTERPRET=1 (conftest), at small shapes.
"""


import pytest
import torch

from conftest import fast_backends
from gan_fast import backend, config, ops
from gan_fast.errors import BackendUnavailableError
from gan_fast.backends import upfirdn2d as backends

BACKENDS = fast_backends(backends.SPEC)
TOL32 = dict(rtol=1e-4, atol=1e-5)

# (up, down, padding, filter shape, flip_filter, gain)
CONFIGS = [
    (1, 1, 0, (1, 1), False, 1.0),
    (1, 1, 1, (3, 3), False, 1.0),
    (2, 1, (2, 1, 2, 1), (4,), False, 4.0),  # StyleGAN upsample2d, separable -> outer product
    (1, 2, (1, 1, 1, 1), (4,), True, 1.0),  # downsample2d
    ((2, 1), (1, 2), (1, 2, -1, 3), (3, 4), True, 1.5),  # anisotropic, a crop
    ((1, 4), (2, 1), (3, -2, 2, 2), (5, 2), False, -0.7),
    (2, 2, (3, 2, 3, 2), (6,), False, 2.0),
    (1, 1, (4, 3, 4, 3), (8,), False, 1.0),  # a long separable filter: two 1-D passes in cpp
]
IDS = [f"up{c[0]}-down{c[1]}-pad{c[2]}-f{'x'.join(map(str, c[3]))}-flip{int(c[4])}" for c in CONFIGS]


def _filter(shape, device, dtype=torch.float32, seed=9):
    g = torch.Generator(device=device).manual_seed(seed)
    return torch.rand(shape, generator=g, device=device, dtype=dtype) + 0.1


def _all_orders(impl, x, f, cfg, seed=1):
    up, down, pad, _, flip, gain = cfg
    g = torch.Generator(device=x.device).manual_seed(seed)
    x = x.detach().requires_grad_(True)
    y = ops.upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=flip, gain=gain, impl=impl)
    dy = torch.randn(y.shape, generator=g, device=x.device, dtype=x.dtype).requires_grad_(True)
    (dx,) = torch.autograd.grad(y, x, dy, create_graph=True)
    v = torch.randn(dx.shape, generator=g, device=x.device, dtype=x.dtype)
    d2x, d2dy = torch.autograd.grad((dx * v).sum(), (x, dy), materialize_grads=True)
    return y, dx, d2x, d2dy


def _check(impl, x, f, cfg, **tol):
    got = _all_orders(impl, x, f, cfg)
    want = _all_orders("ref", x, f, cfg)
    for name, a, e in zip(["y", "dx", "d2x", "d2dy"], got, want):
        assert a.shape == e.shape, (name, a.shape, e.shape)
        torch.testing.assert_close(a, e, **(tol or TOL32), msg=lambda m, n=name: f"{impl} {cfg}: {n}: {m}")
    return got[0]


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_parity_all_orders(impl, cfg, device):
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(2, 3, 9, 7, generator=g, device=device)
    _check(impl, x, _filter(cfg[3], device), cfg)


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("layout", ["channels_last", "sliced", "transposed"])
@pytest.mark.parametrize("cfg", [CONFIGS[2], CONFIGS[4], CONFIGS[7]], ids=[IDS[2], IDS[4], IDS[7]])
def test_layouts(impl, layout, cfg, device):
    g = torch.Generator(device=device).manual_seed(1)
    x = torch.randn(2, 5, 8, 6, generator=g, device=device)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "sliced":
        x = torch.cat([x, x], dim=3)[..., ::2]
    else:
        x = x.transpose(2, 3).contiguous().transpose(2, 3)
    y = _check(impl, x, _filter(cfg[3], device), cfg)
    assert y.is_contiguous(memory_format=torch.channels_last) == (layout == "channels_last")


@pytest.mark.parametrize("impl", BACKENDS)
def test_helpers(impl, device):
    g = torch.Generator(device=device).manual_seed(2)
    x = torch.randn(1, 4, 7, 5, generator=g, device=device)
    f = ops.setup_filter([1, 3, 3, 1], device=device)
    for fn, kw in ((ops.upsample2d, dict(up=2)), (ops.downsample2d, dict(down=2)), (ops.filter2d, dict(padding=1))):
        torch.testing.assert_close(fn(x, f, impl=impl, **kw), fn(x, f, impl="ref", **kw), **TOL32)


CHECK_CONFIGS = [CONFIGS[1], CONFIGS[4], CONFIGS[5], (2, 1, (2, 1, 2, 1), (4,), False, 4.0), CONFIGS[7]]


@pytest.mark.parametrize("cfg", CHECK_CONFIGS, ids=[str(i) for i in range(len(CHECK_CONFIGS))])
def test_gradcheck_float64_cpp_cpu(cfg):
    up, down, pad, fshape, flip, gain = cfg
    x = torch.randn(1, 2, 5, 4, dtype=torch.float64).requires_grad_(True)
    f = _filter(fshape, "cpu", torch.float64)

    def fn(x):
        return ops.upfirdn2d(x, f, up=up, down=down, padding=pad, flip_filter=flip, gain=gain, impl="cpp")

    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_public_op_runs_the_extension(monkeypatch):
    assert "cpp" in BACKENDS
    # On CPU the C++ kernel is explicit-only: the conv2d-based reference is faster there.
    assert backend.choose(backends.SPEC, None, torch.device("cpu"), torch.float32) == "ref"
    real = backends.kernel("cpp")
    assert real is torch.ops.gan_fast.upfirdn2d_fwd.default
    calls = []

    def counting(*args):
        calls.append(args[2:6])  # up/down as the kernel sees them
        return real(*args)

    monkeypatch.setattr(backends, "_CPP", counting)
    x = torch.randn(1, 2, 6, 5, requires_grad=True)
    y = ops.upfirdn2d(x, torch.ones(3, 3), up=2, padding=1, impl="cuda")  # 'cuda' is an alias of 'cpp'
    y.sum().backward()
    assert calls == [(2, 2, 1, 1), (1, 1, 2, 2)]  # the backward is the same op with up and down swapped
    calls.clear()
    ops.upfirdn2d(x.detach(), torch.ones(2), down=2)  # automatic choice on CPU: the reference
    assert calls == []


def test_learned_filter_runs_the_reference_automatically_and_is_refused_explicitly():
    x = torch.randn(1, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    f = _filter((3, 2), "cpu", torch.float64).requires_grad_(True)
    with pytest.raises(BackendUnavailableError, match="impl='cpp' cannot run this call: its kernels treat the "
                                                      "filter as a constant.*impl='ref' runs it"):
        ops.upfirdn2d(x, f, up=2, padding=(1, 0, 1, 2), impl="cpp")
    with torch.no_grad():  # no gradient asked for: the filter is a constant, the kernel runs
        torch.testing.assert_close(ops.upfirdn2d(x, f, up=2, padding=(1, 0, 1, 2), impl="cpp"),
                                   ops.upfirdn2d(x, f, up=2, padding=(1, 0, 1, 2), impl="ref"))
    with config.use_backend("cpp"):  # a forced backend is still automatic: ref takes the learned filter
        y = ops.upfirdn2d(x, f, up=2, padding=(1, 0, 1, 2))
    gx, gf = torch.autograd.grad(y.square().sum(), (x, f))
    yr = ops.upfirdn2d(x, f, up=2, padding=(1, 0, 1, 2), impl="ref")
    rx, rf = torch.autograd.grad(yr.square().sum(), (x, f))
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gf, rf)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_cpp_cpu(dtype):
    x = torch.randn(2, 6, 7, 5).to(dtype).contiguous(memory_format=torch.channels_last)
    for f in (torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8, torch.ones(8) / 8):
        y = ops.upfirdn2d(x, f, up=2, padding=(3, 2, 3, 2), gain=4, impl="cpp")
        ref = ops.upfirdn2d(x.float(), f, up=2, padding=(3, 2, 3, 2), gain=4, impl="ref")
        assert y.dtype == dtype and y.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(y.float(), ref, rtol=2e-2, atol=2e-2)


def test_fake_matches_kernel_opcheck():
    backends.kernel("cpp")
    x = torch.randn(2, 3, 7, 6).contiguous(memory_format=torch.channels_last)
    for f in (torch.rand(3, 4), torch.rand(8)):
        torch.library.opcheck(torch.ops.gan_fast.upfirdn2d_fwd.default, (x, f, 2, 1, 1, 2, 1, 2, -1, 3, False, 1.5),
                              test_utils=("test_schema", "test_faketensor"))


def test_torch_compile_fullgraph_cpp():
    x = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    f = ops.setup_filter([1, 3, 3, 1])
    ops.upsample2d(x, f, impl="cpp")  # the first call loads the extension eagerly

    def fn(x):
        return ops.downsample2d(ops.upsample2d(x, f, impl="cpp").square(), f, impl="cpp")

    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    xe, xc = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ye, yc = fn(xe), compiled(xc)
    torch.testing.assert_close(yc, ye)
    ye.sum().backward()
    yc.sum().backward()
    torch.testing.assert_close(xc.grad, xe.grad)

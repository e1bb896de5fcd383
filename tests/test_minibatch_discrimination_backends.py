"""Fast backends of minibatch_discrimination against the reference: forward, gradient, second order (w.r.t. m and
the cotangent), third order, odd shapes, strides, identical rows, empty shapes, the module under R1.

On CPU the Triton backend runs under TRITON_INTERPRET=1 (conftest) at small shapes; the gpu-marked test repeats
the comparison at the paper's size on CUDA.
"""

import pytest
import torch

from conftest import fast_backends
from gan_fast import config, self_test
from gan_fast.backends import minibatch_discrimination as backends
from gan_fast.kernels import minibatch_discrimination as K
from gan_fast.nn.minibatch_discrimination import MinibatchDiscrimination
from gan_fast.ops.minibatch_discrimination import minibatch_discrimination
from grad_structure import assert_same_structure, structure
from parity import assert_close_scaled

BACKENDS = fast_backends(backends.SPEC)


def _m(shape, device, dtype=torch.float32, seed=0, scale=0.4):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(device=device, dtype=dtype)


def _orders(fn, m, go, vv):
    """(o, d<go, o>/dm plain, the same under create_graph, d<vv, dm>/dm, d<vv, dm>/dgo)."""
    m = m.detach().clone().requires_grad_(True)
    go = go.detach().clone().requires_grad_(True)
    o = fn(m)
    (plain,) = torch.autograd.grad(o, m, go, retain_graph=True)
    (dm,) = torch.autograd.grad(o, m, go, create_graph=True)
    d2m, d2go = torch.autograd.grad(dm, (m, go), vv)
    return o.detach(), plain, dm.detach(), d2m, d2go


WHAT = ("forward", "gradient", "gradient (create_graph)", "second order (m)", "second order (cotangent)")


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("shape", [(40, 3, 10), (5, 2, 3), (33, 1, 9), (1, 2, 3), (2, 3, 1)])
def test_matches_reference_float32(impl, shape, device):
    m = _m(shape, device)
    go = _m(shape[:2], device, seed=1, scale=1.0)
    vv = _m(shape, device, seed=2, scale=1.0)
    want = _orders(lambda x: minibatch_discrimination(x, impl="ref"), m, go, vv)
    got = _orders(lambda x: minibatch_discrimination(x, impl=impl), m, go, vv)
    for a, b, what in zip(got, want, WHAT):
        assert a.dtype == b.dtype and a.shape == b.shape, what
        assert_close_scaled(a, b, 2e-5)


@pytest.mark.parametrize("blocks", [(4, 8, 2), (8, 4, 4)])
def test_kernels_at_other_block_sizes(blocks, device):
    """Many programs / tiles / channel chunks, masks on every axis, against the float64 reference's derivatives."""
    m = _m((13, 3, 5), device, torch.float64)
    m[4] = m[9]  # an identical pair
    g = _m((13, 3), device, torch.float64, seed=1)
    v = _m((13, 3, 5), device, torch.float64, seed=2)
    mr, gr = m.clone().requires_grad_(), g.clone().requires_grad_()
    o = minibatch_discrimination(mr, impl="ref")
    (dm,) = torch.autograd.grad(o, mr, gr, create_graph=True)
    d2m, d2g = torch.autograd.grad(dm, (mr, gr), v)
    torch.testing.assert_close(K.mbd_forward(m, blocks=blocks), o.detach(), rtol=1e-12, atol=1e-13)
    got_dm, none = K.mbd_backward(m, g, blocks=blocks)
    assert none is None
    torch.testing.assert_close(got_dm, dm.detach(), rtol=1e-12, atol=1e-13)
    got2m, got2g = K.mbd_backward(m, g, v, blocks=blocks)
    torch.testing.assert_close(got2m, d2m, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(got2g, d2g, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("impl", BACKENDS)
def test_float64_gradcheck_gradgradcheck(impl, device):
    m = _m((4, 2, 3), device, torch.float64).requires_grad_()
    fn = lambda x: minibatch_discrimination(x, impl=impl)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (m,))
    assert torch.autograd.gradgradcheck(fn, (m,))


@pytest.mark.parametrize("impl", BACKENDS)
def test_third_order_served_exactly(impl, device):
    m0 = _m((6, 2, 3), device, torch.float64)
    go = _m((6, 2), device, torch.float64, seed=1)

    def third(i):
        m = m0.clone().requires_grad_()
        (dm,) = torch.autograd.grad(minibatch_discrimination(m, impl=i), m, go, create_graph=True)
        (d2,) = torch.autograd.grad(dm.square().sum(), m, create_graph=True)
        (d3,) = torch.autograd.grad((d2 * m).sum(), m)
        return d2.detach(), d3

    for a, b in zip(third(impl), third("ref")):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("impl", BACKENDS)
def test_strides_and_expanded_cotangent(impl, device):
    base = _m((9, 12, 4), device)
    for m in (base[:, ::3, 1:], base.permute(0, 2, 1)[:, :3], base[::2]):
        mr = m.detach().clone().requires_grad_()
        mf = m.detach().clone().requires_grad_()
        ref = minibatch_discrimination(mr, impl="ref")
        out = minibatch_discrimination(mf, impl=impl)
        assert_close_scaled(out.detach(), ref.detach(), 2e-5)
        ref.sum().backward()  # an expanded (stride-0) cotangent
        out.sum().backward()
        assert_close_scaled(mf.grad, mr.grad, 2e-5)


@pytest.mark.parametrize("impl", BACKENDS)
def test_identical_rows(impl, device):
    base = _m((3, 2, 4), device)
    m = torch.cat([base, base[:1], base[:1]]).requires_grad_()
    out = minibatch_discrimination(m, impl=impl)
    (dm,) = torch.autograd.grad(out.sum(), m)
    mr = m.detach().clone().requires_grad_()
    (dr,) = torch.autograd.grad(minibatch_discrimination(mr, impl="ref").sum(), mr)
    assert torch.isfinite(dm).all()
    assert_close_scaled(dm, dr, 2e-5)
    same = base[:1].expand(4, -1, -1).clone().requires_grad_()
    out = minibatch_discrimination(same, impl=impl)
    torch.testing.assert_close(out, torch.full_like(out, 3.0))
    (d,) = torch.autograd.grad(out.sum(), same)
    assert torch.equal(d, torch.zeros_like(d))


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("shape", [(0, 3, 2), (4, 0, 2), (3, 2, 0), (1, 3, 2)])
def test_empty_and_degenerate(impl, shape, device):
    m = torch.randn(shape, device=device).requires_grad_()
    go = torch.randn(shape[:2], device=device).requires_grad_()
    out = minibatch_discrimination(m, impl=impl)
    want = minibatch_discrimination(m, impl="ref")
    assert out.shape == shape[:2]
    torch.testing.assert_close(out, want)
    (dm,) = torch.autograd.grad(out, m, go, create_graph=True)
    assert dm.shape == shape and torch.equal(dm, torch.zeros_like(dm))
    if dm.requires_grad:
        d2m, d2g = torch.autograd.grad(dm.sum(), (m, go), allow_unused=True)
        for d in (d2m, d2g):
            assert d is None or torch.equal(d, torch.zeros_like(d))


@pytest.mark.parametrize("impl", BACKENDS)
def test_module_under_r1_matches_ref(impl, device):
    torch.manual_seed(0)

    def make(i):
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.LeakyReLU(0.2),
                                   MinibatchDiscrimination(16, 6, 3, impl=i), torch.nn.Linear(22, 1)).to(device)

    x0 = torch.randn(36, 3, device=device)
    grads = []
    for i in (impl, "ref"):
        D = make(i)
        x = x0.clone().requires_grad_()
        logits = D(x)
        (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
        (logits.mean() + g.square().sum(1).mean()).backward()  # D loss + R1
        grads.append([logits.detach()] + [p.grad for p in D.parameters()])
    for a, b in zip(*grads):
        assert_close_scaled(a, b, 1e-4)


def test_custom_ops_opcheck(device):
    m = _m((5, 2, 3), device)
    g = _m((5, 2), device, seed=1)
    v = _m((5, 2, 3), device, seed=2)
    utils = ("test_schema", "test_faketensor")
    torch.library.opcheck(backends._forward_op, (m,), test_utils=utils)
    torch.library.opcheck(backends._backward_op, (m, g), test_utils=utils)
    torch.library.opcheck(backends._double_backward_op, (m, g, v), test_utils=utils)


def test_automatic_choice_on_cpu_is_ref(monkeypatch):
    m = torch.randn(4, 2, 3).requires_grad_()
    out = minibatch_discrimination(m)
    assert out.grad_fn is not None and "MBD" not in type(out.grad_fn).__name__
    launched = []
    real = backends.run
    monkeypatch.setattr(backends, "run", lambda impl, *a: launched.append(impl) or real(impl, *a))
    for impl in BACKENDS:  # a forced backend applies; an empty m still runs ref
        with config.use_backend(minibatch_discrimination=impl):
            minibatch_discrimination(m)
            minibatch_discrimination(m[:0])
        assert launched == [impl, "ref"]
        launched.clear()
    with pytest.raises(ValueError, match="minibatch_discrimination: no 'cpp' backend"):
        minibatch_discrimination(m[:0], impl="cpp")  # the choice comes first


@pytest.mark.parametrize("impl", BACKENDS)
def test_self_test_case_passes(impl, device):
    ok, why = self_test.check("minibatch_discrimination", impl, device, (torch.float32,))
    assert ok, why


def test_kernel_launcher_errors():
    with pytest.raises(ValueError, match=r"m must be a floating \[N, B, C\]"):
        K.mbd_forward(torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"g must be \[3, 2\]"):
        K.mbd_backward(torch.zeros(3, 2, 4), torch.zeros(2, 3))


def _structure_cases(device):
    base = _m((3, 2, 4), device)
    return {
        "general": _m((5, 2, 3), device),
        "one-sample": _m((1, 3, 2), device),  # o = 0: ref's gradients are zeros
        "identical-rows": torch.cat([base, base[:1], base[:1]]),
    }


@pytest.mark.parametrize("name", list(_structure_cases("cpu")))
def test_gradient_structure_matches_ref(name, device):
    """Issue 24: first and second order (create_graph), w.r.t. m and the cotangent, a gradient is None on the
    fast backend exactly where it is None on ref, and zeros where ref's is zeros."""
    m = _structure_cases(device)[name].requires_grad_()
    want = structure(lambda t: minibatch_discrimination(t, impl="ref"), [m])
    for impl in BACKENDS:
        assert_same_structure(structure(lambda t: minibatch_discrimination(t, impl=impl), [m]), want,
                              f"{name} on {impl}")


@pytest.mark.gpu
@pytest.mark.parametrize("n", [64, 256])
def test_paper_size_on_gpu(n):
    m = _m((n, 100, 5), "cuda", scale=0.2)
    go = _m((n, 100), "cuda", seed=1, scale=1.0)
    vv = _m((n, 100, 5), "cuda", seed=2, scale=1.0)
    want = _orders(lambda x: minibatch_discrimination(x, impl="ref"), m, go, vv)
    got = _orders(lambda x: minibatch_discrimination(x, impl="triton"), m, go, vv)
    for a, b in zip(got, want):
        assert_close_scaled(a, b, 1e-4)

"""Fast backends of gradient_norm_penalty against the reference: forward, gradient, second order.

On CPU the Triton backend runs under TRITON_INTERPRET=1 (conftest) at small odd
shapes; the gpu-marked tests repeat them at R1 sizes on CUDA.
"""

import pytest
import torch
from torch.library import opcheck

from conftest import fast_backends
from gan_fast import backend, config
from gan_fast.backends import gradient_norm_penalty as backends
from gan_fast.kernels import gradient_norm_penalty as K
from gan_fast.ops.gradient_norm_penalty import gradient_norm_penalty
from gan_fast.params.gradient_norm_penalty import GradientNormPenaltyParams
from grad_structure import assert_same_structure, structure
from parity import assert_anchored

BACKENDS = fast_backends(backends.SPEC)
CONFIGS = [(0.0, False), (0.0, True), (1.0, False), (0.7, True), (50.0, True)]  # (center, one_sided)
REDUCTIONS = ["mean", "sum", "none"]
F32 = dict(rtol=2e-5, atol=1e-5)


def _grads(shape, device, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


def _first_and_second(fn, g, go, vv):
    """(penalty, d/dg <go, penalty>, d/dg <vv, d/dg <go, penalty>>, d/dgo <vv, ...>)."""
    g = g.detach().clone().requires_grad_(True)
    go = go.detach().clone().requires_grad_(True)
    p = fn(g)
    (dg,) = torch.autograd.grad(p, g, go, create_graph=True)
    d2g, d2go = torch.autograd.grad(dg, (g, go), vv)
    return p.detach(), dg.detach(), d2g, d2go


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("center,one_sided", CONFIGS)
def test_matches_reference_float32(impl, center, one_sided, reduction, device):
    g = _grads((5, 3, 7, 9), device)
    go = _grads((5,) if reduction == "none" else (), device, seed=1)
    vv = _grads(g.shape, device, seed=2)
    want = _first_and_second(lambda x: gradient_norm_penalty(x, center, one_sided, reduction, impl="ref"), g, go, vv)
    got = _first_and_second(lambda x: gradient_norm_penalty(x, center, one_sided, reduction, impl=impl), g, go, vv)
    for a, b, what in zip(got, want, ("forward", "grad", "second order (grads)", "second order (grad_out)")):
        assert a.dtype == b.dtype and a.shape == b.shape, what
        torch.testing.assert_close(a, b, **F32, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("center,one_sided,reduction", [(0.0, False, "mean"), (1.0, False, "none"),
                                                        (0.5, True, "sum"), (0.0, True, "mean")])
def test_gradcheck_gradgradcheck_float64(impl, center, one_sided, reduction, device):
    g = _grads((3, 2, 2), device, torch.float64).requires_grad_(True)
    fn = lambda x: gradient_norm_penalty(x, center, one_sided, reduction, impl=impl)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (g,))
    assert torch.autograd.gradgradcheck(fn, (g,))


@pytest.mark.parametrize("impl", BACKENDS)
def test_layouts_and_dtypes(impl, device):
    g = _grads((4, 5, 3, 6), device)
    for x in (g.to(memory_format=torch.channels_last), g[:, 1:4, :, ::2], g.transpose(0, 1)):
        want = _first_and_second(lambda t: gradient_norm_penalty(t, 1.0, False, "none", impl="ref"), x,
                                 _grads(x.shape[:1], device, seed=3), _grads(x.shape, device, seed=4))
        got = _first_and_second(lambda t: gradient_norm_penalty(t, 1.0, False, "none", impl=impl), x,
                                _grads(x.shape[:1], device, seed=3), _grads(x.shape, device, seed=4))
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, **F32)
        assert got[1].stride() == torch.empty_like(x).stride()
    h = g.half()
    p = gradient_norm_penalty(h, 0.0, False, "mean", impl=impl)
    assert p.dtype == torch.float32
    torch.testing.assert_close(p, gradient_norm_penalty(h, 0.0, False, "mean", impl="ref"), **F32)
    one = g[:1].double()
    torch.testing.assert_close(gradient_norm_penalty(one, 2.0, True, "sum", impl=impl),
                               gradient_norm_penalty(one, 2.0, True, "sum", impl="ref"), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("split", [2, 3, 7])
def test_split_reduction_is_deterministic_and_exact(split, device):
    """Several programs per sample: partials reduced by the last-ticket program, in a fixed order."""
    g = _grads((3, 5000), device)
    for reduction in REDUCTIONS:
        out, sq = K.gnp_forward(g, 0.5, True, reduction, split=split)
        out2, sq2 = K.gnp_forward(g, 0.5, True, reduction, split=split)
        assert torch.equal(out, out2) and torch.equal(sq, sq2)
        torch.testing.assert_close(sq, g.square().sum(1), **F32)
        torch.testing.assert_close(out, gradient_norm_penalty(g, 0.5, True, reduction, impl="ref"), **F32)


def test_r1_composition(device):
    """R1 on a small critic: the penalty step's parameter gradients equal the reference's."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(100, 1))
    net = net.to(device)
    x = _grads((3, 3, 7, 7), device).requires_grad_(True)
    grads = {}
    for impl in ["ref"] + BACKENDS:
        net.zero_grad()
        (g,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
        gradient_norm_penalty(g, 0.0, False, "mean", impl=impl).backward()
        grads[impl] = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in net.parameters()]
    for impl in BACKENDS:
        for a, b in zip(grads[impl], grads["ref"]):
            torch.testing.assert_close(a, b, **F32)


def test_opcheck_and_torch_func(device):
    g = _grads((3, 4, 5), device)
    for args in [(g, 1.0, True, "none"), (g, 0.0, False, "mean")]:
        opcheck(backends._penalty_op, args)
    sq = g.square().sum((1, 2))
    opcheck(backends._penalty_backward_op, (g, sq, _grads((3,), device), 1.0, True, "none"))
    opcheck(backends._penalty_backward_op, (g, sq, _grads((), device), 0.0, False, "sum"))
    want = torch.func.grad(lambda t: gradient_norm_penalty(t, 1.0, False, "mean", impl="ref"))(g)
    got = torch.func.grad(lambda t: backends.run("triton", GradientNormPenaltyParams(1.0, False, "mean"), t))(g)
    torch.testing.assert_close(got, want, **F32)


def test_validation_precedes_the_kernel(device):
    for impl in BACKENDS:
        with pytest.raises(ValueError, match="grads"):
            gradient_norm_penalty(torch.zeros(0, 3, device=device), impl=impl)
        with pytest.raises(TypeError, match="grads"):
            gradient_norm_penalty(torch.zeros(2, 3, dtype=torch.int32, device=device), impl=impl)
        with pytest.raises(ValueError, match="reduction"):
            gradient_norm_penalty(torch.zeros(2, 3, device=device), reduction="max", impl=impl)


# ---------------------------------------------------------------------------------------------- full size, GPU


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("center,one_sided", CONFIGS)
def test_gpu_full_size(center, one_sided, dtype):
    g = _grads((32, 3, 256, 256), "cuda", dtype)
    for reduction in REDUCTIONS:
        go = _grads((32,) if reduction == "none" else (), "cuda", seed=1)
        vv = _grads(g.shape, "cuda", dtype, seed=2)
        want = _first_and_second(lambda x: gradient_norm_penalty(x, center, one_sided, reduction, impl="ref"), g, go,
                                 vv)
        got = _first_and_second(lambda x: gradient_norm_penalty(x, center, one_sided, reduction, impl="triton"), g,
                                go, vv)
        tol = F32 if dtype == torch.float32 else dict(rtol=1e-2, atol=1e-2)
        for a, b in zip(got, want):
            torch.testing.assert_close(a.float(), b.float(), **tol)
        # the float64 anchor at batch 2
        small = [g[:2], go[:2] if reduction == "none" else go, vv[:2]]
        assert_anchored(
            lambda t: _first_and_second(lambda x: gradient_norm_penalty(x, center, one_sided, reduction,
                                                                         impl="triton"), *t),
            lambda t: _first_and_second(lambda x: gradient_norm_penalty(x, center, one_sided, reduction,
                                                                         impl="ref"), *t), small, dtype)


def test_compile_traces_forward_fullgraph(device):
    """The fused op is an opaque custom_op inside an autograd.Function: fullgraph compile, forward + backward."""
    g = _grads((4, 3, 5), device).requires_grad_(True)
    params = GradientNormPenaltyParams(1.0, False, "mean")
    fn = torch.compile(lambda t: backends.run("triton", params, t), fullgraph=True)
    p = fn(g)
    (dg,) = torch.autograd.grad(p, g)
    gr = g.detach().clone().requires_grad_(True)
    want = gradient_norm_penalty(gr, 1.0, False, "mean", impl="ref")
    (dw,) = torch.autograd.grad(want, gr)
    torch.testing.assert_close(p.detach(), want.detach(), **F32)
    torch.testing.assert_close(dg, dw, **F32)


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("center,one_sided", CONFIGS)
def test_all_zero_sample_matches_reference(impl, center, one_sided, device):
    g = _grads((4, 3, 5), device)
    g[2] = 0
    go, vv = _grads((), device, seed=1), _grads(g.shape, device, seed=2)
    want = _first_and_second(lambda x: gradient_norm_penalty(x, center, one_sided, "mean", impl="ref"), g, go, vv)
    got = _first_and_second(lambda x: gradient_norm_penalty(x, center, one_sided, "mean", impl=impl), g, go, vv)
    for a, b, what in zip(got, want, ("forward", "grad", "second order (grads)", "second order (grad_out)")):
        assert torch.isfinite(a).all(), what
        torch.testing.assert_close(a, b, **F32, msg=lambda m: f"{what}: {m}")
    assert (got[1][2] == 0).all()


# ------------------------------------------------------------------------ structure: choice, empty inputs, issue 24


def test_automatic_choice_and_empty_inputs(monkeypatch, device):
    """The choice comes first (an explicit impl the op lacks is refused), then empty grads run ref; on CPU the
    automatic choice is ref, and a forced backend applies."""
    launched = []
    real = backends.run
    monkeypatch.setattr(backends, "run", lambda impl, *a: launched.append(impl) or real(impl, *a))
    with pytest.raises(ValueError, match="gradient_norm_penalty: no 'cpp' backend"):
        gradient_norm_penalty(_grads((0, 3), device), reduction="sum", impl="cpp")
    for impl in ["ref"] + BACKENDS:
        gradient_norm_penalty(_grads((0, 3), device), reduction="sum", impl=impl)
        gradient_norm_penalty(_grads((2, 0), device), reduction="none", impl=impl)
    assert launched == ["ref"] * 2 * (1 + len(BACKENDS))
    launched.clear()
    assert backend.choose(backends.SPEC, None, torch.device("cpu"), torch.float32) == "ref"
    gradient_norm_penalty(_grads((2, 3), "cpu"))
    assert launched == ["ref"]
    for impl in BACKENDS:
        launched.clear()
        with config.use_backend(gradient_norm_penalty=impl):
            gradient_norm_penalty(_grads((2, 3), device))
        assert launched == [impl]


def _structure_cases(device):
    g = _grads((4, 3, 5), device)
    z = g.clone()
    z[1] = 0
    small = g * 1e-3
    return {
        "zero-centred-mean": (dict(center=0.0, one_sided=False, reduction="mean"), g),
        "centred-none-zero-sample": (dict(center=1.0, one_sided=False, reduction="none"), z),
        "one-sided-all-below": (dict(center=10.0, one_sided=True, reduction="sum"), small),
        "one-sided-zero-centred": (dict(center=0.0, one_sided=True, reduction="mean"), z),
    }


@pytest.mark.parametrize("name", list(_structure_cases("cpu")))
def test_gradient_structure_matches_ref(name, device):
    """Issue 24: first and second order (create_graph), w.r.t. grads and the cotangent, a gradient is None on the
    fast backend exactly where it is None on ref, and zeros where ref's is zeros."""
    kw, g = _structure_cases(device)[name]
    want = structure(lambda t: gradient_norm_penalty(t, impl="ref", **kw), [g.requires_grad_()])
    for impl in BACKENDS:
        got = structure(lambda t: gradient_norm_penalty(t, impl=impl, **kw), [g])
        assert_same_structure(got, want, f"{name} on {impl}")

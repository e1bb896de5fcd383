"""Fast backends of power_iteration / spectral_normalize, and the multi-tensor spectral-norm step, against ref.

On CPU the Triton backend runs under TRITON_INTERPRET=1 (conftest) at small odd
shapes; the gpu-marked tests repeat them at BigGAN sizes on CUDA.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.library import opcheck

from conftest import fast_backends
from gan_fast import config
from gan_fast.errors import UnsupportedDtypeError
from gan_fast.backends import power_iteration as backends_pi
from gan_fast.backends import spectral_norm_multi as backends_many
from gan_fast.backends import spectral_normalize as backends_sn
from gan_fast.nn.spectral_norm import find_spectral_norm_layers
from gan_fast.nn import spectral_norm_step
from gan_fast.kernels import spectral_norm as K
from gan_fast.nn.spectral_norm import spectral_norm
from gan_fast.ops.power_iteration import power_iteration
from gan_fast.ops.spectral_normalize import spectral_normalize, spectral_normalize_many
from gan_fast.params.spectral_normalize import SpectralNormalizeParams
from gan_fast.reference.power_iteration import power_iteration as ref_power_iteration
from grad_structure import assert_same_structure, structure

PI_BACKENDS = fast_backends(backends_pi.SPEC)
SN_BACKENDS = fast_backends(backends_sn.SPEC)
MANY_BACKENDS = fast_backends(backends_many.SPEC)
F32 = dict(rtol=2e-5, atol=2e-6)
F64 = dict(rtol=1e-10, atol=1e-12)


def _rand(shape, device, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


def _uv(h, w, device, dtype=torch.float32, seed=1):
    return (F.normalize(_rand((h,), device, dtype, seed), dim=0), F.normalize(_rand((w,), device, dtype, seed + 1), dim=0))


def _sn_orders(impl, weight, u, v, dim, n):
    """(y, u, v, dW, d2W, d2g) of spectral_normalize: forward, grad, and the second order through the backward."""
    w = weight.detach().clone().requires_grad_(True)
    y, u2, v2 = spectral_normalize(w, u, v, dim, n, 1e-12, impl=impl)
    g = _rand(y.shape, y.device, y.dtype, seed=7).requires_grad_(True)
    (dw,) = torch.autograd.grad(y, w, g, create_graph=True)
    d2w, d2g = torch.autograd.grad(dw, (w, g), _rand(dw.shape, dw.device, dw.dtype, seed=8))
    return y.detach(), u2, v2, dw.detach(), d2w, d2g


# ---------------------------------------------------------------------------------------------- power_iteration


@pytest.mark.parametrize("impl", PI_BACKENDS)
@pytest.mark.parametrize("n", [0, 1, 3])
@pytest.mark.parametrize("shape", [(7, 13), (1, 5), (6, 1), (19, 11)])
def test_power_iteration_matches_reference(impl, n, shape, device):
    W = _rand(shape, device)
    u, v = _uv(*shape, device)
    for mat in (W, W.t().contiguous().t()):  # contiguous and column-major strides
        want_s, want_u, want_v = power_iteration(mat, u, v, n, 1e-12, impl="ref")
        m = mat.detach().clone().requires_grad_(True)
        s, u2, v2 = power_iteration(m, u, v, n, 1e-12, impl=impl)
        assert s.shape == () and u2.shape == u.shape and v2.shape == v.shape
        assert not u2.requires_grad and not v2.requires_grad
        torch.testing.assert_close(s.detach(), want_s, **F32)
        torch.testing.assert_close(u2, want_u, **F32)
        torch.testing.assert_close(v2, want_v, **F32)
        (dm,) = torch.autograd.grad(s, m, torch.tensor(1.7, device=device))
        mr = mat.detach().clone().requires_grad_(True)
        (dr,) = torch.autograd.grad(power_iteration(mr, u, v, n, 1e-12, impl="ref")[0], mr,
                                    torch.tensor(1.7, device=device))
        torch.testing.assert_close(dm, dr, **F32)
    assert torch.equal(u, _uv(*shape, device)[0])  # inputs untouched


@pytest.mark.parametrize("impl", PI_BACKENDS)
def test_power_iteration_gradcheck_float64(impl, device):
    W = _rand((3, 4), device, torch.float64).requires_grad_(True)
    u, v = _uv(3, 4, device, torch.float64)
    fn = lambda w: power_iteration(w, u, v, 0, 1e-12, impl=impl)[0]  # noqa: E731 - u, v fixed: sigma is bilinear
    assert torch.autograd.gradcheck(fn, (W,))
    assert torch.autograd.gradgradcheck(fn, (W,))


def test_power_iteration_zero_weight_uses_eps(device):
    W = torch.zeros(4, 3, device=device)
    u, v = _uv(4, 3, device)
    got = power_iteration(W, u, v, 1, 1e-12, impl=PI_BACKENDS[0])
    want = ref_power_iteration(W, u, v, 1, 1e-12)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


# ------------------------------------------------------------------------------------------- spectral_normalize


SN_CASES = [((5, 3, 3, 2), 0), ((3, 5, 2, 2), 1), ((4, 7), 0), ((7, 4), 1), ((6, 2, 3), 2)]


@pytest.mark.parametrize("impl", SN_BACKENDS)
@pytest.mark.parametrize("n", [0, 1, 2])
@pytest.mark.parametrize("shape,dim", SN_CASES)
def test_spectral_normalize_matches_reference(impl, n, shape, dim, device):
    W = _rand(shape, device)
    h = shape[dim]
    u, v = _uv(h, W.numel() // h, device)
    want = _sn_orders("ref", W, u, v, dim, n)
    got = _sn_orders(impl, W, u, v, dim, n)
    for a, b, what in zip(got, want, ("W/sigma", "u", "v", "dW", "d2W", "d2g")):
        assert a.shape == b.shape and a.dtype == b.dtype, what
        torch.testing.assert_close(a, b, **F32, msg=lambda m: f"{what}: {m}")
    assert got[0].stride() == torch.empty_like(W).stride()


@pytest.mark.parametrize("impl", SN_BACKENDS)
def test_spectral_normalize_layouts(impl, device):
    W = _rand((6, 4, 3, 3), device)
    u, v = _uv(6, 36, device)
    want = _sn_orders("ref", W, u, v, 0, 1)
    for w in (W.to(memory_format=torch.channels_last), W.permute(1, 0, 2, 3).contiguous().permute(1, 0, 2, 3)):
        got = _sn_orders(impl, w, u, v, 0, 1)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, **F32)
        assert got[0].stride() == torch.empty_like(w).stride()


@pytest.mark.parametrize("impl", SN_BACKENDS)
@pytest.mark.parametrize("shape,dim", [((3, 2, 2), 0), ((2, 3, 2), 1)])
def test_spectral_normalize_gradcheck_float64(impl, shape, dim, device):
    W = _rand(shape, device, torch.float64).requires_grad_(True)
    h = shape[dim]
    u, v = _uv(h, W.numel() // h, device, torch.float64)
    fn = lambda w: spectral_normalize(w, u, v, dim, 0, 1e-12, impl=impl)[0]  # noqa: E731 - n=0: u, v fixed
    assert torch.autograd.gradcheck(fn, (W,))
    assert torch.autograd.gradgradcheck(fn, (W,))
    W64 = _rand((5, 3, 2), device, torch.float64)
    u, v = _uv(5, 6, device, torch.float64)
    for a, b in zip(_sn_orders(impl, W64, u, v, 0, 2), _sn_orders("ref", W64, u, v, 0, 2)):
        torch.testing.assert_close(a, b, **F64)


@pytest.mark.parametrize("fuse", [0, 1 << 30])
def test_kernels_multi_program_and_unfused_paths(fuse, device):
    """Several programs per layer (last-ticket finalize) and the separate division / backward-apply launches."""
    for n in (0, 1, 2):
        W = _rand((13, 9), device, seed=n)
        u, v = _uv(13, 9, device)
        y = torch.empty_like(W)
        plan, fused = K.power_launch([K.SNLayer(mat=W, u=u, v=v, y_mat=y)], n, 1e-12, fuse_max_numel=fuse,
                                     block_h=4, block_w=4)
        assert fused == [fuse > 0]
        s, u2, v2 = ref_power_iteration(W, u, v, n, 1e-12)
        torch.testing.assert_close(plan.sigma[0], s, **F32)
        torch.testing.assert_close(plan.u[0], u2, **F32)
        torch.testing.assert_close(plan.v[0], v2, **F32)
        torch.testing.assert_close(y, W / s, **F32)
        g = _rand(W.shape, device, seed=5)
        dw = torch.empty_like(W)
        K.backward_launch([W], [g], [dw], plan, fuse_max_numel=fuse, block_h=4, block_w=4)
        wr = W.clone().requires_grad_(True)
        (want,) = torch.autograd.grad(wr / ref_power_iteration(wr, u, v, n, 1e-12)[0], wr, g)
        torch.testing.assert_close(dw, want, **F32)


def test_opcheck_torch_func_and_compile(device):
    W = _rand((4, 3, 2), device)
    u, v = _uv(4, 6, device)
    opcheck(backends_sn._spectral_normalize_op, (W, u, v, 0, 1, 1e-12))
    opcheck(backends_sn._spectral_normalize_op, (W.transpose(0, 1), _uv(3, 8, device)[0], _uv(3, 8, device)[1], 0,
                                                 0, 1e-12))
    p = _rand((4, 3, 2), device, seed=3)
    sigma = torch.tensor(2.5, device=device)
    opcheck(backends_sn._spectral_normalize_backward_op, (W, p, u, v, sigma, 0))
    opcheck(backends_pi._power_iteration_op, (W.flatten(1), u, v, 2, 1e-12))
    params = SpectralNormalizeParams(0, 1, 1e-12)
    fn = lambda w: spectral_normalize(w, u, v, 0, 1, 1e-12, impl="ref")[0].square().sum()  # noqa: E731
    ffn = lambda w: backends_sn.run("triton", params, w, u, v)[0].square().sum()  # noqa: E731
    torch.testing.assert_close(torch.func.grad(ffn)(W), torch.func.grad(fn)(W), **F32)
    compiled = torch.compile(lambda w: backends_sn.run("triton", params, w, u, v)[0], fullgraph=True)
    torch.testing.assert_close(compiled(W), spectral_normalize(W, u, v, 0, 1, 1e-12, impl="ref")[0], **F32)


# ------------------------------------------------------------------------------- nn.spectral_norm and multi-tensor


class _SNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = spectral_norm(nn.Conv2d(3, 5, 3))
        self.ct = spectral_norm(nn.ConvTranspose2d(5, 4, 2))
        self.l = spectral_norm(nn.Linear(4 * 6 * 6, 3))
        self.emb = spectral_norm(nn.Linear(3, 1, bias=False))

    def forward(self, x):
        h = torch.tanh(self.ct(torch.tanh(self.c1(x))))
        return self.emb(self.l(h.flatten(1)))


def _step(model, x, r1=False):
    x = x.clone().requires_grad_(r1)
    out = model(x)
    if r1:
        (g,) = torch.autograd.grad(out.sum(), x, create_graph=True)
        loss = g.square().sum()
    else:
        loss = out.square().sum()
    loss.backward()
    return out.detach(), [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]


def _assert_models_equal(a, b):
    for (name, x), (_, y) in zip(a.named_buffers(), b.named_buffers()):
        torch.testing.assert_close(x, y, **F32, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_multi_tensor_step_matches_per_layer_reference(mode, device):
    torch.manual_seed(0)
    ref = _SNNet().to(device)
    fast = copy.deepcopy(ref)
    assert len(find_spectral_norm_layers(fast)) == 4
    getattr(ref, mode)()
    getattr(fast, mode)()
    x = _rand((2, 3, 7, 7), device)
    for r1 in (False, True):
        ref.zero_grad()
        fast.zero_grad()
        out_r, grads_r = _step(ref, x, r1)
        with spectral_norm_step(fast, impl=SN_BACKENDS[0]):
            out_f, grads_f = _step(fast, x, r1)
        torch.testing.assert_close(out_f, out_r, **F32)
        for a, b in zip(grads_f, grads_r):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        _assert_models_equal(fast, ref)


def test_multi_tensor_second_order_gradgradcheck(device):
    """gradgradcheck of the batched W/sigma (eval mode: u, v fixed, so the op is a function of the weights)."""
    torch.manual_seed(0)
    net = nn.Sequential(spectral_norm(nn.Linear(2, 2)), spectral_norm(nn.Conv1d(1, 2, 2))).to(device).double().eval()
    layers = find_spectral_norm_layers(net)
    us = [sn._u for *_, sn in layers]
    vs = [sn._v for *_, sn in layers]
    dims = [sn.dim for *_, sn in layers]
    ws = [m.parametrizations[n].original.detach().clone().requires_grad_(True) for m, n, _ in layers]
    fn = lambda *w: tuple(spectral_normalize_many(list(w), us, vs, dims, 0, 1e-12, update=False,  # noqa: E731
                                                  impl=MANY_BACKENDS[0]))
    assert torch.autograd.gradcheck(fn, tuple(ws))
    assert torch.autograd.gradgradcheck(fn, tuple(ws))


def test_nn_spectral_norm_layer_on_the_fast_backend(monkeypatch, device):
    """gan_fast.nn.spectral_norm's per-layer forward through ops.spectral_normalize forced to the fast backend."""
    torch.manual_seed(0)
    ref = _SNNet().to(device).train()
    fast = copy.deepcopy(ref)
    x = _rand((2, 3, 7, 7), device)
    out_r, grads_r = _step(ref, x)
    launched = []
    real = backends_sn.run
    monkeypatch.setattr(backends_sn, "run", lambda impl, *a: launched.append(impl) or real(impl, *a))
    with config.use_backend(spectral_normalize=SN_BACKENDS[0]):
        out_f, grads_f = _step(fast, x)
    assert launched == [SN_BACKENDS[0]] * 4  # every layer's forward ran the fast backend
    torch.testing.assert_close(out_f, out_r, **F32)
    for a, b in zip(grads_f, grads_r):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    _assert_models_equal(fast, ref)


def test_validation_precedes_the_kernel(device):
    for impl in SN_BACKENDS:
        with pytest.raises(ValueError, match="u and v"):
            spectral_normalize(torch.zeros(3, 4, device=device), torch.zeros(2, device=device),
                               torch.zeros(4, device=device), impl=impl)
        with pytest.raises(ValueError, match="eps"):
            power_iteration(torch.zeros(3, 4, device=device), torch.zeros(3, device=device),
                            torch.zeros(4, device=device), eps=0.0, impl=impl)


# ------------------------------------------------------------------------------ refusals, empty inputs, the batched op


def _complex(h, w):
    g = torch.Generator().manual_seed(4)
    W = torch.randn(h, w, generator=g, dtype=torch.complex64)
    return W, torch.ones(h, dtype=torch.complex64) / h ** 0.5, torch.ones(w, dtype=torch.complex64) / w ** 0.5


def test_complex_is_refused_explicitly_and_runs_ref_automatically(monkeypatch, device):
    """The Triton kernels are real: impl='triton' raises UnsupportedDtypeError (a TypeError) naming complex and
    impl='ref'; the automatic choice, a forced backend included, runs ref (the exact result)."""
    W, u, v = (t.to(device) for t in _complex(5, 7))
    for op, args in ((power_iteration, (W, u, v, 2)), (spectral_normalize, (W.reshape(5, 7, 1), u, v, 0, 2))):
        for impl in PI_BACKENDS:
            with pytest.raises(UnsupportedDtypeError, match=r"impl='triton' cannot run this call: its kernels are "
                                                            r"real \(complex\); impl='ref' runs it"):
                op(*args, impl=impl)
        want = op(*args, impl="ref")
        launched = []
        for mod in (backends_pi, backends_sn):
            real = mod.run
            monkeypatch.setattr(mod, "run", lambda impl, *a, real=real: launched.append(impl) or real(impl, *a))
        for got in (op(*args), _forced(op, args, PI_BACKENDS)):
            for a, b in zip(got, want):
                assert torch.equal(a, b)
        assert set(launched) == {"ref"}
        monkeypatch.undo()


def _forced(op, args, backends):
    if not backends:
        return op(*args)
    with config.use_backend(backends[0]):
        return op(*args)


@pytest.mark.parametrize("impl", ["ref"] + SN_BACKENDS)
def test_empty_and_one_dimensional_weights_never_reach_a_kernel(impl, monkeypatch, device):
    """The backend is chosen first (an explicit impl is checked), then an empty or 1-D weight runs ref."""
    launched = []
    for mod in (backends_pi, backends_sn):
        real = mod.run
        monkeypatch.setattr(mod, "run", lambda i, *a, real=real: launched.append(i) or real(i, *a))
    W = torch.zeros(0, 3, 2, device=device, requires_grad=True)
    y, u, v = spectral_normalize(W, torch.zeros(0, device=device), torch.ones(6, device=device), impl=impl)
    assert y.shape == W.shape and not v.any()
    sigma, _, _ = power_iteration(W.flatten(1), torch.zeros(0, device=device), torch.ones(6, device=device),
                                  impl=impl)
    assert sigma.item() == 0
    w1 = _rand((7,), device).requires_grad_()
    y1, _, _ = spectral_normalize(w1, w1.new_empty(0), w1.new_empty(0), impl=impl)
    torch.testing.assert_close(y1, F.normalize(w1, dim=0))
    assert launched == ["ref"] * 3
    if impl != "ref":
        Wc, uc, vc = (t.to(device) for t in _complex(0, 3))
        with pytest.raises(UnsupportedDtypeError, match="complex"):  # the choice comes first
            power_iteration(Wc, uc, vc, impl=impl)


MANY = [((5, 3, 3, 2), 0), ((3, 5, 2, 2), 1), ((4, 7), 0), ((6, 2, 3), 2)]


@pytest.mark.parametrize("impl", ["ref"] + MANY_BACKENDS)
@pytest.mark.parametrize("update", [True, False])
@pytest.mark.parametrize("n", [0, 2])
def test_spectral_normalize_many_matches_spectral_normalize(impl, update, n, device):
    """Per weight, the batched op's result, gradient and u/v update are spectral_normalize's; u/v of another
    dtype are read as the weight's (and written back in their own)."""
    weights = [_rand(shape, device, seed=k).requires_grad_() for k, (shape, _) in enumerate(MANY)]
    dims = [d for _, d in MANY]
    uv = [_uv(s[d], w.numel() // s[d], device, seed=3 * k) for k, (w, (s, d)) in enumerate(zip(weights, MANY))]
    us = [u.double() if k == 1 else u.clone() for k, (u, _) in enumerate(uv)]
    vs = [v.clone() for _, v in uv]
    ys = spectral_normalize_many(weights, us, vs, dims, n, 1e-12, update=update, impl=impl)
    cot = [_rand(y.shape, device, seed=20 + k) for k, y in enumerate(ys)]
    grads = torch.autograd.grad(ys, weights, cot)
    for k, (w, d) in enumerate(zip(weights, dims)):
        wr = w.detach().clone().requires_grad_()
        y, u, v = spectral_normalize(wr, *uv[k], d, n, 1e-12, impl="ref")
        (g,) = torch.autograd.grad(y, wr, cot[k])
        torch.testing.assert_close(ys[k], y, **F32)
        torch.testing.assert_close(grads[k], g, rtol=1e-4, atol=1e-5)
        assert us[k].dtype == (torch.float64 if k == 1 else torch.float32)
        torch.testing.assert_close(us[k].float(), u if update else uv[k][0], **F32)
        torch.testing.assert_close(vs[k], v if update else uv[k][1], **F32)
    assert spectral_normalize_many([], [], [], [], impl=impl) == []


@pytest.mark.parametrize("impl", ["ref"] + MANY_BACKENDS)
def test_spectral_normalize_many_rejects_what_the_kernels_cannot_take(impl, device):
    """Complex, 1-D and empty weights, mixed dtypes or devices: a ValueError naming the weight, on every backend
    (spectral_normalize takes those one by one); other bad arguments are named too."""
    ok, u, v = _rand((3, 4), device), torch.ones(3, device=device), torch.ones(4, device=device)
    cases = [
        ([_complex(3, 4)[0].to(device)], "weights\\[0\\] must be a real floating tensor of >= 2 dims"),
        ([ok, torch.ones(3, 0, device=device)], "weights\\[1\\] must be a real floating tensor"),
        ([torch.ones(3, device=device)], "weights\\[0\\] must be a real floating tensor"),
        ([ok, ok.double()], "weights\\[1\\] is torch.float64 on .* but weights\\[0\\] is torch.float32"),
        ([ok, ok.to("meta")], "weights\\[1\\] is torch.float32 on meta"),
    ]
    for weights, match in cases:
        n = len(weights)
        with pytest.raises(ValueError, match=match):
            spectral_normalize_many(weights, [u] * n, [v] * n, [0] * n, impl=impl)
    with pytest.raises(ValueError, match="one entry per weight"):
        spectral_normalize_many([ok], [u, u], [v], [0], impl=impl)
    with pytest.raises(ValueError, match="us\\[0\\] and vs\\[0\\] must have shapes \\[3\\] and \\[4\\]"):
        spectral_normalize_many([ok], [v], [u], [0], impl=impl)
    with pytest.raises(ValueError, match="dims\\[0\\] must be an int in \\[-2, 1\\]"):
        spectral_normalize_many([ok], [u], [v], [2], impl=impl)
    with pytest.raises(TypeError, match="update must be a bool"):
        spectral_normalize_many([ok], [u], [v], [0], update="yes", impl=impl)
    with pytest.raises(ValueError, match="eps must be > 0"):
        spectral_normalize_many([ok], [u], [v], [0], eps=0.0, impl=impl)
    with pytest.raises(TypeError, match="weights must be a list or tuple"):
        spectral_normalize_many(ok, [u], [v], [0], impl=impl)


def test_spectral_norm_step_on_cpu_without_impl_changes_nothing(monkeypatch):
    """The automatic choice runs ref on CPU: the block serves no layer (each computes itself)."""
    calls = []
    monkeypatch.setattr(backends_many, "run", lambda *a: calls.append(a))
    net = _SNNet()
    with spectral_norm_step(net):
        assert all(sn.precomputed is None for *_, sn in find_spectral_norm_layers(net))
    with spectral_norm_step(net, impl="ref"):
        assert all(sn.precomputed is None for *_, sn in find_spectral_norm_layers(net))
    assert calls == []
    with pytest.raises(ValueError, match="impl must be None or one of"):
        with spectral_norm_step(net, impl="fast"):
            pass


def test_nn_spectral_norm_reaches_the_kernels_only_through_ops():
    """gan_fast.nn.spectral_norm imports no backend, kernel or fused module, and no importlib (issue 22)."""
    import ast
    import inspect

    import gan_fast.nn.spectral_norm as mod

    for node in ast.walk(ast.parse(inspect.getsource(mod))):
        names = []
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""] + [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            assert not any(part in ("backends", "kernels", "fused", "importlib", "backend")
                           for part in name.split(".")), ast.dump(node)


# -------------------------------------------------------------------- issue 24: None and zero gradients agree with ref


def _structure_cases(device):
    W = _rand((5, 4), device)
    u, v = _uv(5, 4, device)
    W4 = _rand((3, 4, 2, 2), device, seed=2)
    u4, v4 = _uv(4, 12, device, seed=5)
    z = torch.zeros(5, 4, device=device)
    req = lambda t: t.clone().requires_grad_()  # noqa: E731
    return {
        "power_iteration-W": ("pi", lambda i, w: power_iteration(w, u, v, 1, impl=i), [req(W)]),
        "power_iteration-n0-W-u-v": ("pi", lambda i, w, a, b: power_iteration(w, a, b, 0, impl=i),
                                     [req(W), req(u), req(v)]),
        "power_iteration-u-only": ("pi", lambda i, w, a: power_iteration(w, a, v, 1, impl=i), [W, req(u)]),
        "power_iteration-zero-W": ("pi", lambda i, w: power_iteration(w, u, v, 1, impl=i), [req(z)]),
        "spectral_normalize-dim1-W-u-v": ("sn", lambda i, w, a, b: spectral_normalize(w, a, b, 1, 1, impl=i),
                                          [req(W4), req(u4), req(v4)]),
        "spectral_normalize-n0": ("sn", lambda i, w: spectral_normalize(w, u, v, 0, 0, impl=i), [req(W)]),
        "spectral_normalize-u-only": ("sn", lambda i, w, a: spectral_normalize(w, a, v, 0, 1, impl=i), [W, req(u)]),
        # the batched op: a layer whose output is left out, a weight that does not require grad
        "many-unused-output": ("many", lambda i, a, b, c: spectral_normalize_many(
            [a, b, c], [u, u4, u], [v, v4, v], [0, 1, 0], 1, update=False, impl=i)[::2], [req(W), req(W4), req(W)]),
        "many-constant-weight": ("many", lambda i, a, b: spectral_normalize_many(
            [a, b], [u, u4], [v, v4], [0, 1], 1, update=False, impl=i), [W, req(W4)]),
        "many-u-only": ("many", lambda i, a: spectral_normalize_many([W], [a], [v], [0], 1, update=False, impl=i),
                        [req(u)]),
    }


@pytest.mark.parametrize("name", list(_structure_cases("cpu")))
def test_gradient_structure_matches_ref(name, device):
    """Issue 24: for each differentiable input, first and second order (create_graph), a gradient is None on the
    fast backend exactly where it is None on ref, and zeros where ref's is zeros."""
    kind, fn, inputs = _structure_cases(device)[name]
    impls = {"pi": PI_BACKENDS, "sn": SN_BACKENDS, "many": MANY_BACKENDS}[kind]
    want = structure(lambda *t: fn("ref", *t), inputs)
    for impl in impls:
        assert_same_structure(structure(lambda *t: fn(impl, *t), inputs), want, f"{name} on {impl}")


# ---------------------------------------------------------------------------------------------- full size, GPU


@pytest.mark.gpu
@pytest.mark.parametrize("shape,dim", [((1536, 1536, 3, 3), 0), ((1536, 768, 1, 1), 0), ((256, 128, 4, 4), 1),
                                       ((1, 1536), 0), ((96, 3, 3, 3), 0)])
@pytest.mark.parametrize("n", [0, 1, 2])
def test_gpu_full_size(shape, dim, n):
    W = _rand(shape, "cuda")
    h = shape[dim]
    u, v = _uv(h, W.numel() // h, "cuda")
    want = _sn_orders("ref", W.double(), u.double(), v.double(), dim, n)
    got = _sn_orders("triton", W, u, v, dim, n)
    for a, b in zip(got, want):
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
def test_gpu_multi_tensor_biggan_like():
    torch.manual_seed(0)
    chans = [3, 96, 192, 384, 768, 1536, 1536]
    layers = []
    for a, b in zip(chans[:-1], chans[1:]):
        layers += [spectral_norm(nn.Conv2d(a, b, 3, padding=1)), spectral_norm(nn.Conv2d(b, b, 3, padding=1)),
                   spectral_norm(nn.Conv2d(a, b, 1))]
    ref = nn.ModuleList(layers).cuda().train()
    fast = copy.deepcopy(ref)
    assert len(find_spectral_norm_layers(fast)) == 18
    ws_r = [m.weight for m in ref]
    with spectral_norm_step(fast, impl="triton"):
        ws_f = [m.weight for m in fast]
    for a, b in zip(ws_f, ws_r):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    sum((w.square().sum() for w in ws_r)).backward()
    sum((w.square().sum() for w in ws_f)).backward()
    for p, q in zip(fast.parameters(), ref.parameters()):
        if p.grad is not None:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6)
    _assert_models_equal(fast, ref)

"""The bias_act Triton launchers (kernels/bias_act.py) against the reference formulas and autograd.

Runs on CPU under TRITON_INTERPRET=1 (set by conftest) at small odd shapes, and on
CUDA at full size in the gpu-marked tests.
"""

import pytest
import torch

from gan_fast import activations
from gan_fast.kernels import bias_act as K
from gan_fast.reference.bias_act import bias_act as ref_bias_act

ACTS = sorted(activations.ACTIVATIONS)
TOL = {torch.float32: dict(rtol=1e-5, atol=2e-6), torch.float64: dict(rtol=1e-12, atol=1e-12),
       torch.float16: dict(rtol=2e-3, atol=2e-3), torch.bfloat16: dict(rtol=2e-2, atol=2e-2)}


def _reference(x, b, dim, act, clamp, dy, ddx):
    """(y, dx, d2x) of the reference by autograd: y, <dy, dy/dx>, d<ddx, dx>/dx."""
    spec = activations.get(act)
    xx = x.detach().clone().requires_grad_(True)
    y = ref_bias_act(xx, b, dim, act, spec.def_alpha, spec.def_gain, clamp)
    (dx,) = torch.autograd.grad(y, xx, dy, create_graph=True)
    d2x = None
    if dx.requires_grad:
        (d2x,) = torch.autograd.grad(dx, xx, ddx, allow_unused=True)
    if d2x is None:
        d2x = torch.zeros_like(x)
    return y.detach(), dx.detach(), d2x.detach()


def _kernels(x, b, dim, act, clamp, dy, ddx):
    spec = activations.get(act)
    C, inner = K.channel_geometry(tuple(x.shape), dim)
    cl = -1.0 if clamp is None else clamp
    args = (spec.code, spec.def_alpha, spec.def_gain, cl, C, inner)
    bb = torch.empty(0, device=x.device, dtype=x.dtype) if b is None else b
    return (K.bias_act_fwd(x, bb, *args), K.bias_act_grad(dy, x, bb, *args), K.bias_act_grad2(ddx, dy, x, bb, *args))


def _inputs(shape, dim, dtype, device, seed=0, with_bias=True):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 3).to(dtype)
    flat = x.view(-1)
    special = torch.tensor([0.0, 20.0, -20.0, 1e-4, -1e-4, 30.0, -90.0, 0.3])[: flat.numel()]
    flat[: special.numel()] = special.to(dtype)  # branch points of relu/lrelu/elu and softplus' threshold
    b = torch.randn(shape[dim], generator=g, dtype=torch.float64).to(dtype) if with_bias else None
    dy = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    ddx = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    return [t.to(device) if t is not None else None for t in (x, b, dy, ddx)]


def _check(got, want, dtype):
    for g, w, what in zip(got, want, ("forward", "grad", "grad2")):
        assert g.shape == w.shape and g.dtype == w.dtype, what
        torch.testing.assert_close(g, w, **TOL[dtype], msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("clamp", [None, 0.6])
@pytest.mark.parametrize("act", ACTS)
def test_all_activations_float32(act, clamp, device):
    x, b, dy, ddx = _inputs((3, 5, 7, 9), 1, torch.float32, device)
    _check(_kernels(x, b, 1, act, clamp, dy, ddx), _reference(x, b, 1, act, clamp, dy, ddx), torch.float32)


@pytest.mark.parametrize("act", ACTS)
def test_all_activations_float64(act, device):
    x, b, dy, ddx = _inputs((2, 3, 5), 1, torch.float64, device, seed=1)
    _check(_kernels(x, b, 1, act, 1.3, dy, ddx), _reference(x, b, 1, act, 1.3, dy, ddx), torch.float64)


@pytest.mark.parametrize("shape,dim", [((7,), 0), ((5, 11), 1), ((5, 11), 0), ((2, 3, 4, 5), 3), ((2, 3, 4, 5), 0),
                                       ((4, 1, 3), 1), ((1, 6, 1, 1), 1)])
@pytest.mark.parametrize("act", ["lrelu", "swish"])
def test_any_dim(shape, dim, act, device):
    x, b, dy, ddx = _inputs(shape, dim, torch.float32, device, seed=2)
    _check(_kernels(x, b, dim, act, 0.9, dy, ddx), _reference(x, b, dim, act, 0.9, dy, ddx), torch.float32)


@pytest.mark.parametrize("act", ["linear", "tanh", "softplus"])
def test_without_bias(act, device):
    x, _, dy, ddx = _inputs((3, 4, 5), 1, torch.float32, device, seed=3, with_bias=False)
    _check(_kernels(x, None, 1, act, None, dy, ddx), _reference(x, None, 1, act, None, dy, ddx), torch.float32)
    spec = activations.get(act)
    y = K.bias_act_fwd(x, None, spec.code, spec.def_alpha, spec.def_gain, -1.0, 4, 5)
    torch.testing.assert_close(y, _reference(x, None, 1, act, None, dy, ddx)[0], **TOL[torch.float32])


@pytest.mark.parametrize("act", ["lrelu", "elu", "sigmoid"])
def test_channels_last(act, device):
    x, b, dy, ddx = _inputs((2, 5, 3, 7), 1, torch.float32, device, seed=4)
    want = _reference(x, b, 1, act, 0.8, dy, ddx)
    xc = x.to(memory_format=torch.channels_last)
    got = _kernels(xc, b, 1, act, 0.8, dy, ddx.to(memory_format=torch.channels_last))  # dy contiguous: mixed layouts
    for g in got:
        assert g.is_contiguous(memory_format=torch.channels_last)
    _check(got, want, torch.float32)
    # all channels_last, and a permuted dense layout
    got = _kernels(xc, b, 1, act, 0.8, dy.to(memory_format=torch.channels_last),
                   ddx.to(memory_format=torch.channels_last))
    _check(got, want, torch.float32)
    xp = x.permute(2, 0, 3, 1).contiguous().permute(1, 3, 0, 2)
    assert xp.shape == x.shape and not xp.is_contiguous()
    _check(_kernels(xp, b, 1, act, 0.8, dy, ddx), want, torch.float32)


def test_non_dense_inputs(device):
    x, b, dy, ddx = _inputs((4, 6, 5, 8), 1, torch.float32, device, seed=5)
    xs, dys, ddxs = x[:, ::2, :, 1:7], dy[:, ::2, :, 1:7], ddx[:, ::2, :, 1:7]
    bs = b[::2]
    got = _kernels(xs, bs, 1, "lrelu", 0.5, dys, ddxs)
    _check(got, _reference(xs, bs, 1, "lrelu", 0.5, dys, ddxs), torch.float32)
    xcl = x.to(memory_format=torch.channels_last)[:, 1:4, ::2]
    dy2, ddx2 = dy[:, 1:4, ::2], ddx[:, 1:4, ::2]
    got = _kernels(xcl, bs[:3], 1, "tanh", None, dy2, ddx2)
    for g in got:  # outputs take the strides of torch.empty_like(x), as a register_fake would
        assert g.stride() == torch.empty_like(xcl).stride()
    _check(got, _reference(xcl, bs[:3], 1, "tanh", None, dy2, ddx2), torch.float32)


def test_bias_of_another_dtype_is_cast_like_the_reference(device):
    x, b, dy, ddx = _inputs((3, 5, 4), 1, torch.float32, device, seed=6)
    got = _kernels(x, b.double(), 1, "tanh", None, dy, ddx)
    _check(got, _reference(x, b.double(), 1, "tanh", None, dy, ddx), torch.float32)


def test_float16(device):
    x, b, dy, ddx = _inputs((3, 5, 7, 9), 1, torch.float16, device, seed=7)
    want = _reference(x.float(), b.float(), 1, "lrelu", 256.0, dy.float(), ddx.float())
    got = _kernels(x, b, 1, "lrelu", 256.0, dy, ddx)
    for g, w in zip(got, want):
        assert g.dtype == torch.float16
        torch.testing.assert_close(g.float(), w.half().float(), rtol=1e-3, atol=1e-3)


def test_int64_offsets_path(monkeypatch, device):
    """The int64-offset specialisation computes the same values (forced on a small tensor)."""
    monkeypatch.setattr(K, "_INT32_LIMIT", 16)
    x, b, dy, ddx = _inputs((3, 5, 7), 1, torch.float32, device, seed=8)
    _check(_kernels(x, b, 1, "selu", 0.7, dy, ddx), _reference(x, b, 1, "selu", 0.7, dy, ddx), torch.float32)


def test_extremes_are_finite(device):
    x = torch.tensor([-1e4, -100.0, -30.0, 0.0, 20.0, 30.0, 100.0, 1e4], device=device).reshape(1, 8)
    for act in ACTS:
        spec = activations.get(act)
        args = (spec.code, spec.def_alpha, spec.def_gain, -1.0, 8, 1)
        y = K.bias_act_fwd(x, None, *args)
        dx = K.bias_act_grad(torch.ones_like(x), x, None, *args)
        d2 = K.bias_act_grad2(torch.ones_like(x), torch.ones_like(x), x, None, *args)
        want = _reference(x, None, 1, act, None, torch.ones_like(x), torch.ones_like(x))
        _check((y, dx, d2), want, torch.float32)


def test_empty_and_errors(device):
    x = torch.empty(0, 3, device=device)
    assert K.bias_act_fwd(x, torch.zeros(3, device=device), 2, 0.2, 1.0, -1.0, 3, 1).shape == (0, 3)
    with pytest.raises(ValueError, match="act_code"):
        K.bias_act_fwd(torch.zeros(2, 3, device=device), None, 9, 0.0, 1.0, -1.0, 3, 1)
    with pytest.raises(ValueError, match="inner"):
        K.bias_act_fwd(torch.zeros(2, 3, device=device), torch.zeros(3, device=device), 1, 0.0, 1.0, -1.0, 3, 7)


def _check_db(x, b, dim, act, clamp, dy, ddx, tol):
    """grad_db / grad2_db: the plain kernels' outputs, bit for bit, and their sums over every dim but dim."""
    spec = activations.get(act)
    C, inner = K.channel_geometry(tuple(x.shape), dim)
    args = (spec.code, spec.def_alpha, spec.def_gain, -1.0 if clamp is None else clamp, C, inner)
    dims = [d for d in range(x.ndim) if d != dim]
    for (out, db), plain in ((K.bias_act_grad_db(dy, x, b, *args), K.bias_act_grad(dy, x, b, *args)),
                             (K.bias_act_grad2_db(ddx, dy, x, b, *args), K.bias_act_grad2(ddx, dy, x, b, *args))):
        assert torch.equal(out, plain) and out.stride() == plain.stride()
        assert db.dtype == x.dtype and db.shape == (C,)
        torch.testing.assert_close(db.double(), plain.double().sum(dims), **tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape,dim,layout", [((2, 3, 16, 40), 1, "contiguous"), ((3, 5, 6, 7), 1, "contiguous"),
                                              ((3, 5, 6, 7), 1, "channels_last"), ((9, 70), 1, "contiguous"),
                                              ((4, 1, 33), 1, "contiguous")])
def test_bias_gradient_kernels(shape, dim, layout, dtype, device):
    """Runs along the channel (S = 640 >= 512: row tiles) and columns (channels_last, [N, C], one channel)."""
    x, b, dy, ddx = _inputs(shape, dim, dtype, device, seed=10)
    if layout == "channels_last":
        x, dy, ddx = (t.to(memory_format=torch.channels_last) for t in (x, dy, ddx))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    _check_db(x, b, dim, "swish", 2.5, dy, ddx, tol)


# ---------------------------------------------------------------------------------------------- full size, GPU


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_gpu_bias_gradient_kernels_full_size(layout, dtype):
    x, b, dy, ddx = _inputs((16, 512, 32, 32), 1, dtype, "cuda", seed=11)
    if layout == "channels_last":
        x, dy, ddx = (t.to(memory_format=torch.channels_last) for t in (x, dy, ddx))
    tol = dict(rtol=1e-4, atol=1e-3) if dtype == torch.float32 else dict(rtol=2e-2, atol=0.5)
    _check_db(x, b, 1, "lrelu", 256.0, dy, ddx, tol)
    _check_db(x, b, 1, "tanh", None, dy, ddx, tol)



@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("act", ACTS)
def test_gpu_full_size(act, dtype):
    x, b, dy, ddx = _inputs((16, 512, 32, 32), 1, dtype, "cuda", seed=9)
    want = _reference(x.double(), b.double(), 1, act, 256.0, dy.double(), ddx.double())
    got = _kernels(x, b, 1, act, 256.0, dy, ddx)
    for g, w in zip(got, want):
        assert g.dtype == dtype
        torch.testing.assert_close(g.double(), w.to(dtype).double(), **TOL[dtype])
    xc = x.to(memory_format=torch.channels_last)
    got_cl = _kernels(xc, b, 1, act, 256.0, dy, ddx)
    for g, w in zip(got_cl, got):
        torch.testing.assert_close(g, w, rtol=0, atol=0)

"""The Triton filtered_lrelu against ref: forward, gradients of x and b, second order (with respect to x and
the cotangent), odd shapes, channels_last, sliced inputs, the composition path of 2-D filters, float64 policy.

On CPU the kernels run under TRITON_INTERPRET=1 at small sizes (the kernels' tiles do not depend on the
device, so several tiles per axis are covered); the ``gpu`` twins run StyleGAN3-T 256 px layers in float32,
float16 and bfloat16.
"""

import math

import pytest
import torch

from gan_fast import backend, config
from gan_fast.backends import filtered_lrelu as backends
from gan_fast.errors import BackendUnavailableError, UnsupportedDtypeError
from gan_fast.kernels import filtered_lrelu as K
from gan_fast.ops.filtered_lrelu import filtered_lrelu
from gan_fast.params.filtered_lrelu import validate
from tests.conftest import fast_backends
from tests.parity import assert_close_scaled

TOL = 1e-4  # float32 dots ("ieee") against the float64 reference, relative to the result's scale


def _taps(n, gen, device="cpu"):
    f = torch.rand(n, generator=gen) + 0.2
    return (f / f.sum()).to(device)


def _run(x, b, w, kw, impl):
    """(y, dx, db, second-order gradients w.r.t. x and the cotangent w) of sum(y * w)."""
    x = x.detach().requires_grad_()
    b = None if b is None else b.detach().requires_grad_()
    w = w.detach().requires_grad_()
    y = filtered_lrelu(x, b=b, impl=impl, **kw)
    leaves = [x] + ([b] if b is not None else [])
    grads = torch.autograd.grad(y, leaves, w, create_graph=True)
    s = sum(g.square().sum() for g in grads)
    d2 = torch.autograd.grad(s, [x, w], allow_unused=True)
    d2 = [torch.zeros_like(t) if g is None else g for g, t in zip(d2, (x, w))]
    return [y.detach()] + [g.detach() for g in grads] + d2


def _check(x, b, kw, tol=TOL):
    gen = torch.Generator().manual_seed(5)
    y_shape = filtered_lrelu(x.detach(), b=b, impl="ref", **kw).shape
    w = torch.randn(y_shape, generator=gen).to(x.device, x.dtype)
    got = _run(x, b, w, kw, "triton")
    kw64 = {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    want = _run(x.double(), None if b is None else b.double(), w.double(), kw64, "ref")
    names = ["y", "dx"] + (["db"] if b is not None else []) + ["d2x", "d2w"]
    for name, a, r in zip(names, got, want):
        assert a.shape == r.shape, name
        try:
            assert_close_scaled(a, r, tol)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
    return got


def test_triton_is_the_cuda_fast_backend():
    assert backends.SPEC.fast == {"cuda": ("triton",)}
    assert fast_backends(backends.SPEC) == ["triton"]
    assert set(backends.SPEC.cannot["triton"]) == {"float64", "learned filter"}


CONFIGS = [
    # StyleGAN3-T's common layer: up 2 / down 2, 12-tap filters, bias, clamp; several tiles per axis
    dict(shape=(1, 3, 23, 25), up=2, down=2, fu=12, fd=12, padding=[10, 9, 11, 8], clamp=1.0, bias=True),
    # the up-4 layer (24 / 12 taps), negative padding on one axis, flipped filters, no bias
    dict(shape=(1, 2, 16, 17), up=4, down=2, fu=24, fd=12, padding=[14, 13, -1, 15], flip_filter=True),
    # no filters (ToRGB-like), crop and pad
    dict(shape=(2, 2, 7, 9), up=1, down=1, fu=0, fd=0, padding=[1, -1, 0, 2], clamp=0.5, bias=True, slope=1.0,
         gain=1.0),
    dict(shape=(1, 2, 11, 13), up=2, down=1, fu=4, fd=0, padding=[2, 1, 3, 0], bias=True),
    dict(shape=(1, 2, 30, 61), up=1, down=4, fu=0, fd=8, padding=0, flip_filter=True, bias=True),
    dict(shape=(1, 2, 9, 10), up=4, down=4, fu=8, fd=8, padding=[3, 2, 5, -2], clamp=2.0, bias=True),
    dict(shape=(1, 3, 10, 17), up=1, down=2, fu=6, fd=5, padding=[-1, 2], slope=0.3, gain=1.7, bias=True),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"up{c['up']}down{c['down']}")
def test_matches_ref(cfg):
    gen = torch.Generator().manual_seed(1)
    cfg = dict(cfg)
    x = torch.randn(*cfg.pop("shape"), generator=gen)
    b = torch.randn(x.shape[1], generator=gen) if cfg.pop("bias", False) else None
    nfu, nfd = cfg.pop("fu"), cfg.pop("fd")
    kw = dict(fu=_taps(nfu, gen) if nfu else None, fd=_taps(nfd, gen) if nfd else None, **cfg)
    assert backends.algorithm(cfg["up"], cfg["down"], kw["fu"], kw["fd"]) == backends.FUSED
    _check(x, b, kw)


def test_channels_last_and_sliced_inputs():
    gen = torch.Generator().manual_seed(2)
    kw = dict(fu=_taps(12, gen), fd=_taps(12, gen), up=2, down=2, padding=[9, 8, 9, 8], clamp=1.0)
    b = torch.randn(4, generator=gen)
    xcl = torch.randn(2, 4, 23, 12, generator=gen).to(memory_format=torch.channels_last)
    y, dx, _db, _, _ = _check(xcl, b, kw)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert dx.is_contiguous(memory_format=torch.channels_last)
    sliced = torch.randn(1, 4, 14, 15, generator=gen)[:, :, 2:, 1:]
    assert not sliced.is_contiguous()
    _check(sliced, b, kw)


@pytest.mark.parametrize("which", ["fd_2d", "fu_2d", "both_2d"])
def test_two_d_filters(which):
    """One 2-D filter is split off (the kernels run the separable half: StyleGAN3-R's radial down filter);
    two run the composition of the upfirdn2d and bias_act kernels."""
    gen = torch.Generator().manual_seed(3)
    f2 = torch.rand(3, 4, generator=gen) + 0.1
    f2 = f2 / f2.sum()
    fu, fd = {"fd_2d": (_taps(8, gen), f2), "fu_2d": (f2, _taps(8, gen)), "both_2d": (f2, f2.T)}[which]
    kw = dict(fu=fu, fd=fd, up=2, down=2, padding=[4, 3, 5, 2], clamp=1.0, flip_filter=which == "fu_2d")
    want = {"fd_2d": backends.SPLIT_DOWN, "fu_2d": backends.SPLIT_UP, "both_2d": backends.COMPOSED}[which]
    assert backends.algorithm(2, 2, kw["fu"], kw["fd"]) == want
    _check(torch.randn(1, 2, 9, 8, generator=gen), torch.randn(2, generator=gen), kw)


def test_no_grad_path_and_b_only_gradient():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(1, 2, 9, 10, generator=gen)
    b = torch.randn(2, generator=gen, dtype=torch.float64, requires_grad=True)  # cast to x's dtype
    kw = dict(fu=_taps(12, gen), fd=_taps(12, gen), up=2, down=2, padding=9, clamp=0.8)
    with torch.no_grad():
        y0 = filtered_lrelu(x, b=b, impl="triton", **kw)
    y = filtered_lrelu(x, b=b, impl="triton", **kw)
    torch.testing.assert_close(y0, y, rtol=0, atol=0)
    (db,) = torch.autograd.grad(y.sum(), b)
    (db_ref,) = torch.autograd.grad(filtered_lrelu(x, b=b, impl="ref", **kw).sum(), b)
    assert db.dtype == torch.float64
    assert_close_scaled(db, db_ref, TOL)


def test_learned_filters_run_the_reference_automatically_and_are_refused_explicitly():
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(1, 2, 8, 9, generator=gen)
    fu = _taps(6, gen).requires_grad_()
    for kw in (dict(fu=fu), dict(fd=fu)):
        with pytest.raises(BackendUnavailableError, match="impl='triton' cannot run this call: its kernels treat "
                                                          "the filters as constants.*impl='ref' runs it"):
            filtered_lrelu(x, up=2, padding=3, impl="triton", **kw)
    with torch.no_grad():  # no gradient asked for: the filter is a constant, the kernels run
        assert_close_scaled(filtered_lrelu(x, fu, up=2, padding=3, impl="triton"),
                            filtered_lrelu(x, fu, up=2, padding=3, impl="ref"), TOL)
    with config.use_backend("triton"):  # a forced backend is still automatic: ref takes the learned filter
        y = filtered_lrelu(x, fu, up=2, padding=3)
    (dfu,) = torch.autograd.grad(y.sum(), fu)
    y_ref = filtered_lrelu(x, fu, up=2, padding=3, impl="ref")
    (dfu_ref,) = torch.autograd.grad(y_ref.sum(), fu)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    torch.testing.assert_close(dfu, dfu_ref, rtol=0, atol=0)


def test_int64_offsets(monkeypatch):
    """The 64-bit offset path (tensors over 2**30 elements) on small tensors: the threshold lowered."""
    monkeypatch.setattr(K, "_INT32_MAX", 64)
    gen = torch.Generator().manual_seed(9)
    kw = dict(fu=_taps(12, gen), fd=_taps(12, gen), up=2, down=2, padding=[9, 8, 10, 7], clamp=1.0)
    _check(torch.randn(1, 2, 13, 12, generator=gen), torch.randn(2, generator=gen), kw)


def test_float64_policy():
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    f = torch.ones(4, dtype=torch.float64) / 4
    with pytest.raises(UnsupportedDtypeError, match="float64"):  # also a TypeError
        filtered_lrelu(x, f, f, up=2, down=2, padding=3, impl="triton")
    with config.use_backend("triton"):  # an automatic choice: float64 goes to ref, exactly
        y = filtered_lrelu(x, f, f, up=2, down=2, padding=3)
    torch.testing.assert_close(y, filtered_lrelu(x, f, f, up=2, down=2, padding=3, impl="ref"), rtol=0, atol=0)


def test_empty_batch():
    x = torch.randn(0, 2, 7, 8, requires_grad=True)
    b = torch.randn(2, requires_grad=True)
    f = torch.ones(12) / 12
    y = filtered_lrelu(x, f, f, b, up=2, down=2, padding=9, impl="triton")
    assert y.shape == filtered_lrelu(x, f, f, b, up=2, down=2, padding=9, impl="ref").shape
    dx, db = torch.autograd.grad(y.sum(), (x, b))
    assert dx.shape == x.shape and torch.equal(db, torch.zeros(2))


def test_algorithm_is_a_pure_choice_of_kinds_and_plans():
    """fused for separable or absent filters a tile holds; one 2-D filter split off when the kernels hold the
    other half; else the composition. Never asks for plans it does not need."""
    asked = []

    def plans(holds):
        def has_plans(*key):
            asked.append(key)
            return holds
        return has_plans
    choose = backends.choose_algorithm
    assert choose(2, 2, 12, 12, plans(True)) == backends.FUSED and asked == [(2, 2, 12, 12)]
    assert choose(2, 2, 12, 12, plans(False)) == backends.COMPOSED
    assert choose(4, 2, 1, 1, plans(True)) == backends.FUSED  # absent filters
    asked.clear()
    assert choose(4, 2, 24, 0, plans(True)) == backends.SPLIT_DOWN and asked == [(4, 1, 24, 1)]
    asked.clear()
    assert choose(4, 2, 0, 12, plans(True)) == backends.SPLIT_UP and asked == [(1, 2, 1, 12)]
    assert choose(4, 2, 1, 0, plans(True)) == backends.SPLIT_DOWN
    assert choose(4, 2, 0, 1, plans(True)) == backends.SPLIT_UP
    for kinds in ((24, 0), (0, 12)):
        assert choose(4, 2, *kinds, plans(False)) == backends.COMPOSED
    asked.clear()
    assert choose(2, 2, 0, 0, plans(True)) == backends.COMPOSED and asked == []
    # with the kernels' plans: StyleGAN3's filters are fused; filters no tile holds are composed
    assert backends.algorithm(2, 2, torch.ones(12), torch.ones(12)) == backends.FUSED
    assert backends.algorithm(1, 1, torch.ones(200), None) == backends.COMPOSED
    assert backends.algorithm(2, 2, torch.ones(200), torch.ones(3, 3)) == backends.COMPOSED


def test_filters_no_tile_holds_run_the_composition():
    gen = torch.Generator().manual_seed(10)
    kw = dict(fu=_taps(140, gen), fd=None, up=1, down=1, padding=[70, 69, 70, 69], clamp=1.0)
    assert backends.algorithm(1, 1, kw["fu"], None) == backends.COMPOSED
    _check(torch.randn(1, 2, 5, 6, generator=gen), torch.randn(2, generator=gen), kw)


def test_parameters_are_normalised_once():
    x = torch.randn(1, 2, 6, 6)
    p = validate(x, None, None, None, 2, 1, [1, 2], 1, 0, None, 0)
    assert p == (2, 1, (1, 1, 2, 2), 1.0, 0.0, None, False)
    assert p.padding == (1, 1, 2, 2) and p.clamp is None and type(p.gain) is float


def test_plans_cover_stylegan3_filters():
    """Every up/down pair with StyleGAN3's tap counts (6 per factor, none at 1) runs the kernels."""
    for up in (1, 2, 4):
        for down in (1, 2, 4):
            fu, fd = (6 * up if up > 1 else 1), (6 * down if down > 1 else 1)
            for plan in (K.plan_forward(up, down, fu, fd), K.plan_backward(up, down, fu, fd)):
                assert plan is not None
                t, bi, bu, bo = plan
                assert t >= 1 and all(v >= 16 and v & (v - 1) == 0 for v in (bi, bu, bo))


@pytest.mark.parametrize("seen", [False, True], ids=["fresh", "seen"])
def test_torch_compile_fullgraph(seen, monkeypatch):
    """The kernels are opaque custom ops: torch.compile traces the op without a graph break (one filter given
    as both fu and fd included) and matches eager, forward and gradients; the algorithm is traced too, whether
    an eager call of this process chose it already (``seen``) or the trace computes it (``fresh``)."""
    cache = {(2, 2, 12, 12): backends.FUSED} if seen else {}
    monkeypatch.setattr(backends, "_ALGORITHM", cache)
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(1, 2, 9, 10, generator=gen, requires_grad=True)
    b = torch.randn(2, generator=gen, requires_grad=True)
    f = _taps(12, gen)

    def fn(x, b):
        return filtered_lrelu(x, f, f, b, up=2, down=2, padding=9, clamp=1.0, impl="triton")
    torch._dynamo.reset()
    y = torch.compile(fn, fullgraph=True)(x, b)
    assert backends._ALGORITHM == ({(2, 2, 12, 12): backends.FUSED} if seen else {})  # a trace stores nothing
    y_e = fn(x, b)
    torch.testing.assert_close(y, y_e, rtol=0, atol=0)
    w = torch.randn(y.shape, generator=gen)
    for g, g_e in zip(torch.autograd.grad(y, (x, b), w), torch.autograd.grad(y_e, (x, b), w)):
        torch.testing.assert_close(g, g_e, rtol=0, atol=0)


def test_torch_compile_fullgraph_split_path(monkeypatch):
    """A 2-D down filter (the split path: the kernels, then the Triton upfirdn2d) traces without a graph break,
    its algorithm chosen in the trace, and matches eager."""
    monkeypatch.setattr(backends, "_ALGORITHM", {})
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(1, 2, 9, 8, generator=gen, requires_grad=True)
    b = torch.randn(2, generator=gen, requires_grad=True)
    fu, fd = _taps(8, gen), torch.rand(3, 4, generator=gen) / 6

    def fn(x, b):
        return filtered_lrelu(x, fu, fd, b, up=2, down=2, padding=[4, 3, 5, 2], clamp=1.0, impl="triton")
    torch._dynamo.reset()
    y = torch.compile(fn, fullgraph=True)(x, b)
    assert backends._ALGORITHM == {}
    y_e = fn(x, b)
    assert backends._ALGORITHM == {(2, 2, 8, 0): backends.SPLIT_DOWN}
    torch.testing.assert_close(y, y_e, rtol=0, atol=0)
    w = torch.randn(y.shape, generator=gen)
    for g, g_e in zip(torch.autograd.grad(y, (x, b), w), torch.autograd.grad(y_e, (x, b), w)):
        torch.testing.assert_close(g, g_e, rtol=0, atol=0)


def test_custom_ops_opcheck():
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(1, 2, 6, 7, generator=gen)
    f = _taps(4, gen)
    args = (x, f, f, torch.randn(2, generator=gen), 2, 2, 3, 2, 3, 2, 1.4, 0.2, 1.0, False, True)
    torch.library.opcheck(backends._fwd_op, args, test_utils=("test_schema", "test_faketensor"))
    no_clamp = args[:12] + (None,) + args[13:]  # clamp is Optional[float]: None means no clamp
    torch.library.opcheck(backends._fwd_op, no_clamp, test_utils=("test_schema", "test_faketensor"))
    xcl = x.contiguous(memory_format=torch.channels_last)
    torch.library.opcheck(backends._fwd_op, (xcl, f, None) + args[3:], test_utils=("test_schema", "test_faketensor"))
    y, mask = backends._fwd_op(*args)
    torch.library.opcheck(backends._bwd_op, (torch.randn_like(y), mask, f, f, 2, 2, 3, 3, 6, 7, 1.4, 0.2, False,
                                             False, True), test_utils=("test_schema", "test_faketensor"))
    torch.library.opcheck(backends._jvp_op, (x, None, mask, f, f, 2, 2, 3, 2, 3, 2, 1.4, 0.2, False),
                          test_utils=("test_schema", "test_faketensor"))


# ----------------------------------------------------------------------------------------------- GPU twins

# StyleGAN3-T at 256 px, batch 4 per GPU: (x shape, up, down, fu taps, fd taps, padding), layers 11, 10, 13, 3.
SG3_LAYERS = [
    ((4, 181, 278, 278), 2, 2, 12, 12, [9, 8, 9, 8]),
    ((4, 256, 150, 150), 4, 2, 24, 12, [-6, -9, -6, -9]),
    ((4, 128, 278, 278), 2, 2, 12, 12, [-11, -12, -11, -12]),
    ((4, 512, 38, 38), 4, 2, 24, 12, [-6, -9, -6, -9]),
]


@pytest.mark.gpu
@pytest.mark.parametrize("layer", SG3_LAYERS, ids=lambda l: f"{l[0][2]}px_up{l[1]}")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_gpu_stylegan3_layers(layer, dtype):
    shape, up, down, nfu, nfd, padding = layer
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(shape, device="cuda", generator=gen).to(dtype) * 3
    b = torch.randn(shape[1], device="cuda", generator=gen).to(dtype)
    fu = torch.signal.windows.kaiser(nfu, beta=4.0, sym=True, device="cuda")
    fd = torch.signal.windows.kaiser(nfd, beta=4.0, sym=True, device="cuda")
    kw = dict(fu=fu / fu.sum(), fd=fd / fd.sum(), up=up, down=down, padding=padding, gain=math.sqrt(2), clamp=256.0)
    if dtype == torch.float32:
        _check(x, b, kw, tol=2e-4)
        return
    # Half precision: the error against float64 within a small multiple of ref's own in the same dtype.
    def fwd_bwd(x, b, kw, impl):
        x = x.detach().requires_grad_()
        b = b.detach().requires_grad_()
        y = filtered_lrelu(x, b=b, impl=impl, **kw)
        dx, db = torch.autograd.grad(y, (x, b), torch.ones_like(y))
        return [t.double() for t in (y, dx, db)]
    kw64 = {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    want = fwd_bwd(x.double(), b.double(), kw64, "ref")
    got = fwd_bwd(x, b, kw, "triton")
    ref = fwd_bwd(x, b, kw, "ref")
    for name, g, r, w in zip(("y", "dx", "db"), got, ref, want):
        scale = w.abs().max().item()
        err, ref_err = (g - w).abs().max().item(), (r - w).abs().max().item()
        assert err <= 4 * ref_err + 1e-3 * scale, (name, err, ref_err, scale)

"""The Triton upfirdn2d launcher (kernels/upfirdn2d.py) against the reference op.

On CPU the kernel runs under TRITON_INTERPRET=1 (conftest) at small shapes; the
``gpu`` tests repeat it at StyleGAN2 sizes and in fp16/bf16 on a CUDA device.
"""

import pytest
import torch

from gan_fast.kernels import upfirdn2d as K
from gan_fast.reference.upfirdn2d import upfirdn2d as ref_upfirdn2d
from gan_fast.shapes import upfirdn2d_size

# (up, down, padding x0 x1 y0 y1): every factor 1/2/4 on each axis, mixed axes, negative pads (crops).
CASES = [
    ((1, 1), (1, 1), (1, 2, 0, 1)),
    ((2, 2), (1, 1), (2, 1, 2, 1)),
    ((1, 1), (2, 2), (1, 1, 1, 1)),
    ((4, 4), (1, 1), (3, 2, 3, 2)),
    ((1, 1), (4, 4), (2, 1, 1, 2)),
    ((2, 1), (1, 2), (1, 0, 2, 1)),
    ((1, 4), (4, 1), (5, -1, 3, 6)),
    ((1, 1), (1, 1), (-1, 2, 1, -2)),
    ((2, 2), (2, 2), (-3, 4, 0, -1)),
    ((4, 2), (2, 4), (6, 5, 4, 7)),
]

# name -> (shape, note): full 2-D filters 1..12 taps, separable 1-D filters (one pass with the outer
# product below SEPARABLE_TWO_PASS_MIN_TAPS reads per output, two 1-D passes above).
FILTERS = {
    "1x1": (1, 1),
    "3x4": (3, 4),
    "4x4": (4, 4),
    "12x12": (12, 12),
    "7x2": (7, 2),
    "sep1": (1,),
    "sep4": (4,),
    "sep7": (7,),
    "sep12": (12,),
}


def _close(y, want, dtype=torch.float32):
    tol = {torch.float32: (2e-5, 2e-5), torch.float64: (1e-6, 1e-6), torch.float16: (2e-2, 2e-2),
           torch.bfloat16: (6e-2, 6e-2)}[dtype]
    torch.testing.assert_close(y.float(), want.float(), rtol=tol[0], atol=tol[1])


def _check(x, f, up, down, pad, flip, gain, dtype=torch.float32):
    want = ref_upfirdn2d(x.double(), f.double(), up, down, pad, flip, gain)
    y = K.upfirdn2d_fwd(x.to(dtype), f, *up, *down, *pad, flip, gain)
    assert y.shape == want.shape
    assert y.dtype == dtype
    fmt = torch.channels_last if K.is_channels_last(x) else torch.contiguous_format
    assert y.is_contiguous(memory_format=fmt)
    _close(y, want, dtype)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"up{c[0]}-down{c[1]}-pad{c[2]}")
@pytest.mark.parametrize("fname", ["3x4", "sep4", "sep12", "12x12"])
def test_matches_reference(case, fname, device):
    g = torch.Generator().manual_seed(0)
    up, down, pad = case
    x = torch.randn(2, 3, 11, 13, generator=g).to(device)
    f = torch.randn(*FILTERS[fname], generator=g).to(device)
    if fname in ("12x12", "sep12"):  # keep some output for the big filters
        pad = tuple(p + 6 for p in pad)
    _check(x, f, up, down, pad, False, 1.0)


@pytest.mark.parametrize("fname", list(FILTERS))
@pytest.mark.parametrize("flip", [False, True])
def test_filter_sizes_flip_gain(fname, flip, device):
    g = torch.Generator().manual_seed(1)
    f = torch.randn(*FILTERS[fname], generator=g).to(device)
    x = torch.randn(1, 2, 9, 10, generator=g).to(device)
    fh = FILTERS[fname][0]
    fw = FILTERS[fname][-1]
    pad = (fw // 2 + 1, (fw - 1) // 2, fh // 2, (fh - 1) // 2 + 2)
    _check(x, f, (2, 2), (1, 1), pad, flip, -2.5)
    _check(x, f, (1, 1), (2, 2), pad, flip, 0.3)


@pytest.mark.parametrize("case", CASES[:4] + CASES[6:9], ids=lambda c: f"up{c[0]}-down{c[1]}-pad{c[2]}")
@pytest.mark.parametrize("fname", ["4x4", "sep12"])
def test_channels_last(case, fname, device):
    g = torch.Generator().manual_seed(2)
    up, down, pad = case
    x = torch.randn(2, 5, 7, 9, generator=g).to(device).to(memory_format=torch.channels_last)
    f = torch.randn(*FILTERS[fname], generator=g).to(device)
    if fname == "sep12":
        pad = tuple(p + 6 for p in pad)
    _check(x, f, up, down, pad, True, 1.3)


def test_odd_shapes_and_noncontiguous(device):
    g = torch.Generator().manual_seed(3)
    f = torch.randn(5, 3, generator=g).to(device)
    for shape in [(1, 1, 1, 1), (3, 1, 17, 2), (1, 7, 2, 19)]:
        x = torch.randn(*shape, generator=g).to(device)
        _check(x, f, (2, 4), (1, 1), (2, 2, 3, 1), False, 1.0)
        _check(x, f, (4, 2), (2, 1), (4, 3, 2, 3), True, 1.0)
    x = torch.randn(2, 6, 10, 8, generator=g).to(device)[:, ::2, 1:, 1:7]  # a strided view
    assert not x.is_contiguous()
    _check(x, f, (2, 2), (2, 2), (1, 1, 1, 1), False, 2.0)


def test_fp16_interpreter_small(device):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 8, 8, generator=g).to(device)
    f = torch.tensor([1.0, 3.0, 3.0, 1.0], device=device)
    f = torch.outer(f, f) / 64
    _check(x, f, (2, 2), (1, 1), (2, 1, 2, 1), False, 4.0, dtype=torch.float16)
    _check(x.to(memory_format=torch.channels_last), f, (1, 1), (2, 2), (1, 1, 1, 1), False, 1.0, dtype=torch.float16)


def test_output_size_and_errors(device):
    x = torch.randn(1, 1, 4, 4, device=device)
    with pytest.raises(ValueError, match="no output"):
        K.upfirdn2d_fwd(x, torch.ones(12, 12, device=device), 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        K.upfirdn2d_fwd(x[0], torch.ones(2, 2, device=device), 1, 1, 1, 1, 0, 0, 0, 0, False, 1.0)
    assert upfirdn2d_size(4, 5, 4, 4, 2, 2, 1, 1, 2, 1, 2, 1) == (8, 10)


def test_backward_is_the_swapped_op(device):
    """The glue's backward: grad_x = upfirdn2d(gy, f, up<->down, adjusted pads, flipped filter)."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 6, 7, generator=g, dtype=torch.float64).to(device).requires_grad_()
    f = torch.randn(4, 3, generator=g, dtype=torch.float64).to(device)
    (upx, upy), (downx, downy), (px0, px1, py0, py1) = (2, 1), (1, 2), (2, 1, 1, 2)
    y = ref_upfirdn2d(x, f, (upx, upy), (downx, downy), (px0, px1, py0, py1), False, 1.5)
    gy = torch.randn(y.shape, generator=g, dtype=torch.float64).to(device)
    (want,) = torch.autograd.grad(y, x, gy)
    fh, fw = f.shape
    h, w = x.shape[2:]
    oh, ow = y.shape[2:]
    gpx0 = fw - px0 - 1
    gpx1 = w * upx - ow * downx + px0 - upx + 1
    gpy0 = fh - py0 - 1
    gpy1 = h * upy - oh * downy + py0 - upy + 1
    gx = K.upfirdn2d_fwd(gy.float(), f, downx, downy, upx, upy, gpx0, gpx1, gpy0, gpy1, True, 1.5)
    assert gx.shape == x.shape
    _close(gx, want)


# ---- full size on a GPU ----------------------------------------------------------------------------

GPU_CASES = [
    # StyleGAN2 [1,3,3,1] (4x4 full): upsample2d / downsample2d / blur, and StyleGAN3-like 12-tap separable.
    ((2, 2), (1, 1), (2, 1, 2, 1), (4, 4)),
    ((1, 1), (2, 2), (1, 1, 1, 1), (4, 4)),
    ((1, 1), (1, 1), (2, 1, 2, 1), (4, 4)),
    ((2, 2), (1, 1), (6, 5, 6, 5), (12,)),
    ((4, 4), (2, 2), (10, 9, 10, 9), (12,)),
    ((1, 1), (4, 4), (5, 5, 5, 5), (12, 12)),
]


@pytest.mark.gpu
@pytest.mark.parametrize("case", GPU_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_full_size_gpu(case, dtype, channels_last):
    up, down, pad, fshape = case
    g = torch.Generator(device="cuda").manual_seed(6)
    x = torch.randn(8, 128, 64, 64, device="cuda", generator=g)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    f = torch.rand(*fshape, device="cuda", generator=g)
    f = f / f.sum()
    _check(x, f, up, down, pad, False, 2.0, dtype=dtype)


# ---- end to end through the autograd glue (gan_fast/backends/upfirdn2d.py) --------------------------


E2E = [
    ((2, 2), (1, 1), (2, 1, 2, 1), (4, 4)),
    ((1, 1), (2, 2), (1, 1, 1, 1), (4, 4)),
    ((2, 1), (1, 2), (1, 0, 2, 1), (3, 4)),
    ((4, 4), (2, 2), (6, 5, 6, 5), (12,)),
    ((1, 1), (1, 1), (-1, 2, 1, -2), (5,)),
]


@pytest.mark.parametrize("case", E2E, ids=lambda c: f"up{c[0]}-down{c[1]}-pad{c[2]}-f{c[3]}")
@pytest.mark.parametrize("channels_last", [False, True])
def test_glue_triton_forward_grad_second_order(case, channels_last, device):
    from gan_fast.backends import upfirdn2d as glue
    from gan_fast.params.upfirdn2d import UpFirDn2dParams

    up, down, pad, fshape = case
    g = torch.Generator().manual_seed(20)
    x = torch.randn(2, 3, 7, 9, generator=g).to(device)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    f = torch.randn(*fshape, generator=g).to(device)
    r = None
    results = {}
    for impl in ("ref", "triton"):
        xx = x.detach().clone().requires_grad_()
        if impl == "ref":
            y = ref_upfirdn2d(xx, f, up, down, pad, False, 1.5)
        else:
            y = glue.run("triton", UpFirDn2dParams(up, down, pad, False, 1.5), xx, f)
        if r is None:
            r = torch.randn(y.shape, generator=g).to(device)
        rr = r.detach().clone().requires_grad_()
        # linear op: the second order is the backward of the backward, reached through the cotangent
        (gx,) = torch.autograd.grad((y * rr).sum(), [xx], create_graph=True)
        (ggr,) = torch.autograd.grad((gx * gx).sum(), [rr])
        results[impl] = (y, gx, ggr)
    for a, b in zip(results["triton"], results["ref"]):
        assert a.shape == b.shape
        # float32 sums of up to 144 taps, twice: tolerance relative to the largest value
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * max(1.0, b.abs().max().item()))


def test_public_op_triton_backend(device):
    from gan_fast import ops
    from gan_fast.backends import upfirdn2d as glue

    assert "triton" in glue.SPEC.fast["cuda"], "upfirdn2d lost its triton backend"

    g = torch.Generator().manual_seed(21)
    x = torch.randn(2, 3, 8, 8, generator=g).to(device).requires_grad_()
    f = ops.setup_filter([1, 3, 3, 1], device=device)
    for fn in (lambda t, impl: ops.upsample2d(t, f, impl=impl), lambda t, impl: ops.downsample2d(t, f, impl=impl)):
        y_ref = fn(x, "ref")
        y = fn(x, "triton")
        _close(y, y_ref)
        (ga,) = torch.autograd.grad(y.square().sum(), [x])
        (gb,) = torch.autograd.grad(y_ref.square().sum(), [x])
        _close(ga, gb)

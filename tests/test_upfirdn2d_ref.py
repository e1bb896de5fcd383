"""Reference upfirdn2d against a tap-by-tap FIR written in the test; helpers; gradcheck; errors."""

import pytest
import torch

from gan_fast import ops


def naive_upfirdn2d(x, f, up=(1, 1), down=(1, 1), pad=(0, 0, 0, 0), flip_filter=False, gain=1.0):
    """Zero-insert, pad/crop by index arithmetic, sum over taps, decimate."""
    n, c, h, w = x.shape
    upx, upy = up
    x0, x1, y0, y1 = pad
    if f.ndim == 1:
        f = torch.outer(f, f)
    f = f * gain
    fh, fw = f.shape
    z = x.new_zeros(n, c, h * upy, w * upx)
    z[:, :, ::upy, ::upx] = x
    hp, wp = h * upy + y0 + y1, w * upx + x0 + x1
    p = x.new_zeros(n, c, hp, wp)
    for i in range(hp):
        for j in range(wp):
            si, sj = i - y0, j - x0
            if 0 <= si < h * upy and 0 <= sj < w * upx:
                p[:, :, i, j] = z[:, :, si, sj]
    oh, ow = hp - fh + 1, wp - fw + 1
    out = x.new_zeros(n, c, oh, ow)
    for a in range(fh):
        for b in range(fw):
            tap = f[a, b] if flip_filter else f[fh - 1 - a, fw - 1 - b]  # true convolution flips
            out += tap * p[:, :, a:a + oh, b:b + ow]
    return out[:, :, ::down[1], ::down[0]]


CASES = [
    dict(up=(1, 1), down=(1, 1), pad=(1, 2, 0, 1)),
    dict(up=(2, 2), down=(1, 1), pad=(2, 1, 2, 1)),
    dict(up=(1, 1), down=(2, 2), pad=(1, 1, 1, 1)),
    dict(up=(2, 1), down=(1, 2), pad=(1, 0, 2, 1)),
    dict(up=(4, 4), down=(1, 1), pad=(3, 2, 3, 2)),
    dict(up=(1, 1), down=(1, 1), pad=(-1, 2, 1, -2)),  # negative pads crop
    dict(up=(2, 2), down=(2, 2), pad=(0, 0, 0, 0)),
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("flip", [False, True])
def test_matches_tap_by_tap(case, flip):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64, generator=g)
    f = torch.randn(3, 4, dtype=torch.float64, generator=g)  # asymmetric so flips and axes matter
    y = ops.upfirdn2d(x, f, up=case["up"], down=case["down"], padding=list(case["pad"]), flip_filter=flip, gain=1.7,
                      impl="ref")
    want = naive_upfirdn2d(x, f, case["up"], case["down"], case["pad"], flip, 1.7)
    assert y.shape == want.shape
    torch.testing.assert_close(y, want)


def test_separable_equals_outer_product():
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    f1 = torch.tensor([1.0, 2.0, 5.0, 3.0], dtype=torch.float64)
    y1 = ops.upfirdn2d(x, f1, up=2, padding=[2, 1, 2, 1], gain=3.0, impl="ref")
    y2 = ops.upfirdn2d(x, torch.outer(f1, f1), up=2, padding=[2, 1, 2, 1], gain=3.0, impl="ref")
    torch.testing.assert_close(y1, y2)


def test_separable_filter_with_negative_gain():
    x = torch.randn(1, 2, 6, 7, dtype=torch.float64)
    f1 = torch.tensor([1.0, -2.0, 4.0], dtype=torch.float64)
    got = ops.upfirdn2d(x, f1, padding=1, gain=-2.5, impl="ref")
    torch.testing.assert_close(got, naive_upfirdn2d(x, f1, (1, 1), (1, 1), (1, 1, 1, 1), False, -2.5))
    with pytest.raises(ValueError, match="gain must be >= 0 for a separable filter"):
        ops.setup_filter([1, 2, 3, 4, 5, 6, 7, 8], gain=-1)


def test_padding_forms_are_equivalent():
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    f = torch.ones(3, 3, dtype=torch.float64)
    a = ops.upfirdn2d(x, f, padding=1, impl="ref")
    b = ops.upfirdn2d(x, f, padding=[1, 1], impl="ref")
    c = ops.upfirdn2d(x, f, padding=[1, 1, 1, 1], impl="ref")
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


def test_setup_filter():
    f = ops.setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and f.dtype == torch.float32
    torch.testing.assert_close(f.sum(), torch.tensor(1.0))
    torch.testing.assert_close(f, torch.outer(torch.tensor([1., 3, 3, 1]), torch.tensor([1., 3, 3, 1])) / 64)
    long = ops.setup_filter(list(range(1, 9)))
    assert long.shape == (8,)  # >= 8 taps stay separable
    torch.testing.assert_close(long.sum(), torch.tensor(1.0))
    assert ops.setup_filter(None).shape == (1, 1)
    torch.testing.assert_close(ops.setup_filter([1, 2], normalize=False, flip_filter=True, gain=4)[0],
                               torch.tensor([16.0, 8.0]))  # outer [[1,2],[2,4]], flipped, x4


@pytest.mark.parametrize("flt", [[1, 3, 3, 1], [1, 2, 1], [1, 2, 3, 4, 5, 6, 6, 5, 4, 3, 2, 1]])
def test_resampling_helpers_shapes_and_dc_gain(flt):
    f = ops.setup_filter(flt).double()
    x = torch.ones(1, 2, 14, 16, dtype=torch.float64)
    up = ops.upsample2d(x, f, impl="ref")
    down = ops.downsample2d(x, f, impl="ref")
    same = ops.filter2d(x, f, impl="ref")
    assert up.shape == (1, 2, 28, 32) and down.shape == (1, 2, 7, 8) and same.shape == (1, 2, 14, 16)
    # A constant image keeps its level away from the borders.
    torch.testing.assert_close(up[..., 6:-6, 6:-6], torch.ones_like(up[..., 6:-6, 6:-6]))
    torch.testing.assert_close(down[..., 3:-3, 3:-3], torch.ones_like(down[..., 3:-3, 3:-3]))
    torch.testing.assert_close(same[..., 6:-6, 6:-6], torch.ones_like(same[..., 6:-6, 6:-6]))


def test_helpers_against_naive():
    f = ops.setup_filter([1, 3, 3, 1]).double()
    x = torch.randn(2, 2, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(ops.upsample2d(x, f, impl="ref"),
                               naive_upfirdn2d(x, f, (2, 2), (1, 1), (2, 1, 2, 1), False, 4.0))
    torch.testing.assert_close(ops.downsample2d(x, f, impl="ref"),
                               naive_upfirdn2d(x, f, (1, 1), (2, 2), (1, 1, 1, 1), False, 1.0))
    torch.testing.assert_close(ops.filter2d(x, f, impl="ref"),
                               naive_upfirdn2d(x, f, (1, 1), (1, 1), (2, 1, 2, 1), False, 1.0))


@pytest.mark.parametrize("case", [CASES[1], CASES[2], CASES[5]])
def test_gradcheck_gradgradcheck(case):
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    f = torch.randn(3, 2, dtype=torch.float64)

    def fn(x):
        return ops.upfirdn2d(x, f, up=case["up"], down=case["down"], padding=list(case["pad"]), impl="ref")

    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_channels_last_and_noncontiguous():
    f = ops.setup_filter([1, 3, 3, 1]).double()
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    want = ops.upsample2d(x, f, impl="ref")
    torch.testing.assert_close(ops.upsample2d(x.to(memory_format=torch.channels_last), f, impl="ref"), want)
    xt = x.transpose(2, 3).contiguous().transpose(2, 3)
    assert not xt.is_contiguous()
    torch.testing.assert_close(ops.upsample2d(xt, f, impl="ref"), want)


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(x=torch.ones(2, 3, 4), f=torch.ones(2, 2)), ValueError, "x must be 4-D"),
    (dict(x=torch.ones(1, 1, 4, 4), f=torch.ones(1, 2, 2)), ValueError, "f must be 1-D or 2-D"),
    (dict(x=torch.ones(1, 1, 4, 4), f=torch.ones(2, 2), up=0), ValueError, "up must be >= 1"),
    (dict(x=torch.ones(1, 1, 4, 4), f=torch.ones(2, 2), down=[1, 0]), ValueError, "down[1] must be >= 1"),
    (dict(x=torch.ones(1, 1, 4, 4), f=torch.ones(2, 2), padding=[1, 2, 3]), ValueError, "padding must be"),
    (dict(x=torch.ones(1, 1, 4, 4), f=torch.ones(2, 2), padding=-3), ValueError, "leave no output"),
    (dict(x=torch.ones(1, 1, 4, 4, dtype=torch.int32), f=torch.ones(2, 2)), TypeError, "x must have a floating"),
    (dict(x=torch.ones(1, 1, 4, 4), f=torch.ones(2, 2, device="meta")), ValueError, "f is on meta"),
])
def test_errors(kwargs, exc, words):
    with pytest.raises(exc) as info:
        ops.upfirdn2d(**kwargs)
    assert words in str(info.value)


def test_the_per_plane_weights_follow_the_filter_in_place():
    """ref keeps the conv2d weights of a constant filter per filter tensor and version: an in-place change
    (load_state_dict into a buffer) gives new weights; a filter that requires grad gets its gradient."""
    from gan_fast import ops

    x = torch.randn(1, 3, 5, 6)
    f = ops.setup_filter([1, 3, 3, 1])
    first = ops.upsample2d(x, f, impl="ref")
    with torch.no_grad():
        f.copy_(ops.setup_filter([1, 2, 1, 1]))
    second = ops.upsample2d(x, f, impl="ref")
    fresh = ops.upsample2d(x, f.clone(), impl="ref")
    assert not torch.equal(first, second) and torch.equal(second, fresh)
    g = f.clone().requires_grad_()
    ops.upsample2d(x, g, impl="ref").square().sum().backward()
    assert g.grad is not None and g.grad.abs().sum() > 0


def test_the_per_plane_weights_survive_inference_mode():
    """Sampling under torch.inference_mode, then training with the same filter buffer: the kept weights are
    never inference tensors (autograd could not save them), and a filter made in inference mode (no version
    counter) runs too."""
    from gan_fast import ops

    x = torch.randn(1, 3, 5, 6)
    f = ops.setup_filter([1, 3, 3, 1])
    with torch.inference_mode():
        sampled = ops.upsample2d(x, f, impl="ref")
        f_inference = ops.setup_filter([1, 3, 3, 1])
        assert torch.equal(ops.upsample2d(x, f_inference, impl="ref"), sampled)
    for filt in (f, f_inference):
        xr = x.clone().requires_grad_()
        y = ops.upsample2d(xr, filt, impl="ref")
        y.square().sum().backward()
        assert torch.equal(y.detach(), sampled) and xr.grad.abs().sum() > 0

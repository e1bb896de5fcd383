"""Reference filtered_lrelu against StyleGAN3's definition written out in the test (zero insertion, F.pad,
F.conv2d with the flipped filter, leaky ReLU, clamp, strided F.conv2d); gradcheck; argument errors."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gan_fast.ops.filtered_lrelu import filtered_lrelu


def naive_filtered_lrelu(x, fu=None, fd=None, b=None, up=1, down=1, padding=0, gain=math.sqrt(2), slope=0.2,
                         clamp=None, flip_filter=False):
    """StyleGAN3's filtered_lrelu, written independently of gan_fast's upfirdn2d and bias_act."""
    n, c, h, w = x.shape
    if isinstance(padding, int):
        padding = [padding] * 4
    if len(padding) == 2:
        padding = [padding[0], padding[0], padding[1], padding[1]]
    x0, x1, y0, y1 = padding

    def as_2d(f):
        if f is None:
            return torch.ones(1, 1, dtype=x.dtype)
        f = f.to(x.dtype)
        return torch.outer(f, f) if f.ndim == 1 else f

    def depthwise(t, f, stride=1):
        k = f if flip_filter else f.flip([0, 1])  # conv2d correlates; a true convolution flips the taps
        return F.conv2d(t, k[None, None].expand(c, 1, *k.shape), stride=stride, groups=c)

    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, 1, 1)
    z = x.new_zeros(n, c, h * up, w * up)
    z[:, :, ::up, ::up] = x
    z = F.pad(z, [x0, x1, y0, y1])  # negative pads crop
    u = depthwise(z, as_2d(fu) * up ** 2)
    a = torch.where(u > 0, u, u * slope) * gain
    if clamp is not None:
        a = a.clamp(-clamp, clamp)
    return depthwise(a, as_2d(fd), stride=down)


def _filters(kind, gen):
    """(fu, fd) float64 filters: asymmetric random taps, so flips and axes matter."""
    sep = lambda n: torch.rand(n, generator=gen, dtype=torch.float64) + 0.2  # noqa: E731
    two_d = lambda h, w: torch.rand(h, w, generator=gen, dtype=torch.float64) + 0.2  # noqa: E731
    return {"sep": (sep(5), sep(4)), "2d": (two_d(3, 4), two_d(4, 2)), "none": (None, None),
            "sep_none": (sep(6), None), "none_2d": (None, two_d(2, 3))}[kind]


PADDINGS = [2, [3, 1], [3, -1, 2, 4]]
FACTORS = [(u, d) for u in (1, 2, 4) for d in (1, 2, 4)]


@pytest.mark.parametrize("up,down", FACTORS)
@pytest.mark.parametrize("filters", ["sep", "2d", "none", "sep_none", "none_2d"])
@pytest.mark.parametrize("padding", PADDINGS, ids=["int", "pxpy", "x0x1y0y1"])
def test_matches_definition(up, down, filters, padding):
    gen = torch.Generator().manual_seed(up * 10 + down)
    x = torch.randn(2, 3, 7, 9, generator=gen, dtype=torch.float64)
    fu, fd = _filters(filters, gen)
    for clamp, flip, bias in itertools.product((None, 0.7), (False, True), (False, True)):
        b = torch.randn(3, generator=gen, dtype=torch.float64) if bias else None
        kw = dict(up=up, down=down, padding=padding, gain=1.3, slope=0.25, clamp=clamp, flip_filter=flip)
        y = filtered_lrelu(x, fu, fd, b, impl="ref", **kw)
        want = naive_filtered_lrelu(x, fu, fd, b, **kw)
        assert y.shape == want.shape, (kw, y.shape, want.shape)
        torch.testing.assert_close(y, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("up,down,fu,fd,padding", [(2, 2, 12, 12, [11, 10, 9, 12]), (4, 2, 24, 12, 13),
                                                   (1, 1, 1, 1, 0), (2, 4, 7, 3, [-1, 2])])
def test_output_size_formula(up, down, fu, fd, padding):
    """StyleGAN3's (W*up + px0 + px1 - (fu_w - 1) - (fd_w - 1) + (down - 1)) // down, per axis."""
    x = torch.randn(1, 2, 19, 23, dtype=torch.float64)
    y = filtered_lrelu(x, torch.ones(fu, dtype=torch.float64), torch.ones(fd, dtype=torch.float64), up=up,
                       down=down, padding=padding, impl="ref")
    p = [padding] * 4 if isinstance(padding, int) else (
        [padding[0], padding[0], padding[1], padding[1]] if len(padding) == 2 else padding)
    assert y.shape[3] == (23 * up + p[0] + p[1] - (fu - 1) - (fd - 1) + (down - 1)) // down
    assert y.shape[2] == (19 * up + p[2] + p[3] - (fu - 1) - (fd - 1) + (down - 1)) // down


def test_defaults_and_identity_filters_keep_the_up_gain():
    """fu=None at up 2 still multiplies by up**2 (zero insertion, then gain 4), as StyleGAN3 does."""
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64)
    y = filtered_lrelu(x, up=2, impl="ref")
    z = x.new_zeros(1, 2, 8, 10)
    z[:, :, ::2, ::2] = x
    torch.testing.assert_close(y, F.leaky_relu(4 * z, 0.2) * math.sqrt(2))
    torch.testing.assert_close(filtered_lrelu(x, impl="ref"), F.leaky_relu(x, 0.2) * math.sqrt(2))


def test_dtypes_follow_x():
    x = torch.randn(1, 3, 6, 6)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    f = torch.rand(4, dtype=torch.float64)
    y = filtered_lrelu(x, f, f, b, up=2, down=2, padding=3, impl="ref")
    assert y.dtype == torch.float32
    (db,) = torch.autograd.grad(y.sum(), b)
    assert db.dtype == torch.float64


@pytest.mark.parametrize("up,down,filters,clamp", [(2, 2, "sep", 0.9), (1, 2, "2d", None), (4, 1, "none_2d", 1.2),
                                                   (2, 4, "sep_none", None)])
def test_gradcheck(up, down, filters, clamp):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, generator=gen, dtype=torch.float64, requires_grad=True)
    fu, fd = _filters(filters, gen)

    def fn(x, b):
        return filtered_lrelu(x, fu, fd, b, up=up, down=down, padding=[2, 1, 3, -1], slope=0.3, clamp=clamp,
                              impl="ref")
    torch.autograd.gradcheck(fn, (x, b))
    torch.autograd.gradgradcheck(fn, (x, b))


def test_numpy_scalars_and_integer_types():
    x = torch.randn(1, 1, 5, 5)
    y = filtered_lrelu(x, gain=np.sqrt(2), slope=np.float32(0.2), clamp=np.float64(1.0), up=np.int64(2), impl="ref")
    assert y.shape == (1, 1, 10, 10)


def test_empty_batch():
    x = torch.randn(0, 3, 5, 6, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    y = filtered_lrelu(x, torch.ones(4), torch.ones(4), b, up=2, down=2, padding=3, impl="ref")
    assert y.shape == (0, 3, 5, 6)
    dx, db = torch.autograd.grad(y.sum(), (x, b))
    assert dx.shape == x.shape and torch.equal(db, torch.zeros(3))


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(x=torch.randn(3, 4, 5)), ValueError, "x must be 4-D"),
    (dict(x=torch.ones(1, 1, 4, 4, dtype=torch.int32)), TypeError, "x must have a floating-point dtype"),
    (dict(fu=torch.ones(2, 2, 2)), ValueError, "fu must be 1-D or 2-D"),
    (dict(fd=torch.ones(0)), ValueError, "fd must have at least one tap"),
    (dict(fu=[1.0, 2.0]), TypeError, "fu must be a torch.Tensor"),
    (dict(b=torch.ones(3)), ValueError, r"b must have shape \[2\]"),
    (dict(b=torch.ones(2, 1)), ValueError, "b must be 1-D"),
    (dict(up=3), ValueError, r"up must be one of \(1, 2, 4\)"),
    (dict(down=0), ValueError, "down must be >= 1"),
    (dict(up=True), TypeError, "up must be an int"),
    (dict(down=2.0), TypeError, "down must be an int"),
    (dict(padding=[1, 2, 3]), ValueError, "padding must be"),
    (dict(padding=1.5), ValueError, "padding must be"),
    (dict(gain=float("nan")), ValueError, "gain must be finite"),
    (dict(slope=float("inf")), ValueError, "slope must be finite"),
    (dict(clamp=-1.0), ValueError, "clamp must be >= 0"),
    (dict(clamp=float("nan")), ValueError, "clamp must be finite"),
    (dict(gain="2"), TypeError, "gain must be a number"),
    (dict(gain=torch.tensor(2.0)), TypeError, "gain must be a number"),
    (dict(padding=-3), ValueError, "leave no output"),
    (dict(fu=torch.ones(4, device="meta")), ValueError, "fu is on meta"),
    (dict(impl="cpp"), ValueError, "no 'cpp' backend"),
    (dict(impl="bogus"), ValueError, "impl must be"),
])
def test_bad_arguments(kwargs, exc, match):
    args = dict(x=torch.randn(1, 2, 4, 4))
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        filtered_lrelu(**args)

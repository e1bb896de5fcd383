"""Reference modulated_conv2d against a per-sample loop written in the test; fused vs non-fused; errors."""

import pytest
import torch
import torch.nn.functional as F

from gan_fast import ops
from test_upfirdn2d_ref import naive_upfirdn2d


def naive_modconv(x, weight, styles, noise, up, down, padding, f, demodulate, flip_weight):
    """Per sample: w' = s * w (demodulated), zero-insert + pad + filter, correlate, filter + decimate."""
    out = []
    kh, kw = weight.shape[2:]
    fh, fw = (f.shape[0], f.shape[-1]) if f is not None else (1, 1)
    px0 = px1 = py0 = py1 = padding
    if up > 1:
        px0, px1, py0, py1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2, py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    for n in range(x.shape[0]):
        w = weight * styles[n].reshape(1, -1, 1, 1)
        if demodulate:
            w = w / torch.sqrt((w ** 2).sum(dim=[1, 2, 3], keepdim=True) + 1e-8)
        if not flip_weight:
            w = w.flip([2, 3])
        xi = x[n:n + 1]
        ident = torch.ones(1, 1, dtype=x.dtype)
        xi = naive_upfirdn2d(xi, f if up > 1 else ident, (up, up), (1, 1), (px0, px1, py0, py1), False, up * up)
        yi = F.conv2d(xi, w)
        if down > 1:
            yi = naive_upfirdn2d(yi, f, (1, 1), (down, down), (0, 0, 0, 0), False, 1.0)
        out.append(yi)
    y = torch.cat(out)
    return y if noise is None else y + noise


CASES = [  # (kernel, up, down, padding)
    (3, 1, 1, 1), (3, 2, 1, 1), (3, 1, 2, 1), (1, 1, 1, 0), (1, 2, 1, 0), (1, 1, 2, 0), (3, 1, 1, 0), (2, 1, 1, 0),
]


@pytest.mark.parametrize("k, up, down, padding", CASES)
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("flip_weight", [True, False])
def test_matches_per_sample_loop_and_fused_equals_unfused(k, up, down, padding, demodulate, flip_weight):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 4, 7, 6, dtype=torch.float64, generator=g)
    w = torch.randn(5, 4, k, k, dtype=torch.float64, generator=g)
    s = torch.randn(3, 4, dtype=torch.float64, generator=g)
    f = ops.setup_filter([1, 3, 3, 1]).double()
    kw = dict(up=up, down=down, padding=padding, resample_filter=f, demodulate=demodulate, flip_weight=flip_weight,
              impl="ref")
    fused = ops.modulated_conv2d(x, w, s, fused_modconv=True, **kw)
    unfused = ops.modulated_conv2d(x, w, s, fused_modconv=False, **kw)
    want = naive_modconv(x, w, s, None, up, down, padding, f, demodulate, flip_weight)
    assert fused.shape == want.shape
    torch.testing.assert_close(fused, want)
    torch.testing.assert_close(unfused, want)


def test_noise_and_output_size():
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    s = torch.randn(2, 3, dtype=torch.float64)
    f = ops.setup_filter([1, 3, 3, 1]).double()
    noise = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    for fused in (True, False):
        y = ops.modulated_conv2d(x, w, s, noise=noise, up=2, padding=1, resample_filter=f, fused_modconv=fused,
                                 impl="ref")
        assert y.shape == (2, 4, 16, 16)
        torch.testing.assert_close(y, naive_modconv(x, w, s, noise, 2, 1, 1, f, True, True))


def test_demodulated_output_has_unit_weight_norm_scale():
    # With demodulation, scaling the weight or the styles does not change the output.
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    s = torch.rand(2, 3, dtype=torch.float64) + 0.5
    a = ops.modulated_conv2d(x, w, s, padding=1, impl="ref")
    b = ops.modulated_conv2d(x, w * 1000, s * 0.001, padding=1, impl="ref")
    torch.testing.assert_close(a, b)


def test_float16_prenormalisation_avoids_overflow():
    x = torch.randn(2, 8, 6, 6)
    w = torch.randn(4, 8, 3, 3) * 300  # w'^2 sums overflow fp16 without pre-normalisation
    s = torch.randn(2, 8) * 300
    want = ops.modulated_conv2d(x, w, s, padding=1, impl="ref")
    try:
        got = ops.modulated_conv2d(x.half(), w.half(), s.half(), padding=1, fused_modconv=False, impl="ref")
    except RuntimeError as exc:  # a CPU build without fp16 convolution
        pytest.skip(f"fp16 conv2d unsupported on this CPU build: {exc}")
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), want, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("fused", [True, False])
def test_float16_autocast_prenormalises_float32_inputs(fused):
    # Under float16 autocast x stays float32 but the convolution runs in float16: x * s * w summed over
    # I * kh * kw overflows there unless the weight and styles are pre-normalised as for float16 x.
    x = torch.randn(2, 8, 6, 6) * 10
    w = torch.randn(4, 8, 3, 3) * 300
    s = torch.randn(2, 8) * 300
    want = ops.modulated_conv2d(x, w, s, padding=1, fused_modconv=fused, impl="ref")
    with torch.autocast("cpu", dtype=torch.float16):
        got = ops.modulated_conv2d(x, w, s, padding=1, fused_modconv=fused, impl="ref")
    assert got.dtype == torch.float16 and torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), want, atol=3e-2, rtol=2e-2)


@pytest.mark.parametrize("up, down", [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("fused", [True, False])
def test_gradcheck_gradgradcheck(up, down, fused):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, dtype=torch.float64, generator=g, requires_grad=True)
    s = torch.randn(2, 2, dtype=torch.float64, generator=g, requires_grad=True)
    f = ops.setup_filter([1, 3, 3, 1]).double()

    def fn(x, w, s):
        return ops.modulated_conv2d(x, w, s, up=up, down=down, padding=1, resample_filter=f, fused_modconv=fused,
                                    impl="ref")

    assert torch.autograd.gradcheck(fn, (x, w, s))
    assert torch.autograd.gradgradcheck(fn, (x, w, s))


def test_channels_last_and_noncontiguous():
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    s = torch.randn(2, 3, dtype=torch.float64)
    want = ops.modulated_conv2d(x, w, s, padding=1, impl="ref")
    for fused in (True, False):
        torch.testing.assert_close(ops.modulated_conv2d(x.to(memory_format=torch.channels_last),
                                                        w.to(memory_format=torch.channels_last), s, padding=1,
                                                        fused_modconv=fused, impl="ref"), want)
        xt = x.transpose(2, 3).contiguous().transpose(2, 3)
        torch.testing.assert_close(ops.modulated_conv2d(xt, w, s.t().contiguous().t(), padding=1, fused_modconv=fused,
                                                        impl="ref"), want)


X, W, S = torch.ones(2, 3, 8, 8), torch.ones(4, 3, 3, 3), torch.ones(2, 3)


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(x=torch.ones(3, 8, 8), weight=W, styles=S), ValueError, "x must be 4-D"),
    (dict(x=X, weight=torch.ones(4, 2, 3, 3), styles=S), ValueError, "weight must have shape [O, 3, kh, kw]"),
    (dict(x=X, weight=W, styles=torch.ones(2, 4)), ValueError, "styles must have shape [2, 3]"),
    (dict(x=X, weight=W, styles=torch.ones(3, 3)), ValueError, "styles must have shape [2, 3]"),
    (dict(x=X, weight=W, styles=S, up=2), ValueError, "resample_filter is required"),
    (dict(x=X, weight=W, styles=S, up=0), ValueError, "up must be >= 1"),
    (dict(x=X, weight=W, styles=S, resample_filter=torch.ones(1, 2, 2)), ValueError, "resample_filter must be"),
    (dict(x=X.long(), weight=W, styles=S), TypeError, "x must have a floating-point dtype"),
    (dict(x=X, weight=W, styles=S.to("meta")), ValueError, "styles is on meta"),
    (dict(x=torch.ones(2, 3, 2, 2), weight=W, styles=S), ValueError, "leaves no output"),
])
def test_errors(kwargs, exc, words):
    with pytest.raises(exc) as info:
        ops.modulated_conv2d(**kwargs)
    assert words in str(info.value)

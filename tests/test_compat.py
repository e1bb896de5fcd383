"""StyleGAN2-ADA call sites run unchanged against gan_fast.compat."""

import pytest
import torch
import torch.nn.functional as F

from gan_fast.compat import bias_act, conv2d_gradfix, conv2d_resample, upfirdn2d
from gan_fast.reference.conv2d_resample import conv2d_resample as ref_conv2d_resample


def test_stylegan2_call_sites():
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    b = torch.randn(4, dtype=torch.float64)
    y = bias_act.bias_act(x, b, act="lrelu", gain=1.0, clamp=256, impl="ref")
    torch.testing.assert_close(y, F.leaky_relu(x + b[None, :, None, None], 0.2))
    f = upfirdn2d.setup_filter([1, 3, 3, 1], device=x.device).double()
    assert upfirdn2d.upsample2d(x, f).shape == (2, 4, 16, 16)
    assert upfirdn2d.downsample2d(x, f).shape == (2, 4, 4, 4)
    assert upfirdn2d.filter2d(x, f, padding=1).shape == (2, 4, 10, 10)
    w = torch.randn(3, 4, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(conv2d_gradfix.conv2d(x, w, padding=1), F.conv2d(x, w, padding=1))
    assert conv2d_gradfix.enabled


@pytest.mark.parametrize("up, down, groups", [(1, 1, 1), (2, 1, 1), (1, 2, 2), (2, 1, 2)])
def test_conv2d_resample_matches_reference(up, down, groups):
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    w = torch.randn(6, 4 // groups, 3, 3, dtype=torch.float64)
    f = upfirdn2d.setup_filter([1, 3, 3, 1]).double()
    got = conv2d_resample.conv2d_resample(x, w, f, up=up, down=down, padding=1, groups=groups)
    torch.testing.assert_close(got, ref_conv2d_resample(x, w, f, up, down, (1, 1, 1, 1), groups=groups))
    with pytest.raises(ValueError, match="w must have shape"):
        conv2d_resample.conv2d_resample(x, w[:, :1], f, groups=groups)
    with pytest.raises(ValueError, match="f is required"):
        conv2d_resample.conv2d_resample(x, w, None, up=2, groups=groups)

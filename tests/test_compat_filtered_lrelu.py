"""gan_fast.compat.filtered_lrelu: StyleGAN3's call sites on CPU tensors with impl='cuda' (the default),
checked against the definition written in tests/test_filtered_lrelu_ref.py."""

import math

import numpy as np
import pytest
import torch

from gan_fast.compat import filtered_lrelu
from gan_fast.errors import BackendUnavailableError
from tests.test_filtered_lrelu_ref import naive_filtered_lrelu


def test_stylegan3_layer_call_site_on_cpu():
    """The call StyleGAN3's SynthesisLayer makes (keywords, 1-D filter buffers, b already in x's dtype)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 14, 14, generator=gen)
    b = torch.randn(4, generator=gen)
    fu, fd = torch.rand(12, generator=gen), torch.rand(12, generator=gen)
    fu, fd = fu / fu.sum(), fd / fd.sum()
    y = filtered_lrelu.filtered_lrelu(x=x, fu=fu, fd=fd, b=b.to(x.dtype), up=2, down=2, padding=[9, 8, 9, 8],
                                      gain=np.sqrt(2), slope=0.2, clamp=256)
    want = naive_filtered_lrelu(x.double(), fu.double(), fd.double(), b.double(), 2, 2, [9, 8, 9, 8], math.sqrt(2),
                                0.2, 256.0)
    assert y.shape == want.shape == (2, 4, 12, 12)
    torch.testing.assert_close(y.double(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("up,down", [(3, 1), (1, 3), (2, 5)])
def test_any_integer_factor_runs_the_reference(up, down):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 6, 7, generator=gen, dtype=torch.float64)
    f = torch.rand(5, generator=gen, dtype=torch.float64)
    y = filtered_lrelu.filtered_lrelu(x, f, f, up=up, down=down, padding=[2, 3, 1, 4], flip_filter=True,
                                      impl="cuda")
    want = naive_filtered_lrelu(x, f, f, None, up, down, [2, 3, 1, 4], math.sqrt(2), 0.2, None, True)
    torch.testing.assert_close(y, want)


def test_defaults_and_ref_impl():
    x = torch.randn(1, 2, 5, 5)
    torch.testing.assert_close(filtered_lrelu.filtered_lrelu(x), filtered_lrelu.filtered_lrelu(x, impl="ref"))
    torch.testing.assert_close(filtered_lrelu.filtered_lrelu(x), torch.nn.functional.leaky_relu(x, 0.2) * math.sqrt(2))


def test_errors_are_named():
    with pytest.raises(ValueError, match="clamp must be >= 0"):
        filtered_lrelu.filtered_lrelu(torch.randn(1, 1, 4, 4), clamp=-1)
    with pytest.raises(ValueError, match="up must be >= 1"):
        filtered_lrelu.filtered_lrelu(torch.randn(1, 1, 4, 4), up=0)


def test_other_factors_refuse_an_explicit_fast_impl():
    """Factors outside 1, 2, 4 run the reference: impl='cuda' (automatic) and 'ref' take them, an explicit
    'triton' is refused (its kernels take 1, 2 and 4), naming impl='ref'; mixed dtypes follow x."""
    x = torch.randn(1, 2, 6, 7)
    f = torch.rand(5, dtype=torch.float64)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)
    y = filtered_lrelu.filtered_lrelu(x, f, f, b, up=3, padding=2, impl="ref")
    assert y.dtype == torch.float32
    (db,) = torch.autograd.grad(y.sum(), b)
    assert db.dtype == torch.float64
    torch.testing.assert_close(filtered_lrelu.filtered_lrelu(x, f, f, b, up=3, padding=2), y, rtol=0, atol=0)
    with pytest.raises(BackendUnavailableError, match="impl='triton' cannot run up=3.*impl='ref' runs it"):
        filtered_lrelu.filtered_lrelu(x, f, f, up=3, padding=2, impl="triton")
    with pytest.raises(ValueError, match="impl must be"):
        filtered_lrelu.filtered_lrelu(x, f, f, up=3, padding=2, impl="bogus")

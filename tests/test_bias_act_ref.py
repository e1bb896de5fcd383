"""Reference bias_act against independent formulas; gradcheck; layouts; errors."""

import math

import pytest
import torch

from gan_fast import activations, ops

# Independent formulas, written from the definitions (not from torch.nn.functional).
SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805
FORMULAS = {
    "linear": lambda x, a: x,
    "relu": lambda x, a: torch.where(x > 0, x, torch.zeros_like(x)),
    "lrelu": lambda x, a: torch.where(x > 0, x, a * x),
    "tanh": lambda x, a: (torch.exp(2 * x) - 1) / (torch.exp(2 * x) + 1),
    "sigmoid": lambda x, a: 1 / (1 + torch.exp(-x)),
    "elu": lambda x, a: torch.where(x > 0, x, a * (torch.exp(x) - 1)),
    "selu": lambda x, a: SELU_SCALE * torch.where(x > 0, x, SELU_ALPHA * (torch.exp(x) - 1)),
    "softplus": lambda x, a: torch.log(1 + torch.exp(x)),
    "swish": lambda x, a: x / (1 + torch.exp(-x)),
}
DEFAULTS = {  # (alpha, gain) as StyleGAN2 defines them; elu's alpha is its usual 1
    "linear": (0.0, 1.0), "relu": (0.0, math.sqrt(2)), "lrelu": (0.2, math.sqrt(2)), "tanh": (0.0, 1.0),
    "sigmoid": (0.0, 1.0), "elu": (1.0, 1.0), "selu": (0.0, 1.0), "softplus": (0.0, 1.0),
    "swish": (0.0, math.sqrt(2)),
}


def expected(x, b, dim, act, alpha=None, gain=None, clamp=None):
    a0, g0 = DEFAULTS[act]
    alpha = a0 if alpha is None else alpha
    gain = g0 if gain is None else gain
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + b.view(shape)
    y = FORMULAS[act](x, alpha) * gain
    if clamp is not None:
        y = torch.minimum(torch.maximum(y, torch.full_like(y, -clamp)), torch.full_like(y, clamp))
    return y


def test_activation_table_matches_defaults():
    assert set(activations.ACTIVATIONS) == set(DEFAULTS)
    for name, (alpha, gain) in DEFAULTS.items():
        spec = activations.get(name)
        assert spec.def_alpha == pytest.approx(alpha) and spec.def_gain == pytest.approx(gain), name
    assert len({a.code for a in activations.ACTIVATIONS.values()}) == len(DEFAULTS)


@pytest.mark.parametrize("act", sorted(DEFAULTS))
@pytest.mark.parametrize("dim", [1, 0, 2, -1])
def test_matches_formula(act, dim):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 7, dtype=torch.float64, generator=g) * 3
    b = torch.randn(x.shape[dim], dtype=torch.float64, generator=g)
    torch.testing.assert_close(ops.bias_act(x, b, dim=dim, act=act, impl="ref"), expected(x, b, dim % 3, act))


@pytest.mark.parametrize("act", ["lrelu", "elu", "tanh"])
def test_alpha_gain_clamp(act):
    x = torch.randn(4, 6, 3, dtype=torch.float64) * 4
    b = torch.randn(6, dtype=torch.float64)
    y = ops.bias_act(x, b, act=act, alpha=0.3, gain=2.5, clamp=1.5, impl="ref")
    torch.testing.assert_close(y, expected(x, b, 1, act, alpha=0.3, gain=2.5, clamp=1.5))
    assert y.abs().max() <= 1.5
    assert (y.abs() == 1.5).any(), "the test input should saturate somewhere"


def test_no_bias_and_dtype_preserved():
    x = torch.randn(2, 3, 4, 4, dtype=torch.float32)
    y = ops.bias_act(x, None, act="relu", impl="ref")
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, expected(x, None, 1, "relu"))
    # A float32 bias on a bfloat16 input is cast to the input's dtype.
    yb = ops.bias_act(x.bfloat16(), torch.ones(3), act="linear", impl="ref")
    assert yb.dtype == torch.bfloat16


@pytest.mark.parametrize("act", sorted(DEFAULTS))
def test_gradcheck_gradgradcheck(act):
    x = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():  # keep away from the kinks of relu/lrelu/elu/selu
        x.add_(torch.where(x.abs() < 0.05, torch.full_like(x, 0.2), torch.zeros_like(x)))

    def fn(x, b):
        return ops.bias_act(x, b, act=act, clamp=3.0, impl="ref")

    assert torch.autograd.gradcheck(fn, (x, b))
    assert torch.autograd.gradgradcheck(fn, (x, b))


def test_channels_last_and_noncontiguous():
    x = torch.randn(2, 5, 6, 7, dtype=torch.float64)
    b = torch.randn(5, dtype=torch.float64)
    want = expected(x, b, 1, "lrelu")
    y = ops.bias_act(x.to(memory_format=torch.channels_last), b, act="lrelu", impl="ref")
    torch.testing.assert_close(y, want)
    wide = torch.randn(2, 5, 6, 14, dtype=torch.float64)
    sliced = wide[..., ::2]
    assert not sliced.is_contiguous()
    torch.testing.assert_close(ops.bias_act(sliced, b, act="lrelu", impl="ref"), expected(sliced, b, 1, "lrelu"))


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(x=[1.0, 2.0]), TypeError, "x must be a torch.Tensor"),
    (dict(x=torch.ones(2, 3, dtype=torch.int64)), TypeError, "x must have a floating-point dtype"),
    (dict(x=torch.ones(2, 3), b=torch.ones(4)), ValueError, "b must have shape [3]"),
    (dict(x=torch.ones(2, 3), b=torch.ones(3, 1)), ValueError, "b must be 1-D"),
    (dict(x=torch.ones(2, 3), dim=2), ValueError, "dim must be in"),
    (dict(x=torch.ones(2, 3), act="gelu"), ValueError, "act must be one of"),
    (dict(x=torch.ones(2, 3), clamp=-1.0), ValueError, "clamp must be >= 0"),
    (dict(x=torch.ones(2, 3), impl="cudnn"), ValueError, "impl must be None or one of"),
    (dict(x=torch.ones(2, 3), b=torch.ones(3, device="meta")), ValueError, "b is on meta but x is on cpu"),
])
def test_errors(kwargs, exc, words):
    with pytest.raises(exc) as info:
        ops.bias_act(**kwargs)
    assert words in str(info.value)

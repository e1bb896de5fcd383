"""Every activation of every fast bias_act backend at the extremes of the floating-point range.

For every finite input up to +-max (zeros, subnormals, the branch points, a
geometric sweep of both signs): the value, the gradient and the second
derivative agree with a float64 computation (autograd on the reference in
float64, rounded to the tested dtype). At +-inf and NaN they agree with the
reference in the tested dtype (PyTorch's semantics: swish(-inf) is NaN, as
F.silu), except for the fast backends' documented convention under a clamp:
where the pre-clamp value is NaN or beyond the clamp, the gradient is the
clamp's mask (0), where the reference's chain rule may give 0 * NaN = NaN.

Backends: cpp (float32 and bfloat16) and triton (float32; under the
interpreter on CPU). On a GPU machine the same cases run on CUDA tensors.
"""

import math

import pytest
import torch

from conftest import HAS_NVIDIA_DEVICE
from gan_fast import activations, extension, ops

ACTS = sorted(activations.ACTIVATIONS)
CLAMP = 256.0
# (rtol, atol of values, atol of derivatives). Values: an absolute slack far below the smallest normal float,
# for a GPU's flush-to-zero; derivatives are O(gain) and lose ~1e-7 absolute to cancellation near their zeros.
TOL = {torch.float32: (2e-5, 1e-35, 1e-6), torch.bfloat16: (1e-2, 1e-35, 1e-6)}
CONFIGS = [("cpp", torch.float32), ("cpp", torch.bfloat16), ("triton", torch.float32)]


def _sweep(dtype):
    fi = torch.finfo(dtype)
    special = [0.0, fi.tiny, fi.tiny / 4, 1e-30, 1e-7, 0.5, 0.625, 1.0, 2.0, 9.0, 17.0, 19.9, 20.0, 20.5, 30.0,
               44.5, 87.0, 88.5, 88.8, 89.0, 100.0, 103.5, 104.0, 110.0, 1e4, 1e10, 1e20, 1e30, 1e35, 1.5e35, 1e37,
               1e38, fi.max]
    geometric = torch.logspace(-37, math.log10(fi.max), 33, dtype=torch.float64).tolist()
    finite = [v for m in special + geometric for v in (m, -m)]
    x = torch.tensor(finite + [math.inf, -math.inf, math.nan], dtype=torch.float64).to(dtype)
    return x[torch.isfinite(x).logical_not() | (x.double().abs() <= fi.max)]


def _orders(impl, x, act, clamp):
    """(y, dy/dx, d2y/dx2) elementwise, by autograd through bias_act (no bias, dim 0)."""
    x = x.detach().clone().requires_grad_(True)
    y = ops.bias_act(x, None, dim=0, act=act, clamp=clamp, impl=impl)
    (d1,) = torch.autograd.grad(y, x, torch.ones_like(y), create_graph=True)
    d2 = torch.autograd.grad(d1.sum(), x, allow_unused=True)[0] if d1.requires_grad else None
    return y.detach(), d1.detach(), (torch.zeros_like(x) if d2 is None else d2.detach())


def _config(impl, dtype, device):
    if impl == "cpp" and device.type == "cuda" and not extension.has_cuda():
        pytest.skip("the extension has no CUDA kernels here")
    if impl == "triton" and device.type == "cpu" and HAS_NVIDIA_DEVICE:
        pytest.skip("Triton on CPU needs the interpreter")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the Triton interpreter's numpy reports inf * 0
@pytest.mark.parametrize("clamp", [None, CLAMP])
@pytest.mark.parametrize("impl,dtype", CONFIGS, ids=[f"{i}-{str(d)[6:]}" for i, d in CONFIGS])
@pytest.mark.parametrize("act", ACTS)
def test_activation_extremes(act, impl, dtype, clamp, device):
    _config(impl, dtype, device)
    x = _sweep(dtype).to(device)
    finite = torch.isfinite(x)
    got = _orders(impl, x, act, clamp)
    exact = [t.to(dtype) for t in _orders("ref", x.double(), act, clamp)]  # float64, rounded to dtype
    ref = _orders("ref", x, act, clamp)  # PyTorch's semantics in dtype (the spec at +-inf and NaN)
    rtol, atol_value, atol_deriv = TOL[dtype]
    if device.type == "cuda":
        rtol *= 2.5  # the GPU's exp (ex2.approx) loses ~|x| * 2**-24 relative
    spec = activations.get(act)
    pre = ops.bias_act(x.double(), None, dim=0, act=act, impl="ref")  # the pre-clamp value, float64
    # A finite input whose pre-clamp value sits at the clamp's edge may round to either side: not compared.
    edge = (pre.abs() - CLAMP).abs() <= 1e-3 * CLAMP if clamp is not None else torch.zeros_like(finite)
    for name, g, e, r, atol in zip(("value", "gradient", "2nd derivative"), got, exact, ref,
                                   (atol_value, atol_deriv * spec.def_gain, atol_deriv * spec.def_gain)):
        assert g.dtype == dtype and g.shape == x.shape
        g64, e64, r64 = g.double(), e.double(), r.double()
        close = torch.isclose(g64, e64, rtol=rtol, atol=atol, equal_nan=True)
        bad = finite & ~edge & ~close
        assert not bad.any(), (f"{impl} {act} clamp={clamp} {dtype}: {name} at finite x "
                               f"{x[bad].tolist()}: got {g64[bad].tolist()}, float64 gives {e64[bad].tolist()}")
        same = torch.isclose(g64, r64, rtol=rtol, atol=atol, equal_nan=True)
        if clamp is not None and name != "value":  # the clamp's mask: 0 where the pre-clamp value is NaN or outside
            masked = pre.isnan() | (pre.abs() > clamp)
            same |= masked & (g64 == 0) & r64.isnan()
        bad = ~finite & ~same
        assert not bad.any(), (f"{impl} {act} clamp={clamp} {dtype}: {name} at {x[bad].tolist()}: "
                               f"got {g64[bad].tolist()}, the reference gives {r64[bad].tolist()}")


def test_swish_regressions():
    """The C++ swish was -0.856 at -1e38 (a saturating exp) and -inf at -inf (F.silu gives NaN)."""
    x = torch.tensor([-1e38, -1.5e35, -torch.finfo(torch.float32).max, -math.inf, 1e38, math.inf])
    y = ops.bias_act(x, None, dim=0, act="swish", gain=1.0, impl="cpp")
    want = torch.nn.functional.silu(x)
    torch.testing.assert_close(y, want, equal_nan=True, rtol=0, atol=0)
    assert torch.isnan(y[3]) and y[0] == 0

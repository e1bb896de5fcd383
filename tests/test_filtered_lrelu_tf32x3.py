"""filtered_lrelu's float32 dots on tensor cores: a CPU emulation of ``input_precision="tf32x3"`` against the
self-test's float32 bound.

No GPU runs the kernels here, so the precision of their float32 dots is decided by emulating them on the CPU:

* **the algorithm**: the kernels' banded products, on whole planes instead of tiles (the tiles only split the
  sums; the products are the same): with ``Ay[p, i] = gu[i*up + py0 - p]`` (``gu`` the up filter as a
  correlation kernel times ``up``) and ``Dy[o, p] = gd[p - o*down]``, the forward is
  ``U = Ay @ (X @ Ax^T)``, ``A = clamp(lrelu(U) * gain)``, ``Y = (Dy @ A) @ Dx^T`` and the backward
  ``dA = (Dy^T @ dY) @ Dx``, ``dU = dA * act'(U)``, ``dX = (Ay^T @ dU) @ Ax``, ``db = sum dX``, each ``@`` in
  the kernels' order. In float64 this formulation equals ``gan_fast.reference.filtered_lrelu`` (checked
  below), so it is the kernels' arithmetic, not a new one.
* **a dot**: ``ieee`` is a float32 matmul; ``tf32x3`` splits each float32 operand ``x`` into
  ``hi = x rounded to TF32`` (10-bit mantissa, round to nearest, ties to even) and ``lo = x - hi rounded to
  TF32``, and sums ``hi·hi + hi·lo + lo·hi`` in float32 (the small products first, as Triton does; the
  ``lo·lo`` product is dropped). TF32 products of 11-bit significands are exact in float32, as on the
  tensor cores.
* **the bound**: the self-test's (``gan_fast.self_test.judge``): max error against float64 at most
  ``ERROR_FACTOR`` (8) x ref's own float32 error + 64 float32 eps at the RMS of the result.

The default ``FP32_INPUT_PRECISION`` of the kernels is ``tf32x3`` because this emulation passes the bound at
the self-test's cases (forward, the input and bias gradients) with room to spare; the table in the kernel
module's docstring (StyleGAN3-T/-R shapes, *emulated*) comes from ``python tests/test_filtered_lrelu_tf32x3.py``.
On a GPU the first-use self-test judges the real kernel, as for every op.
"""

from __future__ import annotations

import math
import sys

import pytest
import torch

from gan_fast.kernels import filtered_lrelu as K
from gan_fast.reference import filtered_lrelu as R
from gan_fast.shapes import filtered_lrelu_size
from gan_fast.self_test.judge import ERROR_FACTOR, FLOOR_EPS

EPS32 = torch.finfo(torch.float32).eps


def tf32(x: torch.Tensor) -> torch.Tensor:
    """float32 ``x`` rounded to TF32 (10 explicit mantissa bits), round to nearest, ties to even."""
    bits = x.contiguous().view(torch.int32)
    keep = (bits >> 13) & 1
    rounded = (bits + 0x0FFF + keep) & ~0x1FFF
    return rounded.view(torch.float32).view_as(x)


def mm(a: torch.Tensor, b: torch.Tensor, precision: str) -> torch.Tensor:
    """One dot in ``precision``: 'ieee' (float32), 'tf32x3' (emulated) or 'float64'."""
    if precision == "float64":
        return a.double() @ b.double()
    a, b = a.float(), b.float()
    if precision == "ieee":
        return a @ b
    a_hi, b_hi = tf32(a), tf32(b)
    a_lo, b_lo = tf32(a - a_hi), tf32(b - b_hi)
    return (a_hi @ b_lo + a_lo @ b_hi) + a_hi @ b_hi


def _band_up(f: torch.Tensor, n_in: int, n_up: int, up: int, pad0: int, flip: bool) -> torch.Tensor:
    """A[p, i] = gu[i*up + pad0 - p] (gu: f as a correlation kernel, times up), [n_up, n_in]."""
    g = (f if flip else f.flip(0)) * up
    idx = torch.arange(n_in)[None, :] * up + pad0 - torch.arange(n_up)[:, None]
    valid = (idx >= 0) & (idx < g.numel())
    return torch.where(valid, g[idx.clamp(0, g.numel() - 1)], torch.zeros((), dtype=g.dtype))


def _band_down(f: torch.Tensor, n_out: int, n_up: int, down: int, flip: bool) -> torch.Tensor:
    """D[o, p] = gd[p - o*down], [n_out, n_up]."""
    g = f if flip else f.flip(0)
    idx = torch.arange(n_up)[None, :] - torch.arange(n_out)[:, None] * down
    valid = (idx >= 0) & (idx < g.numel())
    return torch.where(valid, g[idx.clamp(0, g.numel() - 1)], torch.zeros((), dtype=g.dtype))


class Geometry:
    def __init__(self, x_shape, fu, fd, up, down, padding, gain, slope, clamp, flip):
        n, c, h, w = x_shape
        px0, px1, py0, py1 = padding
        nfu, nfd = fu.numel(), fd.numel()
        self.oh, self.ow = filtered_lrelu_size(h, w, (nfu, nfu), (nfd, nfd), up, down, padding)
        self.mh, self.mw = (self.oh - 1) * down + nfd, (self.ow - 1) * down + nfd
        dt = torch.float64
        self.ay = _band_up(fu.to(dt), h, self.mh, up, py0, flip)
        self.ax = _band_up(fu.to(dt), w, self.mw, up, px0, flip)
        self.dy = _band_down(fd.to(dt), self.oh, self.mh, down, flip)
        self.dx = _band_down(fd.to(dt), self.ow, self.mw, down, flip)
        self.gain, self.slope, self.clamp = gain, slope, clamp

    def mats(self, precision):
        dt = torch.float64 if precision == "float64" else torch.float32  # the kernels gather float32 taps
        return [m.to(dt) for m in (self.ay, self.ax, self.dy, self.dx)]

    def forward(self, x, b, precision):
        ay, ax, dy, dx = self.mats(precision)
        dt = ay.dtype
        xb = x.to(dt) + (b.to(dt)[None, :, None, None] if b is not None else 0)
        u = mm(ay, mm(xb, ax.t(), precision), precision)
        a = torch.where(u > 0, u, u * self.slope) * self.gain
        if self.clamp is not None:
            a = a.clamp(-self.clamp, self.clamp)
        return mm(mm(dy, a, precision), dx.t(), precision), u

    def backward(self, g, u, precision):
        ay, ax, dy, dx = self.mats(precision)
        da = mm(mm(dy.t(), g.to(ay.dtype), precision), dx, precision)
        pre = torch.where(u > 0, u, u * self.slope) * self.gain
        fac = torch.where(u > 0, torch.ones_like(u), torch.full_like(u, self.slope)) * self.gain
        if self.clamp is not None:
            fac = torch.where((pre >= -self.clamp) & (pre <= self.clamp), fac, torch.zeros_like(fac))
        dxv = mm(mm(ay.t(), da * fac, precision), ax, precision)
        return dxv, dxv.sum(dim=(0, 2, 3))


def _ref(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip):
    return R.filtered_lrelu(x, fu.to(x.dtype), fd.to(x.dtype), b, up, down, tuple(padding), gain, slope, clamp, flip)


def errors(x_shape, fu, fd, up, down, padding, gain=math.sqrt(2), slope=0.2, clamp=None, flip=False, bias=True,
           seed=0):
    """{result: (ieee error, tf32x3 error, bound)} against float64, for y, dx and db."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(x_shape, generator=gen)
    b = torch.randn(x_shape[1], generator=gen) if bias else None
    geo = Geometry(x_shape, fu, fd, up, down, padding, gain, slope, clamp, flip)
    dy = torch.randn(x_shape[0], x_shape[1], geo.oh, geo.ow, generator=gen)

    def ref_pass(dt):
        xx = x.to(dt).requires_grad_()
        bb = b.to(dt).requires_grad_() if b is not None else None
        y = _ref(xx, fu, fd, bb, up, down, padding, gain, slope, clamp, flip)
        grads = torch.autograd.grad((y * dy.to(dt)).sum(), [xx] + ([bb] if bb is not None else []))
        return [y.detach()] + list(grads)

    truth, base = ref_pass(torch.float64), ref_pass(torch.float32)
    out = {}
    for precision in ("ieee", "tf32x3"):
        y, u = geo.forward(x, b, precision)
        # the backward's mask comes from the float32 forward's own u (the kernel saves its codes)
        dx, db = geo.backward(dy, u, precision)
        for name, got in zip(("y", "dx", "db"), (y, dx, db)):
            k = ("y", "dx", "db").index(name)
            if k >= len(truth):
                continue
            t, r = truth[k], base[k]
            err = (got.double() - t).abs().max().item()
            ref_err = (r.double() - t).abs().max().item()
            rms = t.square().mean().sqrt().item()
            bound = ERROR_FACTOR * ref_err + FLOOR_EPS[torch.float32] * EPS32 * rms
            out.setdefault(name, {})[precision] = err
            out[name]["bound"] = bound
            out[name]["ref"] = ref_err
    return out


def _taps(n, gen):
    return (torch.rand(n, generator=gen) + 0.1).div_(n / 2)


def _case_up2():
    gen = torch.Generator().manual_seed(1)
    return dict(x_shape=(2, 2, 24, 26), fu=_taps(12, gen), fd=_taps(12, gen), up=2, down=2, padding=[11, 10, 9, 12],
                clamp=1.5)


def _case_up4():
    gen = torch.Generator().manual_seed(2)
    return dict(x_shape=(1, 3, 19, 17), fu=_taps(24, gen), fd=_taps(12, gen), up=4, down=2, padding=[14, 13, -1, 15],
                slope=0.3, flip=True, bias=False)


# ------------------------------------------------------------------------------------------------------ tests


def test_tf32_rounding_keeps_ten_mantissa_bits_to_nearest_even():
    one = torch.tensor([1.0])
    ulp = 2.0 ** -10
    x = torch.tensor([1.0 + ulp / 2, 1.0 + 1.5 * ulp, 1.0 + ulp * 0.49, -3.0 - ulp * 0.51 * 2, 0.0])
    got = tf32(x)
    want = torch.tensor([1.0, 1.0 + 2 * ulp, 1.0, -3.0 - 2 * ulp, 0.0])  # ties to even; |3| has ulp 2^-9
    assert torch.equal(got, want)
    r = torch.randn(10000, generator=torch.Generator().manual_seed(0))
    hi = tf32(r)
    assert ((hi - r).abs() <= r.abs() * 2.0 ** -11).all()
    assert torch.equal(tf32(hi), hi) and torch.equal(tf32(one), one)
    lo = tf32(r - hi)
    assert ((hi + lo - r).abs() <= r.abs() * 2.0 ** -21).all()  # hi + lo holds about 21 bits of x


def test_the_band_formulation_is_the_reference_in_float64():
    for case in (_case_up2(), _case_up4()):
        gen = torch.Generator().manual_seed(3)
        x = torch.randn(case["x_shape"], generator=gen, dtype=torch.float64)
        b = torch.randn(case["x_shape"][1], generator=gen, dtype=torch.float64) if case.get("bias", True) else None
        kw = dict(gain=math.sqrt(2), slope=case.get("slope", 0.2), clamp=case.get("clamp"),
                  flip=case.get("flip", False))
        geo = Geometry(case["x_shape"], case["fu"], case["fd"], case["up"], case["down"], case["padding"], **kw)
        y, u = geo.forward(x, b, "float64")
        want = _ref(x, case["fu"], case["fd"], b, case["up"], case["down"], case["padding"], kw["gain"],
                    kw["slope"], kw["clamp"], kw["flip"])
        assert y.shape == want.shape
        assert (y - want).abs().max().item() <= 1e-12 * max(want.abs().max().item(), 1.0)
        xx = x.clone().requires_grad_()
        g = torch.randn(want.shape, generator=gen, dtype=torch.float64)
        yy = _ref(xx, case["fu"], case["fd"], b, case["up"], case["down"], case["padding"], kw["gain"], kw["slope"],
                  kw["clamp"], kw["flip"])
        (gx,) = torch.autograd.grad((yy * g).sum(), [xx])
        dx, _ = geo.backward(g, u, "float64")
        assert (dx - gx).abs().max().item() <= 1e-12 * max(gx.abs().max().item(), 1.0)


@pytest.mark.parametrize("case", [_case_up2, _case_up4], ids=["up2", "up4"])
def test_tf32x3_passes_the_self_test_float32_bound(case):
    errs = errors(**case())
    for name, e in errs.items():
        assert e["ieee"] <= e["bound"], (name, e)
        assert e["tf32x3"] <= e["bound"], (name, e)
        assert e["tf32x3"] <= 0.5 * e["bound"], (name, e)  # with room to spare


def test_the_kernels_default_to_tf32x3_and_refuse_other_precisions():
    assert K.FP32_INPUT_PRECISION == "tf32x3"
    assert K.FP32_PRECISIONS == ("tf32x3", "ieee")
    from gan_fast.kernels import _device

    plan = K.plan_fwd_launch(1, 1, 40, 40, 2, 2, 12, 12, torch.float32, _device.SM90)
    assert plan.precision == "tf32x3" and not plan.lowp
    assert K.plan_fwd_launch(1, 1, 40, 40, 2, 2, 12, 12, torch.float32, _device.SM90, "ieee").precision == "ieee"
    assert K.plan_bwd_launch(1, 1, 40, 40, 2, 2, 12, 12, torch.float32, _device.INTERPRETER).precision == "ieee"
    with pytest.raises(ValueError, match="tf32x3.*ieee"):
        K.plan_fwd_launch(1, 1, 40, 40, 2, 2, 12, 12, torch.float32, _device.SM90, "tf32")


def test_the_ieee_forward_tiles_of_a_gpu_compute_the_same_result():
    """With fp32_precision='ieee' a GPU's forward takes tiles of at most 32 samples (tiles of 64 spill): run
    those tiles under the interpreter (the launcher planning for sm_90) against its own tiles and ref."""
    from gan_fast.kernels import _device

    case = _case_up2()
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(case["x_shape"], generator=gen)
    b = torch.randn(case["x_shape"][1], generator=gen)
    args = (case["fu"], case["fd"], b, 2, 2, *case["padding"], math.sqrt(2), 0.2, case["clamp"], False,
            K.MODE_ACT_MASK)
    small = K.plan_fwd_launch(*case["x_shape"][:2], 1, 1, 2, 2, 12, 12, torch.float32, _device.SM90, "ieee")
    big = K.plan_fwd_launch(*case["x_shape"][:2], 1, 1, 2, 2, 12, 12, torch.float32, _device.INTERPRETER, "ieee")
    assert small.bu == 32 and big.bu == 64
    y0, m0 = K.filtered_lrelu_fwd(x, *args)
    with _device.assume_device(_device.SM90):
        y1, m1 = K.filtered_lrelu_fwd(x, *args, fp32_precision="ieee")
    want = _ref(x.double(), case["fu"], case["fd"], b.double(), 2, 2, case["padding"], math.sqrt(2), 0.2,
                case["clamp"], False)
    assert torch.equal(m0, m1)
    for y in (y0, y1):
        assert (y.double() - want).abs().max().item() < 1e-5


# ------------------------------------------------------------------------------------------------------ table

# StyleGAN3 layers (stylegan3_layer_configs(256), margin 10) whose filters are separable (the fused kernels'
# path), at one sample and 4 channels (errors are per plane): T #10, #11, #13; R (conv_kernel=1, radial
# filters: only the critically sampled layers have separable down filters) #13.
TABLE_LAYERS = (("T", 10, {}), ("T", 11, {}), ("T", 13, {}),
                ("R", 13, dict(conv_kernel=1, use_radial_filters=True, channel_base=65536, channel_max=1024)))


def table() -> str:
    from gan_fast.nn.alias_free import AliasFreeSynthesisLayer, stylegan3_layer_configs

    lines = ["| layer (256 px, 1 x 4 planes) | result | ieee error | tf32x3 error (*emulated*) | self-test bound |",
             "|---|---|---|---|---|"]
    for kind, index, kw in TABLE_LAYERS:
        cfg = stylegan3_layer_configs(256, **kw)[index]
        layer = AliasFreeSynthesisLayer(**cfg)
        fu, fd = layer.up_filter, layer.down_filter
        if fu.ndim != 1 or fd.ndim != 1:
            continue
        k = layer.conv_kernel
        size = layer.in_size[1] + k - 1
        errs = errors((1, 4, size, size), fu, fd, layer.up_factor, layer.down_factor, list(layer.padding),
                      layer.act_gain, layer.act_slope, layer.conv_clamp, False)
        name = (f"{kind} #{index}: {size} -> {layer.out_size[1]} px, up {layer.up_factor} ({fu.numel()} taps), "
                f"down {layer.down_factor} ({fd.numel()} taps)")
        for res, e in errs.items():
            lines.append(f"| {name} | {res} | {e['ieee']:.2e} | {e['tf32x3']:.2e} | {e['bound']:.2e} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
    sys.exit(0)

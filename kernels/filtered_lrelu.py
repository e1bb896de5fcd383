"""Triton filtered leaky ReLU (StyleGAN3): up-FIR, bias, leaky ReLU, gain, clamp and down-FIR in one pass.

Launchers: :func:`filtered_lrelu_fwd` (forward; or the forward linearised at
saved masks, the Jacobian-vector product the double backward needs) and
:func:`filtered_lrelu_bwd` (the transposed pass). No autograd here (see
``gan_fast.fused.filtered_lrelu``). Separable (1-D) or absent filters only; the
autograd glue sends 2-D filters to the composition of the upfirdn2d and
bias_act kernels.

Along one axis (the other is the same with its own padding), with ``gu`` the
up filter as a correlation kernel (``fu`` reversed unless ``flip_filter``,
times ``up`` per axis: the up-sampling gain ``up**2``) and ``gd`` likewise for
``fd`` (gain 1)::

    u[p] = sum_i gu[i*up + px0 - p] * (x[i] + b)       (the up-sampled, padded signal; 0 <= tap < fu)
    a[p] = clamp(lrelu(u[p], slope) * gain, -clamp, clamp)
    y[o] = sum_p gd[p - o*down] * a[p]                  (0 <= tap < fd)

Both sums are products with small banded matrices of taps, so one program
computes a ``TO x TO`` tile of outputs entirely on chip::

    U = Ay @ X @ Ax^T      X: [BI, BI] inputs (+ bias; zero outside the image), U: [BU, BU]
    A = act(U)             elementwise, float32
    Y = Dy @ A @ Dx^T      Y: [BO, BO], of which TO x TO are kept

(``tl.dot``; the tap matrices are gathered from the filters in the kernel, so
a call needs no host-side set-up). The tile of ``U`` spans
``(TO - 1)*down + fd`` up-sampled samples and needs ``<= BI`` inputs, which
:func:`plan_forward` picks by a rough cost model of dot multiply-adds and loads
(at up 2 / down 2 with 12-tap filters: 21 x 21 outputs from a 64 x 64 up-sampled
tile, about 900 multiply-adds per output: the bands are mostly zeros, the price
of keeping the up-sampled tile in registers in Triton, which has no shared
memory shifts).

What backward needs is a 2-bit code per up-sampled sample, stored as int8 over
the ``MH x MW`` samples that reach an output (``MW = (OW - 1)*down + fd``):
1 where ``u > 0`` (derivative ``gain``), 0 where not (``gain * slope``:
PyTorch's leaky ReLU takes the slope at 0 and NaN), 2 where the clamp cut
(derivative 0, torch.clamp's rule ``-clamp <= v <= clamp`` on the pre-clamp
value). Each up-sampled sample is computed by several overlapping tiles and
stored by the one that owns it.

The backward program owns a ``TI x TI`` tile of inputs::

    dA = Dy^T @ dY @ Dx      the transposed down-FIR of the incoming gradient
    dU = dA * d(mask)        gain, gain * slope or 0
    dX = Ay^T @ dU @ Ax      the transposed up-FIR
    db partial = sum(dX)     per program, reduced afterwards in a fixed order (no atomics)

Precision: float32 inputs go through ``tl.dot`` with ``input_precision`` ``fp32_precision`` (the launchers'
keyword; default :data:`FP32_INPUT_PRECISION`, ``"tf32x3"``; the backend passes the library's setting):
``"tf32x3"`` runs the float32 dots on the tensor cores as three TF32 products (hi*hi + hi*lo + lo*hi, hi the
operand rounded to TF32 and lo the TF32 rounding of the rest), ``"ieee"`` as float32 FMA (opt-in; its forward
takes tiles of at most 32 samples on a GPU: with tiles of 64 its FMA dots spill). float16 and bfloat16 feed
the dots in their own dtype (tensor cores, float32 accumulation: the intermediate tiles are rounded to x's
dtype between the dots, as the reference rounds its intermediate tensors); the activation and masks are
computed in float32. float64 is refused (the public op sends it to ``ref``). The interpreter runs ``ieee``.

Max error against float64 at StyleGAN3-T/-R shapes (one sample, 4 planes; x, bias and cotangent N(0, 1));
the ``tf32x3`` column is *emulated* on the CPU (``tests/test_filtered_lrelu_tf32x3.py``: the kernels' banded
products with each dot split into TF32 hi/lo parts, summed in float32), not measured on a GPU; the bound is
the self-test's (8 x ref's own float32 error + 64 float32 eps at the RMS)::

    layer (256 px)                               result   ieee      tf32x3 (emulated)   self-test bound
    T #10: 150 -> 276 px, up 4 (24), down 2 (12)  y        6.27e-07  1.05e-06            9.38e-06
                                                  dx       1.25e-06  1.61e-06            1.58e-05
                                                  db       8.21e-05  8.75e-05            2.63e-03
    T #11: 278 -> 276 px, up 2 (12), down 2 (12)  y        8.97e-07  1.03e-06            1.11e-05
                                                  dx       5.54e-07  6.80e-07            6.15e-06
                                                  db       1.54e-05  4.04e-05            1.63e-03
    T #13: 278 -> 256 px, up 2 (12), down 2 (12)  y        1.36e-06  2.65e-06            1.73e-05
                                                  dx       7.71e-07  1.90e-06            1.11e-05
                                                  db       5.10e-05  1.50e-04            9.99e-04
    R #13: 276 -> 256 px, up 2 (12), down 2 (12)  y        1.25e-06  2.57e-06            1.75e-05
                                                  dx       8.58e-07  1.69e-06            1.17e-05
                                                  db       2.96e-05  9.82e-05            1.43e-03

(StyleGAN3-R's other layers have radial 2-D down filters: the split path, not these kernels.) On a GPU the
first-use self-test judges the real kernels, as for every op.

Occupancy (tile/dot kernels: no bar; compiled for sm_90, ``benchmarks/static_report.py``): the StyleGAN3
tiles (BU 64, 8 warps) hold a [64, 64] float32 up-sampled tile, its activation and the four tap bands on chip,
about 170-180 registers in float32 (tf32x3) and 100-110 in float16/bfloat16: 12% and 25% theoretical
occupancy, no spills. The tile, not the occupancy, carries the design: it keeps the up-sampled signal out of
global memory (25-35x fewer bytes than the composition); latency is hidden by the dots' independent work
within a program rather than by resident warps.

Non-finite inputs: a banded product multiplies every input of the tile, most
by a zero tap, so an inf or NaN in x makes its whole output tile NaN, where the
reference spoils only the outputs within the filters' reach.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional, Tuple

import torch
import triton
import triton.language as tl

from ..shapes import filtered_lrelu_mask_size, filtered_lrelu_size
from ._common import DeviceInfo, device_guard, device_info, is_channels_last
from .bias_act import _clamp_keep_nan

__all__ = ["filtered_lrelu_fwd", "filtered_lrelu_bwd", "plan_forward", "plan_backward", "plan_fwd_launch",
           "plan_bwd_launch", "FP32_INPUT_PRECISION", "FP32_PRECISIONS"]

# input_precision of the float32 dots on a GPU: "tf32x3" (tensor cores, three TF32 products: see the module
# doc for its error) or "ieee" (float32 FMA); the interpreter always uses "ieee". The launchers' default;
# the backend passes the library's setting (``fp32_precision=gan_fast.config.fp32_dot_precision()``).
FP32_PRECISIONS = ("tf32x3", "ieee")
FP32_INPUT_PRECISION = "tf32x3"

_INT32_MAX = 2**31 - 1
_MAX_BLOCK = 128  # the largest tile edge a plan may use (a [BU, BU] float32 tile lives in registers)
_IEEE_MAX_BLOCK = 32  # ... with the opt-in float32 'ieee' dots on a GPU, where a filter's reach allows

# Forward modes.
MODE_ACT = 0        # y only (no gradient will be taken)
MODE_ACT_MASK = 1   # y and the backward's mask
MODE_JVP = 2        # the forward linearised at a saved mask: y = Down(d(mask) * Up(x + b))


@triton.jit
def _floordiv(a, b: tl.constexpr):
    """Floor division of a (possibly negative) integer by a positive constant (Triton's // truncates)."""
    r = ((a % b) + b) % b
    return (a - r) // b


@triton.jit
def _taps(f_ptr, idx, F: tl.constexpr, HAS_F: tl.constexpr, FLIP: tl.constexpr, SCALE: tl.constexpr):
    """The correlation taps g[idx] (0 outside [0, F)) of filter f: f reversed (true convolution) unless FLIP;
    a missing filter is the 1-tap identity. Times SCALE.

    The filter is loaded once as a vector and the [rows, cols] band gathered from it in registers
    (``tl.gather``), not by a global gather per element: a 64-bit address per tap element cost the float32
    forward its last registers (255 and spills on sm_90 before; about 180 and none now)."""
    valid = (idx >= 0) & (idx < F)
    if HAS_F:
        if FLIP:
            k = idx
        else:
            k = (F - 1) - idx
        FP: tl.constexpr = max(16, triton.next_power_of_2(F))
        fv = tl.load(f_ptr + tl.arange(0, FP), mask=tl.arange(0, FP) < F, other=0.0).to(tl.float32)
        src = tl.broadcast_to(fv[:, None], (FP, idx.shape[1]))
        v = tl.where(valid, tl.gather(src, tl.where(valid, k, 0), 0), 0.0)
    else:
        v = tl.where(valid, 1.0, 0.0)
    return v * SCALE


@triton.jit
def _mm(a, b, LOWP: tl.constexpr, DT: tl.constexpr, INPUT_PRECISION: tl.constexpr):
    """a @ b accumulated in float32: operands in DT (float16/bfloat16) when LOWP, else float32 dots."""
    if LOWP:
        return tl.dot(a.to(DT), b.to(DT), out_dtype=tl.float32)
    else:
        return tl.dot(a, b, input_precision=INPUT_PRECISION, out_dtype=tl.float32)


@triton.jit
def _mask_factor(m, gain, slope):
    """The activation's derivative for a mask code: 1 -> gain, 0 -> gain * slope, 2 (clamped) -> 0."""
    return tl.where(m == 1, gain, tl.where(m == 0, gain * slope, 0.0))


@triton.jit
def _tile_index(pid, C, TX, TY, CL: tl.constexpr):
    """(n, c, ty, tx) of a program: channels fastest for channels_last (neighbouring programs share the
    spatial lines they load), tiles fastest for NCHW."""
    if CL:
        c = pid % C
        r = pid // C
        tx = r % TX
        r = r // TX
        ty = r % TY
        n = r // TY
    else:
        tx = pid % TX
        r = pid // TX
        ty = r % TY
        r = r // TY
        c = r % C
        n = r // C
    return n, c, ty, tx


@triton.jit
def _offsets(n, c, rows, cols, sn, sc, sh, sw, USE_INT64: tl.constexpr):
    """Element offsets of a [rows, cols] tile of plane (n, c) with the given strides."""
    if USE_INT64:
        return (n.to(tl.int64) * sn + c.to(tl.int64) * sc + rows.to(tl.int64)[:, None] * sh
                + cols.to(tl.int64)[None, :] * sw)
    else:
        return n * sn + c * sc + rows[:, None] * sh + cols[None, :] * sw


@triton.jit
def _mask_offsets(plane, py, px, MH, MW, USE_INT64: tl.constexpr):
    """Offsets of a [py, px] tile of the contiguous [N*C, MH, MW] mask."""
    if USE_INT64:
        return (plane.to(tl.int64) * MH + py.to(tl.int64)[:, None]) * MW + px.to(tl.int64)[None, :]
    else:
        return (plane * MH + py[:, None]) * MW + px[None, :]


@triton.jit
def _flrelu_fwd_kernel(
    x_ptr, b_ptr, fu_ptr, fd_ptr, m_ptr, y_ptr,
    C, H, W, OH, OW, MH, MW, TX, TY,
    sxn, sxc, sxh, sxw, syn, syc, syh, syw,
    PX0, PY0, gain, slope, clamp,
    UP: tl.constexpr, DOWN: tl.constexpr, FU: tl.constexpr, FD: tl.constexpr,
    HAS_FU: tl.constexpr, HAS_FD: tl.constexpr, FLIP: tl.constexpr, HAS_B: tl.constexpr, HAS_CLAMP: tl.constexpr,
    MODE: tl.constexpr, CL: tl.constexpr, USE_INT64: tl.constexpr, LOWP: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
    TO: tl.constexpr, BI: tl.constexpr, BU: tl.constexpr, BO: tl.constexpr,
):
    DT = y_ptr.dtype.element_ty
    n, c, ty, tx = _tile_index(tl.program_id(0), C, TX, TY, CL)
    li = tl.arange(0, BI)
    lp = tl.arange(0, BU)
    lo = tl.arange(0, BO)

    # Tile origins: outputs o0, up-sampled samples p0 = o0 * DOWN, first input i0 (see the module doc).
    o0y = ty * TO
    o0x = tx * TO
    p0y = o0y * DOWN
    p0x = o0x * DOWN
    i0y = -_floordiv(PY0 - p0y, UP)
    i0x = -_floordiv(PX0 - p0x, UP)

    # Inputs (+ bias inside the image; the padding is not biased).
    iy = i0y + li
    ix = i0x + li
    vx = (iy[:, None] >= 0) & (iy[:, None] < H) & (ix[None, :] >= 0) & (ix[None, :] < W)
    xv = tl.load(x_ptr + _offsets(n, c, iy, ix, sxn, sxc, sxh, sxw, USE_INT64), mask=vx, other=0.0)
    xv = xv.to(tl.float32)
    if HAS_B:
        xv = tl.where(vx, xv + tl.load(b_ptr + c).to(tl.float32), 0.0)

    # Up-FIR: U = Ay @ X @ Ax^T.
    axt = _taps(fu_ptr, li[:, None] * UP - lp[None, :] + (i0x * UP + PX0 - p0x), FU, HAS_FU, FLIP, UP)
    ay = _taps(fu_ptr, li[None, :] * UP - lp[:, None] + (i0y * UP + PY0 - p0y), FU, HAS_FU, FLIP, UP)
    u = _mm(ay, _mm(xv, axt, LOWP, DT, INPUT_PRECISION), LOWP, DT, INPUT_PRECISION)  # [BU, BU]

    py = p0y + lp
    px = p0x + lp
    moff = _mask_offsets(n * C + c, py, px, MH, MW, USE_INT64)
    if MODE == 2:
        vm = (py[:, None] < MH) & (px[None, :] < MW)
        code = tl.load(m_ptr + moff, mask=vm, other=2)
        a = u * _mask_factor(code, gain, slope)
    else:
        pos = u > 0
        a = tl.where(pos, u, u * slope) * gain
        code = pos.to(tl.int8)
        if HAS_CLAMP:
            code = tl.where((a >= -clamp) & (a <= clamp), code, 2)
            a = _clamp_keep_nan(a, clamp)
        if MODE == 1:
            # This tile owns the samples up to the next tile's origin (the last tile: all it computed).
            own_y = (py < MH) & (lp < tl.where(o0y + TO >= OH, BU, TO * DOWN))
            own_x = (px < MW) & (lp < tl.where(o0x + TO >= OW, BU, TO * DOWN))
            tl.store(m_ptr + moff, code.to(tl.int8), mask=own_y[:, None] & own_x[None, :])

    # Down-FIR: Y = Dy @ A @ Dx^T.
    dym = _taps(fd_ptr, lp[None, :] - lo[:, None] * DOWN, FD, HAS_FD, FLIP, 1)  # [BO, BU]
    dxt = _taps(fd_ptr, lp[:, None] - lo[None, :] * DOWN, FD, HAS_FD, FLIP, 1)  # [BU, BO]
    yv = _mm(_mm(dym, a, LOWP, DT, INPUT_PRECISION), dxt, LOWP, DT, INPUT_PRECISION)  # [BO, BO]

    oy = o0y + lo
    ox = o0x + lo
    vy = ((lo < TO) & (oy < OH))[:, None] & ((lo < TO) & (ox < OW))[None, :]
    tl.store(y_ptr + _offsets(n, c, oy, ox, syn, syc, syh, syw, USE_INT64), yv.to(DT), mask=vy)


@triton.jit
def _flrelu_bwd_kernel(
    g_ptr, m_ptr, fu_ptr, fd_ptr, dx_ptr, db_ptr,
    C, H, W, OH, OW, MH, MW, TX, TY,
    sgn, sgc, sgh, sgw, sxn, sxc, sxh, sxw,
    PX0, PY0, gain, slope,
    UP: tl.constexpr, DOWN: tl.constexpr, FU: tl.constexpr, FD: tl.constexpr,
    HAS_FU: tl.constexpr, HAS_FD: tl.constexpr, FLIP: tl.constexpr, STORE_DB: tl.constexpr,
    CL: tl.constexpr, USE_INT64: tl.constexpr, LOWP: tl.constexpr, INPUT_PRECISION: tl.constexpr,
    TI: tl.constexpr, BI: tl.constexpr, BU: tl.constexpr, BO: tl.constexpr,
):
    DT = dx_ptr.dtype.element_ty
    pid = tl.program_id(0)
    n, c, ty, tx = _tile_index(pid, C, TX, TY, CL)
    li = tl.arange(0, BI)
    lp = tl.arange(0, BU)
    lo = tl.arange(0, BO)

    # Inputs i0 + [0, TI) reach up-sampled samples pb + [0, (TI - 1)*UP + FU), which reach outputs from ob.
    i0y = ty * TI
    i0x = tx * TI
    pby = i0y * UP + PY0 - (FU - 1)
    pbx = i0x * UP + PX0 - (FU - 1)
    oby = -_floordiv(FD - 1 - pby, DOWN)
    obx = -_floordiv(FD - 1 - pbx, DOWN)

    oy = oby + lo
    ox = obx + lo
    vg = (oy[:, None] >= 0) & (oy[:, None] < OH) & (ox[None, :] >= 0) & (ox[None, :] < OW)
    g = tl.load(g_ptr + _offsets(n, c, oy, ox, sgn, sgc, sgh, sgw, USE_INT64), mask=vg, other=0.0)
    g = g.to(tl.float32)

    # Transposed down-FIR: dA = Dy^T @ dY @ Dx.
    m1y = _taps(fd_ptr, lp[:, None] - lo[None, :] * DOWN + (pby - oby * DOWN), FD, HAS_FD, FLIP, 1)  # [BU, BO]
    m1xt = _taps(fd_ptr, lp[None, :] - lo[:, None] * DOWN + (pbx - obx * DOWN), FD, HAS_FD, FLIP, 1)  # [BO, BU]
    da = _mm(_mm(m1y, g, LOWP, DT, INPUT_PRECISION), m1xt, LOWP, DT, INPUT_PRECISION)  # [BU, BU]

    py = pby + lp
    px = pbx + lp
    vm = (py[:, None] >= 0) & (py[:, None] < MH) & (px[None, :] >= 0) & (px[None, :] < MW)
    code = tl.load(m_ptr + _mask_offsets(n * C + c, py, px, MH, MW, USE_INT64), mask=vm, other=2)
    du = da * _mask_factor(code, gain, slope)

    # Transposed up-FIR: dX = Ay^T @ dU @ Ax.
    m2y = _taps(fu_ptr, li[:, None] * UP - lp[None, :] + (FU - 1), FU, HAS_FU, FLIP, UP)  # [BI, BU]
    m2xt = _taps(fu_ptr, li[None, :] * UP - lp[:, None] + (FU - 1), FU, HAS_FU, FLIP, UP)  # [BU, BI]
    dxv = _mm(_mm(m2y, du, LOWP, DT, INPUT_PRECISION), m2xt, LOWP, DT, INPUT_PRECISION)  # [BI, BI]

    iy = i0y + li
    ix = i0x + li
    vi = ((li < TI) & (iy < H))[:, None] & ((li < TI) & (ix < W))[None, :]
    tl.store(dx_ptr + _offsets(n, c, iy, ix, sxn, sxc, sxh, sxw, USE_INT64), dxv.to(DT), mask=vi)
    if STORE_DB:
        tl.store(db_ptr + pid, tl.sum(tl.sum(tl.where(vi, dxv, 0.0), axis=1), axis=0))


# The tiles are the same on a GPU and under the interpreter; what a GPU may take that the self-tests do not
# launch: the forward without a mask (no gradient wanted), 64-bit offsets (tensors over 2**30 elements) and
# the TF32x3 float32 dots (FP32_INPUT_PRECISION's alternative).
_TF32X3 = lambda c: {} if c.get("LOWP") else {"INPUT_PRECISION": "tf32x3"}  # noqa: E731
GPU_CONSTEXPRS = {
    "_flrelu_fwd_kernel": [lambda c: {"MODE": MODE_ACT} if c.get("MODE") == MODE_ACT_MASK else {},
                           _TF32X3, {"USE_INT64": True}],
    "_flrelu_bwd_kernel": [_TF32X3, {"USE_INT64": True}],
}


# ----------------------------------------------------------------------------------------------- plans


def _pow2(v: int) -> int:
    return max(16, 1 << max(int(v) - 1, 0).bit_length())  # tl.dot needs every dimension >= 16


def _tile_cost(tile: int, dots, loads: float) -> float:
    """A rough cost, in SM clocks per kept element, of one program: float32 FMA-rate dot multiply-adds
    (128 a clock), element loads and stores (32 a clock; they hit L1/L2 mostly) and a fixed 200 clocks.
    Tiles of 128 pay 1.5x (register pressure). Unmeasured on a GPU: it ranks tilings, nothing more."""
    clk = sum(m * k * n for m, k, n in dots) / 128 + loads / 32 + 200
    return clk / (tile * tile)


@functools.lru_cache(maxsize=None)
def plan_forward(up: int, down: int, fu: int, fd: int, max_block: int = _MAX_BLOCK
                 ) -> Optional[Tuple[int, int, int, int]]:
    """(TO, BI, BU, BO) of the forward kernel for up/down factors and fu/fd taps (1 for none); None when no
    tile of at most ``max_block`` samples holds the filters' reach. The same on every device (so the
    interpreter tests run the GPU's tiling), except the opt-in float32 'ieee' dots on a GPU, which take
    tiles of at most :data:`_IEEE_MAX_BLOCK` where one holds the filters (:func:`_launch_plan`)."""
    best = None
    for bu in (16, 32, 64, 128):
        if bu > max_block:
            continue
        for to in range(1, (bu - fd) // down + 2):
            span = (to - 1) * down + fd  # up-sampled samples of the tile
            ni = (span + fu - 2) // up + 1  # inputs they need
            bi, bo = _pow2(ni), _pow2(to)
            if span > bu or max(bi, bo) > max_block:
                continue
            loads = bi * bi + 2 * bi * bu + 2 * bo * bu + to * to + (to * down) ** 2 / 4  # x, taps, y, mask
            cost = _tile_cost(to, [(bi, bi, bu), (bu, bi, bu), (bo, bu, bu), (bo, bu, bo)], loads)
            if bu > 64:
                cost *= 1.5
            if best is None or cost < best[0]:
                best = (cost, (to, bi, bu, bo))
    return None if best is None else best[1]


@functools.lru_cache(maxsize=None)
def plan_backward(up: int, down: int, fu: int, fd: int, max_block: int = _MAX_BLOCK
                  ) -> Optional[Tuple[int, int, int, int]]:
    """(TI, BI, BU, BO) of the backward kernel (see :func:`plan_forward`)."""
    best = None
    for bu in (16, 32, 64, 128):
        if bu > max_block:
            continue
        for ti in range(1, (bu - fu) // up + 2):
            span = (ti - 1) * up + fu  # up-sampled samples the inputs reach
            no = (span + fd - 2) // down + 1  # outputs those reach
            bi, bo = _pow2(ti), _pow2(no)
            if span > bu or max(bi, bo) > max_block:
                continue
            loads = bo * bo + 2 * bu * bo + 2 * bi * bu + bu * bu / 4 + ti * ti  # dy, taps, mask, dx
            cost = _tile_cost(ti, [(bu, bo, bo), (bu, bo, bu), (bi, bu, bu), (bi, bu, bi)], loads)
            if bu > 64:
                cost *= 1.5
            if best is None or cost < best[0]:
                best = (cost, (ti, bi, bu, bo))
    return None if best is None else best[1]


def _num_warps(bu: int) -> int:
    return 8 if bu >= 64 else 4


# ----------------------------------------------------------------------------------------------- launchers


def _span(t: torch.Tensor) -> int:
    return sum((s - 1) * abs(st) for s, st in zip(t.shape, t.stride()) if s > 0)


def _needs_int64(*tensors: torch.Tensor, margin: int = 0) -> bool:
    # Masked lanes may point a few tiles outside a tensor; a margin of one tile keeps their offsets in range.
    return max(_span(t) + margin for t in tensors) > _INT32_MAX // 2


def _taps_f32(f: Optional[torch.Tensor], like: torch.Tensor) -> Tuple[torch.Tensor, int]:
    """(float32 contiguous taps, count); a missing filter: (any tensor, 1), the kernel makes the identity."""
    if f is None:
        return like, 1
    if f.ndim != 1:
        raise ValueError(f"the filtered_lrelu kernels take separable [ft] filters, got shape {tuple(f.shape)}")
    return f.detach().to(device=like.device, dtype=torch.float32).contiguous(), f.shape[0]


def _check_dtype(t: torch.Tensor, name: str) -> None:
    if t.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"filtered_lrelu: the triton kernels compute in float32 and take float32, float16 or "
                        f"bfloat16 {name}, got {t.dtype}; use impl='ref' (impl=None sends float64 there)")


def _check_precision(fp32_precision: str) -> None:
    if fp32_precision not in FP32_PRECISIONS:
        raise ValueError(f"filtered_lrelu: fp32_precision must be one of {FP32_PRECISIONS}, got {fp32_precision!r}")


class FLReluPlan(NamedTuple):
    """A launch of the forward (``tile``: TO outputs) or backward (``tile``: TI inputs) kernel: tiles, the
    grid, fp16/bf16 dot operands (``lowp``), the float32 dots' input precision and num_warps."""
    tile: int
    bi: int
    bu: int
    bo: int
    ty: int
    tx: int
    lowp: bool
    precision: str
    num_warps: int
    planes: int

    @property
    def grid(self) -> Tuple[int]:
        return (self.planes * self.ty * self.tx,)


def _launch_plan(planner, args, planes: int, h: int, w: int, dtype: torch.dtype, dev: DeviceInfo,
                 fp32_precision: str, ieee_max_block: Optional[int] = None) -> Optional[FLReluPlan]:
    _check_precision(fp32_precision)
    lowp = dtype in (torch.float16, torch.bfloat16)
    precision = "ieee" if dev.interpreter else fp32_precision
    tiles = None
    if ieee_max_block and precision == "ieee" and not lowp and not dev.interpreter:
        # float32 FMA dots hold a whole K row / column of their operands per thread: the forward's tiles of 64
        # spill (108 B a thread on sm_90), tiles of 32 do not
        tiles = planner(*args, ieee_max_block)
    tiles = tiles or planner(*args)
    if tiles is None:
        return None
    tile, bi, bu, bo = tiles
    return FLReluPlan(tile, bi, bu, bo, triton.cdiv(h, tile), triton.cdiv(w, tile), lowp, precision,
                      _num_warps(bu), planes)


def plan_fwd_launch(n: int, c: int, oh: int, ow: int, up: int, down: int, fu: int, fd: int, dtype: torch.dtype,
                    dev: DeviceInfo, fp32_precision: str = FP32_INPUT_PRECISION) -> Optional[FLReluPlan]:
    """The forward's launch for [n, c] planes of ``oh x ow`` outputs (None: no tile holds the filters)."""
    return _launch_plan(plan_forward, (up, down, fu, fd), n * c, oh, ow, dtype, dev, fp32_precision,
                        _IEEE_MAX_BLOCK)


def plan_bwd_launch(n: int, c: int, h: int, w: int, up: int, down: int, fu: int, fd: int, dtype: torch.dtype,
                    dev: DeviceInfo, fp32_precision: str = FP32_INPUT_PRECISION) -> Optional[FLReluPlan]:
    """The backward's launch for [n, c] planes of ``h x w`` inputs (None: no tile holds the filters)."""
    return _launch_plan(plan_backward, (up, down, fu, fd), n * c, h, w, dtype, dev, fp32_precision)


def filtered_lrelu_fwd(x: torch.Tensor, fu: Optional[torch.Tensor], fd: Optional[torch.Tensor],
                       b: Optional[torch.Tensor], up: int, down: int, px0: int, px1: int, py0: int, py1: int,
                       gain: float, slope: float, clamp: Optional[float], flip_filter: bool, mode: int,
                       mask: Optional[torch.Tensor] = None, fp32_precision: str = FP32_INPUT_PRECISION
                       ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The fused forward.

    Args:
        x: [N, C, H, W] float32/float16/bfloat16, any strides (channels_last stays channels_last).
        fu, fd: None or separable [ft] filters (any floating dtype; computed in float32).
        b: None or [C] (x's dtype).
        up, down: factors >= 1 (tested: 1, 2, 4); px0, px1, py0, py1: the padding.
        gain, slope, clamp: the activation's parameters (clamp None: no clamp).
        mode: ``MODE_ACT`` (y), ``MODE_ACT_MASK`` (y and the mask), ``MODE_JVP`` (the forward linearised
            at ``mask``: ``y = Down(d(mask) * Up(x + b))``, x and b being tangents).
        mask: [N, C, MH, MW] int8 from a ``MODE_ACT_MASK`` call (``MODE_JVP`` only).
        fp32_precision: input precision of the float32 dots on a GPU, one of :data:`FP32_PRECISIONS`.

    Returns:
        (y [N, C, OH, OW] in x's dtype and memory format (contiguous unless channels_last), the mask or None).
    """
    if x.ndim != 4:
        raise ValueError(f"x must be [N, C, H, W], got shape {tuple(x.shape)}")
    _check_dtype(x, "x")
    n, c, h, w = x.shape
    fu_t, nfu = _taps_f32(fu, x)
    fd_t, nfd = _taps_f32(fd, x)
    oh, ow = filtered_lrelu_size(h, w, (nfu, nfu), (nfd, nfd), up, down, (px0, px1, py0, py1))
    if oh < 1 or ow < 1:
        raise ValueError(f"filtered_lrelu leaves no output ({oh}x{ow}) for x {tuple(x.shape)}")
    mh, mw = filtered_lrelu_mask_size(oh, ow, down, nfd)
    plan = plan_fwd_launch(n, c, oh, ow, up, down, nfu, nfd, x.dtype, device_info(x.device), fp32_precision)
    if plan is None:
        raise ValueError(f"filtered_lrelu: no tile of at most {_MAX_BLOCK} samples holds {nfu}/{nfd}-tap filters "
                         f"at up {up}, down {down}")
    cl = is_channels_last(x)
    fmt = torch.channels_last if cl else torch.contiguous_format
    y = torch.empty((n, c, oh, ow), dtype=x.dtype, device=x.device, memory_format=fmt)
    if mode == MODE_ACT_MASK:
        mask = torch.empty((n, c, mh, mw), dtype=torch.int8, device=x.device)
    elif mode == MODE_JVP:
        if mask is None or tuple(mask.shape) != (n, c, mh, mw) or mask.dtype != torch.int8:
            raise ValueError(f"MODE_JVP needs the forward's [N, C, {mh}, {mw}] int8 mask")
        mask = mask.contiguous()
    if y.numel() == 0:
        return y, (mask if mode == MODE_ACT_MASK else None)
    to, bi, bu, bo, ty, tx = plan[:6]
    margin = bi * (abs(x.stride(2)) + abs(x.stride(3)))
    use_int64 = _needs_int64(x, margin=margin) or _needs_int64(y) or n * c * mh * mw + bu * (mw + 1) > _INT32_MAX // 2
    m_arg = mask if mask is not None else y
    b_arg = b if b is not None else x
    with device_guard(x):
        _flrelu_fwd_kernel[plan.grid](
            x, b_arg, fu_t, fd_t, m_arg, y,
            c, h, w, oh, ow, mh, mw, tx, ty,
            *x.stride(), *y.stride(),
            px0, py0, float(gain), float(slope), 0.0 if clamp is None else float(clamp),
            UP=up, DOWN=down, FU=nfu, FD=nfd, HAS_FU=fu is not None, HAS_FD=fd is not None,
            FLIP=bool(flip_filter), HAS_B=b is not None, HAS_CLAMP=clamp is not None,
            MODE=mode, CL=cl, USE_INT64=use_int64, LOWP=plan.lowp, INPUT_PRECISION=plan.precision,
            TO=to, BI=bi, BU=bu, BO=bo, num_warps=plan.num_warps)
    return y, (mask if mode == MODE_ACT_MASK else None)


def filtered_lrelu_bwd(dy: torch.Tensor, mask: torch.Tensor, fu: Optional[torch.Tensor], fd: Optional[torch.Tensor],
                       up: int, down: int, px0: int, py0: int, h: int, w: int, gain: float, slope: float,
                       flip_filter: bool, channels_last: bool, want_db: bool,
                       fp32_precision: str = FP32_INPUT_PRECISION) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The transposed pass: (dx [N, C, h, w] in dy's dtype (channels_last if asked), db [C] or None).

    ``dx = Up^T(d(mask) * Down^T(dy))``: the gradient of the forward whose ``mask`` is given (the
    padding px1 / py1 is implied by the sizes), ``db`` its sum over N, H and W. ``fp32_precision`` as in
    :func:`filtered_lrelu_fwd`.
    """
    if dy.ndim != 4:
        raise ValueError(f"dy must be [N, C, OH, OW], got shape {tuple(dy.shape)}")
    _check_dtype(dy, "dy")
    n, c, oh, ow = dy.shape
    fu_t, nfu = _taps_f32(fu, dy)
    fd_t, nfd = _taps_f32(fd, dy)
    mh, mw = filtered_lrelu_mask_size(oh, ow, down, nfd)
    if tuple(mask.shape) != (n, c, mh, mw) or mask.dtype != torch.int8:
        raise ValueError(f"mask must be the forward's [N, C, {mh}, {mw}] int8 mask, got {tuple(mask.shape)} "
                         f"{mask.dtype}")
    mask = mask.contiguous()
    plan = plan_bwd_launch(n, c, h, w, up, down, nfu, nfd, dy.dtype, device_info(dy.device), fp32_precision)
    if plan is None:
        raise ValueError(f"filtered_lrelu: no tile of at most {_MAX_BLOCK} samples holds {nfu}/{nfd}-tap filters "
                         f"at up {up}, down {down}")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    dx = torch.empty((n, c, h, w), dtype=dy.dtype, device=dy.device, memory_format=fmt)
    ti, bi, bu, bo, ty, tx = plan[:6]
    grid = plan.grid[0]
    if dx.numel() == 0:
        return dx, (torch.zeros(c, dtype=dy.dtype, device=dy.device) if want_db else None)
    partial = torch.empty(grid if want_db else 1, dtype=torch.float32, device=dy.device)
    margin = bo * (abs(dy.stride(2)) + abs(dy.stride(3)))
    use_int64 = _needs_int64(dy, margin=margin) or _needs_int64(dx) or n * c * mh * mw + bu * (mw + 1) > _INT32_MAX // 2
    with device_guard(dy):
        _flrelu_bwd_kernel[plan.grid](
            dy, mask, fu_t, fd_t, dx, partial,
            c, h, w, oh, ow, mh, mw, tx, ty,
            *dy.stride(), *dx.stride(),
            px0, py0, float(gain), float(slope),
            UP=up, DOWN=down, FU=nfu, FD=nfd, HAS_FU=fu is not None, HAS_FD=fd is not None,
            FLIP=bool(flip_filter), STORE_DB=want_db, CL=channels_last, USE_INT64=use_int64, LOWP=plan.lowp,
            INPUT_PRECISION=plan.precision, TI=ti, BI=bi, BU=bu, BO=bo, num_warps=plan.num_warps)
    db = None
    if want_db:  # the programs' partial sums, in a fixed order
        db = (partial.view(n, ty * tx, c).sum((0, 1)) if channels_last else
              partial.view(n, c, ty * tx).sum((0, 2))).to(dy.dtype)
    return dx, db

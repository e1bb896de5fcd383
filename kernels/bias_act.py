"""Triton kernels for bias + activation (forward, first and second derivative), and their launchers.

No autograd here: ``gan_fast/fused/bias_act.py`` builds the differentiable op
from these three launchers.

Semantics (identical to ``gan_fast.reference.bias_act``)::

    z = x + b[c]                      c = channel of the element (see below)
    y = clamp(act(z, alpha) * gain, -clamp, clamp)      (no clamp when clamp < 0)

``bias_act_grad`` returns ``dy * gain * act'(z) * m`` and ``bias_act_grad2``
returns ``ddx * dy * gain * act''(z) * m``, where ``m`` is torch.clamp's gradient
mask: 1 where ``-clamp <= act(z) * gain <= clamp`` (always 1 without clamp).
The derivatives follow the branch conventions of PyTorch's autograd for each
activation (relu'(0) = 0, lrelu'(0) = alpha, elu'(0) = alpha, softplus'' = 0
from x >= 20, elu''(0) = 0), so they equal what autograd computes on the reference.

Layout: ``C`` and ``inner`` describe the channel dimension *logically*, as for a
contiguous tensor: ``C = x.shape[dim]`` and ``inner = prod(x.shape[dim + 1:])``,
so the element at row-major logical index ``i`` belongs to channel
``(i // inner) % C``. Tensors may be in any dense memory format (contiguous,
channels_last, permuted): the launchers locate ``dim`` from ``(C, inner)``,
use its memory stride, and walk memory linearly; outputs come from
``torch.empty_like(x)`` and so keep ``x``'s layout. A non-dense ``x`` (a
slice, an expanded view) is first copied to ``torch.empty_like(x)``, a dense
tensor in the same dimension order, so outputs always have the strides of
``torch.empty_like(x)`` (what a ``register_fake`` should return); ``dy`` and ``ddx`` are
brought to ``x``'s layout when theirs differs.

Arithmetic is float32 for float16 / bfloat16 / float32 inputs and float64 for
float64 inputs (alpha, gain and clamp then arrive as float32 hi + lo pairs,
about 48 bits). Offsets are int64 when an input has 2**31 elements or more.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
import triton
import triton.language as tl

from ._common import DeviceInfo, device_guard, device_info, is_dense, split_f64

__all__ = ["bias_act_fwd", "bias_act_grad", "bias_act_grad2", "bias_act_grad_db", "bias_act_grad2_db",
           "ACT_CODES", "plan_bias_act", "plan_bias_act_db"]

# Must match gan_fast/activations.py (the codes the C++ kernels use too).
ACT_CODES = {"linear": 0, "relu": 1, "lrelu": 2, "tanh": 3, "sigmoid": 4, "elu": 5, "selu": 6, "softplus": 7,
             "swish": 8}

# tl.constexpr: compiled Triton (>= 3.0) rejects plain Python globals read in jit code; the interpreter does not.
_SELU_ALPHA = tl.constexpr(1.6732632423543772848170429916717)
_SELU_SCALE = tl.constexpr(1.0507009873554804934193349852946)
_SOFTPLUS_THRESHOLD = tl.constexpr(20.0)

_MODE_FWD, _MODE_GRAD, _MODE_GRAD2 = 0, 1, 2
_INT32_LIMIT = 2**31 - 1


# ----------------------------------------------------------------------------------------------------------------
# Accurate elementary functions from exp/log only (libdevice is unavailable under the interpreter, and the
# fast exp/log of the GPU are not accurate near 1). F64 selects the float64 formulas.


@triton.jit
def _expm1(z, F64: tl.constexpr):
    if F64:
        # Kahan's trick: exact to a few ulps given correctly rounded exp/log (float64 exp/log are).
        e = tl.exp(z)
        em1 = e - 1.0
        one = e == 1.0
        r = tl.where(one, z, em1 * z / tl.log(tl.where(one, 2.0, e)))
        return tl.where(em1 == -1.0, -1.0, r)
    else:
        # Taylor series to z^7 for |z| < 0.35 (relative error < 2e-8), exp(z) - 1 beyond.
        p = 1.0 / 5040.0
        p = p * z + 1.0 / 720.0
        p = p * z + 1.0 / 120.0
        p = p * z + 1.0 / 24.0
        p = p * z + 1.0 / 6.0
        p = p * z + 0.5
        p = p * z + 1.0
        small = z * p
        return tl.where(tl.abs(z) < 0.35, small, tl.exp(z) - 1.0)


@triton.jit
def _log1p_unit(u, F64: tl.constexpr):
    """log(1 + u) for u in [0, 1]."""
    if F64:
        w = 1.0 + u
        one = w == 1.0
        return tl.where(one, u, tl.log(w) * (u / tl.where(one, 1.0, w - 1.0)))
    else:
        # log1p(u) = 2 atanh(s), s = u / (2 + u) in [0, 1/3]: odd series to s^17 (relative error < 1e-9).
        s = u / (2.0 + u)
        s2 = s * s
        p = 1.0 / 17.0
        p = p * s2 + 1.0 / 15.0
        p = p * s2 + 1.0 / 13.0
        p = p * s2 + 1.0 / 11.0
        p = p * s2 + 1.0 / 9.0
        p = p * s2 + 1.0 / 7.0
        p = p * s2 + 1.0 / 5.0
        p = p * s2 + 1.0 / 3.0
        p = p * s2 + 1.0
        return 2.0 * s * p


@triton.jit
def _sigmoid2(z):
    """(sigmoid(z), sigmoid(-z) = 1 - sigmoid(z)), each without cancellation and never from an overflowing exp:
    0 and 1 at -inf and inf, NaN for NaN."""
    e = tl.exp(-tl.abs(z))
    r = 1.0 / (1.0 + e)
    er = e * r
    pos = z >= 0
    return tl.where(pos, r, er), tl.where(pos, er, r)


@triton.jit
def _tanh(z, F64: tl.constexpr):
    e = _expm1(-2.0 * tl.abs(z), F64)  # in (-1, 0]
    t = -e / (2.0 + e)
    return tl.where(z < 0, -t, t)


@triton.jit
def _act(z, alpha, ACT: tl.constexpr, F64: tl.constexpr):
    """act(z) and its first and second derivatives (as PyTorch's autograd defines them)."""
    one = tl.full(z.shape, 1.0, z.dtype)
    zero = tl.zeros(z.shape, z.dtype)
    if ACT == 0:  # linear
        y, d1, d2 = z, one, zero
    elif ACT == 1:  # relu (NaN stays NaN, as torch.relu)
        y = tl.where(z <= 0, zero, z)
        d1 = tl.where(z <= 0, zero, one)
        d2 = zero
    elif ACT == 2:  # lrelu
        pos = z > 0
        y = tl.where(pos, z, z * alpha)
        d1 = tl.where(pos, one, one * alpha)
        d2 = zero
    elif ACT == 3:  # tanh
        y = _tanh(z, F64)
        d1 = 1.0 - y * y
        d2 = -2.0 * y * d1
    elif ACT == 4:  # sigmoid
        y, sn = _sigmoid2(z)
        d1 = y * sn
        d2 = d1 * (sn - y)
    elif ACT == 5:  # elu; branch on z <= 0 so NaN takes the identity branch's gradient, as PyTorch
        neg = z <= 0
        zn = tl.where(neg, z, zero)
        e = tl.exp(zn) * alpha
        y = tl.where(neg, _expm1(zn, F64) * alpha, z)
        d1 = tl.where(neg, e, one)
        d2 = tl.where(z < 0, e, zero)  # autograd: elu'' uses z < 0, elu' uses z <= 0
    elif ACT == 6:  # selu (NaN handling as elu)
        neg = z <= 0
        zn = tl.where(neg, z, zero)
        e = tl.exp(zn) * (_SELU_ALPHA * _SELU_SCALE)
        y = tl.where(neg, _expm1(zn, F64) * (_SELU_ALPHA * _SELU_SCALE), z * _SELU_SCALE)
        d1 = tl.where(neg, e, one * _SELU_SCALE)
        d2 = tl.where(z < 0, e, zero)
    elif ACT == 7:  # softplus (beta 1, threshold 20, as F.softplus; its double backward is 0 from 20 on, NaN: NaN)
        lin = z > _SOFTPLUS_THRESHOLD
        sp = tl.maximum(z, zero) + _log1p_unit(tl.exp(-tl.abs(z)), F64)
        y = tl.where(lin, z, sp)
        s, sn = _sigmoid2(z)
        d1 = tl.where(lin, one, s)
        d2 = tl.where(z >= _SOFTPLUS_THRESHOLD, zero, s * sn)
    else:  # swish: z * sigmoid(z) (NaN at -inf: 0 * -inf, as the reference and F.silu)
        s, sn = _sigmoid2(z)
        y = z * s
        d1 = s * (1.0 + z * sn)
        d2 = s * sn * (2.0 + z * (sn - s))
    return y, d1, d2


@triton.jit
def _clamp_keep_nan(y, c):
    """torch.clamp(y, -c, c): NaN stays NaN (tl.minimum/maximum would return -c; tl.clamp's
    PropagateNan.ALL does not lower for float64 on NVIDIA GPUs)."""
    return tl.where(y != y, y, tl.minimum(tl.maximum(y, -c), c))


@triton.jit
def _element(z, dy, ddx, alpha, gain, clamp, ACT: tl.constexpr, MODE: tl.constexpr, HAS_CLAMP: tl.constexpr,
             F64: tl.constexpr):
    """y (MODE 0), dx (1) or d_x (2) of the pre-activation z (module docstring)."""
    y, d1, d2 = _act(z, alpha, ACT, F64)
    y = y * gain
    if MODE == 0:
        out = y
        if HAS_CLAMP:
            out = _clamp_keep_nan(y, clamp)
    else:
        if MODE == 1:
            out = dy * (d1 * gain)
        else:
            out = ddx * dy * (d2 * gain)
        if HAS_CLAMP:
            out = tl.where((y >= -clamp) & (y <= clamp), out, 0.0)
    return out


@triton.jit
def _f64_scalars(alpha, gain, clamp, alpha_lo, gain_lo, clamp_lo, F64: tl.constexpr):
    """The scalars in the compute dtype: float64 ones arrive as float32 pairs hi + lo."""
    if F64:
        zero = tl.zeros([1], tl.float64)
        alpha = (zero + alpha) + alpha_lo
        gain = (zero + gain) + gain_lo
        clamp = (zero + clamp) + clamp_lo
    return alpha, gain, clamp


@triton.jit
def _bias_act_kernel(x_ptr, b_ptr, dy_ptr, ddx_ptr, out_ptr, n, C, stride_c, alpha, gain, clamp,
                     alpha_lo, gain_lo, clamp_lo,
                     ACT: tl.constexpr, MODE: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_CLAMP: tl.constexpr,
                     INT64: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    if INT64:
        offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    else:
        offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    if F64:
        cdt = tl.float64
    else:
        cdt = tl.float32
    z = tl.load(x_ptr + offs, mask=mask, other=0.0).to(cdt)
    alpha, gain, clamp = _f64_scalars(alpha, gain, clamp, alpha_lo, gain_lo, clamp_lo, F64)
    if HAS_BIAS:
        ch = (offs // stride_c) % C
        z = z + tl.load(b_ptr + ch, mask=mask, other=0.0).to(cdt)
    dy = z
    ddx = z
    if MODE != 0:
        dy = tl.load(dy_ptr + offs, mask=mask, other=0.0).to(cdt)
    if MODE == 2:
        ddx = tl.load(ddx_ptr + offs, mask=mask, other=0.0).to(cdt)
    out = _element(z, dy, ddx, alpha, gain, clamp, ACT, MODE, HAS_CLAMP, F64)
    tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _bias_act_db_kernel(x_ptr, b_ptr, dy_ptr, ddx_ptr, out_ptr, part_ptr, n, NR, NW, n_wb, C, S, alpha, gain, clamp,
                        alpha_lo, gain_lo, clamp_lo,
                        ACT: tl.constexpr, MODE: tl.constexpr, HAS_CLAMP: tl.constexpr, COLUMNS: tl.constexpr,
                        INT64: tl.constexpr, F64: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_W: tl.constexpr):
    """dx (MODE 1) or d_x (MODE 2) and its per-program, per-channel partial sums (the bias gradient's).

    Memory is the matrix [NR, NW] (row-major, the last row may be short: offsets >= n are outside), cut into
    tiles [BLOCK_R, BLOCK_W]; program pid is tile (pid // n_wb, pid % n_wb).
    COLUMNS: rows of NW = m * C * S elements, the channel of column q is (q // S) % C; the tile's column sums
        go to part[tile row, q] (part is [cdiv(NR, BLOCK_R), NW]).
    else (runs): rows are runs of one channel ([O * C, S]), the channel of row r is r % C; the tile's row sums
        go to part[r, tile column] (part is [NR, n_wb]).
    Sums are of the stored (rounded) values, in the compute dtype, in the fixed order of tl.sum.
    """
    pid = tl.program_id(0)
    pr = pid // n_wb
    pw = pid % n_wb
    rows = pr * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = pw * BLOCK_W + tl.arange(0, BLOCK_W)
    if INT64:
        rows = rows.to(tl.int64)
        cols = cols.to(tl.int64)
    offs = rows[:, None] * NW + cols[None, :]
    mask = (rows[:, None] < NR) & (cols[None, :] < NW) & (offs < n)
    if F64:
        cdt = tl.float64
    else:
        cdt = tl.float32
    alpha, gain, clamp = _f64_scalars(alpha, gain, clamp, alpha_lo, gain_lo, clamp_lo, F64)
    if COLUMNS:
        bias = tl.load(b_ptr + (cols // S) % C, mask=cols < NW, other=0.0).to(cdt)[None, :]
    else:
        bias = tl.load(b_ptr + rows % C, mask=rows < NR, other=0.0).to(cdt)[:, None]
    z = tl.load(x_ptr + offs, mask=mask, other=0.0).to(cdt) + bias
    dy = tl.load(dy_ptr + offs, mask=mask, other=0.0).to(cdt)
    ddx = dy
    if MODE == 2:
        ddx = tl.load(ddx_ptr + offs, mask=mask, other=0.0).to(cdt)
    out = _element(z, dy, ddx, alpha, gain, clamp, ACT, MODE, HAS_CLAMP, F64).to(out_ptr.dtype.element_ty)
    tl.store(out_ptr + offs, out, mask=mask)
    stored = tl.where(mask, out.to(cdt), 0.0)
    if COLUMNS:
        tl.store(part_ptr + pr * NW + cols, tl.sum(stored, axis=0), mask=cols < NW)
    else:
        tl.store(part_ptr + rows * n_wb + pw, tl.sum(stored, axis=1), mask=rows < NR)


# ----------------------------------------------------------------------------------------------------------------
# Launchers

_GPU_BLOCK = 1024
_RUNS_MIN = 512  # the bias gradient's reduction runs along channel runs at least this long, else down columns


_INTERPRETER_BLOCK = 4096  # fewer, larger programs under the interpreter


class ElementwisePlan(NamedTuple):
    """One launch of ``_bias_act_kernel``: BLOCK elements per program."""
    block: int
    grid: Tuple[int]
    int64: bool
    num_warps: int


def plan_bias_act(n: int, C: int, stride_c: int, dev: DeviceInfo) -> ElementwisePlan:
    """The launch of the elementwise kernel over ``n`` elements (``C`` channels at memory stride ``stride_c``)."""
    block = _INTERPRETER_BLOCK if dev.interpreter else _GPU_BLOCK
    int64 = n + block > _INT32_LIMIT or max(C, 1) * max(stride_c, 1) > _INT32_LIMIT
    return ElementwisePlan(block, (triton.cdiv(n, block),), int64, 4)


class DbPlan(NamedTuple):
    """One launch of ``_bias_act_db_kernel``: the [nr, nw] matrix in [block_r, block_w] tiles (``columns``:
    summed down columns, else along rows), ``n_rb * n_wb`` programs."""
    columns: bool
    nr: int
    nw: int
    block_r: int
    block_w: int
    n_rb: int
    n_wb: int
    int64: bool
    num_warps: int

    @property
    def grid(self) -> Tuple[int]:
        return (self.n_rb * self.n_wb,)


def _db_tiles(columns: bool, nr: int, nw: int, gpu: bool) -> Tuple[int, int]:
    """(BLOCK_R, BLOCK_W) of the bias-gradient kernel: on a GPU about 2K-4K elements per program, with rows
    (columns mode) or columns (runs mode) sized to the matrix; under the interpreter, fewer, larger programs."""
    size = 4096 if gpu else 16384
    if columns:
        block_w = 128 if gpu else min(triton.next_power_of_2(nw), 4096)
        return max(1, min(triton.next_power_of_2(nr), size // block_w, 32 if gpu else size)), block_w
    block_w = min(triton.next_power_of_2(nw), 1024 if gpu else 4096)
    return max(1, (size // 2) // block_w), block_w


def plan_bias_act_db(n: int, C: int, S: int, dev: DeviceInfo) -> DbPlan:
    """The launch of the bias-gradient kernel over ``n`` elements of memory [O, C, S] (``S``: the channel's
    stride, 1 for one channel): long runs (S >= _RUNS_MIN) as the matrix [O * C, S] summed along rows, else rows
    of W = m * C * S elements (m rows of [C, S] side by side, filling a tile's width) summed down columns."""
    gpu = not dev.interpreter
    columns = S < _RUNS_MIN
    if columns:
        width = C * S
        nw = width * max(1, (128 if gpu else 4096) // width)
        nr = triton.cdiv(n, nw)
    else:
        nr, nw = n // S, S
    block_r, block_w = _db_tiles(columns, nr, nw, gpu)
    n_rb, n_wb = triton.cdiv(nr, block_r), triton.cdiv(nw, block_w)
    int64 = n + (block_r + 1) * nw + block_w > _INT32_LIMIT  # the last tile reaches past n
    return DbPlan(columns, nr, nw, block_r, block_w, n_rb, n_wb, int64, 4)


def _gpu_db_launch(columns: bool, nr: int, nw: int) -> dict:
    block_r, block_w = _db_tiles(columns, nr, nw, True)
    return dict(COLUMNS=columns, BLOCK_R=block_r, BLOCK_W=block_w)


# The constexprs the launchers pass on a GPU where they differ from the interpreter's (compile_check compiles
# them; a callable maps the recorded constexprs to the GPU's). The bias-gradient kernel takes both of its modes
# on a GPU whichever one the recorded (small) launch took, and row tiles from 1 to 32.
GPU_CONSTEXPRS = {
    "_bias_act_kernel": [dict(BLOCK=_GPU_BLOCK)],
    "_bias_act_db_kernel": [
        lambda c: _gpu_db_launch(c["COLUMNS"], 1 << 20, 1 << 10),
        lambda c: _gpu_db_launch(not c["COLUMNS"], 1 << 20, 1 << 10),
        lambda c: _gpu_db_launch(True, 4, 1 << 12),
        lambda c: _gpu_db_launch(False, 4, 512),
    ],
}


def _same_layout(a: torch.Tensor, b: torch.Tensor) -> bool:
    return all(s == 1 or sa == sb for s, sa, sb in zip(a.shape, a.stride(), b.stride()))


def _channel_stride(x: torch.Tensor, C: int, inner: int) -> int:
    """Memory stride of the dim described logically by (C, inner)."""
    if C <= 1:
        return 1
    prod = 1
    for d in range(x.ndim - 1, -1, -1):
        if x.shape[d] == C and prod == inner:
            return x.stride(d)
        prod *= x.shape[d]
    raise ValueError(f"bias_act kernels: no dimension of x {tuple(x.shape)} has C={C} channels with inner={inner} "
                     "(inner must be prod(x.shape[dim+1:]))")


def _prepare(x: torch.Tensor, b: Optional[torch.Tensor], C: int, inner: int, *others: torch.Tensor):
    if not is_dense(x):
        x = torch.empty_like(x).copy_(x)  # dense, in the stride order empty_like(x) gives the output
    aligned = []
    for t in others:
        if t.shape != x.shape:
            raise ValueError(f"bias_act kernels: shape {tuple(t.shape)} differs from x's {tuple(x.shape)}")
        if not (is_dense(t) and _same_layout(t, x)):
            t = torch.empty_like(x, dtype=t.dtype).copy_(t)
        aligned.append(t)
    has_bias = b is not None and b.numel() > 0
    if has_bias:
        if b.numel() != C:
            raise ValueError(f"bias_act kernels: b has {b.numel()} entries, expected C={C}")
        b = b.to(x.dtype).contiguous()  # the reference adds b cast to x.dtype
        stride_c = _channel_stride(x, C, inner)
    else:
        b = x  # unused placeholder pointer
        stride_c = 1
    return x, b, has_bias, stride_c, aligned


def _launch(mode: int, x, b, dy, ddx, act_code: int, alpha: float, gain: float, clamp: float, C: int,
            inner: int) -> torch.Tensor:
    if not 0 <= int(act_code) <= 8:
        raise ValueError(f"bias_act kernels: unknown act_code {act_code}")
    others = [t for t in (dy, ddx) if t is not None]
    x, b, has_bias, stride_c, aligned = _prepare(x, b, int(C), int(inner), *others)
    dy = aligned[0] if dy is not None else x
    ddx = aligned[1] if ddx is not None else x
    out = torch.empty_like(x)
    n = x.numel()
    if n == 0:
        return out
    clamp = float(clamp) if clamp is not None else -1.0
    f64 = x.dtype == torch.float64
    scalars = [split_f64(float(alpha), f64), split_f64(float(gain), f64), split_f64(clamp, f64)]
    plan = plan_bias_act(n, int(C), stride_c, device_info(x.device))
    with device_guard(x):
        _bias_act_kernel[plan.grid](x, b, dy, ddx, out, n, max(int(C), 1), stride_c, *(p[0] for p in scalars),
                                    *(p[1] for p in scalars),
                                    ACT=int(act_code), MODE=mode, HAS_BIAS=has_bias, HAS_CLAMP=clamp >= 0,
                                    INT64=plan.int64, F64=f64, BLOCK=plan.block, num_warps=plan.num_warps)
    return out


def _launch_db(mode: int, x, b, dy, ddx, act_code: int, alpha: float, gain: float, clamp: float, C: int,
               inner: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(out, db): out as _launch, and db[c] = out summed over channel c (x's dtype) in the same pass.

    Memory is [O, C, S] (S = the channel's stride). Long runs (S >= _RUNS_MIN): tiles of the matrix [O * C, S],
    summed along rows; else tiles of rows of W = m * C * S elements (m rows of [C, S] side by side, filling a
    tile's width), summed down columns. Each program writes its partial sums; torch adds them per channel in a
    fixed order (deterministic, no atomics).
    """
    if not 0 <= int(act_code) <= 8:
        raise ValueError(f"bias_act kernels: unknown act_code {act_code}")
    others = [t for t in (dy, ddx) if t is not None]
    C, inner = int(C), int(inner)
    if b is None or b.numel() != C:
        raise ValueError(f"bias_act kernels: the bias gradient needs b with C={C} entries")
    x, b, _, stride_c, aligned = _prepare(x, b, C, inner, *others)
    dy = aligned[0]
    ddx = aligned[1] if ddx is not None else dy
    f64 = x.dtype == torch.float64
    acc = torch.float64 if f64 else torch.float32
    out = torch.empty_like(x)
    n = x.numel()
    if n == 0:
        return out, torch.zeros(C, device=x.device, dtype=x.dtype)
    S = 1 if C == 1 else stride_c
    plan = plan_bias_act_db(n, C, S, device_info(x.device))
    columns, nr, nw, n_rb, n_wb = plan.columns, plan.nr, plan.nw, plan.n_rb, plan.n_wb
    part = torch.empty((n_rb, nw) if columns else (nr, n_wb), device=x.device, dtype=acc)
    clamp = float(clamp) if clamp is not None else -1.0
    scalars = [split_f64(float(alpha), f64), split_f64(float(gain), f64), split_f64(clamp, f64)]
    with device_guard(x):
        _bias_act_db_kernel[plan.grid](x, b, dy, ddx, out, part, n, nr, nw, n_wb, C, S, *(p[0] for p in scalars),
                                       *(p[1] for p in scalars), ACT=int(act_code), MODE=mode,
                                       HAS_CLAMP=clamp >= 0, COLUMNS=columns, INT64=plan.int64, F64=f64,
                                       BLOCK_R=plan.block_r, BLOCK_W=plan.block_w, num_warps=plan.num_warps)
    if columns:  # part[rb, (j * C + c) * S + s]
        db = part.view(n_rb, nw // (C * S), C, S).sum(dim=(0, 1, 3))
    else:  # part[o * C + c, wb]
        db = part.view(nr // C, C, n_wb).sum(dim=(0, 2))
    return out, db.to(x.dtype)


def bias_act_fwd(x: torch.Tensor, b: Optional[torch.Tensor], act_code: int, alpha: float, gain: float,
                 clamp: float, C: int, inner: int) -> torch.Tensor:
    """y = clamp(act(x + b) * gain); ``b`` None or empty = no bias; ``clamp`` < 0 = no clamp."""
    return _launch(_MODE_FWD, x, b, None, None, act_code, alpha, gain, clamp, C, inner)


def bias_act_grad(dy: torch.Tensor, x: torch.Tensor, b: Optional[torch.Tensor], act_code: int, alpha: float,
                  gain: float, clamp: float, C: int, inner: int) -> torch.Tensor:
    """dx = dy * gain * act'(x + b), zero where the clamp saturated."""
    return _launch(_MODE_GRAD, x, b, dy, None, act_code, alpha, gain, clamp, C, inner)


def bias_act_grad2(ddx: torch.Tensor, dy: torch.Tensor, x: torch.Tensor, b: Optional[torch.Tensor], act_code: int,
                   alpha: float, gain: float, clamp: float, C: int, inner: int) -> torch.Tensor:
    """d(<ddx, dx>)/dx = ddx * dy * gain * act''(x + b), zero where the clamp saturated."""
    return _launch(_MODE_GRAD2, x, b, dy, ddx, act_code, alpha, gain, clamp, C, inner)


def bias_act_grad_db(dy: torch.Tensor, x: torch.Tensor, b: torch.Tensor, act_code: int, alpha: float, gain: float,
                     clamp: float, C: int, inner: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(dx, db): bias_act_grad, and db = dx summed over every dim but the bias dim, in one pass."""
    return _launch_db(_MODE_GRAD, x, b, dy, None, act_code, alpha, gain, clamp, C, inner)


def bias_act_grad2_db(ddx: torch.Tensor, dy: torch.Tensor, x: torch.Tensor, b: torch.Tensor, act_code: int,
                      alpha: float, gain: float, clamp: float, C: int, inner: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(d_x, d_b): bias_act_grad2, and d_b = d_x summed over every dim but the bias dim, in one pass."""
    return _launch_db(_MODE_GRAD2, x, b, dy, ddx, act_code, alpha, gain, clamp, C, inner)


def channel_geometry(shape: Tuple[int, ...], dim: int) -> Tuple[int, int]:
    """(C, inner) for a bias along ``dim`` of a tensor of ``shape`` (a helper for callers)."""
    inner = 1
    for s in shape[dim + 1:]:
        inner *= int(s)
    return int(shape[dim]), inner

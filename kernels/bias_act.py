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

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from ._common import device_guard, is_dense, split_f64

__all__ = ["bias_act_fwd", "bias_act_grad", "bias_act_grad2", "ACT_CODES"]

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
def _sigmoid(z):
    e = tl.exp(-tl.abs(z))
    r = 1.0 / (1.0 + e)
    return tl.where(z >= 0, r, e * r)


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
        y = _sigmoid(z)
        d1 = y * (1.0 - y)
        d2 = d1 * (1.0 - 2.0 * y)
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
    elif ACT == 7:  # softplus (beta 1, threshold 20, as F.softplus)
        lin = z > _SOFTPLUS_THRESHOLD
        sp = tl.maximum(z, zero) + _log1p_unit(tl.exp(-tl.abs(z)), F64)
        y = tl.where(lin, z, sp)
        s = _sigmoid(z)
        d1 = tl.where(lin, one, s)
        d2 = tl.where(z < _SOFTPLUS_THRESHOLD, s * (1.0 - s), zero)
    else:  # swish: z * sigmoid(z)
        s = _sigmoid(z)
        y = z * s
        d1 = s * (1.0 + z * (1.0 - s))
        d2 = s * (1.0 - s) * (2.0 + z * (1.0 - 2.0 * s))
    return y, d1, d2


@triton.jit
def _clamp_keep_nan(y, c):
    """torch.clamp(y, -c, c): NaN stays NaN (tl.minimum/maximum would return -c; tl.clamp's
    PropagateNan.ALL does not lower for float64 on NVIDIA GPUs)."""
    return tl.where(y != y, y, tl.minimum(tl.maximum(y, -c), c))


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
    if F64:  # the float64 scalars arrive as float32 pairs hi + lo
        zero = tl.zeros([BLOCK], tl.float64)
        alpha = (zero + alpha) + alpha_lo
        gain = (zero + gain) + gain_lo
        clamp = (zero + clamp) + clamp_lo
    if HAS_BIAS:
        ch = (offs // stride_c) % C
        z = z + tl.load(b_ptr + ch, mask=mask, other=0.0).to(cdt)
    y, d1, d2 = _act(z, alpha, ACT, F64)
    g = gain
    y = y * g
    if MODE == 0:
        if HAS_CLAMP:
            c = clamp
            y = _clamp_keep_nan(y, c)
        out = y
    else:
        dy = tl.load(dy_ptr + offs, mask=mask, other=0.0).to(cdt)
        if MODE == 1:
            out = dy * (d1 * g)
        else:
            ddx = tl.load(ddx_ptr + offs, mask=mask, other=0.0).to(cdt)
            out = ddx * dy * (d2 * g)
        if HAS_CLAMP:
            c = clamp
            out = tl.where((y >= -c) & (y <= c), out, 0.0)
    tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


# ----------------------------------------------------------------------------------------------------------------
# Launchers

_GPU_BLOCK = 1024
# The constexprs the launchers pass on a GPU where they differ from the interpreter's (compile_check compiles them).
GPU_CONSTEXPRS = {"_bias_act_kernel": [dict(BLOCK=_GPU_BLOCK)]}


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
    block = _GPU_BLOCK if x.is_cuda else 4096  # fewer, larger programs under the interpreter
    int64 = n + block > _INT32_LIMIT or int(C) * max(stride_c, 1) > _INT32_LIMIT
    grid = (triton.cdiv(n, block),)
    with device_guard(x):
        _bias_act_kernel[grid](x, b, dy, ddx, out, n, max(int(C), 1), stride_c, *(p[0] for p in scalars),
                               *(p[1] for p in scalars),
                               ACT=int(act_code), MODE=mode, HAS_BIAS=has_bias, HAS_CLAMP=clamp >= 0,
                               INT64=int64, F64=f64, BLOCK=block, num_warps=4)
    return out


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


def channel_geometry(shape: Tuple[int, ...], dim: int) -> Tuple[int, int]:
    """(C, inner) for a bias along ``dim`` of a tensor of ``shape`` (a helper for callers)."""
    inner = 1
    for s in shape[dim + 1:]:
        inner *= int(s)
    return int(shape[dim]), inner

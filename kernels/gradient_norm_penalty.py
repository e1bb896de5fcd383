"""Triton kernels for the fused gradient-norm penalty and its gradient, and their launchers.

Semantics (``gan_fast.reference.gradient_norm_penalty``): for grads g of shape
[N, ...], per sample sq_i = sum of g_i^2 (accumulated in float32, float64 for
float64 input), n_i = sqrt(sq_i) and

    mode 0 (center == 0, two-sided):  p_i = sq_i
    mode 1 (center c > 0):            p_i = (n_i - c)^2
    mode 2 (one-sided, any c >= 0):   p_i = max(0, n_i - c)^2

reduced by 'mean' | 'sum' | 'none'.

* ``gnp_forward`` is one launch: N x split programs each read a chunk of one
  sample once and write a partial sum of squares; the program that draws the
  last ticket sums the partials in a fixed order (deterministic), applies the
  penalty and the reduction, and writes ``(out, sq)``.
* ``gnp_backward`` is one elementwise launch: dg_i = a_i * g_i with
  a_i = 2 w_i (mode 0), 2 w_i (n_i - c) / n_i (mode 1, and mode 2 where
  n_i >= c, else 0; 0 where n_i = 0), w_i the incoming gradient of p_i (grad_out for 'sum',
  grad_out / N for 'mean', grad_out[i] for 'none').

No autograd here (see ``gan_fast/fused/gradient_norm_penalty.py``).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
import triton
import triton.language as tl

from ._common import DeviceInfo, counters, device_guard, device_info, is_dense, split_f64

__all__ = ["gnp_forward", "gnp_backward", "penalty_mode", "plan_gnp_forward", "plan_gnp_backward", "REDUCTIONS"]

REDUCTIONS = {"none": 0, "sum": 1, "mean": 2}
_INT32_LIMIT = 2**31 - 1
_GPU_BLOCK = 1024
_INTERPRETER_BLOCK = 4096
_PROGRAMS_PER_SM = 4  # the forward splits samples until the grid has this many programs per SM
# The constexprs the launchers pass on a GPU where they differ from the interpreter's (compile_check compiles them).
GPU_CONSTEXPRS = {"_gnp_fwd_kernel": [dict(BLOCK=_GPU_BLOCK)], "_gnp_bwd_kernel": [dict(BLOCK=_GPU_BLOCK)]}


def penalty_mode(center: float, one_sided: bool) -> int:
    if one_sided:
        return 2
    return 0 if center == 0 else 1


@triton.jit
def _sqrt(x, F64: tl.constexpr):
    if F64:
        return tl.sqrt(x)  # float64 sqrt is correctly rounded
    else:
        return tl.sqrt_rn(x)  # tl.sqrt on float32 may be the approximate instruction


@triton.jit
def _penalty(sq, center, MODE: tl.constexpr, F64: tl.constexpr):
    if MODE == 0:
        return sq
    else:
        gap = _sqrt(sq, F64) - center
        if MODE == 2:
            gap = tl.maximum(gap, 0.0)
        return gap * gap


@triton.jit
def _gnp_fwd_kernel(g_ptr, partial_ptr, counter_ptr, sq_ptr, out_ptr, N, D, split, chunk, center, center_lo,
                    MODE: tl.constexpr, REDUCTION: tl.constexpr, INT64: tl.constexpr, F64: tl.constexpr,
                    BLOCK: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_S: tl.constexpr):
    if F64:
        cdt = tl.float64
    else:
        cdt = tl.float32
    pid = tl.program_id(0)
    sample = pid // split
    part = pid % split
    start = part * chunk
    end = tl.minimum(start + chunk, D)
    if INT64:
        base = g_ptr + sample.to(tl.int64) * D
    else:
        base = g_ptr + sample * D
    acc = tl.zeros([BLOCK], cdt)
    for off in range(start, end, BLOCK):
        idx = off + tl.arange(0, BLOCK)
        x = tl.load(base + idx, mask=idx < end, other=0.0).to(cdt)
        acc += x * x
    tl.store(partial_ptr + pid, tl.sum(acc, 0))
    tl.debug_barrier()
    ticket = tl.atomic_add(counter_ptr, 1, sem="acq_rel")
    if ticket == N * split - 1:
        if F64:
            c = (tl.zeros([BLOCK_N], tl.float64) + center) + center_lo
        else:
            c = center
        total = tl.zeros([BLOCK_N], cdt)
        for n0 in range(0, N, BLOCK_N):
            rows = n0 + tl.arange(0, BLOCK_N)
            cols = tl.arange(0, BLOCK_S)
            rmask = rows < N
            p = tl.load(partial_ptr + rows[:, None] * split + cols[None, :],
                        mask=rmask[:, None] & (cols[None, :] < split), other=0.0, volatile=True)
            sq = tl.sum(p, 1)
            tl.store(sq_ptr + rows, sq, mask=rmask)
            pen = _penalty(sq, c, MODE, F64)
            if REDUCTION == 0:
                tl.store(out_ptr + rows, pen, mask=rmask)
            else:
                total += tl.where(rmask, pen, 0.0)
        if REDUCTION != 0:
            s = tl.sum(total, 0)
            if REDUCTION == 2:
                s = s / N
            tl.store(out_ptr, s)
        tl.store(counter_ptr, 0)  # re-arm the ticket counter for the next launch


@triton.jit
def _gnp_bwd_kernel(g_ptr, sq_ptr, go_ptr, out_ptr, total, D, N, center, center_lo,
                    MODE: tl.constexpr, REDUCTION: tl.constexpr, INT64: tl.constexpr, F64: tl.constexpr,
                    BLOCK: tl.constexpr):
    if F64:
        cdt = tl.float64
    else:
        cdt = tl.float32
    pid = tl.program_id(0)
    if INT64:
        offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    else:
        offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < total
    sample = offs // D
    g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(cdt)
    if REDUCTION == 0:
        w = tl.load(go_ptr + sample, mask=mask, other=0.0).to(cdt)
    else:
        w = tl.load(go_ptr).to(cdt)
        if REDUCTION == 2:
            w = w / N
    if MODE == 0:
        coef = 2.0 * w
    else:
        if F64:
            c = (tl.zeros([BLOCK], tl.float64) + center) + center_lo
        else:
            c = center
        sq = tl.load(sq_ptr + sample, mask=mask, other=1.0).to(cdt)
        n = _sqrt(sq, F64)
        gap = n - c
        coef = tl.where(n > 0, 2.0 * w * gap / tl.where(n > 0, n, 1.0), 0.0)  # subgradient 0 at g_i = 0
        if MODE == 2:
            coef = tl.where(gap >= 0, coef, 0.0)
    tl.store(out_ptr + offs, (coef * g).to(out_ptr.dtype.element_ty), mask=mask)


# ----------------------------------------------------------------------------------------------------------------
# Launchers


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def _rows(grads: torch.Tensor) -> Tuple[torch.Tensor, bool]:
    """grads as a tensor whose storage is [N, D] rows (any element order within a row); True if it is grads itself."""
    N = grads.shape[0]
    if is_dense(grads) and (N == 1 or grads.stride(0) * N == grads.numel() or grads.numel() == 0):
        return grads, True
    return grads.contiguous(), False


class GnpForwardPlan(NamedTuple):
    """The forward's launch: ``split`` programs per sample, each summing ``chunk`` elements in BLOCKs."""
    block: int
    split: int
    chunk: int
    block_s: int
    block_n: int
    num_warps: int
    N: int

    @property
    def grid(self) -> Tuple[int]:
        return (self.N * self.split,)


def plan_gnp_forward(N: int, D: int, dev: DeviceInfo, split: Optional[int] = None) -> GnpForwardPlan:
    """The forward's launch for ``N`` samples of ``D`` elements: ``split`` (programs per sample) fills the GPU
    with about 4 programs per SM, each reading at least 4 blocks; one program per sample under the interpreter.
    ``split`` given: that split (tests), as far as the sample size allows."""
    block = _INTERPRETER_BLOCK if dev.interpreter else _GPU_BLOCK
    if split is None:
        if dev.interpreter:
            split = 1
        else:
            want = _PROGRAMS_PER_SM * dev.sm_count
            split = max(1, min(triton.cdiv(want, max(N, 1)), triton.cdiv(D, 4 * block), 1024))
    split = max(1, min(int(split), max(D, 1)))
    chunk = triton.cdiv(triton.cdiv(max(D, 1), split), block) * block
    split = triton.cdiv(max(D, 1), chunk)
    block_s = triton.next_power_of_2(split)
    block_n = max(1, min(triton.next_power_of_2(max(N, 1)), max(1, 4096 // block_s)))
    return GnpForwardPlan(block, split, chunk, block_s, block_n, 4, N)


def plan_gnp_backward(total: int, dev: DeviceInfo) -> Tuple[int, Tuple[int], int]:
    """(BLOCK, grid, num_warps) of the elementwise backward over ``total`` elements."""
    block = _INTERPRETER_BLOCK if dev.interpreter else _GPU_BLOCK
    return block, (triton.cdiv(total, block),), 4


def gnp_forward(grads: torch.Tensor, center: float, one_sided: bool, reduction: str,
                split: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(penalty, sq): penalty is 0-D ('mean', 'sum') or [N] ('none'); sq [N] the per-sample squared norms.

    Both are float32 (float64 for float64 grads). ``split`` (programs per sample)
    is chosen to fill the GPU when None; tests set it to exercise the reduction.
    """
    N = grads.shape[0]
    acc = _acc_dtype(grads.dtype)
    red = REDUCTIONS[reduction]
    out = torch.empty(() if red else (N,), dtype=acc, device=grads.device)
    sq = torch.empty((N,), dtype=acc, device=grads.device)
    g, _ = _rows(grads)
    D = g.numel() // N if N else 0
    if N == 0:
        return out.fill_(float("nan") if red == 2 else 0.0), sq
    plan = plan_gnp_forward(N, D, device_info(g.device), split)
    partial = torch.empty((N * plan.split,), dtype=acc, device=g.device)
    counter = counters(g.device, 1)
    f64 = acc == torch.float64
    c_hi, c_lo = split_f64(float(center), f64)
    with device_guard(g):
        _gnp_fwd_kernel[plan.grid](g, partial, counter, sq, out, N, D, plan.split, plan.chunk, c_hi, c_lo,
                                   MODE=penalty_mode(center, one_sided), REDUCTION=red,
                                   INT64=g.numel() + plan.block > _INT32_LIMIT, F64=f64, BLOCK=plan.block,
                                   BLOCK_N=plan.block_n, BLOCK_S=plan.block_s, num_warps=plan.num_warps)
    return out, sq


def gnp_backward(grads: torch.Tensor, sq: torch.Tensor, grad_out: torch.Tensor, center: float, one_sided: bool,
                 reduction: str) -> torch.Tensor:
    """d penalty / d grads, scaled by ``grad_out`` (0-D for 'mean'/'sum', [N] for 'none'); grads' dtype and
    the strides of ``torch.empty_like(grads)``."""
    N = grads.shape[0]
    result = torch.empty_like(grads)
    if grads.numel() == 0:
        return result
    g, direct = _rows(grads)
    out = result if direct and result.stride() == g.stride() else torch.empty_like(g)
    D = g.numel() // N
    red = REDUCTIONS[reduction]
    f64 = _acc_dtype(grads.dtype) == torch.float64
    c_hi, c_lo = split_f64(float(center), f64)
    go = grad_out.to(_acc_dtype(grads.dtype)).contiguous()
    sq = sq.contiguous()
    total = g.numel()
    block, grid, warps = plan_gnp_backward(total, device_info(g.device))
    with device_guard(g):
        _gnp_bwd_kernel[grid](g, sq, go, out, total, D, N, c_hi, c_lo,
                              MODE=penalty_mode(center, one_sided), REDUCTION=red,
                              INT64=total + block > _INT32_LIMIT, F64=f64, BLOCK=block, num_warps=warps)
    if out is not result:
        result.copy_(out)
    return result

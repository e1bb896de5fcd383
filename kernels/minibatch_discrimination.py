"""Triton kernels for the pairwise part of minibatch discrimination, forward and backward, and their launchers.

Semantics (``gan_fast.reference.minibatch_discrimination``): for m [N, B, C],

    s_ij = exp(-d_ij),  d_ij = sum_c |m_ic - m_jc|      (per b; b dropped below)
    o_i  = sum over j != i of s_ij                      -> o [N, B]

Gradients, with sigma_ijc = sign(m_ic - m_jc) (sign(0) = 0: the subgradient 0 of |.| at 0,
so identical rows get a finite, zero pairwise gradient, as in ``ref``):

* first order, cotangent g [N, B] of o (s is symmetric, so pair (i, j) reaches m_i through o_i and o_j):
  dm_ic = -sum_j (g_i + g_j) s_ij sigma_ijc
* second order, cotangent v [N, B, C] of dm, with e_ij = sum_c (v_ic - v_jc) sigma_ijc:
  d<v, dm>/dm_ic = sum_j (g_i + g_j) s_ij e_ij sigma_ijc     (sigma is piecewise constant)
  d<v, dm>/dg_i  = -sum_j s_ij e_ij

No [N, N, B, C] (or [N, N, B]) tensor is ever materialised: one program owns BLOCK_I rows i of one b
(and, in the backward, one chunk of BLOCK_C channels), loops over j in tiles of BLOCK_J and over c in
chunks of BLOCK_C, and keeps only a [BLOCK_I, BLOCK_J] tile of distances. The backward recomputes the
distances (cheaper than storing N^2 B of them). Both backward orders are one kernel (``SECOND``).

Arithmetic is float32 for float16 / bfloat16 / float32 and float64 for float64. Any strides are
accepted (the cotangents are often expanded); outputs are contiguous in m's dtype. No autograd here
(see ``gan_fast/fused/minibatch_discrimination.py``).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from ._common import DeviceInfo, device_guard, device_info

__all__ = ["mbd_forward", "mbd_backward", "plan_mbd"]

# (BLOCK_I, BLOCK_J, max BLOCK_C) per kernel: the GPU's, and the interpreter's (whose cost is per
# operation, not per element: large tiles run fastest there). Tests pass smaller ones through ``blocks``.
_GPU_FWD, _GPU_BWD = (32, 32, 8), (32, 16, 8)
_CPU_FWD = _CPU_BWD = (32, 32, 8)
# The constexprs the launchers pass on a GPU where they differ from the interpreter's (compile_check compiles them).
GPU_CONSTEXPRS = {
    "_mbd_fwd_kernel": [dict(BLOCK_I=_GPU_FWD[0], BLOCK_J=_GPU_FWD[1], BLOCK_C=_GPU_FWD[2]),
                        dict(BLOCK_I=_GPU_FWD[0], BLOCK_J=_GPU_FWD[1], BLOCK_C=2)],
    "_mbd_bwd_kernel": [dict(BLOCK_I=_GPU_BWD[0], BLOCK_J=_GPU_BWD[1], BLOCK_C=_GPU_BWD[2]),
                        dict(BLOCK_I=_GPU_BWD[0], BLOCK_J=_GPU_BWD[1], BLOCK_C=2)],
}


@triton.jit
def _sign(x):
    return (x > 0).to(x.dtype) - (x < 0).to(x.dtype)


@triton.jit
def _mbd_fwd_kernel(m_ptr, o_ptr, N, B, C, s_n, s_b, s_c,
                    F64: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_C: tl.constexpr):
    if F64:
        cdt = tl.float64
    else:
        cdt = tl.float32
    n_i = tl.cdiv(N, BLOCK_I)
    pid = tl.program_id(0)
    b = (pid // n_i).to(tl.int64)
    ri = (pid % n_i) * BLOCK_I + tl.arange(0, BLOCK_I)
    mi = ri < N
    rc = tl.arange(0, BLOCK_C)
    base = m_ptr + b * s_b
    row_i = ri.to(tl.int64) * s_n
    acc = tl.zeros([BLOCK_I], cdt)
    for j0 in range(0, N, BLOCK_J):
        rj = j0 + tl.arange(0, BLOCK_J)
        mj = rj < N
        row_j = rj.to(tl.int64) * s_n
        d = tl.zeros([BLOCK_I, BLOCK_J], cdt)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + rc
            mc = cc < C
            col = cc.to(tl.int64) * s_c
            a = tl.load(base + row_i[:, None] + col[None, :], mask=mi[:, None] & mc[None, :], other=0.0).to(cdt)
            x = tl.load(base + row_j[:, None] + col[None, :], mask=mj[:, None] & mc[None, :], other=0.0).to(cdt)
            d += tl.sum(tl.abs(a[:, None, :] - x[None, :, :]), axis=2)
        keep = mj[None, :] & (ri[:, None] != rj[None, :])
        acc += tl.sum(tl.where(keep, tl.exp(-d), 0.0), axis=1)
    tl.store(o_ptr + ri.to(tl.int64) * B + b, acc.to(o_ptr.dtype.element_ty), mask=mi)


@triton.jit
def _mbd_bwd_kernel(m_ptr, g_ptr, v_ptr, dm_ptr, dg_ptr, N, B, C, s_n, s_b, s_c, g_sn, g_sb, v_sn, v_sb, v_sc,
                    SECOND: tl.constexpr, F64: tl.constexpr,
                    BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_C: tl.constexpr):
    """dm = -sum_j w_ij sigma_ijc over the program's channel chunk, w_ij = (g_i + g_j) s_ij (first order) or
    -(g_i + g_j) s_ij e_ij (second order, which also writes dg = -sum_j s_ij e_ij from channel chunk 0)."""
    if F64:
        cdt = tl.float64
    else:
        cdt = tl.float32
    n_i = tl.cdiv(N, BLOCK_I)
    pid = tl.program_id(0)
    pid_c = tl.program_id(1)
    b = (pid // n_i).to(tl.int64)
    ri = (pid % n_i) * BLOCK_I + tl.arange(0, BLOCK_I)
    mi = ri < N
    rc = tl.arange(0, BLOCK_C)
    own = pid_c * BLOCK_C + rc
    m_own = own < C
    base = m_ptr + b * s_b
    vbase = v_ptr + b * v_sb
    row_i = ri.to(tl.int64) * s_n
    vrow_i = ri.to(tl.int64) * v_sn
    col_own = own.to(tl.int64) * s_c
    mask_own_i = mi[:, None] & m_own[None, :]
    a_own = tl.load(base + row_i[:, None] + col_own[None, :], mask=mask_own_i, other=0.0).to(cdt)
    gi = tl.load(g_ptr + ri.to(tl.int64) * g_sn + b * g_sb, mask=mi, other=0.0).to(cdt)
    acc = tl.zeros([BLOCK_I, BLOCK_C], cdt)
    acc_g = tl.zeros([BLOCK_I], cdt)
    for j0 in range(0, N, BLOCK_J):
        rj = j0 + tl.arange(0, BLOCK_J)
        mj = rj < N
        row_j = rj.to(tl.int64) * s_n
        gj = tl.load(g_ptr + rj.to(tl.int64) * g_sn + b * g_sb, mask=mj, other=0.0).to(cdt)
        d = tl.zeros([BLOCK_I, BLOCK_J], cdt)
        e = tl.zeros([BLOCK_I, BLOCK_J], cdt)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + rc
            mc = cc < C
            col = cc.to(tl.int64) * s_c
            a = tl.load(base + row_i[:, None] + col[None, :], mask=mi[:, None] & mc[None, :], other=0.0).to(cdt)
            x = tl.load(base + row_j[:, None] + col[None, :], mask=mj[:, None] & mc[None, :], other=0.0).to(cdt)
            diff = a[:, None, :] - x[None, :, :]
            d += tl.sum(tl.abs(diff), axis=2)
            if SECOND:
                vcol = cc.to(tl.int64) * v_sc
                va = tl.load(vbase + vrow_i[:, None] + vcol[None, :], mask=mi[:, None] & mc[None, :],
                             other=0.0).to(cdt)
                vx = tl.load(vbase + rj.to(tl.int64)[:, None] * v_sn + vcol[None, :], mask=mj[:, None] & mc[None, :],
                             other=0.0).to(cdt)
                e += tl.sum((va[:, None, :] - vx[None, :, :]) * _sign(diff), axis=2)
        s = tl.where(mj[None, :], tl.exp(-d), 0.0)
        w = (gi[:, None] + gj[None, :]) * s
        if SECOND:
            w = -w * e
            acc_g += tl.sum(s * e, axis=1)
        x_own = tl.load(base + row_j[:, None] + col_own[None, :], mask=mj[:, None] & m_own[None, :],
                        other=0.0).to(cdt)
        acc += tl.sum(w[:, :, None] * _sign(a_own[:, None, :] - x_own[None, :, :]), axis=1)
    out_rows = ri.to(tl.int64) * B * C + b * C
    tl.store(dm_ptr + out_rows[:, None] + own[None, :], (-acc).to(dm_ptr.dtype.element_ty), mask=mask_own_i)
    if SECOND:
        if pid_c == 0:
            tl.store(dg_ptr + ri.to(tl.int64) * B + b, (-acc_g).to(dg_ptr.dtype.element_ty), mask=mi)


def plan_mbd(n: int, nb: int, nc: int, backward: bool, dev: DeviceInfo,
             blocks: Optional[Tuple[int, int, int]] = None) -> Tuple[Tuple[int, ...], Tuple[int, int, int], int]:
    """(grid, (BLOCK_I, BLOCK_J, BLOCK_C), num_warps) of the forward (or the ``backward``) for m [n, nb, nc];
    ``blocks``: (BLOCK_I, BLOCK_J, max BLOCK_C) instead of the device's (tests)."""
    if blocks is None:
        blocks = (_CPU_BWD if backward else _CPU_FWD) if dev.interpreter else (_GPU_BWD if backward else _GPU_FWD)
    bi, bj, bc = blocks
    bc = min(bc, triton.next_power_of_2(max(nc, 1)))
    grid = (triton.cdiv(n, bi) * nb, max(1, triton.cdiv(nc, bc))) if backward else (triton.cdiv(n, bi) * nb,)
    # The backward's [BLOCK_I, BLOCK_J, BLOCK_C] tiles (differences, signs, and the cotangent's in the second
    # order) over 8 warps on a GPU: 4 warps needed 166 registers a thread on sm_90 (19% occupancy).
    return grid, (bi, bj, bc), (8 if backward and not dev.interpreter else 4)


def _check(m: torch.Tensor) -> None:
    if m.ndim != 3 or not m.is_floating_point():
        raise ValueError(f"minibatch_discrimination kernels: m must be a floating [N, B, C] tensor, got "
                         f"{m.dtype} {tuple(m.shape)}")


def mbd_forward(m: torch.Tensor, blocks: Optional[Tuple[int, int, int]] = None) -> torch.Tensor:
    """o [N, B] (m's dtype, contiguous) from m [N, B, C] (any strides). ``blocks``: (BLOCK_I, BLOCK_J,
    max BLOCK_C), powers of 2, instead of the device's (tests)."""
    _check(m)
    n, nb, nc = m.shape
    o = torch.empty((n, nb), dtype=m.dtype, device=m.device)
    if o.numel() == 0:
        return o
    grid, (bi, bj, bc), warps = plan_mbd(n, nb, nc, False, device_info(m.device), blocks)
    with device_guard(m):
        _mbd_fwd_kernel[grid](
            m, o, n, nb, nc, *m.stride(), F64=m.dtype == torch.float64, BLOCK_I=bi, BLOCK_J=bj, BLOCK_C=bc,
            num_warps=warps)
    return o


def mbd_backward(m: torch.Tensor, g: torch.Tensor, v: Optional[torch.Tensor] = None,
                 blocks: Optional[Tuple[int, int, int]] = None) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """First order (``v`` None): (dm [N, B, C], None) for the cotangent g [N, B] of o.
    Second order: (d<v, dm>/dm, d<v, dm>/dg) for the cotangent v [N, B, C] of dm.
    Inputs of any strides; g and v are read in m's dtype; outputs contiguous in m's dtype.
    ``blocks`` as in :func:`mbd_forward`."""
    _check(m)
    n, nb, nc = m.shape
    if tuple(g.shape) != (n, nb) or (v is not None and tuple(v.shape) != (n, nb, nc)):
        raise ValueError(f"minibatch_discrimination kernels: g must be [{n}, {nb}] and v [{n}, {nb}, {nc}], got "
                         f"{tuple(g.shape)} and {None if v is None else tuple(v.shape)}")
    g = g.to(m.dtype)
    second = v is not None
    dm = torch.empty((n, nb, nc), dtype=m.dtype, device=m.device)
    dg = torch.empty((n, nb), dtype=m.dtype, device=m.device) if second else None
    if n * nb * nc == 0:  # no channels: dm is empty and every e_ij is 0
        return dm, None if dg is None else dg.zero_()
    if second:
        v = v.to(m.dtype)
    grid, (bi, bj, bc), warps = plan_mbd(n, nb, nc, True, device_info(m.device), blocks)
    vv = v if second else m  # an unused pointer of the right dtype when first order
    with device_guard(m):
        _mbd_bwd_kernel[grid](
            m, g, vv, dm, dg if second else dm, n, nb, nc, *m.stride(), *g.stride(), *vv.stride(),
            SECOND=second, F64=m.dtype == torch.float64, BLOCK_I=bi, BLOCK_J=bj, BLOCK_C=bc, num_warps=warps)
    return dm, dg

"""Triton kernels for spectral normalisation (power iteration, sigma, W / sigma and its backward), and launchers.

Every kernel is *multi-tensor*: it takes a device table with one row per
weight matrix ("layer") and a program map, so one launch serves one weight
(``spectral_normalize``, ``power_iteration``) or every spectral-normed layer of
a model (``gan_fast.fused.spectral_norm_multi``). Per layer the weight is
viewed as a strided matrix W [h, w] (``weight_to_matrix``).

Power iteration, one launch per iteration (``_sn_power_kernel``)
    Each layer gets P = ceil(h / BLOCK_H) programs; program r owns rows R.
    With one iteration, program r computes t_R = W_R v (unnormalised u) and
    the partial s_r = W_R^T t_R, so that W^T u = sum_r s_r / max(|t|, eps)
    needs no second pass over W after u is known. The program that draws the
    layer's last ticket (a deterministic, fixed-order reduction, no float
    atomics) forms u = t / max(|t|, eps), s = W^T u, v = s / max(|s|, eps) and
    sigma = u^T W v = |s|^2 / max(|s|, eps), writes them, and - when the layer
    is small enough ("fused") - also writes W / sigma in the same launch.
    With zero iterations (eval mode) the programs compute partial u_R . (W_R v)
    and the last one sums them: sigma = u^T W v.
    n iterations = n launches (iteration k reads v from iteration k - 1).
W / sigma for layers not fused into the power launch: ``_sn_scale_kernel``.
Backward of W / sigma (u, v constants, sigma = u^T W v):
    dW = g / sigma - (<g, W> / sigma^2) u v^T
    ``_sn_bwd_kernel`` computes <g, W> (partials + last-ticket reduction) and,
    for fused layers, dW in the same launch; ``_sn_bwd_apply_kernel`` writes dW
    for the others.

Arithmetic is float32 (float64 for float64 weights); u, v and sigma are kept in
that compute dtype. No autograd here (see ``gan_fast/fused/``).

Launches (:func:`plan_spectral_norm`, compiled for sm_90 by ``benchmarks/static_report.py``): [16, 256] tiles
and 1024-element blocks over 8 warps. ``_sn_power_kernel`` is a tile kernel (its two matrix-vector products
per row block; no occupancy bar): about 80 registers, no spills, about 38% theoretical occupancy, which is
plenty for a launch whose programs each stream a [16, w] slab of W twice. The others are memory-bound
(<g, W> and the elementwise W / sigma and dW) at 25% or more.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
import triton
import triton.language as tl

from ._common import DeviceInfo, counters, device_guard, device_info

__all__ = ["SNLayer", "Plan", "plan", "power_launch", "backward_launch", "matrix_view", "compute_dtype",
           "plan_spectral_norm", "SNLaunchPlan"]

_INT32_LIMIT = 2**31 - 1

# Forward table fields (int64), one row per layer: addresses (W, u/v in, u/v buffers or 0, u/v/sigma out, Y),
# sizes and strides, workspace offsets, programs, ticket counter index, fused-division flag.
(F_W, F_H, F_WD, F_SH, F_SW, F_UIN, F_VIN, F_UBUF, F_VBUF, F_UOUT, F_VOUT, F_SOUT, F_TOFF, F_SPOFF, F_SQOFF, F_P,
 F_PROG, F_CNT, F_Y, F_YSH, F_YSW, F_FUSE) = range(22)
NF = 22
# Backward table fields.
(B_W, B_H, B_WD, B_SH, B_SW, B_G, B_GSH, B_GSW, B_D, B_DSH, B_DSW, B_U, B_V, B_S, B_COFF, B_POFF, B_P,
 B_PROG, B_CNT, B_FUSE) = range(20)
NB = 20


# ------------------------------------------------------------------------------------------------------ kernels


@triton.jit
def _sqrt(x, F64: tl.constexpr):
    if F64:
        return tl.sqrt(x)
    else:
        return tl.sqrt_rn(x)


@triton.jit
def _field(row_ptr, k: tl.constexpr):
    return tl.load(row_ptr + k)


@triton.jit
def _program(tab_ptr, prog_ptr, ROW: tl.constexpr):
    """(this program's layer-table row, its block index within the layer)."""
    pid = tl.program_id(0)
    layer = tl.load(prog_ptr + 2 * pid)
    local = tl.load(prog_ptr + 2 * pid + 1).to(tl.int64)
    return tab_ptr + layer.to(tl.int64) * ROW, local


@triton.jit
def _matrix(row, ELT: tl.constexpr):
    """(W pointer, h, w, row stride, column stride) of a layer's weight matrix."""
    return _field(row, 0).to(tl.pointer_type(ELT)), _field(row, 1), _field(row, 2), _field(row, 3), _field(row, 4)


@triton.jit
def _sn_power_kernel(tab_ptr, prog_ptr, ws_base, cnt_base, eps,
                     N_ITERS: tl.constexpr, ELT: tl.constexpr, F64: tl.constexpr, BLOCK_H: tl.constexpr,
                     BLOCK_W: tl.constexpr):
    if F64:
        cdt = tl.float64
    else:
        cdt = tl.float32
    row, local = _program(tab_ptr, prog_ptr, 22)
    W, h, wd, sh, sw = _matrix(row, ELT)
    u_in = _field(row, 5).to(tl.pointer_type(ELT))
    v_in = _field(row, 6).to(tl.pointer_type(ELT))
    u_buf = _field(row, 7)
    v_buf = _field(row, 8)
    u_out = _field(row, 9).to(tl.pointer_type(cdt))
    v_out = _field(row, 10).to(tl.pointer_type(cdt))
    s_out = _field(row, 11).to(tl.pointer_type(cdt))
    t_off = _field(row, 12)
    sp_off = _field(row, 13)
    sq_off = _field(row, 14)
    P = _field(row, 15)
    cnt = cnt_base + _field(row, 17)

    rows = local * BLOCK_H + tl.arange(0, BLOCK_H).to(tl.int64)
    rmask = rows < h
    t = tl.zeros([BLOCK_H], cdt)
    for c0 in range(0, wd, BLOCK_W):
        cols = c0 + tl.arange(0, BLOCK_W).to(tl.int64)
        cmask = cols < wd
        tile = tl.load(W + rows[:, None] * sh + cols[None, :] * sw, mask=rmask[:, None] & cmask[None, :],
                       other=0.0).to(cdt)
        vv = tl.load(v_in + cols, mask=cmask, other=0.0).to(cdt)
        t += tl.sum(tile * vv[None, :], 1)
    if N_ITERS == 1:
        tl.store(ws_base + t_off + rows, t, mask=rmask)
        tl.store(ws_base + sq_off + local, tl.sum(t * t, 0))
        for c0 in range(0, wd, BLOCK_W):
            cols = c0 + tl.arange(0, BLOCK_W).to(tl.int64)
            cmask = cols < wd
            tile = tl.load(W + rows[:, None] * sh + cols[None, :] * sw, mask=rmask[:, None] & cmask[None, :],
                           other=0.0).to(cdt)
            tl.store(ws_base + sp_off + local * wd + cols, tl.sum(tile * t[:, None], 0), mask=cmask)
    else:
        uu = tl.load(u_in + rows, mask=rmask, other=0.0).to(cdt)
        tl.store(ws_base + sq_off + local, tl.sum(uu * t, 0))
    tl.debug_barrier()
    ticket = tl.atomic_add(cnt, 1, sem="acq_rel")
    if ticket == P - 1:
        # ---- the layer's last program: finish the reduction, in a fixed order
        acc = tl.zeros([BLOCK_H], cdt)
        for p0 in range(0, P, BLOCK_H):
            pp = p0 + tl.arange(0, BLOCK_H)
            acc += tl.load(ws_base + sq_off + pp, mask=pp < P, other=0.0, volatile=True)
        total = tl.sum(acc, 0)
        if N_ITERS == 1:
            dt = tl.maximum(_sqrt(total, F64), eps)
            for r0 in range(0, h, BLOCK_H):
                rr = r0 + tl.arange(0, BLOCK_H).to(tl.int64)
                m = rr < h
                uu = tl.load(ws_base + t_off + rr, mask=m, other=0.0, volatile=True) / dt
                tl.store(u_out + rr, uu, mask=m)
                if u_buf != 0:
                    tl.store(u_buf.to(tl.pointer_type(ELT)) + rr, uu.to(ELT), mask=m)
            ss = tl.zeros([BLOCK_W], cdt)
            for c0 in range(0, wd, BLOCK_W):
                cols = c0 + tl.arange(0, BLOCK_W).to(tl.int64)
                cmask = cols < wd
                sacc = tl.zeros([BLOCK_W], cdt)
                for p in range(0, P):
                    sacc += tl.load(ws_base + sp_off + p * wd + cols, mask=cmask, other=0.0, volatile=True)
                s = sacc / dt
                tl.store(v_out + cols, s, mask=cmask)
                ss += s * s
            ns2 = tl.sum(ss, 0)
            ds = tl.maximum(_sqrt(ns2, F64), eps)
            for c0 in range(0, wd, BLOCK_W):
                cols = c0 + tl.arange(0, BLOCK_W).to(tl.int64)
                cmask = cols < wd
                vv = tl.load(v_out + cols, mask=cmask, other=0.0) / ds
                tl.store(v_out + cols, vv, mask=cmask)
                if v_buf != 0:
                    tl.store(v_buf.to(tl.pointer_type(ELT)) + cols, vv.to(ELT), mask=cmask)
            sigma = ns2 / ds  # = u^T W v = s . v
        else:
            sigma = total
            for r0 in range(0, h, BLOCK_H):
                rr = r0 + tl.arange(0, BLOCK_H).to(tl.int64)
                m = rr < h
                tl.store(u_out + rr, tl.load(u_in + rr, mask=m, other=0.0).to(cdt), mask=m)
            for c0 in range(0, wd, BLOCK_W):
                cols = c0 + tl.arange(0, BLOCK_W).to(tl.int64)
                cmask = cols < wd
                tl.store(v_out + cols, tl.load(v_in + cols, mask=cmask, other=0.0).to(cdt), mask=cmask)
        tl.store(s_out, sigma)
        if _field(row, 21) != 0:  # fused W / sigma for this layer
            y = _field(row, 18).to(tl.pointer_type(ELT))
            ysh = _field(row, 19)
            ysw = _field(row, 20)
            for r0 in range(0, h, BLOCK_H):
                rr = r0 + tl.arange(0, BLOCK_H).to(tl.int64)
                m = rr < h
                for c0 in range(0, wd, BLOCK_W):
                    cols = c0 + tl.arange(0, BLOCK_W).to(tl.int64)
                    mm = m[:, None] & (cols[None, :] < wd)
                    tile = tl.load(W + rr[:, None] * sh + cols[None, :] * sw, mask=mm, other=0.0).to(cdt)
                    tl.store(y + rr[:, None] * ysh + cols[None, :] * ysw, (tile / sigma).to(ELT), mask=mm)
        tl.store(cnt, 0)  # re-arm the layer's ticket counter


@triton.jit
def _sn_scale_kernel(tab_ptr, prog_ptr, ELT: tl.constexpr, F64: tl.constexpr,
                     BLOCK: tl.constexpr):
    if F64:
        cdt = tl.float64
    else:
        cdt = tl.float32
    row, local = _program(tab_ptr, prog_ptr, 22)
    W = _field(row, 0).to(tl.pointer_type(ELT))
    h = _field(row, 1)
    wd = _field(row, 2)
    sigma = tl.load(_field(row, 11).to(tl.pointer_type(cdt)))
    e = local * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    m = e < h * wd
    i = e // wd
    j = e % wd
    x = tl.load(W + i * _field(row, 3) + j * _field(row, 4), mask=m, other=0.0).to(cdt)
    y = _field(row, 18).to(tl.pointer_type(ELT))
    tl.store(y + i * _field(row, 19) + j * _field(row, 20), (x / sigma).to(ELT), mask=m)


@triton.jit
def _sn_bwd_kernel(tab_ptr, prog_ptr, ws_base, cnt_base,
                   ELT: tl.constexpr, F64: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    if F64:
        cdt = tl.float64
    else:
        cdt = tl.float32
    row, local = _program(tab_ptr, prog_ptr, 20)
    W, h, wd, sh, sw = _matrix(row, ELT)
    G = _field(row, 5).to(tl.pointer_type(ELT))
    gsh = _field(row, 6)
    gsw = _field(row, 7)
    p_off = _field(row, 15)
    P = _field(row, 16)
    cnt = cnt_base + _field(row, 18)
    rows = local * BLOCK_H + tl.arange(0, BLOCK_H).to(tl.int64)
    rmask = rows < h
    acc = tl.zeros([BLOCK_H, BLOCK_W], cdt)
    for c0 in range(0, wd, BLOCK_W):
        cols = c0 + tl.arange(0, BLOCK_W).to(tl.int64)
        mm = rmask[:, None] & (cols[None, :] < wd)
        w_t = tl.load(W + rows[:, None] * sh + cols[None, :] * sw, mask=mm, other=0.0).to(cdt)
        g_t = tl.load(G + rows[:, None] * gsh + cols[None, :] * gsw, mask=mm, other=0.0).to(cdt)
        acc += w_t * g_t
    tl.store(ws_base + p_off + local, tl.sum(tl.sum(acc, 1), 0))
    tl.debug_barrier()
    ticket = tl.atomic_add(cnt, 1, sem="acq_rel")
    if ticket == P - 1:
        pacc = tl.zeros([BLOCK_H], cdt)
        for p0 in range(0, P, BLOCK_H):
            pp = p0 + tl.arange(0, BLOCK_H)
            pacc += tl.load(ws_base + p_off + pp, mask=pp < P, other=0.0, volatile=True)
        gw = tl.sum(pacc, 0)
        sigma = tl.load(_field(row, 13).to(tl.pointer_type(cdt)))
        c = gw / (sigma * sigma)
        tl.store(ws_base + _field(row, 14), c)
        if _field(row, 19) != 0:  # fused: dW = g / sigma - c u v^T
            u_p = _field(row, 11).to(tl.pointer_type(cdt))
            v_p = _field(row, 12).to(tl.pointer_type(cdt))
            dw = _field(row, 8).to(tl.pointer_type(ELT))
            dsh = _field(row, 9)
            dsw = _field(row, 10)
            for r0 in range(0, h, BLOCK_H):
                rr = r0 + tl.arange(0, BLOCK_H).to(tl.int64)
                m = rr < h
                uu = tl.load(u_p + rr, mask=m, other=0.0)
                for c0 in range(0, wd, BLOCK_W):
                    cols = c0 + tl.arange(0, BLOCK_W).to(tl.int64)
                    cm = cols < wd
                    mm = m[:, None] & cm[None, :]
                    vv = tl.load(v_p + cols, mask=cm, other=0.0)
                    g_t = tl.load(G + rr[:, None] * gsh + cols[None, :] * gsw, mask=mm, other=0.0).to(cdt)
                    d = g_t / sigma - c * (uu[:, None] * vv[None, :])
                    tl.store(dw + rr[:, None] * dsh + cols[None, :] * dsw, d.to(ELT), mask=mm)
        tl.store(cnt, 0)


@triton.jit
def _sn_bwd_apply_kernel(tab_ptr, prog_ptr, ws_base, ELT: tl.constexpr, F64: tl.constexpr,
                         BLOCK: tl.constexpr):
    if F64:
        cdt = tl.float64
    else:
        cdt = tl.float32
    row, local = _program(tab_ptr, prog_ptr, 20)
    h = _field(row, 1)
    wd = _field(row, 2)
    G = _field(row, 5).to(tl.pointer_type(ELT))
    sigma = tl.load(_field(row, 13).to(tl.pointer_type(cdt)))
    c = tl.load(ws_base + _field(row, 14))
    e = local * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    m = e < h * wd
    i = e // wd
    j = e % wd
    uu = tl.load(_field(row, 11).to(tl.pointer_type(cdt)) + i, mask=m, other=0.0)
    vv = tl.load(_field(row, 12).to(tl.pointer_type(cdt)) + j, mask=m, other=0.0)
    g = tl.load(G + i * _field(row, 6) + j * _field(row, 7), mask=m, other=0.0).to(cdt)
    d = g / sigma - c * (uu * vv)
    dw = _field(row, 8).to(tl.pointer_type(ELT))
    tl.store(dw + i * _field(row, 9) + j * _field(row, 10), d.to(ELT), mask=m)


# ---------------------------------------------------------------------------------------------------- launchers

_ELT = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16, torch.float64: tl.float64}


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def matrix_view(t: torch.Tensor, dim: int) -> Optional[torch.Tensor]:
    """``weight_to_matrix(t, dim)`` as a strided *view* of t, or None when it cannot be one."""
    if t.ndim == 2 and dim == 0:
        return t
    perm = t.permute(dim, *(d for d in range(t.ndim) if d != dim)) if dim != 0 else t
    try:
        return perm.view(perm.shape[0], -1)
    except RuntimeError:
        return None


class _TableCache:
    """Device copies of small int64 tables, keyed by their content (LRU), so steady-state calls copy nothing."""

    def __init__(self, size: int = 512):
        self._d: "OrderedDict[tuple, torch.Tensor]" = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, rows: Sequence[Sequence[int]], device: torch.device, dtype=torch.int64) -> torch.Tensor:
        key = (str(device), dtype, tuple(tuple(r) for r in rows))
        with self._lock:
            t = self._d.get(key)
            if t is not None:
                self._d.move_to_end(key)
                return t
        t = torch.tensor(rows, dtype=dtype)
        if device.type == "cuda":
            t = t.pin_memory().to(device, non_blocking=True)
        with self._lock:
            self._d[key] = t
            while len(self._d) > self._size:
                self._d.popitem(last=False)
        return t


_tables = _TableCache()


_GPU_BLOCKS = dict(BLOCK_H=16, BLOCK_W=256, BLOCK=1024)
# The constexprs the launchers pass on a GPU where they differ from the interpreter's (compile_check compiles them).
_GPU_TILE = dict(BLOCK_H=_GPU_BLOCKS["BLOCK_H"], BLOCK_W=_GPU_BLOCKS["BLOCK_W"])
GPU_CONSTEXPRS = {"_sn_power_kernel": [_GPU_TILE], "_sn_bwd_kernel": [_GPU_TILE],
                  "_sn_scale_kernel": [dict(BLOCK=_GPU_BLOCKS["BLOCK"])],
                  "_sn_bwd_apply_kernel": [dict(BLOCK=_GPU_BLOCKS["BLOCK"])]}


class SNLaunchPlan(NamedTuple):
    """Tiles of the spectral-norm launches: [BLOCK_H, BLOCK_W] for the matrix kernels (power iteration, the
    backward's <g, W>), BLOCK elements for the elementwise ones (W / sigma, dW); layers of at most
    ``fuse_max_numel`` elements (or of one row block) get W / sigma and dW from the matrix launch's last
    program instead of a second launch."""
    block_h: int
    block_w: int
    block: int
    fuse_max_numel: int
    num_warps: int


def plan_spectral_norm(dev: DeviceInfo) -> SNLaunchPlan:
    """The tiles and the fuse threshold on ``dev``. Under the interpreter small tiles, so that small test
    matrices still use several programs, and every layer fused."""
    if dev.interpreter:
        return SNLaunchPlan(4, 32, 4096, 1 << 30, 4)
    # 8 warps: a [16, 256] tile is 16 elements a thread (4 warps: 32, 222-237 registers on sm_90, 12% occupancy);
    # the elementwise kernels' 64-bit (row, column) index arithmetic likewise halves to 4 elements a thread.
    return SNLaunchPlan(_GPU_BLOCKS["BLOCK_H"], _GPU_BLOCKS["BLOCK_W"], _GPU_BLOCKS["BLOCK"], 1 << 16, 8)


@dataclass
class SNLayer:
    """One weight matrix of a launch. ``mat``: the [h, w] strided view of the weight; ``u``/``v``: current
    estimates; ``u_buf``/``v_buf``: tensors to update in place (or None); ``y_mat``: [h, w] view of where
    W / sigma goes (or None: no division)."""
    mat: torch.Tensor
    u: torch.Tensor
    v: torch.Tensor
    y_mat: Optional[torch.Tensor] = None
    u_buf: Optional[torch.Tensor] = None
    v_buf: Optional[torch.Tensor] = None


@dataclass
class Plan:
    """Where a launch's results go, per layer, in the compute dtype: u [h], v [w], sigma (0-D).

    ``arena``: when not None, all of them are views of this one tensor (one allocation for a whole model)."""
    u: List[torch.Tensor] = field(default_factory=list)
    v: List[torch.Tensor] = field(default_factory=list)
    sigma: List[torch.Tensor] = field(default_factory=list)
    arena: Optional[torch.Tensor] = None


def _addr(t: Optional[torch.Tensor]) -> int:
    return 0 if t is None else t.data_ptr()


def plan(layers: Sequence[SNLayer], arena: bool = False) -> Plan:
    """Allocates u, v, sigma for ``layers``: separate tensors, or views of one arena [u0 | v0 | s0 | u1 ...]."""
    cdt = compute_dtype(layers[0].mat.dtype)
    device = layers[0].mat.device
    p = Plan()
    if arena:
        n = sum(L.mat.shape[0] + L.mat.shape[1] + 1 for L in layers)
        p.arena = torch.empty(n, dtype=cdt, device=device)
        o = 0
        for L in layers:
            h, w = L.mat.shape
            p.u.append(p.arena[o:o + h])
            p.v.append(p.arena[o + h:o + h + w])
            p.sigma.append(p.arena[o + h + w])
            o += h + w + 1
    else:
        for L in layers:
            h, w = L.mat.shape
            p.u.append(torch.empty(h, dtype=cdt, device=device))
            p.v.append(torch.empty(w, dtype=cdt, device=device))
            p.sigma.append(torch.empty((), dtype=cdt, device=device))
    return p


def power_launch(layers: Sequence[SNLayer], n_iterations: int, eps: float, fuse_max_numel: Optional[int] = None,
                 block_h: Optional[int] = None, block_w: Optional[int] = None,
                 arena: bool = False) -> Tuple[Plan, List[bool]]:
    """``n_iterations`` power-iteration steps and sigma for every layer (one launch per iteration; one launch for
    0 or 1), with W / sigma fused into the last launch for small layers and written by one more launch for the
    rest. All layers must share dtype and device. Returns the plan (u, v, sigma per layer) and which layers
    had the division fused (for tests)."""
    mat0 = layers[0].mat
    device, dtype = mat0.device, mat0.dtype
    cdt = compute_dtype(dtype)
    sp = plan_spectral_norm(device_info(device))
    bh, bw, block = block_h or sp.block_h, block_w or sp.block_w, sp.block
    if fuse_max_numel is None:
        fuse_max_numel = sp.fuse_max_numel
    out_plan = plan(layers, arena)
    # The scratch workspace: per layer t [h], s partials [P, w], squared-norm partials [P].
    ws_rows, prog, n_ws, fused = [], [], 0, []
    n_iter_launch = min(n_iterations, 1)
    for i, L in enumerate(layers):
        h, w = L.mat.shape
        P = triton.cdiv(h, bh)
        t_off, sp_off, sq_off = n_ws, n_ws + h, n_ws + h + (P * w if n_iter_launch else 0)
        n_ws = sq_off + P
        fuse = L.y_mat is not None and (P == 1 or h * w <= fuse_max_numel)
        fused.append(fuse)
        ws_rows.append((t_off, sp_off, sq_off, P))
        prog.extend((i, r) for r in range(P))
    ws = torch.empty(max(n_ws, 1), dtype=cdt, device=device)
    cnt = counters(device, len(layers))
    prog_t = _tables.get(prog, device, torch.int32)
    elt = _ELT[dtype]

    def table(last: bool, v_source: List[torch.Tensor]) -> torch.Tensor:
        rows = []
        for i, L in enumerate(layers):
            h, w = L.mat.shape
            t_off, sp_off, sq_off, P = ws_rows[i]
            y = L.y_mat
            has_y = y is not None
            rows.append([
                L.mat.data_ptr(), h, w, L.mat.stride(0), L.mat.stride(1), L.u.data_ptr(), v_source[i].data_ptr(),
                _addr(L.u_buf) if last else 0, _addr(L.v_buf) if last else 0,
                out_plan.u[i].data_ptr(), out_plan.v[i].data_ptr(), out_plan.sigma[i].data_ptr(), t_off, sp_off, sq_off, P, 0, i,
                _addr(y), y.stride(0) if has_y else 0, y.stride(1) if has_y else 0,
                int(last and fused[i]),
            ])
        return _tables.get(rows, device)

    v_src = [L.v for L in layers]
    with device_guard(mat0):
        for it in range(max(n_iterations, 1)):
            last = it == max(n_iterations, 1) - 1
            tab = table(last, v_src)
            _sn_power_kernel[(len(prog),)](tab, prog_t, ws, cnt, float(eps),
                                           N_ITERS=n_iter_launch, ELT=elt, F64=cdt == torch.float64,
                                           BLOCK_H=bh, BLOCK_W=bw, num_warps=sp.num_warps)
            if not last:  # the next iteration starts from this v (kept in compute dtype)
                v_src = list(out_plan.v)
                if dtype != cdt:
                    v_src = [v.to(dtype) for v in v_src]
                    # the kernel reads v with the weight's element type
        rest = [i for i, L in enumerate(layers) if L.y_mat is not None and not fused[i]]
        if rest:
            tab = table(True, v_src)
            sprog = [(i, q) for i in rest for q in range(triton.cdiv(layers[i].mat.numel(), block))]
            _sn_scale_kernel[(len(sprog),)](tab, _tables.get(sprog, device, torch.int32),
                                            ELT=elt, F64=cdt == torch.float64, BLOCK=block, num_warps=sp.num_warps)
    return out_plan, fused


def backward_launch(mats: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], dws: Sequence[torch.Tensor],
                    fwd: Plan, fuse_max_numel: Optional[int] = None, block_h: Optional[int] = None,
                    block_w: Optional[int] = None) -> None:
    """dW = g / sigma - (<g, W> / sigma^2) u v^T for every layer, written into the [h, w] views ``dws``.

    ``mats``, ``grads``, ``dws``: [h, w] strided views; ``fwd``: the forward plan (u, v, sigma)."""
    mat0 = mats[0]
    device, dtype = mat0.device, mat0.dtype
    cdt = compute_dtype(dtype)
    sp = plan_spectral_norm(device_info(device))
    bh, bw, block = block_h or sp.block_h, block_w or sp.block_w, sp.block
    if fuse_max_numel is None:
        fuse_max_numel = sp.fuse_max_numel
    rows, prog, n_ws, fused = [], [], 0, []
    for i, (m, g, d) in enumerate(zip(mats, grads, dws)):
        h, w = m.shape
        P = triton.cdiv(h, bh)
        fuse = P == 1 or h * w <= fuse_max_numel
        fused.append(fuse)
        c_off, p_off = n_ws, n_ws + 1
        n_ws = p_off + P
        rows.append([m.data_ptr(), h, w, m.stride(0), m.stride(1), g.data_ptr(), g.stride(0), g.stride(1),
                     d.data_ptr(), d.stride(0), d.stride(1), fwd.u[i].data_ptr(), fwd.v[i].data_ptr(),
                     fwd.sigma[i].data_ptr(),
                     c_off, p_off, P, 0, i, int(fuse)])
        prog.extend((i, r) for r in range(P))
    ws = torch.empty(n_ws, dtype=cdt, device=device)
    cnt = counters(device, len(mats))
    tab = _tables.get(rows, device)
    elt = _ELT[dtype]
    with device_guard(mat0):
        _sn_bwd_kernel[(len(prog),)](tab, _tables.get(prog, device, torch.int32), ws, cnt,
                                     ELT=elt, F64=cdt == torch.float64, BLOCK_H=bh, BLOCK_W=bw, num_warps=sp.num_warps)
        rest = [i for i in range(len(mats)) if not fused[i]]
        if rest:
            aprog = [(i, q) for i in rest for q in range(triton.cdiv(mats[i].numel(), block))]
            _sn_bwd_apply_kernel[(len(aprog),)](tab, _tables.get(aprog, device, torch.int32), ws,
                                                ELT=elt, F64=cdt == torch.float64, BLOCK=block, num_warps=sp.num_warps)

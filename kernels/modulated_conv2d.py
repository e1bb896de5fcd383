"""Triton kernels around the cuDNN convolution of StyleGAN2's modulated conv.

The convolution itself stays on cuDNN (DESIGN.md: Triton implicit-GEMM conv
usually loses to it; no GPU measurement here says otherwise). These kernels do
the rest of the layer in as few passes as possible:

* :func:`demod_coefs` — ``d[b, o] = rsqrt(sum_i s[b,i]^2 * sum_k w[o,i,k]^2 + eps)``
  in one launch: the per-(o, i) squared weight sums are formed on the fly from
  the weight tile and contracted with the squared styles by a float32
  (IEEE, not TF32) ``tl.dot``.
* :func:`scale_channels` — ``y = x * scale[b, c] (+ noise)``, any of the two
  optional. The input-side style scaling (``x * s``) and the output epilogue
  (``conv * d + noise``) of the non-fused algorithm, and the backward's
  ``grad * s`` / ``grad * d``. One read of x (and noise), one write.
* :func:`channel_dot` — ``out[b, c] = sum_hw a * b`` in float32: the style and
  demodulation gradients (``sum_hw grad * x``).
* :func:`modulate_weight` — ``w'[b, o, i, k] = w[o,i,k] * s[b,i] (* d[b,o])`` for the
  grouped (fused_modconv) algorithm, written once in the conv's dtype.

All take fp32/fp16/bf16 tensors and compute in float32. Activations may be
contiguous or channels_last (outputs keep the memory format of ``x``). No
autograd here (see ``gan_fast.fused.modulated_conv2d``).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
import triton
import triton.language as tl

from ._common import DeviceInfo, device_guard, device_info, is_channels_last

__all__ = ["DEMOD_EPS", "demod_coefs", "scale_channels", "channel_dot", "modulate_weight", "plan_demod",
           "plan_scale_channels", "plan_channel_dot", "plan_modulate_weight"]

DEMOD_EPS = 1e-8
_INT32_MAX = 2**31 - 1
_GPU_BLOCK = 1024
_GPU_DOT_NHWC, _GPU_DOT_NCHW = dict(BLOCK_P=64, BLOCK_C=32), dict(BLOCK_P=1024, BLOCK_C=1)


def _gpu_demod_blocks() -> dict:
    return dict(BLOCK_O=32, BLOCK_I=64)


# The constexprs the launchers pass on a GPU where they differ from the interpreter's (compile_check compiles
# them); a callable maps the recorded constexprs to the GPU's.
GPU_CONSTEXPRS = {
    "_demod_kernel": [lambda c: _gpu_demod_blocks()],
    "_scale_channels_kernel": [dict(BLOCK=_GPU_BLOCK)],
    "_channel_dot_kernel": [lambda c: _GPU_DOT_NHWC if c["BLOCK_C"] > 1 else _GPU_DOT_NCHW],
    "_modulate_weight_kernel": [dict(BLOCK=_GPU_BLOCK)],
}




def _next_pow2(v: int) -> int:
    return 1 << max(int(v) - 1, 0).bit_length()


def _dense(x: torch.Tensor) -> torch.Tensor:
    if x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last):
        return x
    return x.contiguous()


# ---------------------------------------------------------------------------------------------------
# demodulation coefficients


@triton.jit
def _demod_kernel(s_ptr, w_ptr, d_ptr, B, O, I, K, ssb, ssi, swo, swi, swk, eps,
                  BLOCK_B: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_I: tl.constexpr):
    """A [BLOCK_B, BLOCK_O] tile of d: for each BLOCK_I slice of the inputs, wsq^T = sum_k w[o, i, k]^2 as an
    [BLOCK_I, BLOCK_O] tile (one 2-D load per tap k: no 3-D tile in registers), then acc += (s * s) @ wsq^T
    (an IEEE float32 ``tl.dot``, FMA: the demodulation must not lose TF32's bits).

    Tile/dot kernel; compiled for sm_90 with the GPU tiles (16-32 x 32, BLOCK_I 64, 4 warps) it takes 96-128
    registers and no spills: 25-31% theoretical occupancy (``benchmarks/static_report.py``; the 3-D
    [BLOCK_O, BLOCK_I, BLOCK_K] weight tile it replaced took 255 registers, spilled and used 145 KB of shared
    memory: 6%). Occupancy matters little here: the launch is tiny (B x O coefficients, a few programs, once per
    layer and step) and the dot's FMA work per program keeps its warps busy."""
    pid_b = tl.program_id(0)
    pid_o = tl.program_id(1)
    offs_b = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    offs_o = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    mask_b = offs_b < B
    mask_o = offs_o < O
    acc = tl.zeros((BLOCK_B, BLOCK_O), dtype=tl.float32)
    for i0 in range(0, I, BLOCK_I):
        offs_i = i0 + tl.arange(0, BLOCK_I)
        mask_i = offs_i < I
        s = tl.load(s_ptr + offs_b[:, None] * ssb + offs_i[None, :] * ssi,
                    mask=mask_b[:, None] & mask_i[None, :], other=0.0).to(tl.float32)
        w_t = w_ptr + offs_i[:, None] * swi + offs_o[None, :] * swo  # [BLOCK_I, BLOCK_O]
        m_t = mask_i[:, None] & mask_o[None, :]
        wsq_t = tl.zeros((BLOCK_I, BLOCK_O), dtype=tl.float32)
        for k in range(0, K):
            wk = tl.load(w_t + k * swk, mask=m_t, other=0.0).to(tl.float32)
            wsq_t += wk * wk
        acc = tl.dot(s * s, wsq_t, acc, input_precision="ieee", out_dtype=tl.float32)
    d = 1.0 / tl.sqrt(acc + eps)
    tl.store(d_ptr + offs_b[:, None] * O + offs_o[None, :], d, mask=mask_b[:, None] & mask_o[None, :])


class TilePlan(NamedTuple):
    """A launch: its grid, the block-size constexprs and num_warps."""
    grid: Tuple[int, ...]
    blocks: dict
    num_warps: int


def plan_demod(b: int, o: int, i: int, k: int, dev: DeviceInfo) -> TilePlan:
    """The demodulation launch for styles [b, i] and a weight [o, i, k]: [BLOCK_B, BLOCK_O] tiles of d."""
    block_b = min(max(_next_pow2(b), 16), 64)
    if dev.interpreter:
        block_o = min(max(_next_pow2(o), 16), 64)
        block_i = min(max(_next_pow2(i), 16), 64)
    else:
        gpu_blocks = _gpu_demod_blocks()
        block_o, block_i = gpu_blocks["BLOCK_O"], gpu_blocks["BLOCK_I"]
    return TilePlan((triton.cdiv(b, block_b), triton.cdiv(o, block_o)),
                    dict(BLOCK_B=block_b, BLOCK_O=block_o, BLOCK_I=block_i), 4)


def demod_coefs(styles: torch.Tensor, weight: torch.Tensor, eps: float = DEMOD_EPS) -> torch.Tensor:
    """d[b, o] = rsqrt(sum_{i,k} (styles[b,i] * weight[o,i,k])^2 + eps), float32 [B, O].

    styles: [B, I]; weight: [O, I, kh, kw] (or [O, I]); any strides, any float dtype.
    """
    b, i = styles.shape
    o = weight.shape[0]
    w3 = weight.reshape(o, weight.shape[1], -1)
    k = w3.shape[2]
    d = torch.empty((b, o), dtype=torch.float32, device=styles.device)
    if d.numel() == 0:
        return d
    plan = plan_demod(b, o, i, k, device_info(styles.device))
    with device_guard(styles):
        _demod_kernel[plan.grid](styles, w3, d, b, o, i, k, *styles.stride(), *w3.stride(), eps,
                                 **plan.blocks, num_warps=plan.num_warps)
    return d


# ---------------------------------------------------------------------------------------------------
# y = x * scale[b, c] + noise


@triton.jit
def _scale_channels_kernel(x_ptr, s_ptr, n_ptr, y_ptr, numel, C, HW, W,
                           ssb, ssc, nsb, nsc, nsh, nsw,
                           CHANNELS_LAST: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_NOISE: tl.constexpr,
                           USE_INT64: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    if USE_INT64:
        offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:
        offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    if CHANNELS_LAST:
        c = offs % C
        rest = offs // C
        hw = rest % HW
        b = rest // HW
    else:
        hw = offs % HW
        rest = offs // HW
        c = rest % C
        b = rest // C
    y = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_SCALE:
        s = tl.load(s_ptr + b * ssb + c * ssc, mask=mask, other=0.0).to(tl.float32)
        y = y * s
    if HAS_NOISE:
        h = hw // W
        w = hw % W
        nz = tl.load(n_ptr + b * nsb + c * nsc + h * nsh + w * nsw, mask=mask, other=0.0).to(tl.float32)
        y = y + nz
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


def plan_scale_channels(numel: int, dev: DeviceInfo) -> Tuple[int, Tuple[int], int]:
    """(BLOCK, grid, num_warps) of the elementwise scale over ``numel`` elements."""
    block = min(_next_pow2(numel), 8192) if dev.interpreter else _GPU_BLOCK
    return block, (triton.cdiv(numel, block),), 4


def scale_channels(x: torch.Tensor, scale: Optional[torch.Tensor], noise: Optional[torch.Tensor] = None,
                   out_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """y = x * scale[:, :, None, None] (+ noise), computed in float32, stored in ``out_dtype`` (default x's).

    x: [B, C, H, W] (contiguous or channels_last; y keeps the format); scale: [B, C] or None;
    noise: None or a tensor broadcastable to x's shape (any strides, e.g. [B, 1, H, W]).
    """
    x = _dense(x)
    bsz, c, h, w = x.shape
    channels_last = is_channels_last(x)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    y = torch.empty(x.shape, dtype=out_dtype or x.dtype, device=x.device, memory_format=fmt)
    numel = x.numel()
    if numel == 0:
        return y
    if scale is not None:
        scale = scale.expand(bsz, c)
        ssb, ssc = scale.stride()
    else:
        ssb = ssc = 0
    if noise is not None:
        noise = noise.expand(x.shape)
        nstr = noise.stride()
    else:
        nstr = (0, 0, 0, 0)
    use_int64 = numel > _INT32_MAX // 2 or (noise is not None and
                                            sum((s - 1) * st for s, st in zip(noise.shape, nstr)) > _INT32_MAX // 2)
    block, grid, warps = plan_scale_channels(numel, device_info(x.device))
    with device_guard(x):
        _scale_channels_kernel[grid](x, scale if scale is not None else x, noise if noise is not None else x, y,
                                     numel, c, h * w, w, ssb, ssc, *nstr,
                                     CHANNELS_LAST=channels_last, HAS_SCALE=scale is not None,
                                     HAS_NOISE=noise is not None, USE_INT64=use_int64, BLOCK=block,
                                     num_warps=warps)
    return y


# ---------------------------------------------------------------------------------------------------
# out[b, c] = sum_hw a * b


@triton.jit
def _channel_dot_kernel(a_ptr, b_ptr, p_ptr, C, HW, W, chunk,
                        san, sac, sah, saw, sbn, sbc, sbh, sbw, NUM_CB, BATCH,
                        USE_INT64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    pid = tl.program_id(0)
    split = tl.program_id(1)
    cb = pid % NUM_CB
    n = pid // NUM_CB
    offs_c = cb * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_c = offs_c < C
    if USE_INT64:
        a_base = a_ptr + n.to(tl.int64) * san + offs_c.to(tl.int64)[None, :] * sac
        b_base = b_ptr + n.to(tl.int64) * sbn + offs_c.to(tl.int64)[None, :] * sbc
    else:
        a_base = a_ptr + n * san + offs_c[None, :] * sac
        b_base = b_ptr + n * sbn + offs_c[None, :] * sbc
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    start = split * chunk
    for p0 in range(start, start + chunk, BLOCK_P):
        offs_p = p0 + tl.arange(0, BLOCK_P)
        mask_p = (offs_p < HW) & (offs_p < start + chunk)
        if USE_INT64:
            offs_p = offs_p.to(tl.int64)
        h = offs_p // W
        w = offs_p % W
        m = mask_p[:, None] & mask_c[None, :]
        av = tl.load(a_base + (h * sah + w * saw)[:, None], mask=m, other=0.0).to(tl.float32)
        bv = tl.load(b_base + (h * sbh + w * sbw)[:, None], mask=m, other=0.0).to(tl.float32)
        acc += av * bv
    tot = tl.sum(acc, axis=0)
    tl.store(p_ptr + (split * BATCH + n) * C + offs_c, tot, mask=mask_c)


class ChannelDotPlan(NamedTuple):
    """[BLOCK_P pixels, BLOCK_C channels] tiles; ``splits`` programs share a row's H*W, ``chunk`` pixels each."""
    block_p: int
    block_c: int
    num_cb: int
    splits: int
    chunk: int
    num_warps: int
    n: int

    @property
    def grid(self) -> Tuple[int, int]:
        return (self.n * self.num_cb, self.splits)


_DOT_PROGRAMS_PER_SM = 4


def plan_channel_dot(n: int, c: int, hw: int, channels_last: bool, dev: DeviceInfo) -> ChannelDotPlan:
    """The launch of ``out[n, c] = sum_hw a * b``: H*W split over more programs when there are few rows
    (about 4 programs per SM; deterministic: partial sums, then one sum)."""
    gpu = not dev.interpreter
    if channels_last:
        block_c = min(_next_pow2(c), _GPU_DOT_NHWC["BLOCK_C"] if gpu else 64)
        block_p = _GPU_DOT_NHWC["BLOCK_P"] if gpu else max(1, min(_next_pow2(hw), 4096 // block_c))
    else:
        block_c = 1
        block_p = _GPU_DOT_NCHW["BLOCK_P"] if gpu else min(_next_pow2(hw), 4096)
    num_cb = triton.cdiv(c, block_c)
    programs = n * num_cb
    splits = 1
    if gpu:
        target = _DOT_PROGRAMS_PER_SM * dev.sm_count
        splits = max(1, min(triton.cdiv(target, programs), triton.cdiv(hw, 8 * block_p)))
    chunk = triton.cdiv(triton.cdiv(hw, splits), block_p) * block_p
    splits = triton.cdiv(hw, chunk) if hw > 0 else 1
    return ChannelDotPlan(block_p, block_c, num_cb, splits, chunk, 4, n)


def channel_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """out[n, c] = sum_{h,w} a[n,c,h,w] * b[n,c,h,w] in float32, [N, C]. Deterministic.

    a, b: [N, C, H, W] of the same shape, any strides (b may be broadcast, e.g. stride 0).
    """
    if a.shape != b.shape:
        b = b.expand(a.shape)
    n, c, h, w = a.shape
    hw = h * w
    if n * c == 0:
        return torch.zeros((n, c), dtype=torch.float32, device=a.device)
    plan = plan_channel_dot(n, c, hw, a.stride(1) == 1 and c > 1, device_info(a.device))
    block_p, block_c, num_cb, splits, chunk = plan.block_p, plan.block_c, plan.num_cb, plan.splits, plan.chunk
    span = max(sum((s - 1) * abs(st) for s, st in zip(t.shape, t.stride())) for t in (a, b))
    partial = torch.empty((splits, n, c), dtype=torch.float32, device=a.device)
    with device_guard(a):
        _channel_dot_kernel[plan.grid](a, b, partial, c, hw, w, chunk, *a.stride(), *b.stride(), num_cb, n,
                                       USE_INT64=span > _INT32_MAX // 2, BLOCK_P=block_p, BLOCK_C=block_c,
                                       num_warps=plan.num_warps)
    return partial[0] if splits == 1 else partial.sum(0)


# ---------------------------------------------------------------------------------------------------
# w'[b, o, i, k] = w[o, i, k] * s[b, i] * d[b, o]


@triton.jit
def _modulate_weight_kernel(w_ptr, s_ptr, d_ptr, out_ptr, numel, O, I, K, swo, swi, swk, ssb, ssi,
                            HAS_D: tl.constexpr, USE_INT64: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    if USE_INT64:
        offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    else:
        offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    k = offs % K
    rest = offs // K
    i = rest % I
    rest = rest // I
    o = rest % O
    b = rest // O
    w = tl.load(w_ptr + o * swo + i * swi + k * swk, mask=mask, other=0.0).to(tl.float32)
    s = tl.load(s_ptr + b * ssb + i * ssi, mask=mask, other=0.0).to(tl.float32)
    v = w * s
    if HAS_D:
        d = tl.load(d_ptr + b * O + o, mask=mask, other=0.0)
        v = v * d
    tl.store(out_ptr + offs, v.to(out_ptr.dtype.element_ty), mask=mask)


def plan_modulate_weight(numel: int, dev: DeviceInfo) -> Tuple[int, Tuple[int], int]:
    """(BLOCK, grid, num_warps) of the elementwise weight modulation over ``numel`` elements."""
    block = min(_next_pow2(numel), 16384) if dev.interpreter else _GPU_BLOCK
    return block, (triton.cdiv(numel, block),), 4


def modulate_weight(weight: torch.Tensor, styles: torch.Tensor, dcoefs: Optional[torch.Tensor],
                    out_dtype: torch.dtype) -> torch.Tensor:
    """[B, O, I, kh, kw] contiguous: weight[o,i,k] * styles[b,i] (* dcoefs[b,o], float32 [B, O])."""
    o, i, kh, kw = weight.shape
    b = styles.shape[0]
    w3 = weight.reshape(o, i, kh * kw)
    out = torch.empty((b, o, i, kh, kw), dtype=out_dtype, device=weight.device)
    numel = out.numel()
    if numel == 0:
        return out
    if dcoefs is not None:
        dcoefs = dcoefs.to(torch.float32).contiguous()
    block, grid, warps = plan_modulate_weight(numel, device_info(weight.device))
    with device_guard(weight):
        _modulate_weight_kernel[grid](
            w3, styles, dcoefs if dcoefs is not None else w3, out, numel, o, i, kh * kw, *w3.stride(),
            *styles.stride(), HAS_D=dcoefs is not None, USE_INT64=numel > _INT32_MAX // 2, BLOCK=block,
            num_warps=warps)
    return out

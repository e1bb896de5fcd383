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

from typing import Optional

import torch
import triton
import triton.language as tl

from ._common import device_guard, is_channels_last, on_gpu

__all__ = ["DEMOD_EPS", "demod_coefs", "scale_channels", "channel_dot", "modulate_weight"]

DEMOD_EPS = 1e-8
_INT32_MAX = 2**31 - 1
_GPU_BLOCK = 1024
_GPU_DOT_NHWC, _GPU_DOT_NCHW = dict(BLOCK_P=64, BLOCK_C=32), dict(BLOCK_P=1024, BLOCK_C=1)


def _gpu_demod_blocks(block_k: int) -> dict:
    return dict(BLOCK_O=32, BLOCK_I=max(16, min(64, 512 // block_k)))


# The constexprs the launchers pass on a GPU where they differ from the interpreter's (compile_check compiles
# them); a callable maps the recorded constexprs to the GPU's.
GPU_CONSTEXPRS = {
    "_demod_kernel": [lambda c: _gpu_demod_blocks(c["BLOCK_K"])],
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
                  BLOCK_B: tl.constexpr, BLOCK_O: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_K: tl.constexpr):
    pid_b = tl.program_id(0)
    pid_o = tl.program_id(1)
    offs_b = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    offs_o = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    offs_k = tl.arange(0, BLOCK_K)
    mask_b = offs_b < B
    mask_o = offs_o < O
    mask_k = offs_k < K
    acc = tl.zeros((BLOCK_B, BLOCK_O), dtype=tl.float32)
    for i0 in range(0, I, BLOCK_I):
        offs_i = i0 + tl.arange(0, BLOCK_I)
        mask_i = offs_i < I
        s = tl.load(s_ptr + offs_b[:, None] * ssb + offs_i[None, :] * ssi,
                    mask=mask_b[:, None] & mask_i[None, :], other=0.0).to(tl.float32)
        w = tl.load(w_ptr + offs_o[:, None, None] * swo + offs_i[None, :, None] * swi + offs_k[None, None, :] * swk,
                    mask=mask_o[:, None, None] & mask_i[None, :, None] & mask_k[None, None, :],
                    other=0.0).to(tl.float32)
        wsq = tl.sum(w * w, axis=2)  # [BLOCK_O, BLOCK_I]
        acc = tl.dot(s * s, tl.trans(wsq), acc, input_precision="ieee")
    d = 1.0 / tl.sqrt(acc + eps)
    tl.store(d_ptr + offs_b[:, None] * O + offs_o[None, :], d, mask=mask_b[:, None] & mask_o[None, :])


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
    block_k = _next_pow2(k)
    block_b = min(max(_next_pow2(b), 16), 64)
    if on_gpu(styles):
        gpu_blocks = _gpu_demod_blocks(block_k)
        block_o, block_i, warps = gpu_blocks["BLOCK_O"], gpu_blocks["BLOCK_I"], 4
    else:
        block_o = min(max(_next_pow2(o), 16), 64)
        block_i = min(max(_next_pow2(i), 16), 64)
        warps = 4
    grid = (triton.cdiv(b, block_b), triton.cdiv(o, block_o))
    with device_guard(styles):
        _demod_kernel[grid](styles, w3, d, b, o, i, k, *styles.stride(), *w3.stride(), eps,
                            BLOCK_B=block_b, BLOCK_O=block_o, BLOCK_I=block_i, BLOCK_K=block_k, num_warps=warps)
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
    block = _GPU_BLOCK if on_gpu(x) else min(_next_pow2(numel), 8192)
    grid = (triton.cdiv(numel, block),)
    with device_guard(x):
        _scale_channels_kernel[grid](x, scale if scale is not None else x, noise if noise is not None else x, y,
                                     numel, c, h * w, w, ssb, ssc, *nstr,
                                     CHANNELS_LAST=channels_last, HAS_SCALE=scale is not None,
                                     HAS_NOISE=noise is not None, USE_INT64=use_int64, BLOCK=block,
                                     num_warps=4)
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
    channels_last = a.stride(1) == 1 and c > 1
    if channels_last:
        block_c = min(_next_pow2(c), _GPU_DOT_NHWC["BLOCK_C"] if on_gpu(a) else 64)
        block_p = _GPU_DOT_NHWC["BLOCK_P"] if on_gpu(a) else max(1, min(_next_pow2(hw), 4096 // block_c))
    else:
        block_c = 1
        block_p = _GPU_DOT_NCHW["BLOCK_P"] if on_gpu(a) else min(_next_pow2(hw), 4096)
    num_cb = triton.cdiv(c, block_c)
    programs = n * num_cb
    # Split H*W over more programs when there are few rows (deterministic: partial sums, then one sum).
    splits = 1
    if on_gpu(a):
        target = 4 * torch.cuda.get_device_properties(a.device).multi_processor_count
        splits = max(1, min(triton.cdiv(target, programs), triton.cdiv(hw, 8 * block_p)))
    chunk = triton.cdiv(triton.cdiv(hw, splits), block_p) * block_p
    splits = triton.cdiv(hw, chunk) if hw > 0 else 1
    span = max(sum((s - 1) * abs(st) for s, st in zip(t.shape, t.stride())) for t in (a, b))
    partial = torch.empty((splits, n, c), dtype=torch.float32, device=a.device)
    with device_guard(a):
        _channel_dot_kernel[(programs, splits)](a, b, partial, c, hw, w, chunk, *a.stride(), *b.stride(), num_cb, n,
                                                USE_INT64=span > _INT32_MAX // 2, BLOCK_P=block_p, BLOCK_C=block_c,
                                                num_warps=4)
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
    block = _GPU_BLOCK if on_gpu(weight) else min(_next_pow2(numel), 16384)
    with device_guard(weight):
        _modulate_weight_kernel[(triton.cdiv(numel, block),)](
            w3, styles, dcoefs if dcoefs is not None else w3, out, numel, o, i, kh * kw, *w3.stride(),
            *styles.stride(), HAS_D=dcoefs is not None, USE_INT64=numel > _INT32_MAX // 2, BLOCK=block, num_warps=4)
    return out

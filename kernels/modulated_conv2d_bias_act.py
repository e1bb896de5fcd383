"""One Triton kernel for a whole StyleGAN2 synthesis layer forward: modulated conv + demod + noise + bias_act.

``y = clamp(act(conv(x * s[b, i], w) * d[b, o] + noise + bias[o]) * gain)``, stride 1,
any kernel size (3x3 synthesis convs, 1x1 ToRGB), zero padding. An implicit-GEMM
convolution (rows: the N*OH*OW output pixels; columns: the O output channels;
reduction: I*kh*kw) that scales the activations by the style as it loads them
and applies demodulation, noise, bias, activation, gain and clamp in its
epilogue, so x is read once and y written once. It also writes the raw
convolution ``c = conv(x * s, w)`` when the caller will differentiate (the
backward's one saved activation, as the composed layer saves its conv output).

This is the candidate DESIGN.md asks a GPU benchmark to judge against cuDNN
(``python -m benchmarks --preset stylegan2``, op ``modulated_conv2d_bias_act``);
whether ``SynthesisLayer`` routes through it is decided there, not here.

**Experimental** (:data:`IMPLICIT_GEMM_EXPERIMENTAL`): ``algorithm='implicit_gemm'`` is never chosen
automatically. Compiled for sm_90 (``benchmarks/static_report.py``), its float32 (TF32) autotune configs
spill 5-21 KB of registers a thread to local memory and every config sits at 255 registers / 12% occupancy
(float16/bfloat16: 230-248 registers, no spills): each pipeline stage keeps a [BLOCK_M, BLOCK_K] tile of
64-bit gather addresses (the implicit im2col) and of styles in registers. Meeting the static bars needs
TMA / block-pointer loads of the activations and the styles applied per channel after the load; until then
the report lists it, outside the bars, and cuDNN plus :func:`demod_bias_act_fwd` is the synthesis layer.

Precision: the products are formed in float32 (x * s), then fed to ``tl.dot`` in
x's dtype for float16/bfloat16 (tensor cores, float32 accumulation, as cuDNN
does for the composed layer) or float32 (TF32 when
``torch.backends.cudnn.allow_tf32``, PyTorch's default for convolutions; IEEE
under the interpreter). The epilogue is float32 (float64 for float64 x, where
the whole kernel computes in float64); y and c are stored in x's dtype.
Activations and outputs may be contiguous or channels_last (any strides).

:func:`demod_bias_act_fwd` is the same epilogue as its own elementwise kernel,
for the layers whose convolution stays on cuDNN (the up-2 layers, and every
layer unless the implicit GEMM is chosen): ``y = clamp(act(c * d + noise + bias)
* gain)`` in one read of ``c`` and one write of ``y``. :func:`demod_bias_act_bwd`
is its first-order backward in one pass: it reads ``gy`` and ``c`` once, writes
``g_c = dz * d`` and per-tile partial sums for the demodulation, bias and noise
gradients (reduced afterwards, deterministically, without atomics).
No autograd here (see ``gan_fast.fused.modulated_conv2d_bias_act``).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
import triton
import triton.language as tl

from ..shapes import output_format, same_conv_size
from ._common import DeviceInfo, Tuned, device_guard, device_info, split_f64
from .bias_act import _act, _clamp_keep_nan

__all__ = ["modconv_bias_act_fwd", "demod_bias_act_fwd", "demod_bias_act_bwd", "new_output", "output_size",
           "plan_modconv", "plan_demod_bias_act", "plan_demod_bias_act_bwd"]

output_size = same_conv_size  # (OH, OW) of the stride-1 layer
# The implicit GEMM (``_modconv_bias_act_kernel``) is experimental: see the module docstring.
IMPLICIT_GEMM_EXPERIMENTAL = True
_INT32_MAX = 2**31 - 1


@triton.jit
def _pixel_offsets(n, oy, ox, sn, sh, sw, USE_INT64: tl.constexpr):
    """The offsets of a tile's pixel rows (int64 when USE_INT64, else int32: half the registers)."""
    if USE_INT64:
        return n.to(tl.int64) * sn + oy.to(tl.int64) * sh + ox.to(tl.int64) * sw
    else:
        return n * sn + oy * sh + ox * sw


@triton.jit
def _channel_offsets(rn, sc, USE_INT64: tl.constexpr):
    if USE_INT64:
        return rn.to(tl.int64) * sc
    else:
        return rn * sc


@triton.jit
def _pre_activation(z, n, oy, ox, rn, mask, mask_m, mask_n, O, d_ptr, noise_ptr, b_ptr, snn, snc, snh, snw,
                    HAS_DEMOD: tl.constexpr, HAS_NOISE: tl.constexpr, HAS_BIAS: tl.constexpr,
                    NOISE_PIXEL: tl.constexpr, USE_INT64: tl.constexpr):
    """z * d[n, o] + noise + bias[o] for a [pixels, channels] tile (n, oy, ox per pixel row); NOISE_PIXEL: the
    noise is the same for every channel (stride 0), one value per pixel row."""
    if HAS_DEMOD:
        z = z * tl.load(d_ptr + n[:, None] * O + rn[None, :], mask=mask, other=0.0)
    if HAS_NOISE:
        rows = _pixel_offsets(n, oy, ox, snn, snh, snw, USE_INT64)
        if NOISE_PIXEL:
            z = z + tl.load(noise_ptr + rows, mask=mask_m, other=0.0).to(z.dtype)[:, None]
        else:
            z = z + tl.load(noise_ptr + rows[:, None] + _channel_offsets(rn, snc, USE_INT64)[None, :], mask=mask,
                            other=0.0).to(z.dtype)
    if HAS_BIAS:
        z = z + tl.load(b_ptr + rn, mask=mask_n, other=0.0).to(z.dtype)[None, :]
    return z


@triton.jit
def _scalars_f64(alpha, gain, clamp, alpha_lo, gain_lo, clamp_lo, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """The float64 scalars, which arrive as float32 pairs hi + lo, as [BLOCK_M, BLOCK_N] float64 tiles."""
    zero = tl.zeros((BLOCK_M, BLOCK_N), tl.float64)
    return (zero + alpha) + alpha_lo, (zero + gain) + gain_lo, (zero + clamp) + clamp_lo


@triton.jit
def _epilogue(z, n, oy, ox, rn, mask, mask_m, mask_n, O, d_ptr, noise_ptr, b_ptr, snn, snc, snh, snw,
              alpha, gain, clamp, alpha_lo, gain_lo, clamp_lo,
              ACT: tl.constexpr, HAS_DEMOD: tl.constexpr, HAS_NOISE: tl.constexpr, HAS_BIAS: tl.constexpr,
              HAS_CLAMP: tl.constexpr, F64: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
              NOISE_PIXEL: tl.constexpr, USE_INT64: tl.constexpr):
    """clamp(act(z * d[n, o] + noise + bias[o]) * gain) for a [BLOCK_M pixels, BLOCK_N channels] tile."""
    if F64:
        alpha, gain, clamp = _scalars_f64(alpha, gain, clamp, alpha_lo, gain_lo, clamp_lo, BLOCK_M, BLOCK_N)
    z = _pre_activation(z, n, oy, ox, rn, mask, mask_m, mask_n, O, d_ptr, noise_ptr, b_ptr, snn, snc, snh, snw,
                        HAS_DEMOD, HAS_NOISE, HAS_BIAS, NOISE_PIXEL, USE_INT64)
    y, _d1, _d2 = _act(z, alpha, ACT, F64)
    y = y * gain
    if HAS_CLAMP:
        y = _clamp_keep_nan(y, clamp)
    return y


@triton.jit
def _modconv_bias_act_kernel(
    x_ptr, w_ptr, s_ptr, d_ptr, noise_ptr, b_ptr, y_ptr, c_ptr,
    I, H, W, O, OH, OW, M, pad_y, pad_x,
    sxn, sxc, sxh, sxw,
    swo, swi, swh, sww,
    snn, snc, snh, snw,
    syn, syc, syh, syw,
    alpha, gain, clamp, alpha_lo, gain_lo, clamp_lo,
    KH: tl.constexpr, KW: tl.constexpr, ACT: tl.constexpr,
    HAS_DEMOD: tl.constexpr, HAS_NOISE: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_CLAMP: tl.constexpr,
    STORE_C: tl.constexpr, LOW_PRECISION_DOT: tl.constexpr, INPUT_PRECISION: tl.constexpr, F64: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # output pixels, (n, oy, ox) flattened
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)  # output channels
    rk = tl.arange(0, BLOCK_K)
    mask_m = rm < M
    mask_n = rn < O
    ohw = OH * OW
    n = rm // ohw
    rem = rm % ohw
    oy = rem // OW
    ox = rem % OW
    x_row = n.to(tl.int64) * sxn
    if F64:
        cdt = tl.float64
    else:
        cdt = tl.float32

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=cdt)
    for ky in tl.static_range(KH):
        for kx in tl.static_range(KW):
            iy = oy + (ky - pad_y)
            ix = ox + (kx - pad_x)
            valid = mask_m & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
            pix = x_row + iy.to(tl.int64) * sxh + ix.to(tl.int64) * sxw
            for i0 in range(0, I, BLOCK_K):
                ci = i0 + rk
                mask_k = ci < I
                a = tl.load(x_ptr + pix[:, None] + ci[None, :].to(tl.int64) * sxc,
                            mask=valid[:, None] & mask_k[None, :], other=0.0).to(cdt)
                st = tl.load(s_ptr + n[:, None] * I + ci[None, :], mask=mask_m[:, None] & mask_k[None, :],
                             other=0.0)
                a = a * st
                wt = tl.load(w_ptr + rn[None, :] * swo + ci[:, None] * swi + ky * swh + kx * sww,
                             mask=mask_k[:, None] & mask_n[None, :], other=0.0)
                if LOW_PRECISION_DOT:
                    acc = tl.dot(a.to(x_ptr.dtype.element_ty), wt.to(x_ptr.dtype.element_ty), acc,
                                 out_dtype=tl.float32)
                else:
                    acc = tl.dot(a, wt.to(cdt), acc, input_precision=INPUT_PRECISION, out_dtype=cdt)

    mask = mask_m[:, None] & mask_n[None, :]
    out_off = (n.to(tl.int64) * syn + oy.to(tl.int64) * syh + ox.to(tl.int64) * syw)[:, None] + \
        rn[None, :].to(tl.int64) * syc
    if STORE_C:
        tl.store(c_ptr + out_off, acc.to(c_ptr.dtype.element_ty), mask=mask)
    y = _epilogue(acc, n, oy, ox, rn, mask, mask_m, mask_n, O, d_ptr, noise_ptr, b_ptr, snn, snc, snh, snw,
                  alpha, gain, clamp, alpha_lo, gain_lo, clamp_lo,
                  ACT, HAS_DEMOD, HAS_NOISE, HAS_BIAS, HAS_CLAMP, F64, BLOCK_M, BLOCK_N, False, True)
    tl.store(y_ptr + out_off, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _demod_bias_act_kernel(
    c_ptr, d_ptr, noise_ptr, b_ptr, y_ptr,
    O, OH, OW, M,
    scn, scc, sch, scw,
    snn, snc, snh, snw,
    syn, syc, syh, syw,
    alpha, gain, clamp, alpha_lo, gain_lo, clamp_lo,
    ACT: tl.constexpr, HAS_DEMOD: tl.constexpr, HAS_NOISE: tl.constexpr, HAS_BIAS: tl.constexpr,
    HAS_CLAMP: tl.constexpr, F64: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    NOISE_PIXEL: tl.constexpr = False, USE_INT64: tl.constexpr = True,
):
    """Memory-bound: one read of c (and noise), one write of y per element; [BLOCK_M pixels, BLOCK_N channels]
    tiles, int32 offsets unless a tensor spans 2**30 elements (USE_INT64), channel-broadcast noise read once per
    pixel (NOISE_PIXEL)."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)  # pixels, (n, oy, ox) flattened
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)  # channels
    mask_m = rm < M
    mask_n = rn < O
    mask = mask_m[:, None] & mask_n[None, :]
    ohw = OH * OW
    n = rm // ohw
    rem = rm % ohw
    oy = rem // OW
    ox = rem % OW
    c_off = _pixel_offsets(n, oy, ox, scn, sch, scw, USE_INT64)[:, None] + \
        _channel_offsets(rn, scc, USE_INT64)[None, :]
    if F64:
        z = tl.load(c_ptr + c_off, mask=mask, other=0.0).to(tl.float64)
    else:
        z = tl.load(c_ptr + c_off, mask=mask, other=0.0).to(tl.float32)
    y = _epilogue(z, n, oy, ox, rn, mask, mask_m, mask_n, O, d_ptr, noise_ptr, b_ptr, snn, snc, snh, snw,
                  alpha, gain, clamp, alpha_lo, gain_lo, clamp_lo,
                  ACT, HAS_DEMOD, HAS_NOISE, HAS_BIAS, HAS_CLAMP, F64, BLOCK_M, BLOCK_N, NOISE_PIXEL, USE_INT64)
    y_off = _pixel_offsets(n, oy, ox, syn, syh, syw, USE_INT64)[:, None] + \
        _channel_offsets(rn, syc, USE_INT64)[None, :]
    tl.store(y_ptr + y_off, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _demod_bias_act_bwd_kernel(
    gy_ptr, c_ptr, d_ptr, noise_ptr, b_ptr, gc_ptr, pd_ptr, pb_ptr, pn_ptr,
    N, O, W, HW, T,
    sgn, sgc, sgh, sgw,
    scn, scc, sch, scw,
    snn, snc, snh, snw,
    son, soc, soh, sow,
    alpha, gain, clamp, alpha_lo, gain_lo, clamp_lo,
    ACT: tl.constexpr, HAS_DEMOD: tl.constexpr, HAS_NOISE: tl.constexpr, HAS_BIAS: tl.constexpr,
    HAS_CLAMP: tl.constexpr, NEED_C: tl.constexpr, NEED_D: tl.constexpr, NEED_B: tl.constexpr,
    NEED_NOISE: tl.constexpr, F64: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    NOISE_PIXEL: tl.constexpr = False, USE_INT64: tl.constexpr = True,
):
    """Memory-bound: one read of gy and c (and noise), one write of g_c per element, and per-tile partial sums
    (tl.sum over the tile: deterministic). One program: BLOCK_M pixels of one sample n (tile t of T) x BLOCK_N
    channels (tile ct); the demodulation row d[n, tile] is loaded once; int32 offsets unless a tensor spans
    2**30 elements (USE_INT64)."""
    n = tl.program_id(0) // T
    t = tl.program_id(0) % T
    ct = tl.program_id(1)
    p = t * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = ct * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = p < HW
    mask_n = rn < O
    mask = mask_m[:, None] & mask_n[None, :]
    oy = p // W
    ox = p % W
    nv = n + tl.zeros_like(p)
    if F64:
        cdt = tl.float64
    else:
        cdt = tl.float32
    c = tl.load(c_ptr + _pixel_offsets(nv, oy, ox, scn, sch, scw, USE_INT64)[:, None]
                + _channel_offsets(rn, scc, USE_INT64)[None, :], mask=mask, other=0.0).to(cdt)
    gy = tl.load(gy_ptr + _pixel_offsets(nv, oy, ox, sgn, sgh, sgw, USE_INT64)[:, None]
                 + _channel_offsets(rn, sgc, USE_INT64)[None, :], mask=mask, other=0.0).to(cdt)
    if F64:
        alpha, gain, clamp = _scalars_f64(alpha, gain, clamp, alpha_lo, gain_lo, clamp_lo, BLOCK_M, BLOCK_N)
    z = c
    if HAS_DEMOD:
        drow = tl.load(d_ptr + n * O + rn, mask=mask_n, other=0.0)[None, :]
        z = z * drow
    z = _pre_activation(z, nv, oy, ox, rn, mask, mask_m, mask_n, O, d_ptr, noise_ptr, b_ptr,
                        snn, snc, snh, snw, False, HAS_NOISE, HAS_BIAS, NOISE_PIXEL, USE_INT64)
    y, d1, _d2 = _act(z, alpha, ACT, F64)
    y = y * gain
    dz = gy * (d1 * gain)  # gy is 0 outside the tile's mask, so is dz
    if HAS_CLAMP:
        dz = tl.where((y >= -clamp) & (y <= clamp), dz, 0.0)
    if NEED_C:
        gc = dz
        if HAS_DEMOD:
            gc = dz * drow
        tl.store(gc_ptr + _pixel_offsets(nv, oy, ox, son, soh, sow, USE_INT64)[:, None]
                 + _channel_offsets(rn, soc, USE_INT64)[None, :], gc.to(gc_ptr.dtype.element_ty), mask=mask)
    if NEED_D:  # partial sum_hw dz * c for (n, t, o)
        tl.store(pd_ptr + (n * T + t) * O + rn, tl.sum(dz * c, axis=0), mask=mask_n)
    if NEED_B:  # partial sum_hw dz for (n, t, o)
        tl.store(pb_ptr + (n * T + t) * O + rn, tl.sum(dz, axis=0), mask=mask_n)
    if NEED_NOISE:  # partial sum_o dz for (ct, n, pixel): the gradient of channel-broadcast noise
        tl.store(pn_ptr + (ct * N + n) * HW + p, tl.sum(dz, axis=1), mask=mask_m)


# A small space (first call on a new shape tunes 4 configs), cached per (I, O, pixels, kernel size, dtype path).
_CONFIGS = [
    triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=nw, num_stages=ns)
    for bm, bn, bk, nw, ns in ((128, 64, 32, 4, 3), (64, 128, 32, 4, 3), (128, 128, 32, 8, 3), (64, 64, 64, 4, 4))
]
# Block sizes of the epilogue kernels (16 x 16 under the interpreter, the smallest tl.dot takes).
_GPU_EPILOGUE_NHWC, _GPU_EPILOGUE_NCHW = dict(BLOCK_M=32, BLOCK_N=64), dict(BLOCK_M=128, BLOCK_N=16)
_GPU_EPILOGUE_BWD = dict(BLOCK_M=64, BLOCK_N=64)
_EPILOGUE_WARPS, _EPILOGUE_BWD_WARPS = 8, 8
# Under the interpreter, whose cost is per program: larger tiles (the implicit GEMM's K tile stays at 16).
_INTERPRETER_BLOCKS = dict(BLOCK_M=64, BLOCK_N=32)
# The constexprs the launchers pass on a GPU where they differ from the interpreter's (compile_check compiles them).
GPU_CONSTEXPRS = {"_demod_bias_act_kernel": [_GPU_EPILOGUE_NHWC, _GPU_EPILOGUE_NCHW],
                  "_demod_bias_act_bwd_kernel": [_GPU_EPILOGUE_BWD]}


class TilePlan(NamedTuple):
    """A launch: its grid, the block-size constexprs and num_warps."""
    grid: Tuple[int, ...]
    blocks: dict
    num_warps: int


_tuned = Tuned(_modconv_bias_act_kernel, _CONFIGS, ["I", "O", "M", "KH", "KW", "LOW_PRECISION_DOT"])


class ModconvPlan(NamedTuple):
    """The implicit GEMM's launch: ``tuned`` (a GPU chooses among the autotune configs) or the interpreter's one
    tile ``blocks``; ``low``: fp16/bf16 dot operands; ``precision``: the float32 dots' input_precision."""
    tuned: bool
    blocks: Optional[dict]
    low: bool
    precision: str

    def grid(self, m: int, out_ch: int, meta: dict) -> Tuple[int, int]:
        return (triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(out_ch, meta["BLOCK_N"]))


def plan_modconv(dtype: torch.dtype, allow_tf32: bool, dev: DeviceInfo) -> ModconvPlan:
    """The implicit GEMM's launch for x of ``dtype``; ``allow_tf32``: ``torch.backends.cudnn.allow_tf32`` (the
    float32 dots run TF32 where cuDNN's convolutions would)."""
    if dev.interpreter:
        return ModconvPlan(False, dict(_INTERPRETER_BLOCKS, BLOCK_K=16), False, "ieee")
    low = dtype in (torch.float16, torch.bfloat16)
    return ModconvPlan(True, None, low, "tf32" if allow_tf32 else "ieee")


def plan_demod_bias_act(m: int, out_ch: int, channels_contiguous: bool, dev: DeviceInfo) -> TilePlan:
    """The epilogue's launch over ``m`` pixels x ``out_ch`` channels: channel-major tiles when channels are
    contiguous (channels_last), pixel-major otherwise."""
    if dev.interpreter:
        blocks = _INTERPRETER_BLOCKS
    else:
        blocks = _GPU_EPILOGUE_NHWC if channels_contiguous else _GPU_EPILOGUE_NCHW
    return TilePlan((triton.cdiv(m, blocks["BLOCK_M"]), triton.cdiv(out_ch, blocks["BLOCK_N"])), dict(blocks),
                    _EPILOGUE_WARPS)


def plan_demod_bias_act_bwd(batch: int, hw: int, out_ch: int, dev: DeviceInfo) -> TilePlan:
    """The epilogue backward's launch: [BLOCK_M pixels of one sample, BLOCK_N channels] tiles."""
    blocks = _INTERPRETER_BLOCKS if dev.interpreter else _GPU_EPILOGUE_BWD
    tiles = triton.cdiv(hw, blocks["BLOCK_M"])
    return TilePlan((batch * tiles, triton.cdiv(out_ch, blocks["BLOCK_N"])), dict(blocks), _EPILOGUE_BWD_WARPS)


def new_output(x: torch.Tensor, out_ch: int, oh: int, ow: int) -> torch.Tensor:
    """An empty [N, out_ch, oh, ow] tensor in x's dtype, channels_last when x is (what the kernel writes)."""
    return torch.empty((x.shape[0], out_ch, oh, ow), dtype=x.dtype, device=x.device, memory_format=output_format(x))


def _needs_int64(*tensors: torch.Tensor) -> bool:
    """int64 offsets when a tensor's elements span 2**30 (a margin for the masked lanes of the last tiles)."""
    return max(sum((s - 1) * abs(st) for s, st in zip(t.shape, t.stride()) if s > 0) for t in tensors) \
        > _INT32_MAX // 2


def _scalars(alpha: float, gain: float, clamp: float, f64: bool):
    """(alpha, gain, clamp, alpha_lo, gain_lo, clamp_lo): float32 hi parts, then the float64 remainders."""
    pairs = [split_f64(float(v), f64) for v in (alpha, gain, clamp)]
    return tuple(hi for hi, _ in pairs) + tuple(lo for _, lo in pairs)


def modconv_bias_act_fwd(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, dcoefs: Optional[torch.Tensor],
                         noise: Optional[torch.Tensor], bias: Optional[torch.Tensor], padding: Tuple[int, int],
                         act_code: int, alpha: float, gain: float, clamp: Optional[float],
                         store_c: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """(y, c): the layer's output and (when ``store_c``; else an empty tensor) the raw conv(x * s, w).

    x: [N, I, H, W] float32/float16/bfloat16, any strides; weight: [O, I, kh, kw];
    styles: [N, I]; dcoefs: None or [N, O]; noise: None or broadcastable
    to [N, O, OH, OW]; bias: None or [O]; padding: (pad_y, pad_x), symmetric.
    y and c have x's dtype and memory format (channels_last stays channels_last).
    """
    batch, in_ch, h, w = x.shape
    out_ch, _, kh, kw = weight.shape
    pad_y, pad_x = padding
    oh, ow = same_conv_size(h, w, kh, kw, pad_y, pad_x)
    y = new_output(x, out_ch, oh, ow)
    c = torch.empty_like(y) if store_c else y.new_empty((0,))
    m = batch * oh * ow
    if y.numel() == 0:
        return y, c
    f64 = x.dtype == torch.float64
    acc = torch.float64 if f64 else torch.float32
    s = styles.to(acc).contiguous()
    d = dcoefs.to(acc).contiguous() if dcoefs is not None else s
    nz = noise.expand(batch, out_ch, oh, ow) if noise is not None else y
    b = bias.contiguous() if bias is not None else s
    plan = plan_modconv(x.dtype, torch.backends.cudnn.allow_tf32, device_info(x.device))
    args = (x, weight, s, d, nz, b, y, c if store_c else y,
            in_ch, h, w, out_ch, oh, ow, m, pad_y, pad_x,
            *x.stride(), *weight.stride(), *nz.stride(), *y.stride(),
            *_scalars(alpha, gain, -1.0 if clamp is None else clamp, f64))
    flags = dict(KH=kh, KW=kw, ACT=act_code, HAS_DEMOD=dcoefs is not None, HAS_NOISE=noise is not None,
                 HAS_BIAS=bias is not None, HAS_CLAMP=clamp is not None, STORE_C=store_c,
                 LOW_PRECISION_DOT=plan.low, INPUT_PRECISION=plan.precision, F64=f64)

    def grid(meta):
        return plan.grid(m, out_ch, meta)

    with device_guard(x):
        if plan.tuned:
            _tuned[grid](*args, **flags)
        else:  # the interpreter: one tile size
            _modconv_bias_act_kernel[grid](*args, **flags, **plan.blocks)
    return y, c


def demod_bias_act_fwd(c: torch.Tensor, dcoefs: Optional[torch.Tensor], noise: Optional[torch.Tensor],
                       bias: Optional[torch.Tensor], act_code: int, alpha: float, gain: float,
                       clamp: Optional[float]) -> torch.Tensor:
    """y = clamp(act(c * d[n, o] + noise + bias[o]) * gain): the layer epilogue after a cuDNN convolution.

    c: [N, O, H, W] float32/float16/bfloat16/float64, any strides; dcoefs: None or [N, O];
    noise: None or broadcastable to c; bias: None or [O]. y has c's dtype and memory format.
    """
    batch, out_ch, oh, ow = c.shape
    y = new_output(c, out_ch, oh, ow)
    if y.numel() == 0:
        return y
    f64 = c.dtype == torch.float64
    acc = torch.float64 if f64 else torch.float32
    d = dcoefs.to(acc).contiguous() if dcoefs is not None else y
    nz = noise.expand(batch, out_ch, oh, ow) if noise is not None else y
    b = bias.contiguous() if bias is not None else y
    m = batch * oh * ow
    plan = plan_demod_bias_act(m, out_ch, c.stride(1) == 1, device_info(c.device))
    with device_guard(c):
        _demod_bias_act_kernel[plan.grid](
            c, d, nz, b, y, out_ch, oh, ow, m, *c.stride(), *nz.stride(), *y.stride(),
            *_scalars(alpha, gain, -1.0 if clamp is None else clamp, f64),
            ACT=act_code, HAS_DEMOD=dcoefs is not None, HAS_NOISE=noise is not None, HAS_BIAS=bias is not None,
            HAS_CLAMP=clamp is not None, F64=f64, **plan.blocks,
            NOISE_PIXEL=noise is not None and nz.stride(1) == 0, USE_INT64=_needs_int64(c, nz, y),
            num_warps=plan.num_warps)
    return y


def demod_bias_act_bwd(gy: torch.Tensor, c: torch.Tensor, dcoefs: Optional[torch.Tensor],
                       noise: Optional[torch.Tensor], bias: Optional[torch.Tensor], act_code: int, alpha: float,
                       gain: float, clamp: Optional[float], need_c: bool, need_d: bool, need_noise: bool,
                       need_b: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(g_c, g_d, g_noise, g_bias) of ``demod_bias_act_fwd`` for the output gradient ``gy``, one pass.

    With dz = d y / d z applied to gy (the clamp's mask included): g_c = dz * d (c's dtype and
    memory format), g_d = sum_hw dz * c [N, O], g_bias = sum dz [O] (both float32, float64 for
    float64 c), g_noise = sum_o dz summed to noise's shape (float32). A gradient not asked for is
    an empty tensor. ``need_noise`` requires channel-broadcast noise (noise.shape[1] == 1).
    """
    batch, out_ch, oh, ow = c.shape
    f64 = c.dtype == torch.float64
    acc = torch.float64 if f64 else torch.float32
    hw = oh * ow
    if need_noise and noise.shape[1] != 1:
        raise ValueError(f"demod_bias_act_bwd: the noise gradient needs noise of shape [N or 1, 1, H, W], got "
                         f"{tuple(noise.shape)}")
    plan = plan_demod_bias_act_bwd(batch, hw, out_ch, device_info(c.device))
    tiles, ctiles = triton.cdiv(hw, plan.blocks["BLOCK_M"]), plan.grid[1]
    empty = c.new_empty((0,), dtype=acc)
    gc = new_output(c, out_ch, oh, ow) if need_c else c.new_empty((0,))
    pd = torch.empty((batch, tiles, out_ch), device=c.device, dtype=acc) if need_d else empty
    pb = torch.empty((batch, tiles, out_ch), device=c.device, dtype=acc) if need_b else empty
    pn = torch.empty((ctiles, batch, hw), device=c.device, dtype=acc) if need_noise else empty
    if c.numel() > 0:
        d = dcoefs.to(acc).contiguous() if dcoefs is not None else empty
        nz = noise.expand(batch, out_ch, oh, ow) if noise is not None else c
        b = bias.contiguous() if bias is not None else empty
        gco = gc if need_c else c
        with device_guard(c):
            _demod_bias_act_bwd_kernel[plan.grid](
                gy, c, d, nz, b, gco, pd, pb, pn, batch, out_ch, ow, hw, tiles,
                *gy.stride(), *c.stride(), *nz.stride(), *gco.stride(),
                *_scalars(alpha, gain, -1.0 if clamp is None else clamp, f64),
                ACT=act_code, HAS_DEMOD=dcoefs is not None, HAS_NOISE=noise is not None, HAS_BIAS=bias is not None,
                HAS_CLAMP=clamp is not None, NEED_C=need_c, NEED_D=need_d, NEED_B=need_b, NEED_NOISE=need_noise,
                F64=f64, **plan.blocks, NOISE_PIXEL=noise is not None and nz.stride(1) == 0,
                USE_INT64=_needs_int64(gy, c, nz, gco), num_warps=plan.num_warps)
    none = lambda: c.new_empty((0,), dtype=acc)  # noqa: E731 - distinct tensors (custom ops forbid aliasing)
    g_d = pd.sum(dim=1) if need_d else none()
    g_b = pb.sum(dim=(0, 1)) if need_b else none()
    g_n = pn.sum(dim=0).reshape(batch, 1, oh, ow).sum_to_size(noise.shape).contiguous() if need_noise else none()
    return gc, g_d, g_n, g_b

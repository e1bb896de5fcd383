"""Triton upfirdn2d: zero-insert upsampling, padding/cropping, FIR filtering and decimation in one pass.

Launcher: :func:`upfirdn2d_fwd`. No autograd here: the backward of upfirdn2d is
the same op with up/down swapped, the padding adjusted and the filter flipped,
which the autograd glue in ``gan_fast.fused.upfirdn2d`` arranges.

Algorithm (polyphase, no materialised upsampled image): output sample ``o``
along one axis reads padded-upsampled position ``p = o*down + k`` for taps
``k`` in ``[0, f)``; that is input sample ``i = (p - pad0) / up`` when the
division is exact. With ``a = o*down - pad0`` the contributing inputs are
``i = ceil(a/up) + t`` for ``t`` in ``[0, ceil(f/up))`` at taps
``k = i*up - a``, so each output reads only ``ceil(fh/upy) * ceil(fw/upx)``
input samples (not ``fh*fw``), and the tap index is gathered per output
(the filter is tiny and stays in L1).

One kernel serves every case: the tile is ``[BLOCK_C channels, BLOCK_P output
pixels]`` of one image with arbitrary strides, ``BLOCK_C = 1`` for NCHW
(coalesced along W) and a channel block for channels_last (coalesced along C).
Accumulation is in float32 whatever the storage dtype (fp32/fp16/bf16).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import torch
import triton
import triton.language as tl

from ..shapes import upfirdn2d_size
from ._common import DeviceInfo, Tuned, device_guard, device_info, is_channels_last

__all__ = ["upfirdn2d_fwd", "plan_upfirdn2d", "SEPARABLE_TWO_PASS_MIN_TAPS"]

# A separable [ft] filter runs as two 1-D passes (x then y, float32 in between)
# when the single-pass outer product would read at least this many samples per
# output; below it, one pass with the outer-product filter. Unmeasured on GPU.
SEPARABLE_TWO_PASS_MIN_TAPS = 25

_INT32_MAX = 2**31 - 1



@triton.jit
def _upfirdn2d_kernel(
    x_ptr, g_ptr, y_ptr,
    C, H, W, OH, OW,
    sxn, sxc, sxh, sxw,
    syn, syc, syh, syw,
    PX0, PY0, OFFX, OFFY,
    UPX: tl.constexpr, UPY: tl.constexpr, DOWNX: tl.constexpr, DOWNY: tl.constexpr,
    FW: tl.constexpr, FH: tl.constexpr, TX: tl.constexpr, TY: tl.constexpr,
    USE_INT64: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr,
):
    pid = tl.program_id(0)
    num_pb = tl.cdiv(OH * OW, BLOCK_P)
    num_cb = tl.cdiv(C, BLOCK_C)
    pb = pid % num_pb
    rest = pid // num_pb
    cb = rest % num_cb
    n = rest // num_cb

    offs_p = pb * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_c = cb * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_p = offs_p < OH * OW
    mask_c = offs_c < C
    oy = offs_p // OW
    ox = offs_p % OW

    # First contributing input sample and its tap, per output (see module doc).
    # OFF* keep the numerators non-negative so integer division is floor division.
    ax = ox * DOWNX - PX0
    ay = oy * DOWNY - PY0
    if UPX == 1:
        ix0 = ax
        kx0 = ax * 0
    else:
        ix0 = (ax + OFFX * UPX + (UPX - 1)) // UPX - OFFX
        kx0 = ix0 * UPX - ax
    if UPY == 1:
        iy0 = ay
        ky0 = ay * 0
    else:
        iy0 = (ay + OFFY * UPY + (UPY - 1)) // UPY - OFFY
        ky0 = iy0 * UPY - ay

    if USE_INT64:
        x_base = x_ptr + n.to(tl.int64) * sxn + offs_c.to(tl.int64)[:, None] * sxc
    else:
        x_base = x_ptr + n * sxn + offs_c[:, None] * sxc
    mask_cp = mask_c[:, None] & mask_p[None, :]

    acc = tl.zeros((BLOCK_C, BLOCK_P), dtype=tl.float32)
    for ty in tl.static_range(TY):
        iy = iy0 + ty
        ky = ky0 + ty * UPY
        my = (iy >= 0) & (iy < H) & (ky < FH)
        if USE_INT64:
            row = iy.to(tl.int64) * sxh
        else:
            row = iy * sxh
        for tx in tl.static_range(TX):
            ix = ix0 + tx
            kx = kx0 + tx * UPX
            m = my & (ix >= 0) & (ix < W) & (kx < FW) & mask_p
            if UPX == 1 and UPY == 1:  # every output takes tap (ty, tx): one uniform load, no gather
                gv = tl.where(m, tl.load(g_ptr + ty * FW + tx), 0.0)
            else:
                gv = tl.load(g_ptr + ky * FW + kx, mask=m, other=0.0)
            if USE_INT64:
                col = ix.to(tl.int64) * sxw
            else:
                col = ix * sxw
            xv = tl.load(x_base + (row + col)[None, :], mask=m[None, :] & mask_c[:, None], other=0.0)
            acc += xv.to(tl.float32) * gv[None, :]

    if USE_INT64:
        y_off = n.to(tl.int64) * syn + offs_c.to(tl.int64)[:, None] * syc + \
            (oy.to(tl.int64) * syh + ox.to(tl.int64) * syw)[None, :]
    else:
        y_off = n * syn + offs_c[:, None] * syc + (oy * syh + ox * syw)[None, :]
    tl.store(y_ptr + y_off, acc.to(y_ptr.dtype.element_ty), mask=mask_cp)


# At most 2 outputs a thread (4 took 138-168 registers on sm_90 with 4x4 taps: 12-19% occupancy; 2 take at most
# about 90, 25-38%); the autotuner still chooses among the same tile sizes. 16 warps name maxnreg=128 (the
# register file's share of a 512-thread block): left to itself ptxas aims at 2 such blocks (64 registers) and
# spills the 4x4-tap float16 kernels.
_NCHW_CONFIGS = [
    triton.Config({"BLOCK_C": 1, "BLOCK_P": bp}, num_warps=nw, maxnreg=128 if nw == 16 else None)
    for bp, nw in ((128, 4), (256, 4), (512, 8), (1024, 16))
]
_NHWC_CONFIGS = [
    triton.Config({"BLOCK_C": bc, "BLOCK_P": bp}, num_warps=nw)
    for bc, bp, nw in ((16, 64, 4), (32, 32, 4), (32, 64, 4), (64, 16, 4), (64, 32, 8))
]
_KEY = ["C", "OH", "OW", "UPX", "UPY", "DOWNX", "DOWNY", "FW", "FH", "USE_INT64"]
_tuned_nchw = Tuned(_upfirdn2d_kernel, _NCHW_CONFIGS, _KEY)
_tuned_nhwc = Tuned(_upfirdn2d_kernel, _NHWC_CONFIGS, _KEY)


def _next_pow2(v: int) -> int:
    return 1 << max(int(v) - 1, 0).bit_length()


class UpFirDn2dPlan(NamedTuple):
    """A launch of ``_upfirdn2d_kernel``: ``tuned`` ('nchw' or 'nhwc', the autotuned kernel whose configs a GPU
    chooses from), or None and the one tile ``blocks`` (the interpreter)."""
    tuned: Optional[str]
    blocks: Optional[dict]
    use_int64: bool

    def grid(self, n: int, c: int, oh: int, ow: int, meta: dict) -> Tuple[int]:
        return (n * triton.cdiv(c, meta["BLOCK_C"]) * triton.cdiv(oh * ow, meta["BLOCK_P"]),)


def plan_upfirdn2d(c: int, oh: int, ow: int, channels_last: bool, x_span: int, y_span: int,
                   dev: DeviceInfo) -> UpFirDn2dPlan:
    """The launch for ``c`` channels of ``oh x ow`` outputs; ``x_span``/``y_span``: the largest element offset
    of the input (plus two rows and columns of margin: masked lanes may point a little outside) and output."""
    use_int64 = max(x_span, y_span) > _INT32_MAX // 2
    if dev.interpreter:
        # Few, large programs (the interpreter's cost is per program and per operation, not per element; a
        # channel block serves either layout); autotuning would only waste time.
        block_c = min(_next_pow2(c), 64)
        block_p = max(1, min(_next_pow2(oh * ow), 4096 // block_c))
        return UpFirDn2dPlan(None, dict(BLOCK_C=block_c, BLOCK_P=block_p), use_int64)
    return UpFirDn2dPlan("nhwc" if channels_last else "nchw", None, use_int64)


def _launch(x: torch.Tensor, g: torch.Tensor, y: torch.Tensor, upx: int, upy: int, downx: int, downy: int,
            px0: int, py0: int) -> None:
    n, c, h, w = x.shape
    oh, ow = y.shape[2:]
    fh, fw = g.shape
    span_x = sum((s - 1) * abs(st) for s, st in zip(x.shape, x.stride()))
    span_y = sum((s - 1) * abs(st) for s, st in zip(y.shape, y.stride()))
    # Only unmasked lanes need exact offsets (masked ones may wrap); a small margin for safety.
    plan = plan_upfirdn2d(c, oh, ow, is_channels_last(y), span_x + 2 * (abs(x.stride(2)) + abs(x.stride(3))),
                          span_y, device_info(x.device))
    args = (x, g, y, c, h, w, oh, ow, *x.stride(), *y.stride(), px0, py0,
            -(-max(px0, 0) // upx), -(-max(py0, 0) // upy))
    consts = dict(UPX=upx, UPY=upy, DOWNX=downx, DOWNY=downy, FW=fw, FH=fh,
                  TX=-(-fw // upx), TY=-(-fh // upy), USE_INT64=plan.use_int64)

    def grid(meta):
        return plan.grid(n, c, oh, ow, meta)

    with device_guard(x):
        if plan.tuned is None:
            _upfirdn2d_kernel[grid](*args, **consts, **plan.blocks)
        else:
            (_tuned_nhwc if plan.tuned == "nhwc" else _tuned_nchw)[grid](*args, **consts)


def upfirdn2d_fwd(x: torch.Tensor, f: torch.Tensor, upx: int, upy: int, downx: int, downy: int,
                  px0: int, px1: int, py0: int, py1: int, flip_filter: bool, gain: float) -> torch.Tensor:
    """Upsample (insert zeros), pad (negative pads crop), FIR-filter, downsample; as the reference op.

    Args:
        x: [N, C, H, W], float32/float16/bfloat16, contiguous or channels_last
            (anything else is made contiguous first). Computed in float32.
        f: [fh, fw] filter, or a separable 1-D filter [ft] meaning ``outer(f, f)``
            (applied along x, then y, as the reference does). Any floating dtype
            and device; tested up to 12 taps per axis.
        upx, upy, downx, downy: integer factors >= 1 (tested: 1, 2, 4).
        px0, px1, py0, py1: padding after upsampling; negative values crop.
        flip_filter: False = true convolution with f, True = correlation.
        gain: multiplies the filter (overall, also for a separable filter).

    Returns:
        y: [N, C, (H*upy + py0 + py1 - fh)//downy + 1, (W*upx + px0 + px1 - fw)//downx + 1],
        x's dtype, in x's memory format (channels_last stays channels_last).
    """
    if x.ndim != 4:
        raise ValueError(f"x must be [N, C, H, W], got shape {tuple(x.shape)}")
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f"f must be a non-empty [fh, fw] or [ft] filter, got shape {tuple(f.shape)}")
    if min(upx, upy, downx, downy) < 1:
        raise ValueError(f"up/down factors must be >= 1, got up=({upx}, {upy}), down=({downx}, {downy})")
    if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
        x = x.contiguous()
    channels_last = is_channels_last(x)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    n, c, h, w = x.shape
    ft = f.shape[0]
    fh, fw = (ft, ft) if f.ndim == 1 else tuple(f.shape)
    oh, ow = upfirdn2d_size(h, w, fh, fw, upx, upy, downx, downy, px0, px1, py0, py1)
    if oh < 1 or ow < 1:
        raise ValueError(f"upfirdn2d leaves no output ({oh}x{ow}) for x {tuple(x.shape)}, filter {fh}x{fw}, "
                         f"up ({upx}, {upy}), down ({downx}, {downy}), padding ({px0}, {px1}, {py0}, {py1})")
    y = torch.empty((n, c, oh, ow), dtype=x.dtype, device=x.device, memory_format=fmt)
    if y.numel() == 0:
        return y

    g = f.detach().to(device=x.device, dtype=torch.float32)
    if not flip_filter:  # the kernel correlates; a true convolution flips the taps
        g = g.flip(list(range(g.ndim)))

    if g.ndim == 1 and -(-ft // upx) * -(-ft // upy) >= SEPARABLE_TWO_PASS_MIN_TAPS:
        # Two 1-D passes; the whole gain goes on the first, float32 in between.
        gx = (g * float(gain)).reshape(1, ft).contiguous()
        gy = g.reshape(ft, 1).contiguous()
        tmp = torch.empty((n, c, h, ow), dtype=torch.float32, device=x.device, memory_format=fmt)
        _launch(x, gx, tmp, upx, 1, downx, 1, px0, 0)
        _launch(tmp, gy, y, 1, upy, 1, downy, 0, py0)
        return y

    if g.ndim == 1:
        g = torch.outer(g, g)
    g = (g * float(gain)).contiguous()
    _launch(x, g, y, upx, upy, downx, downy, px0, py0)
    return y

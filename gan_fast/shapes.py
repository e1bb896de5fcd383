"""Output-size formulas and memory-layout predicates: each written once, for validation, ``register_fake`` and
the kernels' launchers.

This is the one module of ``gan_fast`` that ``gan_fast.kernels`` imports, so it imports nothing of gan_fast
(only torch, for the layout predicates). Sizes are plain Python ints; a negative or zero size means "no
output", which the validation turns into a named ``ValueError``.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

__all__ = ["is_dense", "is_channels_last", "output_format", "filter_wh", "upfirdn2d_length", "upfirdn2d_size",
           "filtered_lrelu_size", "filtered_lrelu_mask_size", "conv_resample_length", "same_conv_size"]


# ---------------------------------------------------------------------------------------------------- layouts


def is_dense(t: torch.Tensor) -> bool:
    """Non-overlapping and dense: the elements fill numel consecutive storage slots in some order."""
    if t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last) or (
            t.ndim == 5 and t.is_contiguous(memory_format=torch.channels_last_3d)):
        return True
    dims = sorted(((s, st) for s, st in zip(t.shape, t.stride()) if s != 1), key=lambda p: p[1])
    expected = 1
    for size, stride in dims:
        if stride != expected:
            return False
        expected *= size
    return True


def is_channels_last(t: torch.Tensor) -> bool:
    """channels_last and not also contiguous (a [N, C, 1, 1] tensor is both): the launchers keep this layout."""
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def output_format(t: torch.Tensor) -> torch.memory_format:
    """The memory format of an image-shaped result computed from ``t``: channels_last when ``t`` is."""
    return torch.channels_last if is_channels_last(t) else torch.contiguous_format


# ---------------------------------------------------------------------------------------------------- filters


def filter_wh(f: Optional[torch.Tensor]) -> Tuple[int, int]:
    """(width, height) in taps of a FIR filter: [fh, fw], separable [ft] (``outer(f, f)``), or None (1 x 1)."""
    if f is None:
        return 1, 1
    if f.ndim == 1:
        return f.shape[0], f.shape[0]
    return f.shape[1], f.shape[0]


# ------------------------------------------------------------------------------------------------- upfirdn2d


def upfirdn2d_length(length: int, up: int, down: int, pad0: int, pad1: int, taps: int) -> int:
    """Output length of upfirdn2d along one axis: zero insertion, padding, a ``taps`` FIR, every down-th sample."""
    return (length * up + pad0 + pad1 - taps) // down + 1


def upfirdn2d_size(h: int, w: int, fh: int, fw: int, upx: int, upy: int, downx: int, downy: int, px0: int,
                   px1: int, py0: int, py1: int) -> Tuple[int, int]:
    """(OH, OW) of upfirdn2d for an [.., h, w] input and an fh x fw filter."""
    return upfirdn2d_length(h, upy, downy, py0, py1, fh), upfirdn2d_length(w, upx, downx, px0, px1, fw)


# -------------------------------------------------------------------------------------------- filtered_lrelu


def filtered_lrelu_size(h: int, w: int, fu_wh: Tuple[int, int], fd_wh: Tuple[int, int], up: int, down: int,
                        padding: Tuple[int, int, int, int]) -> Tuple[int, int]:
    """(OH, OW) of filtered_lrelu (StyleGAN3's formula), filters given as (width, height) in taps."""
    (fuw, fuh), (fdw, fdh) = fu_wh, fd_wh
    x0, x1, y0, y1 = padding
    return ((h * up + y0 + y1 - (fuh - 1) - (fdh - 1) + (down - 1)) // down,
            (w * up + x0 + x1 - (fuw - 1) - (fdw - 1) + (down - 1)) // down)


def filtered_lrelu_mask_size(oh: int, ow: int, down: int, fd_taps: int) -> Tuple[int, int]:
    """(MH, MW): the up-sampled samples that reach an output, for which the fused forward saves a mask code."""
    return (oh - 1) * down + fd_taps, (ow - 1) * down + fd_taps


# ------------------------------------------------------------------------------------- convolution + resampling


def conv_resample_length(length: int, kernel: int, filter_taps: int, up: int, down: int, pad0: int,
                         pad1: int) -> Tuple[int, int, int]:
    """Along one axis of ``conv2d_resample`` (StyleGAN2's modulated convolution): (stride-1 length before the
    down-sampling, the padded length (for the int64 check), the output length)."""
    if up > 1:
        pad0, pad1 = pad0 + (filter_taps + up - 1) // 2, pad1 + (filter_taps - up) // 2
    if down > 1:
        pad0, pad1 = pad0 + (filter_taps - down + 1) // 2, pad1 + (filter_taps - down) // 2
    taps = kernel + (filter_taps - 1 if up > 1 or down > 1 else 0)
    padded = length * up + pad0 + pad1
    n = upfirdn2d_length(length, up, 1, pad0, pad1, taps)
    return n, padded, ((n - 1) // down + 1 if n > 0 else n)


def same_conv_size(h: int, w: int, kh: int, kw: int, pad_y: int, pad_x: int) -> Tuple[int, int]:
    """(OH, OW) of a stride-1 correlation with symmetric padding (the implicit-GEMM layer)."""
    return h + 2 * pad_y - kh + 1, w + 2 * pad_x - kw + 1

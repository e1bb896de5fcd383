"""rosinality's ``op.upfirdn2d``: ``upfirdn2d(input, kernel, up=1, down=1, pad=(0, 0))`` on
:func:`gan_fast.ops.upfirdn2d`."""

from __future__ import annotations

import operator
from typing import Tuple

import torch

from ... import checks, ops

__all__ = ["upfirdn2d"]


def _pad4(pad) -> Tuple[int, int, int, int]:
    """rosinality's pad as (x0, x1, y0, y1): (p0, p1) is before/after on BOTH axes.

    (gan_fast.ops' two-element padding means [px, py] instead, so it is not passed through.)"""
    if isinstance(pad, (list, tuple)) and len(pad) in (2, 4) and not any(isinstance(p, bool) for p in pad):
        try:
            pad = tuple(operator.index(p) for p in pad)
        except TypeError:
            pass
        else:
            return (pad[0], pad[1], pad[0], pad[1]) if len(pad) == 2 else pad  # type: ignore[return-value]
    raise ValueError(f"pad must be (p0, p1) (before, after on both axes) or (x0, x1, y0, y1) of ints, got {pad!r}")


def upfirdn2d(input: torch.Tensor, kernel: torch.Tensor, up=1, down=1, pad=(0, 0)) -> torch.Tensor:
    """Upsample (insert ``up - 1`` zeros), pad (negative pads crop), convolve with ``kernel`` (a true
    convolution), keep every ``down``-th sample.

    Args:
        input: [N, C, H, W].
        kernel: [kh, kw] (cast to ``input``'s dtype); used as given (no gain, no normalisation).
        up, down: int or (x, y) pair of ints >= 1.
        pad: (p0, p1), meaning (x0, x1, y0, y1) = (p0, p1, p0, p1), or (x0, x1, y0, y1).

    Returns:
        [N, C, (H*up_y + y0 + y1 - kh) // down_y + 1, (W*up_x + x0 + x1 - kw) // down_x + 1],
        differentiable to second order (gan_fast's fast upfirdn2d where available).
    """
    checks.tensor("kernel", kernel, ndim=2, shape_hint="[kh, kw]")
    return ops.upfirdn2d(input, kernel, up=checks.int_pair("up", up), down=checks.int_pair("down", down),
                         padding=list(_pad4(pad)))

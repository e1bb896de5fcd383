"""Reference filtered leaky ReLU (StyleGAN3): the specification of ``gan_fast.ops.filtered_lrelu``.

The composition of our own ``upfirdn2d`` and ``bias_act``, in StyleGAN3's order::

    y = upfirdn2d(fd, down)( clamp( lrelu( upfirdn2d(fu, up, padding, gain=up**2)(x + b), slope ) * gain ) )

The bias is added before the up-sampling (so the zero padding is not biased);
``None`` filters are the 1-tap identity, and the up-sampling gain ``up**2``
applies to them too. Differentiable to every order by autograd.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch

from . import bias_act as bias_act_ref
from . import upfirdn2d as upfirdn2d_ref


def _identity(x: torch.Tensor) -> torch.Tensor:
    return torch.ones(1, 1, dtype=x.dtype, device=x.device)


def filtered_lrelu(x: torch.Tensor, fu: Optional[torch.Tensor], fd: Optional[torch.Tensor], b: Optional[torch.Tensor],
                   up: int, down: int, padding: Tuple[int, int, int, int], gain: float, slope: float,
                   clamp: Optional[float], flip_filter: bool, resample: Optional[Callable] = None,
                   bias_act: Optional[Callable] = None) -> torch.Tensor:
    """Bias, FIR up-sampling, leaky ReLU, gain, clamp, FIR down-sampling; arguments already validated.

    Args:
        x: [N, C, H, W].
        fu, fd: None, [ft] (separable) or [fh, fw] up- / down-sampling filters.
        b: None or [C].
        up, down: integer factors >= 1 (both axes).
        padding: (x0, x1, y0, y1), applied after the zero insertion; negative values crop.
        gain, slope, clamp: the activation's gain, negative slope and bound (None: no clamp).
        flip_filter: False = true convolution with the filters, True = correlation.
        resample, bias_act: the implementations of the two sub-ops, with the signatures of
            ``gan_fast.reference.upfirdn2d.upfirdn2d`` and ``gan_fast.reference.bias_act.bias_act``
            (default: those reference functions; the fast backends pass their own kernels).

    Returns:
        [N, C, (H*up + y0 + y1 - (fu_h - 1) - (fd_h - 1) + down - 1) // down,
        (W*up + x0 + x1 - (fu_w - 1) - (fd_w - 1) + down - 1) // down], x's dtype.
    """
    resample = upfirdn2d_ref.upfirdn2d if resample is None else resample
    bias_act = bias_act_ref.bias_act if bias_act is None else bias_act
    if b is not None:
        x = bias_act(x, b, 1, "linear", 0.0, 1.0, None)
    x = resample(x, _identity(x) if fu is None else fu, (up, up), (1, 1), tuple(padding), bool(flip_filter),
                 float(up * up))
    x = bias_act(x, None, 1, "lrelu", float(slope), float(gain), clamp)
    return resample(x, _identity(x) if fd is None else fd, (1, 1), (down, down), (0, 0, 0, 0), bool(flip_filter), 1.0)

"""``torch_utils.ops.filtered_lrelu`` of StyleGAN3: ``filtered_lrelu.filtered_lrelu(x, fu, fd, b, up, down,
padding, gain, slope, clamp, flip_filter, impl='cuda')``.

``impl='cuda'`` (the default, as there) means the automatic choice: the Triton kernels for CUDA tensors,
the reference elsewhere (StyleGAN3 runs its reference on CPU tensors too), so it never raises where the
original would not. Up/down factors other than 1, 2 and 4 (which StyleGAN3's reference accepts) run the
reference.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from ..ops.filtered_lrelu import FACTORS, validate
from ..ops.filtered_lrelu import filtered_lrelu as _filtered_lrelu
from ..reference import filtered_lrelu as _reference

__all__ = ["filtered_lrelu"]


def filtered_lrelu(x: torch.Tensor, fu: Optional[torch.Tensor] = None, fd: Optional[torch.Tensor] = None,
                   b: Optional[torch.Tensor] = None, up: int = 1, down: int = 1, padding=0, gain: float = math.sqrt(2),
                   slope: float = 0.2, clamp: Optional[float] = None, flip_filter: bool = False,
                   impl: Optional[str] = "cuda") -> torch.Tensor:
    """Bias, FIR up-sampling (gain up**2), leaky ReLU, gain, clamp, FIR down-sampling: see
    :func:`gan_fast.ops.filtered_lrelu`. x: [N, C, H, W]; returns [N, C, OH, OW] (StyleGAN3's sizes).

    impl: 'cuda' or None (automatic), 'ref', or a gan_fast backend name ('triton').
    """
    impl = None if impl == "cuda" else impl
    if isinstance(up, int) and isinstance(down, int) and (up not in FACTORS or down not in FACTORS):
        args = validate(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter, any_factor=True)
        return _reference.filtered_lrelu(x, *args)
    return _filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter, impl=impl)

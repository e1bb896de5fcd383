"""``torch_utils.ops.filtered_lrelu`` of StyleGAN3: ``filtered_lrelu.filtered_lrelu(x, fu, fd, b, up, down,
padding, gain, slope, clamp, flip_filter, impl='cuda')``.

``impl='cuda'`` (the default, as there) means the automatic choice: the Triton kernels for CUDA tensors,
the reference elsewhere (StyleGAN3 runs its reference on CPU tensors too), so it never raises where the
original would not. Up/down factors other than 1, 2 and 4 (which StyleGAN3's reference accepts) run the
reference (an explicit fast ``impl`` is refused for them).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from .. import ops
from ..config import normalize_impl
from ..errors import BackendUnavailableError
from ..params import cast_to
from ..params import filtered_lrelu as _params
from ..reference import filtered_lrelu as _reference
from .auto import auto_impl

__all__ = ["filtered_lrelu"]


def filtered_lrelu(x: torch.Tensor, fu: Optional[torch.Tensor] = None, fd: Optional[torch.Tensor] = None,
                   b: Optional[torch.Tensor] = None, up: int = 1, down: int = 1, padding=0, gain: float = math.sqrt(2),
                   slope: float = 0.2, clamp: Optional[float] = None, flip_filter: bool = False,
                   impl: Optional[str] = "cuda") -> torch.Tensor:
    """Bias, FIR up-sampling (gain up**2), leaky ReLU, gain, clamp, FIR down-sampling: see
    :func:`gan_fast.ops.filtered_lrelu`. x: [N, C, H, W]; returns [N, C, OH, OW] (StyleGAN3's sizes).

    impl: 'cuda' or None (automatic), 'ref', or a gan_fast backend name ('triton').
    """
    impl = auto_impl(impl)
    if isinstance(up, int) and isinstance(down, int) and (up not in _params.FACTORS or down not in _params.FACTORS):
        p = _params.validate(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter, any_factor=True)
        if normalize_impl(impl) not in (None, "ref"):
            raise BackendUnavailableError(f"filtered_lrelu: impl={impl!r} cannot run up={up}, down={down}: its "
                                          f"kernels take factors {_params.FACTORS}; impl='ref' runs it "
                                          "(and impl='cuda' or None chooses ref for such calls)")
        fu, fd, b = cast_to(x, fu, fd, b)
        return _reference.filtered_lrelu(x, fu, fd, b, p.up, p.down, p.padding, p.gain, p.slope, p.clamp,
                                         p.flip_filter)
    return ops.filtered_lrelu(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter, impl=impl)

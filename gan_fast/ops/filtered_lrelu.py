"""Public ``filtered_lrelu`` (StyleGAN3's filtered leaky ReLU): validate, choose a backend, run it."""

from __future__ import annotations

import math
from typing import Optional

import torch

from .. import backend
from ..backends import filtered_lrelu as backends
from ..params import cast_to
from ..params import filtered_lrelu as params

__all__ = ["filtered_lrelu"]


def filtered_lrelu(x: torch.Tensor, fu: Optional[torch.Tensor] = None, fd: Optional[torch.Tensor] = None,
                   b: Optional[torch.Tensor] = None, up: int = 1, down: int = 1, padding=0,
                   gain: float = math.sqrt(2), slope: float = 0.2, clamp: Optional[float] = None,
                   flip_filter: bool = False, impl: Optional[str] = None) -> torch.Tensor:
    """StyleGAN3's filtered leaky ReLU: bias, FIR up-sampling, leaky ReLU, gain, clamp, FIR down-sampling.

    ``y = upfirdn2d(fd, down)( clamp( lrelu( upfirdn2d(fu, up, padding, gain=up**2)(x + b), slope ) * gain,
    -clamp, clamp ) )``, the resampling as :func:`gan_fast.ops.upfirdn2d` (zero insertion, padding that
    may be negative, true convolution unless ``flip_filter``).

    Args:
        x: [N, C, H, W], float16/bfloat16/float32/float64, any memory format.
        fu, fd: up- and down-sampling filters: None (the 1-tap identity; the up-sampling gain ``up**2``
            still applies), 1-D [ft] (separable) or 2-D [fh, fw], as made by ``setup_filter``; cast to x's
            dtype. The triton backend takes them as constants (see ``impl``).
        b: None or [C] bias, added before the up-sampling (cast to x's dtype).
        up, down: 1, 2 or 4 (both axes).
        padding: int, [px, py] or [x0, x1, y0, y1], applied after the zero insertion; negative crops.
        gain: multiplies the leaky ReLU's output (default sqrt 2).
        slope: the leaky ReLU's negative slope (default 0.2).
        clamp: None, or a bound >= 0: the activation is clamped to [-clamp, clamp].
        flip_filter: False = true convolution, True = correlation.
        impl: None (automatic: ``triton`` for CUDA tensors of float16/bfloat16/float32 once it passed its
            self-test, else ``ref``), 'ref' or 'triton'. The Triton kernels compute in float32: float64 x runs
            ``ref`` when automatic, and ``impl='triton'`` refuses it (``UnsupportedDtypeError``, a
            ``TypeError``). They take the filters as constants: with a filter that requires grad (and grad
            mode on) the automatic choice runs ``ref`` (exact gradient for the filters) and ``impl='triton'``
            raises ``BackendUnavailableError``.

    Empty x (N = 0 or C = 0) is valid: the result (and gradient) is the reference's, whatever ``impl``.

    Returns:
        [N, C, (H*up + y0 + y1 - (fu_h - 1) - (fd_h - 1) + down - 1) // down,
        (W*up + x0 + x1 - (fu_w - 1) - (fd_w - 1) + down - 1) // down] in x's dtype (and, on the
        triton backend, x's memory format). Differentiable with respect to x and b, to any order.

    The triton backend: separable or absent filters run one fused forward kernel (the up-sampled tile stays
    on chip; an int8 code per up-sampled sample is kept for backward) and one backward kernel, which also
    serve every higher derivative (the op is piecewise linear in x and b). One 2-D filter (StyleGAN3-R's
    radial down filter) is split off to the Triton ``upfirdn2d``, the rest stays fused; two 2-D filters run
    the composition of the Triton ``upfirdn2d`` and ``bias_act`` kernels. A non-finite input value spoils
    its whole output tile (about 21 x 21 outputs) rather than only the outputs within the filters' reach.
    """
    p = params.validate(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter)
    fu, fd, b = cast_to(x, fu, fd, b)  # the mixed-dtype rule, the same for every backend
    needs = ()
    if x.dtype == torch.float64:
        needs += ("float64",)
    if ((fu is not None and fu.requires_grad) or (fd is not None and fd.requires_grad)) and torch.is_grad_enabled():
        needs += ("learned filter",)
    chosen = backend.choose(backends.SPEC, impl, x.device, x.dtype, needs=needs)
    if x.numel() == 0:
        chosen = "ref"  # an empty x never reaches a kernel: ref's empty result
    return backends.run(chosen, p, x, fu, fd, b)

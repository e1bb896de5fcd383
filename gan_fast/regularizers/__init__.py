"""Regularizers for GAN training.

* Exact gradient penalties, differentiable to second order (double backward):
  :func:`gradient_penalty`, :func:`r1_penalty`, :func:`r2_penalty`, :func:`wgan_gp`.
* A double-backward-free approximation of R1/R2 (arXiv 2501.08316), with a
  documented O(sigma^2) bias: :func:`approximate_gradient_penalty`,
  :func:`approximate_r1`, :func:`approximate_r2`.
* StyleGAN2 path length regularisation: :class:`PathLengthPenalty`.
* Lazy regularisation schedule and Adam adjustment: :class:`LazyRegularization`.
* WGAN weight clipping: :func:`clip_weights_`.

Penalties are returned without their weight (gamma/2, lambda, pl_weight): the
caller multiplies.
"""

from .approximate import approximate_gradient_penalty, approximate_r1, approximate_r2
from .clipping import clip_weights_
from .gradient_penalty import gradient_penalty, r1_penalty, r2_penalty, wgan_gp
from .lazy import LazyRegularization
from .path_length import PathLengthPenalty

__all__ = [
    "gradient_penalty",
    "r1_penalty",
    "r2_penalty",
    "wgan_gp",
    "approximate_gradient_penalty",
    "approximate_r1",
    "approximate_r2",
    "PathLengthPenalty",
    "LazyRegularization",
    "clip_weights_",
]

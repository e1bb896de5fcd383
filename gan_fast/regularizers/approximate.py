"""Approximate R1/R2 without double backward: the perturbation form of arXiv 2501.08316 (APT).

Instead of ``||grad_x D(x)||^2`` it penalises how much the critic's output moves
under a small Gaussian perturbation of its input::

    d = D(x + sigma * eps) - D(x),  eps ~ N(0, I)
    penalty = ||d||^2 / sigma^2          (normalize=True, the default)
    penalty = ||d||^2                    (normalize=False: the paper's raw form, lambda * ||d||^2)

Only first-order backward is needed (two forward passes of the critic), so it
runs where double backward is slow or unsupported (``torch.compile``, some
fused kernels).

Bias (documented, tested): a Taylor expansion with ``g = grad D``,
``H = hess D`` gives, for each sample,

    E[||d||^2] / sigma^2 = ||g||^2
                           + sigma^2 * ((tr H)^2 + 2 ||H||_F^2) / 4
                           + sigma^2 * g . grad(tr H)
                           + O(sigma^4),

so it is an estimate of R1's ``||g||^2`` with an O(sigma^2) bias (from the
critic's curvature) and Monte-Carlo noise (variance ``2 ||g||^4`` per sample for
a linear critic). Its gradient w.r.t. the critic's parameters is the gradient
of that estimate, not of R1. It is *not* the exact penalty; use
:func:`gan_fast.regularizers.r1_penalty` when exactness matters.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from .. import checks
from ..ops.gradient_norm_penalty import check_reduction

__all__ = ["approximate_gradient_penalty", "approximate_r1", "approximate_r2"]


def approximate_gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
                                 sigma: float = 0.01, outputs: Optional[torch.Tensor] = None,
                                 reduction: str = "mean", *, normalize: bool = True,
                                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Perturbation estimate of ``||d D(x) / d x||^2`` per sample (no double backward).

    Args:
        critic: callable mapping [N, ...] inputs to outputs [N, ...].
        inputs: the samples x, [N, ...]; used detached (this is a critic regulariser).
        sigma: perturbation scale (a finite number > 0), in the units of ``inputs``.
        outputs: ``critic(inputs)`` if already computed (e.g. the logits of the
            loss step), to save one forward pass; else it is computed here.
            Shape [N, ...].
        reduction: 'mean' | 'sum' | 'none' ([N]). An empty batch gives 0 ('sum') or an empty
            tensor ('none'); 'mean' raises ValueError for it.
        normalize: divide by ``sigma**2`` (default), so the value estimates R1's
            ``||g||^2`` and takes the same gamma/2; ``False`` gives the raw
            ``||D(x) - D(x + sigma * eps)||^2`` of the paper.
        generator: optional ``torch.Generator`` for ``eps``.

    Returns:
        A scalar, or [N] for ``reduction='none'``; float32 at least. The caller
        multiplies by gamma/2 (or the paper's lambda). See the module docstring
        for the O(sigma^2) bias.
    """
    if not callable(critic):
        raise TypeError(f"critic must be callable (an nn.Module or function), got {type(critic).__name__}")
    checks.tensor("inputs", inputs, shape_hint="[N, ...]")
    if inputs.ndim == 0:
        raise ValueError("inputs must be [N, ...] with a batch dimension, got a 0-d tensor")
    sigma = checks.positive_number("sigma", sigma)
    check_reduction(reduction, inputs.shape[0], "inputs")
    normalize = checks.boolean("normalize", normalize)
    x = inputs.detach()
    if outputs is None:
        outputs = critic(x)
    checks.tensor("outputs", outputs, shape_hint=f"[{x.shape[0]}, ...] (critic(inputs))")
    if outputs.ndim == 0 or outputs.shape[0] != x.shape[0]:
        raise ValueError(f"outputs must be [N, ...] with N = {x.shape[0]} (critic(inputs)), "
                         f"got shape {tuple(outputs.shape)}")
    eps = torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)
    perturbed = critic(x + sigma * eps)
    if perturbed.shape != outputs.shape:
        raise ValueError(f"critic(inputs + noise) has shape {tuple(perturbed.shape)} but outputs has "
                         f"{tuple(outputs.shape)}")
    acc = torch.promote_types(outputs.dtype, torch.float32)
    diff = (perturbed.to(acc) - outputs.to(acc)).reshape(x.shape[0], math.prod(outputs.shape[1:]))
    per_sample = diff.square().sum(dim=1)
    if normalize:
        per_sample = per_sample / (sigma ** 2)
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


def approximate_r1(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, sigma: float = 0.01,
                   real_logits: Optional[torch.Tensor] = None, *, normalize: bool = True,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Approximate R1 on real samples [N, ...]: mean of ``||D(x + sigma eps) - D(x)||^2 / sigma^2``.

    A biased, noisy but double-backward-free stand-in for :func:`r1_penalty`
    (see :mod:`gan_fast.regularizers.approximate`). ``real_logits`` = D(real)
    when already computed. Returns a scalar; the caller multiplies by gamma/2.
    """
    _check_batch("real", real)
    return approximate_gradient_penalty(critic, real, sigma, real_logits, "mean", normalize=normalize,
                                        generator=generator)


def approximate_r2(critic: Callable[[torch.Tensor], torch.Tensor], fake: torch.Tensor, sigma: float = 0.01,
                   fake_logits: Optional[torch.Tensor] = None, *, normalize: bool = True,
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Approximate R2 on generated samples [N, ...] (used detached); as :func:`approximate_r1`."""
    _check_batch("fake", fake)
    return approximate_gradient_penalty(critic, fake, sigma, fake_logits, "mean", normalize=normalize,
                                        generator=generator)


def _check_batch(name: str, samples) -> None:
    """R1/R2 are means over the batch: ValueError naming ``name`` for an empty one."""
    checks.tensor(name, samples, shape_hint="[N, ...]")
    if samples.ndim == 0:
        raise ValueError(f"{name} must be [N, ...] with a batch dimension, got a 0-d tensor")
    check_reduction("mean", samples.shape[0], name)

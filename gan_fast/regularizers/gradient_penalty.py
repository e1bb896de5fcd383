"""Exact gradient penalties: general form, R1, R2 and WGAN-GP.

Each computes the input gradient ``g = d sum(outputs) / d inputs`` with
``torch.autograd.grad(..., create_graph=True)`` (so ``penalty.backward()`` is a
double backward and trains the critic's parameters), inside
:func:`gan_fast.conv2d_gradfix.no_weight_gradients` as StyleGAN2 does, and then
reduces it with :func:`gan_fast.ops.gradient_norm_penalty` (fused kernel on GPU
when available, the reference otherwise).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from .. import checks
from ..conv2d_gradfix import no_weight_gradients
from ..ops import gradient_norm_penalty
from ..params.gradient_norm_penalty import REDUCTIONS, check_reduction

__all__ = ["gradient_penalty", "r1_penalty", "r2_penalty", "wgan_gp"]


def _check_args(center, one_sided, reduction) -> None:
    """Validates the penalty arguments before any (double) backward work is done."""
    checks.number("center", center, minimum=0)
    checks.boolean("one_sided", one_sided)
    checks.choice("reduction", reduction, REDUCTIONS)


def _input_gradient(outputs: torch.Tensor, inputs: torch.Tensor, outputs_name: str = "outputs",
                    inputs_name: str = "inputs", reduction: str = "mean") -> torch.Tensor:
    """d sum(outputs) / d inputs with a graph, after checking that it exists. Returns [N, ...] like inputs.

    An empty batch (N = 0) passes only with a ``reduction`` that is defined for it ('sum', 'none')."""
    checks.tensor(outputs_name, outputs, shape_hint="[N, ...] (any shape; its sum is differentiated)")
    checks.tensor(inputs_name, inputs, shape_hint="[N, ...]")
    if inputs.ndim == 0:
        raise ValueError(f"{inputs_name} must be [N, ...] with a batch dimension, got a 0-d tensor")
    check_reduction(reduction, inputs.shape[0], inputs_name)
    if not inputs.requires_grad:
        raise ValueError(f"{inputs_name} must require grad: call {inputs_name}.requires_grad_(True) (on a detached "
                         f"tensor) before computing {outputs_name} from it")
    if not outputs.requires_grad:
        raise ValueError(f"{outputs_name} has no autograd graph, so it is not connected to {inputs_name}: compute it "
                         f"from {inputs_name} with grad enabled (not under torch.no_grad())")
    with no_weight_gradients():
        (grads,) = torch.autograd.grad(outputs=outputs, inputs=inputs, grad_outputs=torch.ones_like(outputs),
                                       create_graph=True, allow_unused=True)
    if grads is None:
        raise ValueError(f"{outputs_name} is not connected to {inputs_name}: it was not computed from this tensor")
    return grads


def gradient_penalty(outputs: torch.Tensor, inputs: torch.Tensor, center: float = 0.0, one_sided: bool = False,
                     reduction: str = "mean") -> torch.Tensor:
    """Penalty on the per-sample norm of the input gradient, differentiable (double backward).

    ``g = d sum(outputs) / d inputs`` (with ``create_graph=True``); per sample
    ``n = ||g[i]||_2`` over all non-batch dims; the penalty is ``n^2`` when
    ``center`` is 0, ``(n - center)^2`` otherwise, ``max(0, n - center)^2``
    when ``one_sided``. Samples must not interact in the critic (no batch
    statistics) for ``g[i]`` to be the gradient of sample i's own output.

    Args:
        outputs: critic outputs computed from ``inputs``, [N, ...] (any shape).
        inputs: the critic's input, [N, ...], with ``requires_grad=True``.
        center: target norm, >= 0 (0: R1/R2; 1: WGAN-GP).
        one_sided: penalise only norms above ``center``.
        reduction: 'mean' (scalar), 'sum' (scalar) or 'none' ([N]). An empty batch (N = 0)
            gives 0 ('sum') or an empty tensor ('none'); its mean is undefined (ValueError).

    Returns:
        A scalar, or [N] for ``reduction='none'``; float32 at least.

    Raises:
        ValueError: ``inputs`` does not require grad; ``outputs`` has no graph or
            is not connected to ``inputs``; bad ``center``/``reduction``.
        TypeError: non-tensor or non-floating ``outputs``/``inputs``.
    """
    _check_args(center, one_sided, reduction)
    grads = _input_gradient(outputs, inputs, reduction=reduction)
    return gradient_norm_penalty(grads, center=center, one_sided=one_sided, reduction=reduction)


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): mean over the batch of ``||d D(real) / d real||^2``.

    Args:
        real_logits: D(real), [N] or [N, ...], computed from ``real``.
        real: real samples, [N, ...], with ``requires_grad=True`` (use
            ``real.detach().requires_grad_(True)`` before calling D).

    Returns:
        A scalar. The gamma/2 factor is *not* included: the caller computes
        ``(gamma / 2) * r1_penalty(...)`` (times the lazy interval, if lazy).
    """
    grads = _input_gradient(real_logits, real, "real_logits", "real", "mean")
    return gradient_norm_penalty(grads, center=0.0, one_sided=False, reduction="mean")


def r2_penalty(fake_logits: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """R2: mean over the batch of ``||d D(fake) / d fake||^2`` (R1 on generated samples).

    Args:
        fake_logits: D(fake), [N] or [N, ...], computed from ``fake``.
        fake: generated samples, [N, ...], with ``requires_grad=True`` (use
            ``fake.detach().requires_grad_(True)``).

    Returns:
        A scalar, without the gamma/2 factor (the caller multiplies; R3GAN uses
        ``(gamma / 2) * (r1_penalty + r2_penalty)``).
    """
    grads = _input_gradient(fake_logits, fake, "fake_logits", "fake", "mean")
    return gradient_norm_penalty(grads, center=0.0, one_sided=False, reduction="mean")


def wgan_gp(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
            center: float = 1.0, one_sided: bool = False, *, reduction: str = "mean",
            generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017) on random points between paired real and fake samples.

    ``x_hat[i] = e[i] * real[i] + (1 - e[i]) * fake[i]`` with one ``e[i] ~ U[0, 1]``
    per sample (``real`` and ``fake`` are detached first), then
    ``gradient_penalty(critic(x_hat), x_hat, center, one_sided, reduction)``.
    ``one_sided=True`` gives the one-sided penalty ``max(0, n - center)^2``
    (PGN, Xia & Yang 2023).

    Args:
        critic: callable mapping [N, ...] to outputs [N, ...].
        real: real samples, [N, ...].
        fake: generated samples, same shape, dtype and device as ``real``.
        center: target norm, >= 0 (default 1).
        one_sided: penalise only norms above ``center``.
        reduction: 'mean' | 'sum' | 'none' (keyword-only).
        generator: optional ``torch.Generator`` for the coefficients ``e``.

    Returns:
        A scalar (or [N] for ``reduction='none'``), without the lambda factor.
    """
    if not callable(critic):
        raise TypeError(f"critic must be callable (an nn.Module or function), got {type(critic).__name__}")
    checks.tensor("real", real, shape_hint="[N, ...]")
    checks.tensor("fake", fake, shape_hint="[N, ...] like real")
    if real.ndim == 0:
        raise ValueError("real must be [N, ...] with a batch dimension, got a 0-d tensor")
    if fake.shape != real.shape:
        raise ValueError(f"fake must have the shape of real (paired samples), got {tuple(fake.shape)} "
                         f"and {tuple(real.shape)}")
    if fake.dtype != real.dtype:
        raise TypeError(f"fake must have the dtype of real, got {fake.dtype} and {real.dtype}")
    checks.same_device(real=real, fake=fake)
    _check_args(center, one_sided, reduction)
    check_reduction(reduction, real.shape[0], "real")
    e = torch.rand((real.shape[0],) + (1,) * (real.ndim - 1), dtype=real.dtype, device=real.device,
                   generator=generator)
    x_hat = torch.lerp(fake.detach(), real.detach(), e).requires_grad_(True)
    return gradient_penalty(critic(x_hat), x_hat, center=center, one_sided=one_sided, reduction=reduction)

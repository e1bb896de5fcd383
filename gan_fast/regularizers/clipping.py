"""WGAN weight clipping (Arjovsky et al., 2017)."""

from __future__ import annotations

import torch
from torch import nn

from .. import checks

__all__ = ["clip_weights_"]


def clip_weights_(module: nn.Module, c: float) -> nn.Module:
    """Clamps every parameter of ``module`` to [-c, c], in place, outside autograd.

    The original WGAN critic's Lipschitz constraint: call it after each critic
    optimiser step (``opt_d.step(); clip_weights_(D, 0.01)``). Every parameter
    counts (weights, biases, normalisation scales, the ``original`` of a
    parametrized weight; shared parameters once); buffers are left alone. The
    clamp runs under ``torch.no_grad()``, so it records nothing in any graph and
    leaves ``.grad`` untouched. NaN entries stay NaN.

    On equalized-learning-rate layers (:class:`gan_fast.nn.FullyConnectedLayer`,
    :class:`gan_fast.nn.Conv2dLayer`) ``c`` bounds the stored weights, not the
    runtime-scaled ones: the forward multiplies them by ``weight_gain`` (e.g.
    ``1/sqrt(fan_in)``), so the effective bound is ``c * weight_gain``.

    Args:
        module: the critic (any ``nn.Module``).
        c: the clipping bound, a finite number > 0 (the WGAN paper uses 0.01).

    Returns:
        ``module``, for chaining.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    c = checks.number("c", c, minimum=0, strict_min=True)
    params = list(module.parameters())
    if params:
        with torch.no_grad():
            # Two foreach launches per (device, dtype) group instead of one clamp per tensor.
            torch._foreach_clamp_min_(params, -c)
            torch._foreach_clamp_max_(params, c)
    return module

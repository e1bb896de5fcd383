"""Small validation helpers shared by the modules' forwards (cheap checks, clear messages)."""

from __future__ import annotations

import torch

from .. import activations


def check_input(name: str, x, ndim: int, channels: int, shape_hint: str, channel_dim: int = 1) -> None:
    """Raises TypeError/ValueError naming ``name`` unless ``x`` is an ``ndim``-D floating
    tensor with ``channels`` entries along ``channel_dim``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape_hint}, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {shape_hint}, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {x.dtype}")
    if x.shape[channel_dim] != channels:
        raise ValueError(f"{name} must have {channels} channels in dim {channel_dim} ({shape_hint}), "
                         f"got shape {tuple(x.shape)}")


def check_activation(name: str, act) -> str:
    """``act`` if it is a ``bias_act`` activation; ValueError naming the constructor argument ``name`` otherwise."""
    if not isinstance(act, str) or act not in activations.ACTIVATIONS:
        raise ValueError(f"{name} must be one of {sorted(activations.ACTIVATIONS)}, got {act!r}")
    return act


def make_filter(name: str, taps) -> torch.Tensor:
    """``ops.setup_filter(taps)`` with its errors naming the constructor argument ``name``."""
    from ..ops.upfirdn2d import setup_filter  # noqa: PLC0415 - ops import nn-free modules only

    try:
        return setup_filter(taps)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None

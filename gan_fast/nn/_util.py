"""Small validation helpers shared by the modules' forwards (cheap checks, clear messages)."""

from __future__ import annotations

import torch


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

"""Argument validation shared by every op: clear errors before any kernel runs."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch

IntOrPair = Union[int, Sequence[int]]


def tensor(name: str, value, *, ndim: Optional[Union[int, Tuple[int, ...]]] = None, shape_hint: str = "",
           floating: bool = True) -> torch.Tensor:
    """Checks that ``value`` is a tensor of the given rank(s) and a floating dtype."""
    hint = f" of shape {shape_hint}" if shape_hint else ""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor{hint}, got {type(value).__name__}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if value.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise ValueError(f"{name} must be {want}{hint}, got shape {tuple(value.shape)}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must have a floating-point dtype, got {value.dtype}")
    return value


def same_device(**tensors: Optional[torch.Tensor]) -> torch.device:
    """Checks that every non-None tensor lives on one device and returns it."""
    device = None
    first = None
    for name, t in tensors.items():
        if t is None:
            continue
        if device is None:
            device, first = t.device, name
        elif t.device != device:
            raise ValueError(f"{name} is on {t.device} but {first} is on {device}; move them to one device")
    return device


def positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def int_pair(name: str, value: IntOrPair, minimum: int = 1) -> Tuple[int, int]:
    """An int or an (x, y) pair of ints, each >= minimum, as (x, y)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or an [x, y] pair, got {value!r}")
        return positive_int(f"{name}[0]", value[0], minimum), positive_int(f"{name}[1]", value[1], minimum)
    v = positive_int(name, value, minimum)
    return v, v


def padding4(name: str, value) -> Tuple[int, int, int, int]:
    """int, [px, py] or [x0, x1, y0, y1] padding as (x0, x1, y0, y1); negative pads crop."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a list of 2 or 4 ints, got bool")
    if isinstance(value, int):
        return value, value, value, value
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        if len(value) == 2:
            px, py = value
            return px, px, py, py
        if len(value) == 4:
            return tuple(value)  # type: ignore[return-value]
    raise ValueError(f"{name} must be an int, [px, py] or [x0, x1, y0, y1] of ints, got {value!r}")


def optional_number(name: str, value, minimum: Optional[float] = None) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or None, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum} or None, got {value}")
    return float(value)

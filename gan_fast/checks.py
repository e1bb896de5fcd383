"""Argument validation shared by every op: clear errors before any kernel runs."""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Tuple, Union

import torch

IntOrPair = Union[int, Sequence[int]]


def tensor(name: str, value, *, ndim: Optional[Union[int, Tuple[int, ...]]] = None, shape_hint: str = "",
           floating: bool = True, complex_ok: bool = False) -> torch.Tensor:
    """Checks that ``value`` is a tensor of the given rank(s) and a floating (or, with ``complex_ok``, complex)
    dtype."""
    if not isinstance(value, torch.Tensor):
        hint = f" of shape {shape_hint}" if shape_hint else ""
        raise TypeError(f"{name} must be a torch.Tensor{hint}, got {type(value).__name__}")
    if ndim is not None and value.ndim != ndim and (type(ndim) is int or value.ndim not in ndim):
        hint = f" of shape {shape_hint}" if shape_hint else ""
        want = " or ".join(f"{d}-D" for d in ((ndim,) if isinstance(ndim, int) else ndim))
        raise ValueError(f"{name} must be {want}{hint}, got shape {tuple(value.shape)}")
    if floating and not value.is_floating_point() and not (complex_ok and value.is_complex()):
        kinds = "a floating-point or complex" if complex_ok else "a floating-point"
        raise TypeError(f"{name} must have {kinds} dtype, got {value.dtype}")
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
    """An int (or a numpy integer; never a bool) >= minimum, as a Python int."""
    if type(value) is not int:  # the common case skips the slower ABC check
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__}")
        value = int(value)
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
    kind = type(value)
    if kind is int:
        return value, value, value, value
    if kind is list or kind is tuple:  # the common cases first: plain ints
        if len(value) == 4:
            x0, x1, y0, y1 = value
            if type(x0) is int and type(x1) is int and type(y0) is int and type(y1) is int:
                return x0, x1, y0, y1
        elif len(value) == 2:
            px, py = value
            if type(px) is int and type(py) is int:
                return px, px, py, py
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a list of 2 or 4 ints, got bool")
    if isinstance(value, numbers.Integral):
        value = int(value)
        return value, value, value, value
    if isinstance(value, (list, tuple)) and all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                                for v in value):
        if len(value) == 2:
            px, py = (int(v) for v in value)
            return px, px, py, py
        if len(value) == 4:
            return tuple(int(v) for v in value)  # type: ignore[return-value]
    raise ValueError(f"{name} must be an int, [px, py] or [x0, x1, y0, y1] of ints, got {value!r}")


def _bounds(minimum, maximum, strict_min, strict_max) -> str:
    parts = []
    if minimum is not None:
        parts.append(f"{'>' if strict_min else '>='} {minimum}")
    if maximum is not None:
        parts.append(f"{'<' if strict_max else '<='} {maximum}")
    return " and ".join(parts)


def number(name: str, value, minimum: Optional[float] = None, maximum: Optional[float] = None, *,
           strict_min: bool = False, strict_max: bool = False) -> float:
    """A finite real number (int, float or numpy scalar; never a bool or a tensor) within the bounds, as a float.

    A non-number raises ``TypeError``; NaN, +-inf and a value outside [minimum, maximum] (open at either
    end with ``strict_min`` / ``strict_max``) raise ``ValueError``; each message names ``name``.
    """
    if torch.compiler.is_compiling():
        return float(value)  # under torch.compile a float input may be symbolic: no host-side test of its value
    kind = type(value)
    if kind is not float and kind is not int:  # the common cases skip the slower ABC check
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            bounds = _bounds(minimum, maximum, strict_min, strict_max)
            raise TypeError(f"{name} must be a number{' ' + bounds if bounds else ''}, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        bounds = _bounds(minimum, maximum, strict_min, strict_max)
        raise ValueError(f"{name} must be finite{' and ' + bounds if bounds else ''}, got {value}")
    if (minimum is not None and (value < minimum or (strict_min and value == minimum))) \
            or (maximum is not None and (value > maximum or (strict_max and value == maximum))):
        raise ValueError(f"{name} must be {_bounds(minimum, maximum, strict_min, strict_max)}, got {value}")
    return value


def optional_number(name: str, value, minimum: Optional[float] = None, maximum: Optional[float] = None, *,
                    strict_min: bool = False, strict_max: bool = False) -> Optional[float]:
    """None, or :func:`number` (finite, within the bounds)."""
    if value is None:
        return None
    if torch.compiler.is_compiling():
        return float(value)  # see number()
    if type(value) is not float and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise TypeError(f"{name} must be a number or None, got {type(value).__name__}")
    return number(name, value, minimum, maximum, strict_min=strict_min, strict_max=strict_max)


def positive_number(name: str, value) -> float:
    """A finite number > 0 (an epsilon, a scale, a learning rate)."""
    return number(name, value, 0, strict_min=True)


def probability(name: str, value) -> float:
    """A finite number in [0, 1]."""
    return number(name, value, 0, 1)


def boolean(name: str, value) -> bool:
    """A bool (or a numpy bool); anything else raises TypeError naming ``name``."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def choice(name: str, value, options: Sequence[str]) -> str:
    """One of ``options`` (strings); ValueError naming ``name`` and listing them otherwise."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {tuple(options)}, got {value!r}")
    return value


# Sizes and factors beyond this cannot index a tensor (PyTorch's sizes are int64).
MAX_SIZE = 2**63 - 1


def fits_int64(name: str, value: int, what: str) -> int:
    """Raises ValueError naming ``name`` when ``value`` (a size computed from it) exceeds int64."""
    if abs(value) > MAX_SIZE:
        raise ValueError(f"{name}: {what} would be {value}, beyond the int64 sizes tensors have")
    return value

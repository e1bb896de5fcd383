"""FIR filters for ``upfirdn2d``: :func:`setup_filter` turns taps into a filter tensor, :func:`identity_filter`
is the 1x1 filter ``f=None`` stands for."""

from __future__ import annotations

import math
import threading
import weakref
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch

from . import checks

__all__ = ["setup_filter", "identity_filter", "plane_weights"]


def setup_filter(f, device=torch.device("cpu"), normalize: bool = True, flip_filter: bool = False,
                 gain: float = 1, separable: Optional[bool] = None) -> torch.Tensor:
    """Turns a list/array/tensor of FIR taps into a filter tensor for ``upfirdn2d``.

    Args:
        f: None (identity, ``[1]``), a scalar, a 1-D list of taps, or a 2-D array.
        normalize: divide by the sum of the taps, so the filter has unit DC gain.
        flip_filter: flip the taps (makes ``upfirdn2d`` a correlation).
        gain: overall gain of the filter.
        separable: keep a 1-D filter separable; default: separable when it has
            at least 8 taps, else expanded to its 2-D outer product. True with a 2-D
            filter raises ValueError.

    Taps that are not finite, or (with ``normalize``) that sum to zero, raise ValueError naming ``f``.

    Returns:
        float32 tensor, [ft] (separable) or [fh, fw].
    """
    if f is None:
        f = 1
    gain = checks.number("gain", gain)
    if separable is not None:
        separable = checks.boolean("separable", separable)
    if isinstance(f, torch.Tensor):
        if not (f.is_floating_point() or f.dtype in _INT_DTYPES):
            raise TypeError(f"f must hold real numbers, got a tensor of {f.dtype}")
        f = f.detach().to(device="cpu", dtype=torch.float32)
    else:
        try:
            f = torch.as_tensor(f, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"f must be None, a number, or a 1-D or 2-D array of numbers, got {f!r} ({exc})") from None
    if f.ndim not in (0, 1, 2):
        raise ValueError(f"f must be a scalar, 1-D or 2-D, got shape {tuple(f.shape)}")
    if f.numel() == 0:
        raise ValueError(f"f must have at least one tap, got shape {tuple(f.shape)}")
    if not bool(torch.isfinite(f).all()):
        raise ValueError(f"f must have finite taps, got {f.tolist()}")
    if f.ndim == 0:
        f = f[None]
    if separable and f.ndim == 2:
        raise ValueError(f"separable=True needs a 1-D filter (its outer product is the 2-D one), got a 2-D f of "
                         f"shape {tuple(f.shape)}")
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = f.outer(f)
    if normalize:
        total = float(f.sum())
        if total == 0 or not math.isfinite(total):
            raise ValueError(f"f: the taps sum to {total}, so normalize=True (divide by the sum) cannot give unit DC "
                             "gain; pass normalize=False for a filter without DC response")
        f = f / total
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 1 and gain < 0:
        raise ValueError(f"gain must be >= 0 for a separable filter (its square root scales each axis), got {gain}")
    f = f * (gain ** (f.ndim / 2))
    if not bool(torch.isfinite(f).all()):
        raise ValueError("f: the taps overflow float32 after normalisation and gain")
    return f.to(device=device)


_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)


_IDENTITY: Dict[Tuple[torch.device, torch.dtype], torch.Tensor] = {}


def identity_filter(x: torch.Tensor) -> torch.Tensor:
    """The 1x1 filter [[1]] on x's device and dtype, made once per (device, dtype): f=None costs no allocation
    and no launch per call (and nothing inside a CUDA-graph capture)."""
    key = (x.device, x.dtype)
    f = _IDENTITY.get(key)
    if f is None:
        with torch.inference_mode(False):  # a normal tensor, even when first made in inference mode
            f = _IDENTITY[key] = torch.ones(1, 1, dtype=x.dtype, device=x.device)
    return f


_PLANES: "OrderedDict[tuple, Tuple[weakref.ref, torch.Tensor, Optional[torch.Tensor]]]" = OrderedDict()
_PLANES_LOCK = threading.Lock()
_PLANES_MAX = 64


def plane_weights(f: torch.Tensor, planes: int, gain: float, flip_filter: bool,
                  dtype: torch.dtype) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The grouped ``conv2d`` weights that apply FIR ``f`` to each of ``planes`` planes: ([planes, 1, fh, fw],
    None) for a 2-D filter, ([planes, 1, 1, ft], [planes, 1, ft, 1]) for a separable one (the whole gain on the
    first pass); flipped unless ``flip_filter`` (``conv2d`` correlates), in ``dtype``.

    On a small layer building them costs more than the convolution, so for a constant filter (one that nothing
    differentiates) they are kept per filter tensor and its version (an in-place change, e.g. a
    ``load_state_dict`` into the buffer, makes new ones), outside ``torch.compile`` traces. An inference tensor
    (made under ``torch.inference_mode``) has no version, so its weights are not kept; nor are weights built in
    inference mode, which autograd could not save for a later training step.
    """
    learned = f.requires_grad and torch.is_grad_enabled()
    key = None
    # is_compiling() first: Dynamo cannot trace is_inference() (a fundamental graph break).
    if not learned and not torch.compiler.is_compiling() and not f.is_inference():
        key = (id(f), f._version, f.device, planes, float(gain), bool(flip_filter), dtype)
        hit = _PLANES.get(key)
        if hit is not None and hit[0]() is f:
            return hit[1], hit[2]
    g = f if f.dtype == dtype else f.to(dtype)
    if not flip_filter:
        g = g.flip(list(range(g.ndim)))
    gg = g * gain if gain != 1 else g
    if g.ndim == 2:
        weights = (gg.view(1, 1, *g.shape).expand(planes, 1, *g.shape).contiguous(), None)
    else:
        t = g.shape[0]
        weights = (gg.view(1, 1, 1, t).expand(planes, 1, 1, t).contiguous(),
                   g.view(1, 1, t, 1).expand(planes, 1, t, 1).contiguous())
    if key is not None and not torch.is_inference_mode_enabled():
        with _PLANES_LOCK:
            _PLANES[key] = (weakref.ref(f), *weights)
            while len(_PLANES) > _PLANES_MAX:
                _PLANES.popitem(last=False)
    return weights

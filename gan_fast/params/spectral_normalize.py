"""The parameter records of ``spectral_normalize`` and of its batched form ``spectral_normalize_many``, their
validation, and the matrix view's size (``matrix_shape``)."""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple, Sequence, Tuple

import torch

from .. import checks

__all__ = ["SpectralNormalizeParams", "SpectralNormalizeManyParams", "validate", "validate_many", "matrix_shape"]


class SpectralNormalizeParams(NamedTuple):
    """``weight / sigma``, sigma estimated by ``n_iterations`` power-iteration steps on the matrix
    [weight.shape[dim], rest] (a 1-D weight is L2-normalised instead, as PyTorch does).

    Attributes:
        dim: the output dimension, in [0, weight.ndim).
        n_iterations: >= 0; eps: a finite number > 0.
    """

    dim: int
    n_iterations: int
    eps: float


class SpectralNormalizeManyParams(NamedTuple):
    """``spectral_normalize`` of several weights at once (one device, one dtype).

    Attributes:
        dims: each weight's output dimension, in [0, ndim).
        n_iterations, eps: as :class:`SpectralNormalizeParams`, the same for every weight.
        update: write the new u and v into the caller's ``us`` / ``vs`` in place (a training-mode forward).
    """

    dims: Tuple[int, ...]
    n_iterations: int
    eps: float
    update: bool


def matrix_shape(shape: Sequence[int], dim: int) -> Tuple[int, int]:
    """(h, w) of the matrix a weight of ``shape`` is viewed as along ``dim``: [shape[dim], product of the rest]
    (not numel // h: h may be 0)."""
    shape = tuple(shape)
    return shape[dim], math.prod(shape[:dim] + shape[dim + 1:])


def _iterations(n_iterations, eps):
    """(n_iterations >= 0, eps finite > 0), each checked and named (as ``params.power_iteration``)."""
    return checks.positive_int("n_iterations", n_iterations, minimum=0), checks.positive_number("eps", eps)


def _dim(name: str, dim, ndim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or not -ndim <= dim < ndim:
        raise ValueError(f"{name} must be an int in [{-ndim}, {ndim - 1}], got {dim!r}")
    return int(dim) % ndim


def validate(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor, dim, n_iterations, eps) -> SpectralNormalizeParams:
    """Checks a ``spectral_normalize`` call: weight floating or complex with >= 1 dims, u [h], v [w] on its device
    (u and v are not used for a 1-D weight: any 1-D tensors)."""
    checks.tensor("weight", weight, complex_ok=True)
    if weight.ndim == 0:
        raise ValueError("weight must have at least one dimension, got a 0-d tensor")
    dim = _dim("dim", dim, weight.ndim)
    h, w = matrix_shape(weight.shape, dim)
    checks.tensor("u", u, ndim=1, shape_hint=f"[{h}]", complex_ok=True)
    checks.tensor("v", v, ndim=1, shape_hint=f"[{w}]", complex_ok=True)
    if weight.ndim > 1 and (u.shape[0] != h or v.shape[0] != w):
        raise ValueError(f"u and v must have shapes [{h}] and [{w}] for weight {tuple(weight.shape)} and dim {dim}, "
                         f"got {tuple(u.shape)} and {tuple(v.shape)}")
    checks.same_device(weight=weight, u=u, v=v)
    return SpectralNormalizeParams(dim, *_iterations(n_iterations, eps))


def _sequence(name: str, value) -> Sequence:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple, got {type(value).__name__}")
    return value


def validate_many(weights, us, vs, dims, n_iterations, eps, update) -> SpectralNormalizeManyParams:
    """Checks a ``spectral_normalize_many`` call: lists of weights (real floating, >= 2 dims, no empty dimension,
    one device and dtype: what the batched kernels take), their u [h] and v [w] vectors (real floating, on the
    weights' device, any such dtype) and dims."""
    weights, us, vs, dims = _sequence("weights", weights), _sequence("us", us), _sequence("vs", vs), \
        _sequence("dims", dims)
    if not len(weights) == len(us) == len(vs) == len(dims):
        raise ValueError(f"weights, us, vs and dims must have one entry per weight, got lengths {len(weights)}, "
                         f"{len(us)}, {len(vs)} and {len(dims)}")
    out_dims = []
    first = weights[0] if weights else None
    for i, (w, u, v, d) in enumerate(zip(weights, us, vs, dims)):
        if not isinstance(w, torch.Tensor):
            raise TypeError(f"weights[{i}] must be a torch.Tensor, got {type(w).__name__}")
        if w.ndim < 2 or w.numel() == 0 or not w.is_floating_point():
            raise ValueError(f"weights[{i}] must be a real floating tensor of >= 2 dims with no empty dimension, "
                             f"got {w.dtype} {tuple(w.shape)} (ops.spectral_normalize takes the others)")
        if w.device != first.device or w.dtype != first.dtype:
            raise ValueError(f"weights[{i}] is {w.dtype} on {w.device} but weights[0] is {first.dtype} on "
                             f"{first.device}: one call takes one device and dtype (group the weights by them)")
        d = _dim(f"dims[{i}]", d, w.ndim)
        h, n = matrix_shape(w.shape, d)
        checks.tensor(f"us[{i}]", u, ndim=1, shape_hint=f"[{h}]")
        checks.tensor(f"vs[{i}]", v, ndim=1, shape_hint=f"[{n}]")
        if u.shape[0] != h or v.shape[0] != n:
            raise ValueError(f"us[{i}] and vs[{i}] must have shapes [{h}] and [{n}] for weights[{i}] "
                             f"{tuple(w.shape)} and dim {d}, got {tuple(u.shape)} and {tuple(v.shape)}")
        checks.same_device(**{f"weights[{i}]": w, f"us[{i}]": u, f"vs[{i}]": v})
        out_dims.append(d)
    n_iterations, eps = _iterations(n_iterations, eps)
    return SpectralNormalizeManyParams(tuple(out_dims), n_iterations, eps, checks.boolean("update", update))

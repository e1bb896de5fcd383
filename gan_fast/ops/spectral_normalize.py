"""Public ``spectral_normalize``: power iteration and the division W / sigma as one op."""

from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch

from .. import backend, checks, self_test
from ..reference import spectral_normalize as reference
from ._dispatch import cast_to, exact_impl

FAST_BACKENDS: Dict[str, Sequence[str]] = {"cuda": ("triton",)}


def spectral_normalize(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor, dim: int = 0,
                       n_iterations: int = 1, eps: float = 1e-12,
                       impl: Optional[str] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Divides ``weight`` by its largest singular value, estimated by power iteration.

    The weight is viewed as a matrix [weight.shape[dim], rest]; ``u``/``v`` are
    updated ``n_iterations`` times exactly as ``power_iteration`` does, then
    ``weight / sigma`` is returned. A 1-D weight is L2-normalised instead, as
    PyTorch does. This is what ``gan_fast.nn.spectral_norm`` runs every forward.

    Args:
        weight: [d0, ...] with at least one dimension; floating or complex (complex runs ``ref``).
        u: [weight.shape[dim]]; v: [product of the other dims] (unused for 1-D weights); both
            cast to weight's dtype. An empty weight (some dim 0) is valid: sigma is 0.
        dim: the output dimension (0 for Linear/Conv, 1 for ConvTranspose).
        n_iterations: >= 0; eps: > 0.

    Returns:
        (weight / sigma of weight's shape, differentiable w.r.t. weight; u; v).
    """
    checks.tensor("weight", weight, complex_ok=True)
    if weight.ndim == 0:
        raise ValueError("weight must have at least one dimension, got a 0-d tensor")
    if isinstance(dim, bool) or not isinstance(dim, int) or not -weight.ndim <= dim < weight.ndim:
        raise ValueError(f"dim must be an int in [{-weight.ndim}, {weight.ndim - 1}], got {dim!r}")
    dim = dim % weight.ndim
    h = weight.shape[dim]
    w = math.prod(weight.shape[:dim] + weight.shape[dim + 1:])  # not numel // h: h may be 0
    checks.tensor("u", u, ndim=1, shape_hint=f"[{h}]", complex_ok=True)
    checks.tensor("v", v, ndim=1, shape_hint=f"[{w}]", complex_ok=True)
    if weight.ndim > 1 and (u.shape[0] != h or v.shape[0] != w):
        raise ValueError(f"u and v must have shapes [{h}] and [{w}] for weight {tuple(weight.shape)} and dim {dim}, "
                         f"got {tuple(u.shape)} and {tuple(v.shape)}")
    checks.same_device(weight=weight, u=u, v=v)
    n_iterations = checks.positive_int("n_iterations", n_iterations, minimum=0)
    eps = checks.positive_number("eps", eps)
    u, v = cast_to(weight, u, v)  # the mixed-dtype rule
    chosen = exact_impl("spectral_normalize", impl,
                        backend.resolve("spectral_normalize", impl, weight.device, FAST_BACKENDS, weight.dtype),
                        weight.dtype, real_only=("triton",), name="weight")
    if chosen == "ref" or weight.ndim == 1 or weight.numel() == 0:  # an empty weight never reaches a kernel
        return reference.spectral_normalize(weight, u, v, dim, n_iterations, eps)
    from ..fused import spectral_normalize as fused  # noqa: PLC0415

    return fused.spectral_normalize(weight, u, v, dim, n_iterations, eps, chosen)


def _self_test_cases():
    """A conv weight over several tiles (on CUDA [37, 3, 10, 10]: a 37 x 300 matrix over 16 x 256 tiles; under the
    interpreter's 4 x 32 tiles, [37, 3, 6, 6]), dim 1 (transposed conv), and on CUDA a layer past the fused size
    (130 x 520 > 64K entries: the separate W / sigma launches)."""
    from .power_iteration import _unit  # noqa: PLC0415

    def case(device, gen):
        k = 10 if device.type == "cuda" else 6
        w = torch.randn(37, 3, k, k, generator=gen, device=device).requires_grad_()
        u, v = _unit(37, gen, device), _unit(3 * k * k, gen, device)
        u1, v1 = _unit(3, gen, device), _unit(37 * k * k, gen, device)
        big = [torch.randn(130, 520, generator=gen, device=device).requires_grad_(), _unit(130, gen, device),
               _unit(520, gen, device)] if device.type == "cuda" else []

        def run(impl, t):
            w, u, v, u1, v1 = t[:5]
            out = spectral_normalize(w, u, v, 0, 1, impl=impl) + spectral_normalize(w, u1, v1, 1, 2, impl=impl)
            if big:
                out += spectral_normalize(*t[5:], 0, 1, impl=impl)
            return out
        return run, [w, u, v, u1, v1] + big
    return [case]


self_test.register("spectral_normalize", _self_test_cases(), FAST_BACKENDS)

"""Public spectral-norm ``power_iteration``: validation, backend choice, dispatch."""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch

from .. import backend, checks, self_test
from ..reference import power_iteration as reference
from ._dispatch import cast_to, exact_impl

FAST_BACKENDS: Dict[str, Sequence[str]] = {"cuda": ("triton",)}


def power_iteration(weight_mat: torch.Tensor, u: torch.Tensor, v: torch.Tensor, n_iterations: int = 1,
                    eps: float = 1e-12, impl: Optional[str] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Power iteration for the largest singular value, as spectral normalisation uses it.

    Runs ``n_iterations`` of ``u <- normalize(W v, eps)``, ``v <- normalize(W^H u, eps)``
    (the order and eps of ``torch.nn.utils.parametrizations.spectral_norm``), then
    ``sigma = u^H W v``.

    Args:
        weight_mat: [h, w], the weight reshaped to a matrix; floating or complex (complex
            runs ``ref``; ``impl='triton'`` refuses it).
        u: [h], the current left singular vector estimate (cast to weight_mat's dtype).
        v: [w], the current right singular vector estimate (cast to weight_mat's dtype).
        n_iterations: >= 0 (0 only evaluates sigma, as in eval mode).
        eps: a finite number > 0, the normalisation epsilon.

    An empty matrix (h = 0 or w = 0) is valid: sigma is 0 and the vectors are normalised zeros.

    Returns:
        (sigma, u, v): sigma a 0-D tensor differentiable w.r.t. ``weight_mat``
        (u and v held constant); u [h] and v [w] new, detached tensors.
    """
    checks.tensor("weight_mat", weight_mat, ndim=2, shape_hint="[h, w]", complex_ok=True)
    h, w = weight_mat.shape
    checks.tensor("u", u, ndim=1, shape_hint=f"[{h}] (weight_mat.shape[0])", complex_ok=True)
    checks.tensor("v", v, ndim=1, shape_hint=f"[{w}] (weight_mat.shape[1])", complex_ok=True)
    if u.shape[0] != h:
        raise ValueError(f"u must have shape [{h}] (weight_mat.shape[0]), got {tuple(u.shape)}")
    if v.shape[0] != w:
        raise ValueError(f"v must have shape [{w}] (weight_mat.shape[1]), got {tuple(v.shape)}")
    checks.same_device(weight_mat=weight_mat, u=u, v=v)
    n_iterations = checks.positive_int("n_iterations", n_iterations, minimum=0)
    eps = checks.positive_number("eps", eps)
    u, v = cast_to(weight_mat, u, v)  # the mixed-dtype rule

    chosen = exact_impl("power_iteration", impl,
                        backend.resolve("power_iteration", impl, weight_mat.device, FAST_BACKENDS, weight_mat.dtype),
                        weight_mat.dtype, real_only=("triton",), name="weight_mat")
    if chosen == "ref" or weight_mat.numel() == 0:  # an empty matrix never reaches a kernel
        return reference.power_iteration(weight_mat, u, v, n_iterations, eps)
    from ..fused import power_iteration as fused  # noqa: PLC0415

    return fused.power_iteration(weight_mat, u, v, n_iterations, eps, chosen)


def _unit(n, gen, device):
    return torch.nn.functional.normalize(torch.randn(n, generator=gen, device=device), dim=0)


def _self_test_cases():
    """A matrix over several tiles (on CUDA 37 x 300: 16 x 256 tiles; 37 x 100 under the interpreter's 4 x 32),
    0, 1 and 3 iterations, and a transposed (non-contiguous) view."""
    def case(device, gen):
        cols = 300 if device.type == "cuda" else 100
        w = torch.randn(37, cols, generator=gen, device=device).requires_grad_()
        u, v, ut = _unit(37, gen, device), _unit(cols, gen, device), _unit(cols, gen, device)

        def run(impl, t):
            w, u, v, ut = t
            return (power_iteration(w, u, v, 1, impl=impl) + power_iteration(w, u, v, 0, impl=impl)
                    + power_iteration(w.t(), ut, u, 3, impl=impl))
        return run, [w, u, v, ut]
    return [case]


self_test.register("power_iteration", _self_test_cases(), FAST_BACKENDS)

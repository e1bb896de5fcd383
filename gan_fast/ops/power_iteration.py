"""Public spectral-norm ``power_iteration``: validate, choose a backend, run it."""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from .. import backend
from ..backends import power_iteration as backends
from ..params import cast_to
from ..params import power_iteration as params

_COMPLEX = ("complex",)


def power_iteration(weight_mat: torch.Tensor, u: torch.Tensor, v: torch.Tensor, n_iterations: int = 1,
                    eps: float = 1e-12, impl: Optional[str] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Power iteration for the largest singular value, as spectral normalisation uses it.

    Runs ``n_iterations`` of ``u <- normalize(W v, eps)``, ``v <- normalize(W^H u, eps)``
    (the order and eps of ``torch.nn.utils.parametrizations.spectral_norm``), then
    ``sigma = u^H W v``.

    Args:
        weight_mat: [h, w], the weight reshaped to a matrix; floating or complex.
        u: [h], the current left singular vector estimate (cast to weight_mat's dtype).
        v: [w], the current right singular vector estimate (cast to weight_mat's dtype).
        n_iterations: >= 0 (0 only evaluates sigma, as in eval mode).
        eps: a finite number > 0, the normalisation epsilon.
        impl: None (automatic), 'ref' or 'triton'. The Triton kernels are real: a complex weight_mat runs
            ``ref`` when automatic, and ``impl='triton'`` refuses it (``UnsupportedDtypeError``, a ``TypeError``).

    An empty matrix (h = 0 or w = 0) is valid: sigma is 0 and the vectors are normalised zeros (the reference's
    result, whatever ``impl``).

    Returns:
        (sigma, u, v): sigma a 0-D tensor differentiable w.r.t. ``weight_mat``
        (u and v held constant); u [h] and v [w] new, detached tensors.
    """
    p = params.validate(weight_mat, u, v, n_iterations, eps)
    u, v = cast_to(weight_mat, u, v)  # the mixed-dtype rule
    chosen = backend.choose(backends.SPEC, impl, weight_mat.device, weight_mat.dtype,
                            needs=_COMPLEX if weight_mat.is_complex() else ())
    if weight_mat.numel() == 0:
        chosen = "ref"  # an empty matrix never reaches a kernel
    return backends.run(chosen, p, weight_mat, u, v)

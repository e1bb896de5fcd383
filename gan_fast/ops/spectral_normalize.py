"""Public ``spectral_normalize`` (power iteration and the division W / sigma as one op) and its batched form
``spectral_normalize_many``: validate, choose a backend, run it."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch

from .. import backend
from ..backends import spectral_norm_multi as many_backends
from ..backends import spectral_normalize as backends
from ..params import cast_to
from ..params import spectral_normalize as params

__all__ = ["spectral_normalize", "spectral_normalize_many", "spectral_normalize_many_backend"]

_COMPLEX = ("complex",)


def spectral_normalize(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor, dim: int = 0,
                       n_iterations: int = 1, eps: float = 1e-12,
                       impl: Optional[str] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Divides ``weight`` by its largest singular value, estimated by power iteration.

    The weight is viewed as a matrix [weight.shape[dim], rest]; ``u``/``v`` are
    updated ``n_iterations`` times exactly as ``power_iteration`` does, then
    ``weight / sigma`` is returned. A 1-D weight is L2-normalised instead, as
    PyTorch does. This is what ``gan_fast.nn.spectral_norm`` runs every forward.

    Args:
        weight: [d0, ...] with at least one dimension; floating or complex.
        u: [weight.shape[dim]]; v: [product of the other dims] (unused for 1-D weights); both
            cast to weight's dtype. An empty weight (some dim 0) is valid: sigma is 0.
        dim: the output dimension (0 for Linear/Conv, 1 for ConvTranspose).
        n_iterations: >= 0; eps: > 0.
        impl: None (automatic), 'ref' or 'triton'. The Triton kernels are real: a complex weight runs ``ref``
            when automatic, and ``impl='triton'`` refuses it (``UnsupportedDtypeError``, a ``TypeError``). A 1-D
            weight (no power iteration) and an empty one get the reference's result whatever ``impl``.

    Returns:
        (weight / sigma of weight's shape, differentiable w.r.t. weight; u; v).
    """
    p = params.validate(weight, u, v, dim, n_iterations, eps)
    u, v = cast_to(weight, u, v)  # the mixed-dtype rule
    chosen = backend.choose(backends.SPEC, impl, weight.device, weight.dtype,
                            needs=_COMPLEX if weight.is_complex() else ())
    if weight.ndim == 1 or weight.numel() == 0:
        chosen = "ref"  # a plain L2 normalisation, or an empty weight: never a kernel
    return backends.run(chosen, p, weight, u, v)


def spectral_normalize_many(weights: Sequence[torch.Tensor], us: Sequence[torch.Tensor], vs: Sequence[torch.Tensor],
                            dims: Sequence[int], n_iterations: int = 1, eps: float = 1e-12, update: bool = True,
                            impl: Optional[str] = None) -> List[torch.Tensor]:
    """``spectral_normalize`` of several weights in one call: [W_l / sigma_l] for every weight, differentiable
    w.r.t. the weights (to any order). On the ``triton`` backend all of them run in one launch per power
    iteration (plus one for the division of weights too large to fuse), and their backward in one or two: what
    ``gan_fast.nn.spectral_norm_step`` runs for a whole discriminator.

    Args:
        weights: real floating tensors of >= 2 dims with no empty dimension, on one device, of one dtype (what
            the batched kernels take; anything else is a ``ValueError`` naming the weight, on every backend:
            ``spectral_normalize`` takes those one by one).
        us, vs: each weight's u [shape[dim]] and v [product of the other dims] (real floating, any dtype; read as
            the weight's).
        dims: each weight's output dimension (the matrix is [shape[dim], rest]).
        n_iterations: power iterations (>= 0), the same for all; eps: the normalisation epsilon (> 0).
        update: write the new u and v into ``us`` / ``vs`` in place (what a training-mode forward does).
        impl: None (automatic: ``triton`` on CUDA once its self-test passed, else ``ref``), 'ref' or 'triton'.
            A backend forced for ``spectral_normalize`` (``gan_fast.config.use_backend``) applies here too.

    Per weight, the result and the u/v update are those of :func:`spectral_normalize`.
    """
    p = params.validate_many(weights, us, vs, dims, n_iterations, eps, update)
    if not weights:
        backend.normalize_impl(impl)  # a bad name fails whatever the list holds
        return []
    w0 = weights[0]
    return many_backends.run(backend.choose(many_backends.SPEC, impl, w0.device, w0.dtype), p, weights, us, vs)


def spectral_normalize_many_backend(device: torch.device, dtype: torch.dtype, impl: Optional[str] = None) -> str:
    """The backend :func:`spectral_normalize_many` runs for weights on ``device`` of ``dtype`` ('ref' or
    'triton'), raising as the op would for an explicit ``impl`` that cannot run there. ``gan_fast.nn``'s
    :func:`~gan_fast.nn.spectral_norm_step` serves the layers of a model from the batched op only where this is
    a fast backend (elsewhere each layer computes itself)."""
    return backend.choose(many_backends.SPEC, impl, torch.device(device), dtype)

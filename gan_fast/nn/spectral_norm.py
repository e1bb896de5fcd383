"""Spectral normalisation as a parametrization: a drop-in for
``torch.nn.utils.parametrizations.spectral_norm`` whose forward is one
:func:`gan_fast.ops.spectral_normalize` call (power iteration + W / sigma), so the
fused kernels speed up every model that uses it.

Compatibility with PyTorch's version (tested): the same parametrization
structure and state_dict keys (``parametrizations.weight.original``,
``parametrizations.weight.0._u``, ``parametrizations.weight.0._v``), the same
random initialisation of u and v followed by 15 power iterations, the same update
rule and sigma, no iteration in eval mode, ``dim=1`` by default for transposed
convolutions, and exact L2 normalisation (no buffers) for 1-D weights. A
checkpoint saved with either loads into the other with identical outputs and
gradients. Remove it with ``torch.nn.utils.parametrize.remove_parametrizations``.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterable, Iterator, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .. import backend, checks, ops
from ..reference.spectral_normalize import weight_to_matrix

__all__ = ["SpectralNorm", "spectral_norm", "apply_spectral_norm", "spectral_norm_step", "DEFAULT_SN_TYPES"]

_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
DEFAULT_SN_TYPES: Tuple[Type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d) + _TRANSPOSED


class SpectralNorm(nn.Module):
    """The parametrization ``weight -> weight / sigma(weight)``.

    Attributes (the state a fused multi-tensor implementation needs):
        dim: the output dimension the weight is viewed along ([shape[dim], rest]).
        eps: the normalisation epsilon.
        n_power_iterations: iterations per training forward (0 in eval mode).
        precomputed: None, or W / sigma already computed for this step (forward returns it).
        _u: [shape[dim]] and _v: [numel / shape[dim]] buffers (absent for 1-D weights),
            updated in place by each training forward.

    Shapes:
        ``forward(weight)`` -> a tensor of weight's shape, differentiable w.r.t. weight.
    """

    def __init__(self, weight: torch.Tensor, n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12):
        super().__init__()
        ndim = weight.ndim
        if isinstance(dim, bool) or not isinstance(dim, int) or not -ndim <= dim < ndim:
            raise IndexError(f"dim must be in [{-ndim}, {ndim - 1}] for a weight of shape {tuple(weight.shape)}, "
                             f"got {dim!r}")
        if isinstance(n_power_iterations, bool) or not isinstance(n_power_iterations, int) \
                or n_power_iterations <= 0:
            raise ValueError(f"n_power_iterations must be a positive int, got {n_power_iterations!r}")
        eps = checks.optional_number("eps", eps)
        if eps is None or eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.dim = dim % ndim
        self.eps = eps
        self.n_power_iterations = n_power_iterations
        # When set (by :func:`spectral_norm_step`), forward returns it instead of computing.
        self.precomputed: Optional[torch.Tensor] = None
        if ndim > 1:
            weight_mat = weight_to_matrix(weight.detach(), self.dim)
            h, w = weight_mat.shape
            # Same RNG draws, in the same order, as PyTorch: u then v, then 15 iterations.
            u = F.normalize(weight_mat.new_empty(h).normal_(0, 1), dim=0, eps=eps)
            v = F.normalize(weight_mat.new_empty(w).normal_(0, 1), dim=0, eps=eps)
            _, u, v = ops.power_iteration(weight_mat, u, v, 15, eps)
            self.register_buffer("_u", u)
            self.register_buffer("_v", v)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.precomputed is not None:  # set by spectral_norm_step's batched launch
            return self.precomputed
        if weight.ndim == 1:
            empty = weight.new_empty(0)
            return ops.spectral_normalize(weight, empty, empty, 0, 0, self.eps)[0]
        n = self.n_power_iterations if self.training else 0
        weight_sn, u, v = ops.spectral_normalize(weight, self._u, self._v, self.dim, n, self.eps)
        if n > 0:
            # In place, so that DataParallel replicas and DDP buffer broadcasts see the update.
            with torch.no_grad():
                self._u.copy_(u)
                self._v.copy_(v)
        return weight_sn

    def right_inverse(self, value: torch.Tensor) -> torch.Tensor:
        return value

    def extra_repr(self) -> str:
        return f"dim={self.dim}, n_power_iterations={self.n_power_iterations}, eps={self.eps}"


def spectral_norm(module: nn.Module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: Optional[int] = None) -> nn.Module:
    """Registers :class:`SpectralNorm` on ``module.<name>`` (drop-in for PyTorch's ``spectral_norm``).

    Args:
        module: the layer (Linear, Conv*, ConvTranspose*, Embedding, or any module with
            a tensor attribute ``name``).
        name: the weight attribute.
        n_power_iterations: power iterations per training forward (>= 1).
        eps: normalisation epsilon.
        dim: the output dimension; default 1 for ConvTranspose{1,2,3}d, else 0.

    Returns:
        ``module``, with ``module.parametrizations.<name>[0]`` the SpectralNorm instance.
    """
    weight = getattr(module, name, None)
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if dim is None:
        dim = 1 if isinstance(module, _TRANSPOSED) else 0
    parametrize.register_parametrization(module, name, SpectralNorm(weight, n_power_iterations, dim, eps))
    return module


def apply_spectral_norm(model: nn.Module, types: Iterable[Type[nn.Module]] = DEFAULT_SN_TYPES,
                        name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                        predicate: Optional[Callable[[str, nn.Module], bool]] = None) -> nn.Module:
    """Applies :func:`spectral_norm` to every submodule of ``model`` (itself included) that
    is an instance of ``types`` (default: Linear, Conv1/2/3d, ConvTranspose1/2/3d), has a
    tensor ``name`` and is not already parametrized on it. ``predicate(qualified_name,
    module)`` can exclude modules. Returns ``model``.
    """
    types = tuple(types)
    targets = []
    for qual, mod in model.named_modules():
        if not isinstance(mod, types) or not isinstance(getattr(mod, name, None), torch.Tensor):
            continue
        if parametrize.is_parametrized(mod, name):
            continue
        if predicate is not None and not predicate(qual, mod):
            continue
        targets.append(mod)
    for mod in targets:
        spectral_norm(mod, name=name, n_power_iterations=n_power_iterations, eps=eps)
    return model


@contextlib.contextmanager
def spectral_norm_step(model: nn.Module, impl: Optional[str] = None) -> Iterator[None]:
    """Computes every spectral-normed weight of ``model`` in one fused launch per step.

    ``with spectral_norm_step(D): logits = D(x)`` — inside the block each
    :class:`SpectralNorm` parametrization returns the weight computed by the
    batched launch (one launch per power iteration for all layers, e.g. the ~30
    of a BigGAN D), with the same u/v updates and results as the per-layer path.
    Where no fused backend can run (CPU tensors, no triton), the block changes
    nothing and each layer computes itself.
    """
    if backend.normalize_impl(impl) == "ref" or not backend.triton_status()[0]:
        yield
        return
    from ..fused.spectral_norm_multi import spectral_norm_step as fused_step  # noqa: PLC0415 - needs triton

    with fused_step(model, impl):
        yield

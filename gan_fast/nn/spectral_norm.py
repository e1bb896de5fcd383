"""Spectral normalisation as a parametrization: a drop-in for
``torch.nn.utils.parametrizations.spectral_norm`` whose forward is one
:func:`gan_fast.ops.spectral_normalize` call (power iteration + W / sigma), so the
fused kernels speed up every model that uses it.

Compatibility with PyTorch's version (tested): the same parametrization
structure and state_dict keys (``parametrizations.weight.original``,
``parametrizations.weight.0._u``, ``parametrizations.weight.0._v``), the same
random initialisation of u and v followed by 15 power iterations, the same update
rule and sigma, no iteration in eval mode, ``dim=1`` by default for transposed
convolutions, exact L2 normalisation (no buffers) for 1-D weights, complex
weights and weights with an empty dimension. A checkpoint saved with either loads
into the other with identical outputs and gradients. Remove it with
``torch.nn.utils.parametrize.remove_parametrizations``.

:func:`spectral_norm_step` serves every layer of a model from one batched launch
per power iteration (:func:`gan_fast.ops.spectral_normalize_many` computes it from the
tensors; which layers it serves, and how they pick the result up, is decided here).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from .. import checks, ops
from ..config import normalize_impl
from ..ops.spectral_normalize import spectral_normalize_many, spectral_normalize_many_backend
from ..reference.spectral_normalize import weight_to_matrix

__all__ = ["SpectralNorm", "spectral_norm", "apply_spectral_norm", "spectral_norm_step", "DEFAULT_SN_TYPES",
           "find_spectral_norm_layers", "spectral_normalize_all"]


class _DimError(IndexError, ValueError):
    """A ``dim`` out of range: an IndexError as PyTorch's spectral_norm raises, and a ValueError as gan_fast's
    argument errors are."""

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
        checks.tensor("weight", weight, shape_hint="[d0, ...] (at least one dimension)", complex_ok=True)
        ndim = weight.ndim
        if ndim == 0:
            raise ValueError("weight must have at least one dimension to be spectrally normalised, got a 0-d tensor")
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim must be an int, got {type(dim).__name__}")
        if not -ndim <= dim < ndim:
            raise _DimError(f"dim must be in [{-ndim}, {ndim - 1}] for a weight of shape {tuple(weight.shape)}, "
                            f"got {dim!r}")
        n_power_iterations = checks.positive_int("n_power_iterations", n_power_iterations)
        eps = checks.positive_number("eps", eps)
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
        eps: normalisation epsilon (a finite number > 0).
        dim: the output dimension; default 1 for ConvTranspose{1,2,3}d, else 0.

    The weight may be real or complex (as PyTorch's; complex weights run the reference
    implementation) and may have empty dimensions (sigma is then 0, as PyTorch computes it).

    Returns:
        ``module``, with ``module.parametrizations.<name>[0]`` the SpectralNorm instance.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a str (the weight attribute), got {type(name).__name__}")
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
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    types = _module_types(types)
    if predicate is not None and not callable(predicate):
        raise TypeError(f"predicate must be None or a callable (qualified_name, module) -> bool, "
                        f"got {type(predicate).__name__}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a str (the weight attribute), got {type(name).__name__}")
    checks.positive_int("n_power_iterations", n_power_iterations)  # before any module is changed
    checks.positive_number("eps", eps)
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


def _module_types(types) -> Tuple[Type[nn.Module], ...]:
    """``types`` (an nn.Module subclass or an iterable of them) as a tuple; TypeError naming types otherwise."""
    if isinstance(types, type):
        types = (types,)
    elif isinstance(types, str) or not isinstance(types, Iterable):
        raise TypeError(f"types must be an nn.Module subclass or an iterable of them, got {types!r}")
    types = tuple(types)
    for t in types:
        if not (isinstance(t, type) and issubclass(t, nn.Module)):
            raise TypeError(f"types must hold nn.Module subclasses (e.g. nn.Linear, nn.Conv2d), got {t!r}")
    return types


def find_spectral_norm_layers(model: nn.Module) -> List[Tuple[nn.Module, str, SpectralNorm]]:
    """(module, tensor name, SpectralNorm) for every gan_fast spectral-norm parametrization in ``model`` that the
    batched path can serve: the only parametrization on that tensor, with a real weight of >= 2 dims and no
    empty dimension (the others compute themselves, through ``ops.spectral_normalize``)."""
    found = []
    for mod in model.modules():
        plist = getattr(mod, "parametrizations", None)
        if plist is None or not parametrize.is_parametrized(mod):
            continue
        for name, chain in plist.items():
            w = chain.original
            if len(chain) == 1 and isinstance(chain[0], SpectralNorm) and w.ndim >= 2 and w.numel() > 0 \
                    and w.is_floating_point():
                found.append((mod, name, chain[0]))
    return found


def spectral_normalize_all(model: nn.Module, impl: Optional[str] = None) -> List[Tuple[SpectralNorm, torch.Tensor]]:
    """Runs every gan_fast spectral-norm parametrization of ``model`` that a fast backend can serve, in batched
    launches (one :func:`gan_fast.ops.spectral_normalize_many` call per device, dtype, iteration count and eps).

    Returns [(SpectralNorm instance, W / sigma)] for the layers served; u/v buffers of layers in training
    mode are updated in place, exactly as their own forward would. Layers where the batched op would run
    ``ref`` (CPU tensors, no triton, a self-test that failed) are left out: they compute themselves. An explicit
    ``impl`` that cannot run a group raises as the op does.
    """
    groups: Dict[tuple, list] = {}
    for mod, name, sn in find_spectral_norm_layers(model):
        w = mod.parametrizations[name].original
        n = sn.n_power_iterations if sn.training else 0
        groups.setdefault((w.device, w.dtype, n, float(sn.eps)), []).append((sn, w))
    result: List[Tuple[SpectralNorm, torch.Tensor]] = []
    for (device, dtype, n, eps), items in groups.items():
        chosen = spectral_normalize_many_backend(device, dtype, impl)
        if chosen == "ref":
            continue
        ys = spectral_normalize_many([w for _, w in items], [sn._u for sn, _ in items], [sn._v for sn, _ in items],
                                     [sn.dim for sn, _ in items], n, eps, update=n > 0, impl=chosen)
        result.extend((sn, y) for (sn, _), y in zip(items, ys))
    return result


@contextlib.contextmanager
def spectral_norm_step(model: nn.Module, impl: Optional[str] = None) -> Iterator[None]:
    """Computes every spectral-normed weight of ``model`` in one fused launch per step.

    ``with spectral_norm_step(D): logits = D(x)`` — inside the block each
    :class:`SpectralNorm` parametrization returns the weight computed by the
    batched launch (one launch per power iteration for all layers, e.g. the ~30
    of a BigGAN D), with the same u/v updates and results as the per-layer path.
    Where the automatic choice finds no fast backend (CPU tensors, no triton), the
    block changes nothing and each layer computes itself; an explicit ``impl``
    that cannot run is refused (``BackendUnavailableError``), as the ops do.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if normalize_impl(impl) == "ref":
        yield
        return
    served = spectral_normalize_all(model, impl)
    for sn, y in served:
        sn.precomputed = y
    try:
        yield
    finally:
        for sn, _ in served:
            sn.precomputed = None

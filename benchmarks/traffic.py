"""Bytes per case: the compulsory global-memory traffic of each row's path, and peak bandwidth by device.

**The model** (issue 21): *every kernel launch reads each distinct tensor it takes once and writes each tensor it
produces once*; nothing stays in a cache from one launch to the next; views, reshapes and allocations cost
nothing. A pass's bytes are the sum over its launches. So:

* the fused path of ``bias_act`` forward is one launch: read x and b, write y (2 x + b bytes); its forward +
  backward adds one launch reading dy, x and b and writing dx and db (5 x + 3 b in all);
* the eager chain of ``bias_act`` forward is three launches: ``x + b`` (read x, b, write t), the activation
  (read t, write u), ``* gain`` (read u, write y): 6 x + b.

Rather than writing those sums by hand for every case (and keeping them in step with the code), the model is
applied to what each row actually launches: :func:`count_pass` runs the row's pass **on the meta device** (shapes
and dtypes only: nothing is computed or allocated) under a dispatch mode that sees every launch, an aten op of the
eager chain or a ``gan_fast::*`` custom op of a fused backend, and adds its inputs' and outputs' bytes by the rule
above. On meta tensors every backend's custom ops run their fakes, so the Triton path is counted on any machine
(while counting, the device checks of ``gan_fast.backend`` are lifted and autocast reads as off for the meta
device; the choices made meanwhile are forgotten afterwards).
The bytes of a launch's tensor are ``numel x element size``, capped at its storage (a broadcast view is read
once). Only ``fwd`` and ``fwdbwd`` are counted: ``dbl`` adds the harness's own projection of the gradients,
which is not the op's traffic.

Rows counted: eager, the fast backends, and the extra baselines a case names in ``count_extras``; never compile
(inductor's kernels are not the model's). Per record (``benchmarks/__init__.py``): ``bytes`` (this row's path), ``bytes_fused`` (the case's fused path:
its Triton backend where its ops have one, else its first fast backend), ``bytes_eager`` (the ``ref`` chain),
``byte_ratio`` = eager / fused: where both paths are bandwidth-bound at the same bandwidth, the fused path is
faster by exactly that much, so a CPU run (where Triton does not run) reports it as the bandwidth-bound ceiling of
the speedup the fused design can give. On a GPU, ``gbps`` = bytes / median and
``pct_peak`` against :data:`PEAK_GBPS` (a device not in the table reports GB/s only).
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .devices import PEAK_GBPS, peak_gbps  # noqa: F401 - re-exported

__all__ = ["PEAK_GBPS", "peak_gbps", "LaunchCounter", "count_pass", "case_bytes", "COUNTED_PASSES"]

COUNTED_PASSES = ("fwd", "fwdbwd")

# Launches that move nothing: allocations (their contents undefined), metadata and views that are not marked as
# such in their schema. Write-only launches read nothing of their tensor inputs (only their shapes).
_FREE = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "_unsafe_view", "_reshape_alias",
         "lift_fresh", "lift_fresh_copy", "sym_size", "sym_stride", "sym_numel", "sym_storage_offset", "detach",
         "alias", "set_", "resize_", "_has_compatible_shallow_copy_type", "is_same_size", "_debug_has_internal_overlap"}
_WRITE_ONLY = {"zeros_like", "ones_like", "full_like", "new_zeros", "new_ones", "new_full", "fill_", "zero_",
               "zeros", "ones", "full", "scalar_tensor"}


def _nbytes(t: torch.Tensor) -> int:
    n = t.numel() * t.element_size()
    try:
        n = min(n, t.untyped_storage().nbytes() - t.storage_offset() * t.element_size())
    except Exception:  # noqa: BLE001 - a tensor without storage (a subclass): its logical size
        pass
    return max(n, 0)


class LaunchCounter(TorchDispatchMode):
    """Counts every launch's bytes by the model above: ``total`` bytes, ``launches`` launches, and ``by_op``
    {op name: bytes} (for reading what a path does)."""

    def __init__(self):
        super().__init__()
        self.total = 0
        self.launches = 0
        self.by_op: Dict[str, int] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func._schema.name.split("::")[-1]
        if getattr(func, "is_view", False) or name in _FREE:
            return out
        seen = set()
        nbytes = 0
        if name not in _WRITE_ONLY:
            for t in tree_leaves((args, kwargs or {})):
                if isinstance(t, torch.Tensor) and id(t) not in seen:
                    seen.add(id(t))
                    nbytes += _nbytes(t)
        written = set()
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and id(t) not in written:
                written.add(id(t))
                nbytes += _nbytes(t)
        self.total += nbytes
        self.launches += 1
        key = func._schema.name
        self.by_op[key] = self.by_op.get(key, 0) + nbytes
        return out


class _MetaCotangents:
    """Cotangents on the meta device (values are never read)."""

    def get(self, role: str, shape: Sequence[int], dtype: torch.dtype, requires_grad: bool = False) -> torch.Tensor:
        return torch.empty(tuple(shape), dtype=dtype, device="meta").requires_grad_(requires_grad)


@contextlib.contextmanager
def _every_backend() -> Iterator[None]:
    """Lets every backend run on meta tensors while counting (their custom ops run their fakes there): the device
    checks of ``gan_fast.backend`` answer 'usable' inside the block, and the choices made meanwhile are forgotten
    at its end (so no real call later finds a choice made while counting)."""
    from gan_fast import backend

    original, autocast_enabled = backend._device_status, torch.is_autocast_enabled
    choices, traced = dict(backend._choices), dict(backend._traced)

    def is_autocast_enabled(*args):  # torch raises for the meta device type: no autocast there
        if args and args[0] == "meta":
            return False
        return autocast_enabled(*args)

    backend._device_status = lambda name, device_type: (True, "")
    torch.is_autocast_enabled = is_autocast_enabled
    try:
        yield
    finally:
        backend._device_status = original
        torch.is_autocast_enabled = autocast_enabled
        backend._choices.clear()
        backend._choices.update(choices)
        backend._traced.clear()
        backend._traced.update(traced)


def count_pass(case, backend: str, impl: Optional[str], variant: Dict[str, Any], pass_name: str,
               extra: bool = False) -> Tuple[Optional[int], str]:
    """(bytes of one pass of one row by the model, '' or why it could not be counted). ``extra``: the row is one
    of the case's extra baselines (``backend`` names it)."""
    from .harness import bind, make_pass

    if pass_name not in COUNTED_PASSES:
        return None, f"{pass_name} is not counted (only {', '.join(COUNTED_PASSES)})"
    try:
        with _every_backend(), torch.random.fork_rng(devices=[]):
            tensors = case.make(torch.device("meta"), case.dtype, None)
            for n in case.diff:
                tensors[n].requires_grad_(True)
            if extra:
                fwd, tensors = case.extra_baselines[backend](tensors)
                step_impl = "ref"
            else:
                fwd = bind(case, impl, variant)
                step_impl = impl
            fn = make_pass(case, pass_name, fwd, tensors, _MetaCotangents(), step_impl)
            with LaunchCounter() as counter:
                fn()
        return counter.total, ""
    except Exception as exc:  # noqa: BLE001 - a path that cannot run on meta tensors is not counted
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200]


def fused_backend(case) -> Optional[str]:
    """The backend whose path is the case's "fused path": triton where any of its ops has it, else the first fast
    backend its first op lists on any device, else None."""
    backends: List[str] = []
    for spec in case.specs:
        for order in spec.fast.values():
            backends += [b for b in order if b not in backends]
        backends += [b for b in spec.explicit if b not in backends]
    if "triton" in backends:
        return "triton"
    return backends[0] if backends else None


def case_bytes(case, rows, passes: Optional[Sequence[str]] = None) -> Dict[Tuple[str, str, str], Optional[int]]:
    """{(row backend, variant, pass): bytes} for the rows ``rows`` (:class:`benchmarks.harness.Row`: eager, the fast
    backends, and the extra baselines the case names in ``count_extras``), and the case-level ``("eager", "", pass)`` (the ref chain, first variant) and ``("fused", "", pass)`` (see
    :func:`fused_backend`) entries. Passes that cannot be counted are left out."""
    out: Dict[Tuple[str, str, str], Optional[int]] = {}
    if not getattr(case, "traffic", True):
        return out
    passes = [p for p in (passes or case.passes) if p in COUNTED_PASSES]
    first_variant = next(iter(case.variants))
    fused = fused_backend(case)
    for p in passes:
        for r in rows:
            extra = r.backend in case.extra_baselines
            if r.backend == "compile" or (extra and r.backend not in getattr(case, "count_extras", ())):
                continue
            n, _ = count_pass(case, r.backend, r.impl, r.args, p, extra=extra)
            if n:
                out[(r.backend, r.variant, p)] = n
        eager = out.get(("eager", first_variant, p))
        if eager is None:
            eager, _ = count_pass(case, "eager", "ref", case.variants[first_variant], p)
        if eager:
            out[("eager", "", p)] = eager
        if fused:
            n = out.get((fused, first_variant, p))
            if n is None:
                n, _ = count_pass(case, fused, fused, case.variants[first_variant], p)
            if n:
                out[("fused", "", p)] = n
    return out

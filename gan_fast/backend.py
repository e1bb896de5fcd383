"""Backend selection: which implementation of an op runs for given tensors.

Every public op takes ``impl=None|'ref'|'triton'|'cpp'`` (``'cuda'`` is an
alias of ``'cpp'`` so StyleGAN2-ADA call sites keep working).

* ``None`` (automatic): the first *available* fast backend the op supports for
  the tensors' device that passes its one-time self-test (:mod:`gan_fast.self_test`),
  else ``ref``. Triton is never chosen automatically for
  CPU tensors (its interpreter is a test mode, not a fast path). When a fast
  backend that would have been chosen is missing or failed to build, the op
  falls back to ``ref`` and one warning (per backend) says why.
* The environment variable ``GAN_FAST_IMPL=ref|triton|cpp`` forces one backend
  for every op that has it (ops without it use ``ref``); tests use it.
* An explicit request for an unavailable backend raises ``RuntimeError`` saying
  what is missing; a backend the op does not have raises ``ValueError``.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import warnings
from typing import Dict, Optional, Sequence, Tuple

import torch

from . import self_test

__all__ = [
    "IMPLS",
    "BackendUnavailableError",
    "normalize_impl",
    "resolve",
    "triton_status",
    "cpp_status",
    "interpreter_enabled",
    "available_backends",
    "reset_warnings",
]

IMPLS = ("ref", "triton", "cpp")
_ALIASES = {"cuda": "cpp"}
ENV_VAR = "GAN_FAST_IMPL"


class BackendUnavailableError(RuntimeError):
    """An explicitly requested backend cannot run here."""


def normalize_impl(impl: Optional[str], argname: str = "impl") -> Optional[str]:
    """Maps aliases to canonical backend names and rejects unknown ones."""
    if impl is None:
        return None
    if not isinstance(impl, str):
        raise TypeError(f"{argname} must be None or one of {IMPLS + tuple(_ALIASES)}, got {type(impl).__name__}")
    name = _ALIASES.get(impl.lower(), impl.lower())
    if name not in IMPLS:
        raise ValueError(f"{argname} must be None or one of {IMPLS + tuple(_ALIASES)}, got {impl!r}")
    return name


def interpreter_enabled() -> bool:
    """True when Triton kernels run on CPU tensors through Triton's interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


_status_lock = threading.Lock()
_triton_cache: Optional[Tuple[bool, str]] = None


def triton_status() -> Tuple[bool, str]:
    """(importable, reason-if-not) for the triton package; cached."""
    global _triton_cache
    with _status_lock:
        if _triton_cache is None:
            if importlib.util.find_spec("triton") is None:
                _triton_cache = (False, "the 'triton' package is not installed (pip install triton)")
            else:
                try:
                    import triton  # noqa: F401
                    import triton.language  # noqa: F401

                    _triton_cache = (True, "")
                except Exception as exc:  # pragma: no cover - broken installs only
                    _triton_cache = (False, f"importing triton failed: {exc!r}")
        return _triton_cache


def cpp_status() -> Tuple[bool, str]:
    """(loaded, reason-if-not) for the compiled extension; may build it on first call."""
    from . import extension

    return extension.status()


def _device_status(backend: str, device: torch.device) -> Tuple[bool, str]:
    """Whether ``backend`` can run on tensors on ``device``, and why not."""
    if backend == "ref":
        return True, ""
    if backend == "triton":
        ok, why = triton_status()
        if not ok:
            return ok, why
        if device.type == "cuda":
            return True, ""
        if device.type == "cpu" and interpreter_enabled():
            return True, ""
        return False, (f"the triton backend needs CUDA tensors (got {device.type}); on CPU it runs only "
                       "under TRITON_INTERPRET=1, a test mode")
    if backend == "cpp":
        ok, why = cpp_status()
        if not ok:
            return ok, why
        if device.type == "cpu":
            return True, ""
        if device.type == "cuda":
            from . import extension

            if extension.has_cuda():
                return True, ""
            return False, "the gan_fast extension was built without CUDA kernels (no CUDA toolkit at build time)"
        return False, f"the cpp backend has no kernels for {device.type} tensors"
    raise AssertionError(backend)


_warned: set = set()
_warn_lock = threading.Lock()


def _warn_once(key: str, message: str) -> None:
    with _warn_lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def reset_warnings() -> None:
    """Forget which fallback warnings were issued and every cached choice (tests use this)."""
    with _warn_lock:
        _warned.clear()
    _choices.clear()


# (op, impl, device type, dtype, GAN_FAST_IMPL) -> (the op's FAST_BACKENDS, the chosen backend). A choice
# depends only on these (and on availability and the self-test, both fixed once probed), so it is made
# once: a call then costs one dict lookup. Dict reads and writes are atomic, so no lock.
_choices: Dict[tuple, Tuple[object, str]] = {}
self_test.on_reset(_choices.clear)  # a new self-test verdict may change a choice


def resolve(op: str, impl: Optional[str], device: torch.device, fast: Dict[str, Sequence[str]],
            dtype: Optional[torch.dtype] = None, numel: int = 0,
            min_numel: Optional[Dict[str, int]] = None) -> str:
    """Picks the backend for one call of ``op``.

    Args:
        op: the op's public name, for messages and its self-test.
        impl: the caller's ``impl`` argument (already validated or raw).
        device: the device of the op's tensors.
        fast: the fast backends the op has, by device type, in order of
            preference, e.g. ``{'cuda': ('triton', 'cpp'), 'cpu': ('cpp',)}``.
            A backend listed for any device counts as one the op has.
        dtype: the dtype of the op's main tensor: the automatic choice is
            self-tested per dtype (None: every dtype the device's self-test covers).
        numel, min_numel: the automatic choice (no ``impl``, no ``GAN_FAST_IMPL``)
            runs ``ref`` for a main tensor of fewer than ``min_numel[device type]``
            elements, where ``ref`` was measured faster than the fast backend.

    Under ``torch.compile`` the choice is made once, at trace time, and treated
    as a constant (so changing ``GAN_FAST_IMPL`` later does not retrace).
    """
    if torch.compiler.is_compiling():  # Dynamo traces this function: no cache, the constant call below
        return _resolve(op, impl, device.type, tuple((k, tuple(v)) for k, v in fast.items()), dtype)
    env = os.environ.get(ENV_VAR)
    key = (op, impl, device.type, dtype, env)
    try:
        hit = _choices.get(key)
    except TypeError:  # an unhashable impl (a list ...): the usual message that names impl
        normalize_impl(impl)
        raise
    if hit is None or hit[0] is not fast:
        hit = (fast, _resolve(op, impl, device.type, tuple((k, tuple(v)) for k, v in fast.items()), dtype))
        _choices[key] = hit
    if min_numel is not None and impl is None and not (env and env.strip()) and hit[1] != "ref" \
            and numel < min_numel.get(device.type, 0):
        return "ref"
    return hit[1]


@torch.compiler.assume_constant_result
def _resolve(op: str, impl: Optional[str], device_type: str, fast_items, dtype: Optional[torch.dtype]) -> str:
    # Runs eagerly even while torch.compile traces a caller: it takes locks,
    # may build the extension, and warns, none of which Dynamo can trace.
    fast = dict(fast_items)
    device = torch.device(device_type)
    requested = normalize_impl(impl)
    has = {b for order in fast.values() for b in order} | {"ref"}
    if requested is None:
        env = os.environ.get(ENV_VAR, "").strip()
        if env:
            forced = normalize_impl(env, argname=ENV_VAR)
            if forced not in has:
                return "ref"  # a global override applies only to ops that have that backend
            requested = forced
    if requested is not None:
        if requested not in has:
            raise ValueError(f"{op}: no {requested!r} backend; available: {sorted(has)}")
        ok, why = _device_status(requested, device)
        if not ok:
            raise BackendUnavailableError(f"{op}: impl={requested!r} was requested but cannot run: {why}")
        return requested
    for backend in fast.get(device.type, ()):
        if backend == "triton" and device.type != "cuda":
            continue  # the interpreter is never an automatic choice
        ok, why = _device_status(backend, device)
        if not ok:
            _warn_once(f"{backend}:{device.type}", f"gan_fast: the {backend} backend is unavailable ({why}); "
                       f"using the reference implementation for {device.type} tensors")
            continue
        ok, why = self_test.passed(op, backend, device, dtype)
        if ok:
            return backend
        _warn_once(f"{backend}:{device.type}:{op}", f"gan_fast: {op}'s {backend} backend cannot be used on "
                   f"{device.type} ({why}); using the reference implementation there")
    return "ref"


def available_backends(device: torch.device | str = "cpu") -> Dict[str, Tuple[bool, str]]:
    """{backend: (usable on device, reason if not)}, for reports and debugging."""
    device = torch.device(device)
    return {b: _device_status(b, device) for b in IMPLS}


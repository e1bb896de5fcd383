"""Backend selection: which implementation of an op runs a call, decided once, here.

Every public op takes ``impl=None|'ref'|'triton'|'cpp'`` (``'cuda'`` is an alias of ``'cpp'``, so
StyleGAN2-ADA call sites keep working), validates its arguments, and calls :func:`choose` with its
:class:`~gan_fast.backends.OpSpec` and what the call needs; the backend module it then calls runs that
backend or raises, never another.

* An explicit ``impl`` is honoured or refused: ``BackendUnavailableError`` says why and which backend
  would take the call (``ref`` always does). A backend the op does not have is a ``ValueError``.
* ``impl=None`` (automatic): a backend forced by ``gan_fast.config.use_backend`` / ``set_backend``
  (``GAN_FAST_IMPL``), where the op has it and the call's needs allow it, else ``ref``; without one, the
  first fast backend for the tensors' device (``OpSpec.fast``) that can run here and passed its
  first-use self-test (:mod:`gan_fast.self_test`) in that dtype, else ``ref``. Triton is never chosen
  automatically for CPU tensors (its interpreter is a test mode). A fast backend that cannot be loaded
  or fails its self-test costs one warning (naming why) and ``ref``.

The choice is cached per (op, impl, device type, dtype, forced backend): after the first call it costs a
dict lookup. Under ``torch.compile`` the trace reads the choices this process has made eagerly and runs no
self-test (:func:`_choose_traced`): a first call under ``torch.compile`` in a fresh process runs ``ref`` in
the compiled graph, and the compiled function retraces to the fast backend once an eager call (or
:func:`prepare`, before compiling) has chosen it.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from typing import Dict, Optional, Sequence, Tuple

import torch

from . import config, self_test
from .backends.common import DTYPE_NEEDS, OpSpec
from .config import IMPLS, normalize_impl
from .errors import BackendUnavailableError, UnsupportedDtypeError, warn

__all__ = ["IMPLS", "BackendUnavailableError", "OpSpec", "normalize_impl", "choose", "prepare", "available_backends",
           "triton_status", "cpp_status", "interpreter_enabled", "reset_warnings"]


def interpreter_enabled() -> bool:
    """True when Triton kernels run on CPU tensors through Triton's interpreter (``TRITON_INTERPRET``)."""
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
    """(loaded, reason-if-not) for the compiled extension; may build it on the first call."""
    from . import extension  # noqa: PLC0415 - loading the extension is the first cpp call's business

    return extension.status()


def _device_status(backend: str, device_type: str) -> Tuple[bool, str]:
    """Whether ``backend`` can run on tensors of ``device_type`` here, and why not."""
    if backend == "ref":
        return True, ""
    if backend == "triton":
        if device_type == "cuda":
            if not torch.cuda.is_available():
                return False, "CUDA is not available here (torch.cuda.is_available() is False)"
        elif not (device_type == "cpu" and interpreter_enabled()):
            return False, (f"the triton backend needs CUDA tensors (got {device_type}); on CPU it runs only "
                           "under TRITON_INTERPRET=1, a test mode")
        return triton_status()
    if backend == "cpp":
        if device_type not in ("cpu", "cuda"):
            return False, f"the cpp backend has no kernels for {device_type} tensors"
        if device_type == "cuda" and not torch.cuda.is_available():
            return False, "CUDA is not available here (torch.cuda.is_available() is False)"
        ok, why = cpp_status()
        if not ok or device_type == "cpu":
            return ok, why
        from . import extension  # noqa: PLC0415

        return extension.cuda_status()
    raise AssertionError(backend)


def available_backends(device: torch.device | str = "cpu") -> Dict[str, Tuple[bool, str]]:
    """{backend: (usable for tensors on ``device``, the reason if not)}, for reports and debugging."""
    device_type = torch.device(device).type
    return {b: _device_status(b, device_type) for b in IMPLS}


# ------------------------------------------------------------------------------------------------- warnings

_warned: set = set()
_warn_lock = threading.Lock()


def _warn_once(key: str, message: str) -> None:
    with _warn_lock:
        if key in _warned:
            return
        _warned.add(key)
    warn(message)


def reset_warnings() -> None:
    """Forget which fallback warnings were issued and every cached choice (tests use this)."""
    with _warn_lock:
        _warned.clear()
    _forget()


# --------------------------------------------------------------------------------------------------- choice

# (op, impl, device type, dtype, forced) -> (backend, automatic). Dict reads and writes are atomic: no lock.
_choices: Dict[tuple, Tuple[str, bool]] = {}
# (op, device type, dtype, forced) -> the automatic choice made eagerly: what a torch.compile trace reads.
_traced: Dict[tuple, str] = {}


def _forget() -> None:
    _choices.clear()
    _traced.clear()


self_test.on_reset(_forget)  # a new verdict may change a choice


def choose(spec: OpSpec, impl: Optional[str], device: torch.device, dtype: Optional[torch.dtype] = None,
           numel: float = 0, needs: Sequence[str] = ()) -> str:
    """The backend that runs one call of ``spec``'s op.

    Args:
        spec: the op's :class:`OpSpec`.
        impl: the caller's ``impl`` argument (raw; validated here).
        device, dtype: the device and dtype of the op's main tensor (its self-test verdict is per dtype;
            under autocast pass the autocast dtype where the op computes in it).
        numel: the main tensor's size, for ``spec.min_numel``.
        needs: what this call asks of a fast backend beyond the usual (``'float64'``, ``'complex'``,
            ``'learned filter'`` ...), checked against ``spec.cannot``.

    Returns:
        'ref', 'triton' or 'cpp'. Raises ``ValueError`` for a backend the op lacks, and
        ``BackendUnavailableError`` (``UnsupportedDtypeError`` for a dtype) for an explicit backend that
        cannot run the call.
    """
    if torch.compiler.is_compiling():
        return _choose_traced(spec, impl, device.type, dtype, needs)
    forced = config.forced_backend(spec.op)
    key = (spec.name, impl, device.type, dtype, forced)
    try:
        hit = _choices.get(key)
    except TypeError:  # an unhashable impl (a list ...): the message that names impl
        normalize_impl(impl)
        raise
    if hit is None:
        hit = _choices[key] = _choose(spec, impl, forced, device.type, dtype)
        if impl is None:
            _traced[(spec.name, device.type, dtype, forced)] = hit[0]
    chosen, automatic = hit
    if chosen == "ref":
        return chosen
    if automatic and numel < spec.min_numel.get(device.type, 0) and forced is None:
        return "ref"
    if needs:
        return _check_needs(spec, chosen, needs, automatic or impl is None)
    return chosen


def _choose_traced(spec: OpSpec, impl: Optional[str], device_type: str, dtype: Optional[torch.dtype],
                   needs: Sequence[str]) -> str:
    """The choice inside a ``torch.compile`` trace: plain lookups that Dynamo traces and guards on, never a
    self-test, a build or a warning. An explicit ``impl`` is taken as asked (a backend that cannot run raises
    when the compiled graph runs it); the automatic choice is the one an eager call of this process made for
    (op, device type, dtype), read from ``_traced``, else ``ref``. Dynamo guards on that entry, so once an
    eager call (or :func:`prepare`) makes the choice, the compiled function retraces and uses it. Only the
    process-wide forced backend (``config.set_backend``, ``GAN_FAST_IMPL``) is seen here: a ``use_backend``
    block is per thread/task (a ``ContextVar``, which Dynamo cannot read), so inside a compiled function it
    does not apply."""
    requested = normalize_impl(impl)
    if requested is not None:
        if requested not in spec.backends:
            raise ValueError(f"{spec.op}: no {requested!r} backend; it has {list(spec.backends)}")
        chosen, automatic = requested, False
    else:
        chosen = _traced.get((spec.name, device_type, dtype, config.process_forced_backend(spec.op)), "ref")
        automatic = True
    if chosen != "ref" and needs:
        chosen = _check_needs(spec, chosen, needs, automatic)
    return chosen


def _check_needs(spec: OpSpec, chosen: str, needs: Sequence[str], automatic: bool) -> str:
    refused = spec.cannot.get(chosen, {})
    for need in needs:
        why = refused.get(need)
        if why is None:
            continue
        if automatic:
            return "ref"  # the automatic choice (impl=None, a forced backend) stays exact
        error = UnsupportedDtypeError if need in DTYPE_NEEDS else BackendUnavailableError
        raise error(f"{spec.op}: impl={chosen!r} cannot run this call: {why} ({need}); impl='ref' runs it "
                    "(and impl=None chooses ref for such calls)")
    return chosen


def _choose(spec: OpSpec, impl: Optional[str], forced: Optional[str], device_type: str,
            dtype: Optional[torch.dtype]) -> Tuple[str, bool]:
    """(backend, whether the choice was automatic), before the call's needs and size are considered."""
    requested = normalize_impl(impl)
    has = spec.backends
    if requested is not None:
        if requested not in has:
            raise ValueError(f"{spec.op}: no {requested!r} backend; it has {list(has)}")
        ok, why = _device_status(requested, device_type)
        if not ok:
            raise BackendUnavailableError(f"{spec.op}: impl={requested!r} was requested but cannot run here: "
                                          f"{why}; impl='ref' runs it")
        return requested, False
    if forced is not None:
        if forced not in has:
            return "ref", True  # a forced backend applies to the ops that have it
        ok, why = _device_status(forced, device_type)
        if not ok:
            raise BackendUnavailableError(f"{spec.op}: backend {forced!r} is forced (gan_fast.config.use_backend"
                                          f" / set_backend / GAN_FAST_IMPL) but cannot run here: {why}")
        return forced, True
    for backend in spec.fast.get(device_type, ()):
        if backend == "triton" and device_type != "cuda":
            continue  # the interpreter is never an automatic choice
        if backend == "cpp" and config.extension_mode() == "off":
            continue  # switched off (GAN_FAST_EXT=0): no warning, as the build-failure warning promises
        ok, why = _device_status(backend, device_type)
        if not ok:
            _warn_once(f"{backend}:{device_type}", f"gan_fast: the {backend} backend is unavailable ({why}); "
                       f"using the reference implementation for {device_type} tensors")
            continue
        ok, why = self_test.passed(spec.name, backend, torch.device(device_type), dtype)
        if ok:
            return backend, True
        _warn_once(f"{backend}:{device_type}:{spec.name}", f"gan_fast: {spec.name}'s {backend} backend cannot be "
                   f"used on {device_type} ({why}); using the reference implementation there")
    return "ref", True


def prepare(device: Optional[torch.device] = None, dtypes: Optional[Sequence[torch.dtype]] = None,
            specs: Optional[Sequence[OpSpec]] = None) -> Dict[Tuple[str, torch.dtype], str]:
    """Makes the automatic choice of every op (or of ``specs``) on ``device`` (default CUDA when available,
    else CPU) for each dtype (default the self-test's), running or loading the self-tests now, eagerly: a
    ``torch.compile`` trace afterwards reads these choices. Returns {(op, dtype): backend}."""
    if specs is None:
        from .backends import SPECS as specs  # noqa: PLC0415, N811
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    out = {}
    for spec in specs:
        for dt in (dtypes or self_test.dtypes(device)):
            out[(spec.name, dt)] = choose(spec, None, device, dt, numel=float("inf"))
    return out

"""First-use self-test of a fast backend: a kernel that is wrong or fails on this machine falls back to ``ref``.

No GPU has run these kernels before a user's, so the first time the automatic choice would pick a fast
backend for an op on a device and dtype, the op's cases (:mod:`gan_fast.self_test.cases`) run through that
backend's entry point and are judged against a float64 ``ref`` run (:mod:`gan_fast.self_test.judge`). It
fails closed: an op with no case is never chosen automatically; any exception or any result outside the
judge's bound sends that op to ``ref`` on that device and dtype, with one warning saying why.

Cases are sized so that every kernel runs more than one program along every grid axis at its GPU block
sizes, and include channels_last or sliced inputs; on CUDA they run in float32, float16 and bfloat16
(:func:`dtypes`). A check runs once per (op, backend, device, dtype), with its own RNG, ignoring the
caller's autocast / no-grad / inference mode, and its verdict is kept in memory and on disk
(:mod:`gan_fast.self_test.cache`), so later processes read it instead of running it. It never runs inside a
``torch.compile`` trace (``gan_fast.backend`` says what a trace does instead).

Command line: ``gan-fast-self-test [--device cuda] [--op REGEX] [--clear-cache]`` (:mod:`.cli`).
"""

from __future__ import annotations

import threading
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from . import cache
from .judge import ERROR_FACTOR, FLOOR_EPS, TF32_EPS, Case, Entry, compare, judge

__all__ = ["register", "registered", "verdict", "passed", "check", "check_case", "dtypes", "reset",
           "on_reset", "clear_cache", "judge", "ERROR_FACTOR", "FLOOR_EPS", "TF32_EPS"]

Verdict = Tuple[bool, str]

# name -> Entry: the built-in cases (loaded on the first check) and any registered by register().
_CASES: Dict[str, Entry] = {}
_loaded = False
_results: Dict[Tuple[str, str, str, torch.dtype], Verdict] = {}
_lock = threading.Lock()  # guards the dicts; each verdict has its own lock, so checks of other keys run meanwhile
_key_locks: Dict[Tuple[str, str, str, torch.dtype], threading.Lock] = {}


def _registry() -> Dict[str, Entry]:
    global _loaded
    if not _loaded:
        from .cases import REGISTRY  # noqa: PLC0415 - the cases import every backend: only when a check runs

        with _lock:
            for name, entry in REGISTRY.items():
                _CASES.setdefault(name, entry)
            _loaded = True
    return _CASES


def register(name: str, case_list: Union[Case, Sequence[Case]], backends: Sequence[str] = ("cpp", "triton"),
             tf32: bool = False) -> None:
    """Registers the cases that check the fast ``backends`` of op ``name`` (an op added outside gan_fast, or a
    test's planted op); ``tf32`` as :class:`~gan_fast.self_test.judge.Entry`."""
    _registry()
    _CASES[name] = Entry((case_list,) if callable(case_list) else tuple(case_list), tuple(backends), bool(tf32))


def registered() -> Dict[str, Entry]:
    """{name: Entry} of every op with a self-test."""
    return dict(_registry())


def dtypes(device: torch.device) -> Tuple[torch.dtype, ...]:
    """The dtypes a device's self-test covers when none is named: float32, and on CUDA float16 and bfloat16."""
    if device.type == "cuda":
        return (torch.float32, torch.float16, torch.bfloat16)
    return (torch.float32,)


def verdict(name: str, backend: str, device: torch.device, dtype: Optional[torch.dtype] = None) -> Verdict:
    """(ok, reason-if-not) for ``backend`` of op ``name`` on ``device``'s type.

    ``dtype``: the dtype of the call being resolved (its own verdict; float32's for float64 and dtypes
    outside :func:`dtypes`); None: every dtype of :func:`dtypes`. From memory, else the disk cache, else the
    check runs (once per key, even when threads ask at once).
    """
    wanted = dtypes(device) if dtype is None else (dtype if dtype in dtypes(device) else torch.float32,)
    for dt in wanted:
        key = (name, backend, device.type, dt)
        result = _results.get(key)
        if result is None:
            with _lock:
                key_lock = _key_locks.setdefault(key, threading.Lock())
            with key_lock:  # one check per key; other ops and dtypes are not held up meanwhile
                result = _results.get(key)
                if result is None:
                    result = _verdict_for(name, backend, device, dt)
                    with _lock:
                        _results[key] = result
        if not result[0]:
            return result
    return True, ""


passed = verdict  # the name the backend choice reads best with


def _verdict_for(name: str, backend: str, device: torch.device, dtype: torch.dtype) -> Verdict:
    stored = cache.load(name, backend, dtype, device)
    if stored is not None:
        return stored
    ok, why, transient = _check(name, backend, device, (dtype,))
    if not transient:
        cache.store(name, backend, dtype, device, (ok, why))
    return ok, why


_reset_hooks: List[Callable[[], None]] = []


def on_reset(hook: Callable[[], None]) -> None:
    """Calls ``hook`` whenever :func:`reset` forgets the verdicts (the backend's cached choices)."""
    _reset_hooks.append(hook)


def reset() -> None:
    """Forgets every verdict held in memory (the disk cache stays: :func:`clear_cache`)."""
    with _lock:
        _results.clear()
    for hook in _reset_hooks:
        hook()


def clear_cache() -> str:
    """Removes the verdicts stored on disk and forgets those in memory; returns the directory."""
    reset()
    return cache.clear()


def check(name: str, backend: str, device: torch.device,
          dtype_list: Optional[Sequence[torch.dtype]] = None) -> Verdict:
    """Runs every case of ``name`` through ``backend`` in each dtype (default :func:`dtypes`); (ok, reason).
    No cache is read or written."""
    ok, why, _ = _check(name, backend, device, dtype_list)
    return ok, why


def _check(name: str, backend: str, device: torch.device,
           dtype_list: Optional[Sequence[torch.dtype]]) -> Tuple[bool, str, bool]:
    registry = _registry()
    if name not in registry:
        return False, f"{name} registers no self-test case, so its fast backends are never chosen automatically", \
            False
    for dt in (dtypes(device) if dtype_list is None else dtype_list):
        for i in range(len(registry[name].cases)):
            ok, why, transient = _check_case(name, i, backend, device, dt)
            if not ok:
                return ok, why, transient
    return True, "", False


def check_case(name: str, index: int, backend: str, device: torch.device, dtype: torch.dtype) -> Verdict:
    """Runs case ``index`` of ``name`` through ``backend`` in ``dtype``; (ok, reason)."""
    ok, why, _ = _check_case(name, index, backend, device, dtype)
    return ok, why


# Failures that say nothing about the kernel: a verdict from them is not kept on disk.
_TRANSIENT = ("out of memory", "busy or unavailable", "timed out", "timeout")
_TRANSIENT_TYPES = (getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), TimeoutError)


def _check_case(name: str, index: int, backend: str, device: torch.device,
                dtype: torch.dtype) -> Tuple[bool, str, bool]:
    entry = _registry()[name]
    try:
        with torch.inference_mode(False), torch.enable_grad(), torch.autocast(device.type, enabled=False):
            gen = torch.Generator(device=device).manual_seed(index)
            run, leaves = entry.cases[index](device, gen)
            compare(run, leaves, backend, dtype, gen, entry.tf32)
        return True, "", False
    except Exception as exc:  # noqa: BLE001 - any failure means: do not use this backend here
        msg = str(exc).strip().splitlines()
        where = f"case {index}, {str(dtype).replace('torch.', '')}"
        transient = isinstance(exc, _TRANSIENT_TYPES) or \
            any(t in str(exc).lower() for t in _TRANSIENT)
        return False, f"its self-test failed ({where}): {type(exc).__name__}: {msg[0] if msg else ''}", transient

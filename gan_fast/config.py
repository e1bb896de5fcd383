"""gan_fast's settings: which backend runs, where its caches live, how the extension builds, how kernels tune.

Environment variables are read once, when this module is imported, and only as defaults; the functions
here are the in-process API (tests and benchmarks use them, never ``os.environ``). Every variable:

=========================  ==========================================================================
``GAN_FAST_IMPL``          ``ref``, ``triton`` or ``cpp`` (``cuda`` = ``cpp``): force that backend for every
                           op that has it (the others run ``ref``); unset = automatic. :func:`set_backend`.
``GAN_FAST_CACHE_DIR``     root of gan_fast's caches (the JIT-built extension, the self-test's verdicts);
                           default ``$XDG_CACHE_HOME/gan_fast`` else ``~/.cache/gan_fast``. :func:`set_cache_dir`.
``GAN_FAST_SELF_TEST_CACHE``  ``1`` (default) keeps self-test verdicts on disk; ``0`` in memory only.
``GAN_FAST_EXT``           the compiled extension: ``auto`` (default: the prebuilt library, else a JIT
                           build), ``prebuilt``, ``jit``, ``0``/``off`` (never load it, no warning).
``GAN_FAST_BUILD_EXT``     ``0``: never compile the extension (neither ``pip install`` nor the JIT build).
``GAN_FAST_BUILD_CUDA``    ``auto`` (default): the CUDA kernels too where torch is a CUDA build and nvcc is
                           found (a first-use build: only where this process sees a GPU); ``1``: also with
                           no GPU visible; ``0``: the extension's CPU kernels only.
``GAN_FAST_BUILD_TIMEOUT`` seconds to wait for another process's extension build (default 1200).
``GAN_FAST_BUILD_VERBOSE`` ``1``: show the compiler's output.
``GAN_FAST_AUTOTUNE``      ``full`` (default: tune per shape) or ``first`` (each kernel's first config, no
                           tuning: tests); read by ``gan_fast.kernels`` when first loaded. :func:`autotune`.
=========================  ==========================================================================

A bad value raises ``ValueError`` naming the variable and the valid values.

Backend choice, strongest first: the call's ``impl=`` argument; the innermost :func:`use_backend`
block (per thread and per asyncio task: a ``contextvars.ContextVar``); :func:`set_backend` (process
wide; ``GAN_FAST_IMPL`` its default); else automatic. Under ``torch.compile`` the choice is read once,
when the call is traced, and baked into the compiled graph: changing it later (a new ``use_backend``
block around a compiled function) does not retrace; ``torch.compiler.reset()`` forgets it.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from typing import Dict, Iterator, Mapping, Optional, Tuple

__all__ = ["IMPLS", "ALIASES", "ENVIRONMENT", "normalize_impl", "use_backend", "set_backend", "forced_backend", "process_forced_backend",
           "cache_dir", "set_cache_dir", "self_test_cache_enabled", "extension_mode", "build_settings",
           "autotune", "set_autotune", "FP32_DOT_PRECISIONS", "fp32_dot_precision", "set_fp32_dot_precision"]

IMPLS = ("ref", "triton", "cpp")
ALIASES = {"cuda": "cpp"}

ENVIRONMENT: Dict[str, str] = {
    "GAN_FAST_IMPL": "force one backend (ref | triton | cpp | cuda) for every op that has it",
    "GAN_FAST_CACHE_DIR": "root of the caches (JIT-built extension, self-test verdicts)",
    "GAN_FAST_SELF_TEST_CACHE": "1 (default): self-test verdicts on disk; 0: in memory only",
    "GAN_FAST_EXT": "the compiled extension: auto | prebuilt | jit | 0 | off",
    "GAN_FAST_BUILD_EXT": "0: never compile the extension",
    "GAN_FAST_BUILD_CUDA": "auto (default) | 1: also in a first-use build with no GPU visible | 0: CPU kernels only",
    "GAN_FAST_BUILD_TIMEOUT": "seconds to wait for another process's extension build (default 1200)",
    "GAN_FAST_BUILD_VERBOSE": "1: show the compiler's output",
    "GAN_FAST_AUTOTUNE": "full (default) | first: autotuned kernels launch their first config (tests)",
}

_EXT_MODES = ("auto", "prebuilt", "jit", "off")
_AUTOTUNE_MODES = ("full", "first")
_BUILD_CUDA_MODES = ("auto", "1", "0")
FP32_DOT_PRECISIONS = ("tf32x3", "ieee")


def normalize_impl(impl: Optional[str], argname: str = "impl") -> Optional[str]:
    """``impl`` as a canonical backend name (aliases mapped, case ignored); None stays None.
    Anything else raises ``TypeError``/``ValueError`` naming ``argname`` and the valid names."""
    if impl is None:
        return None
    valid = IMPLS + tuple(ALIASES)
    if not isinstance(impl, str):
        raise TypeError(f"{argname} must be None or one of {valid}, got {type(impl).__name__}")
    name = impl.lower()
    name = ALIASES.get(name, name)
    if name not in IMPLS:
        raise ValueError(f"{argname} must be None or one of {valid}, got {impl!r}")
    return name


def _env(name: str, valid: Tuple[str, ...], default: str, aliases: Optional[Mapping[str, str]] = None) -> str:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    value = (aliases or {}).get(raw.lower(), raw.lower())
    if value not in valid:
        raise ValueError(f"environment variable {name}={raw!r} is invalid: valid values are "
                         f"{tuple(valid) + tuple(aliases or ())}")
    return value


def _env_flag(name: str, default: bool) -> bool:
    return _env(name, ("1", "0"), "1" if default else "0", {"true": "1", "on": "1", "yes": "1", "false": "0",
                                                            "off": "0", "no": "0"}) == "1"


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"environment variable {name}={raw!r} is invalid: a number of seconds > 0")
    return value


def _default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gan_fast")


# ------------------------------------------------------------------------------------------ process settings


class _Settings:
    """The process-wide settings, initialised from the environment (read once, here)."""

    def __init__(self) -> None:
        impl = os.environ.get("GAN_FAST_IMPL", "").strip()
        self.backend: Optional[str] = normalize_impl(impl, argname="environment variable GAN_FAST_IMPL") \
            if impl else None
        self.per_op: Dict[str, str] = {}
        self.cache_dir = os.path.abspath(os.path.expanduser(os.environ.get("GAN_FAST_CACHE_DIR", "").strip()
                                                            or _default_cache_dir()))
        self.self_test_cache = _env_flag("GAN_FAST_SELF_TEST_CACHE", True)
        self.extension = _env("GAN_FAST_EXT", _EXT_MODES, "auto", {"0": "off", "false": "off", "1": "auto"})
        self.build_ext = _env_flag("GAN_FAST_BUILD_EXT", True)
        self.build_cuda = _env("GAN_FAST_BUILD_CUDA", _BUILD_CUDA_MODES, "auto", {"true": "1", "on": "1", "yes": "1",
                                                                               "false": "0", "off": "0", "no": "0"})
        self.build_timeout = _env_seconds("GAN_FAST_BUILD_TIMEOUT", 1200.0)
        self.build_verbose = _env_flag("GAN_FAST_BUILD_VERBOSE", False)
        self.fp32_dot_precision = FP32_DOT_PRECISIONS[0]


_settings = _Settings()

# The innermost use_backend() block of this thread / task: (backend for every op or None, {op: backend}).
_scoped: contextvars.ContextVar[Optional[Tuple[Optional[str], Mapping[str, str]]]] = \
    contextvars.ContextVar("gan_fast_backend", default=None)


def _check_per_op(per_op: Mapping[str, Optional[str]]) -> Dict[str, str]:
    return {op: normalize_impl(v, argname=f"{op}") for op, v in per_op.items() if v is not None}


@contextlib.contextmanager
def use_backend(impl: Optional[str] = None, **per_op: Optional[str]) -> Iterator[None]:
    """Runs the block with a backend forced, in this thread / asyncio task only.

    ``use_backend('triton')`` forces Triton for every op that has it (the others run ``ref``);
    ``use_backend(bias_act='cpp', upfirdn2d='ref')`` forces per op (op names as in ``gan_fast.ops``);
    both may be combined (per-op names win). ``use_backend()`` / ``use_backend(None)`` restores the
    automatic choice inside the block. A call's own ``impl=`` argument still wins over the block.
    Unknown backend names raise ``ValueError`` naming the valid ones.
    """
    entry = (normalize_impl(impl), _check_per_op(per_op))
    token = _scoped.set(entry)
    try:
        yield
    finally:
        _scoped.reset(token)


def set_backend(impl: Optional[str] = None, **per_op: Optional[str]) -> None:
    """The process-wide forced backend (what ``GAN_FAST_IMPL`` sets at import); ``set_backend()`` clears it.
    Arguments as :func:`use_backend`; a :func:`use_backend` block overrides it."""
    backend, ops = normalize_impl(impl), _check_per_op(per_op)
    _settings.backend, _settings.per_op = backend, ops


def forced_backend(op: str) -> Optional[str]:
    """The backend forced for ``op`` by :func:`use_backend` / :func:`set_backend`, or None (automatic)."""
    scoped = _scoped.get()
    if scoped is not None:
        return scoped[1].get(op, scoped[0])
    return _settings.per_op.get(op, _settings.backend)


def process_forced_backend(op: str) -> Optional[str]:
    """The backend forced for ``op`` by :func:`set_backend` alone (what a ``torch.compile`` trace can read:
    Dynamo cannot read a ``ContextVar``)."""
    return _settings.per_op.get(op, _settings.backend)


# ----------------------------------------------------------------------------------------------------- caches


def cache_dir() -> str:
    """The root of gan_fast's caches (``GAN_FAST_CACHE_DIR``)."""
    return _settings.cache_dir


def set_cache_dir(path: str) -> None:
    """Moves gan_fast's caches (JIT builds and self-test verdicts made from now on) to ``path``."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    _settings.cache_dir = os.path.abspath(os.path.expanduser(os.fspath(path)))


def self_test_cache_enabled() -> bool:
    """Whether self-test verdicts are kept on disk (``GAN_FAST_SELF_TEST_CACHE``)."""
    return _settings.self_test_cache


# -------------------------------------------------------------------------------------------------- extension


def extension_mode() -> str:
    """``GAN_FAST_EXT``: 'auto', 'prebuilt', 'jit' or 'off'."""
    return _settings.extension


def build_settings() -> Dict[str, object]:
    """The JIT build's settings: {'build': bool, 'cuda': 'auto' | '1' | '0', 'timeout': seconds, 'verbose': bool}."""
    s = _settings
    return {"build": s.build_ext, "cuda": s.build_cuda, "timeout": s.build_timeout, "verbose": s.build_verbose}


# ------------------------------------------------------------------------------------------------------ kernels


def set_autotune(mode: str) -> None:
    """'full' (tune autotuned kernels per shape, the default) or 'first' (launch each one's first config)."""
    if mode not in _AUTOTUNE_MODES:
        raise ValueError(f"autotune mode must be one of {_AUTOTUNE_MODES}, got {mode!r}")
    from .kernels import _common  # noqa: PLC0415 - the kernels' own switch; loaded only when asked

    _common.set_autotune_mode(mode)


@contextlib.contextmanager
def autotune(mode: str) -> Iterator[None]:
    """:func:`set_autotune` for the duration of a block (process-wide: autotuning is per kernel, not per thread)."""
    from .kernels import _common  # noqa: PLC0415

    old = _common.autotune_mode()
    set_autotune(mode)
    try:
        yield
    finally:
        _common.set_autotune_mode(old)


def fp32_dot_precision() -> str:
    """How Triton kernels run float32 ``tl.dot`` on tensor cores where a kernel offers the choice
    (``filtered_lrelu``'s FIR dots): 'tf32x3' (default: three TF32 products, about float32's accuracy)
    or 'ieee' (exact float32 products on the FMA units)."""
    return _settings.fp32_dot_precision


def set_fp32_dot_precision(value: str) -> None:
    """Sets :func:`fp32_dot_precision`; ``ValueError`` naming the allowed values otherwise."""
    if value not in FP32_DOT_PRECISIONS:
        raise ValueError(f"fp32 dot precision must be one of {FP32_DOT_PRECISIONS}, got {value!r}")
    _settings.fp32_dot_precision = value

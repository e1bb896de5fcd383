"""The self-test's verdicts on disk, so that a new process (each DDP rank, each training restart) does not pay
the self-test again.

One small JSON file per verdict under ``<gan_fast.config.cache_dir()>/self_test/``, named by the digest of
its key: (op, backend, dtype, the digest of the fast paths' sources (``kernels/``, ``csrc/``,
``gan_fast/backends/``), the versions of gan_fast, torch and triton, the device's name and compute
capability, the driver). Anything that could change a verdict changes the key, so a stale verdict is never
read. Files are written atomically (a temporary file, then ``os.replace``): ranks sharing the directory
each write the same content. A directory that cannot be written leaves the verdicts in memory; a file that
cannot be parsed is ignored, with one warning, and replaced. Transient failures (out of memory, a busy
device, a timeout) are never written. ``gan-fast-self-test --clear-cache`` removes the directory.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import tempfile
import threading
from typing import Optional, Tuple

import torch

from .. import config
from ..errors import warn
from ..version import __version__

__all__ = ["directory", "load", "store", "clear", "environment_key"]

_FORMAT = 1
_warned_corrupt = set()
_lock = threading.Lock()


def directory() -> str:
    """Where the verdicts live (follows ``gan_fast.config.set_cache_dir``)."""
    return os.path.join(config.cache_dir(), "self_test")


def _files_digest(*folders: Optional[str]) -> str:
    h = hashlib.sha256()
    for folder in folders:
        if not folder or not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            if name.endswith((".py", ".cpp", ".cu", ".h", ".cuh")):
                h.update(name.encode())
                with open(os.path.join(folder, name), "rb") as f:
                    h.update(f.read())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def sources_digest() -> str:
    """The digest of every source a fast path runs: the Triton kernels, the C++/CUDA sources, the glue."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.find_spec("gan_fast.kernels")
    kernels = os.path.dirname(spec.origin) if spec is not None and spec.origin else None
    csrc = os.path.join(package, "csrc")
    if not os.path.isdir(csrc):
        csrc = os.path.join(os.path.dirname(package), "csrc")  # a checkout: csrc/ beside gan_fast/
    return _files_digest(kernels, csrc, os.path.join(package, "backends"))


def _version(dist: str) -> str:
    try:
        import importlib.metadata as metadata  # noqa: PLC0415

        return metadata.version(dist)
    except Exception:  # noqa: BLE001 - not installed (or no metadata): part of the key as such
        return "none"


@functools.lru_cache(maxsize=None)
def _device_key(device_type: str, index: int) -> Tuple[str, ...]:
    if device_type == "cuda":
        name = torch.cuda.get_device_name(index)
        major, minor = torch.cuda.get_device_capability(index)
        driver = ""
        try:  # the kernel driver's version line (Linux); public, no private torch API
            with open("/proc/driver/nvidia/version") as f:
                driver = f.readline().strip()
        except OSError:
            pass
        return (name, f"sm_{major}{minor}", driver, f"cuda {torch.version.cuda}")
    return (platform.machine(), platform.processor() or "", "", "")


def environment_key(device: torch.device) -> Tuple[str, ...]:
    """Everything besides (op, backend, dtype) that a verdict depends on."""
    index = device.index if device.index is not None else (torch.cuda.current_device() if device.type == "cuda"
                                                          else 0)
    return (sources_digest(), __version__, torch.__version__, _version("triton"), device.type,
            *_device_key(device.type, index))


def _path(op: str, backend: str, dtype: torch.dtype, device: torch.device) -> Tuple[str, list]:
    key = [_FORMAT, op, backend, str(dtype), *environment_key(device)]
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]
    return os.path.join(directory(), f"{op.replace(':', '-')}-{backend}-{digest}.json"), key


def load(op: str, backend: str, dtype: torch.dtype, device: torch.device) -> Optional[Tuple[bool, str]]:
    """The stored verdict, or None (none stored, caching off, or a file that cannot be used)."""
    if not config.self_test_cache_enabled():
        return None
    path, key = _path(op, backend, dtype, device)
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None  # none stored, or a location that cannot be read: the check runs
    try:
        data = json.loads(text)
        if data["key"] != key:
            raise ValueError("its key does not match its name")
        return bool(data["ok"]), str(data["why"])
    except (ValueError, KeyError, TypeError) as exc:
        with _lock:
            first = path not in _warned_corrupt
            _warned_corrupt.add(path)
        if first:
            warn(f"gan_fast: ignoring an unreadable self-test verdict file {path} ({exc}); the self-test runs "
                 "again and replaces it")
        return None


def store(op: str, backend: str, dtype: torch.dtype, device: torch.device, verdict: Tuple[bool, str]) -> bool:
    """Writes the verdict atomically; False (and nothing written) where the directory cannot be written."""
    if not config.self_test_cache_enabled():
        return False
    path, key = _path(op, backend, dtype, device)
    folder = os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".verdict-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"key": key, "ok": bool(verdict[0]), "why": verdict[1]}, f)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError:
        return False  # read-only or full: the verdict stays in this process's memory
    return True


def clear() -> str:
    """Removes every stored verdict; returns the directory."""
    folder = directory()
    shutil.rmtree(folder, ignore_errors=True)
    return folder

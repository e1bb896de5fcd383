"""The optional compiled extension (C++/CUDA kernels from ``csrc/``): found, checked and loaded once.

**Registration.** The ``torch.ops.gan_fast.*`` ops' schemas and fakes are defined in Python when gan_fast is
imported (``gan_fast/backends/bias_act.py``, ``upfirdn2d.py``); the library registers only their CPU and CUDA
implementations (``TORCH_LIBRARY_IMPL``), when it loads, which the first call that needs the ``cpp`` backend
does. ``import gan_fast`` loads nothing. So a process that runs a saved program using these ops
(``torch.export.load`` of an ``ExportedProgram`` traced with ``impl='cpp'``) imports gan_fast (the ops
exist) and calls :func:`load` (their kernels exist) first.

**Where it comes from** (``gan_fast.config.extension_mode()``, default from ``GAN_FAST_EXT``): ``'auto'``
tries 1 then 2, ``'prebuilt'`` only 1, ``'jit'`` only 2, ``'off'`` nothing (no build, no warning).

1. *Prebuilt*: ``gan_fast._C``, built by ``setup.py`` at install. Loaded only when whole
   (:mod:`.integrity`) and built from the sources next to it (the library embeds their hash; a stale build
   in an edited checkout is skipped, never loaded).
2. *JIT*: compiled on first use into the cache directory and reused by later processes (:mod:`.jit`; it
   prints one line saying so). ``config.build_settings()['build']`` False (``GAN_FAST_BUILD_EXT=0``)
   forbids it.

**Contract.** A missing, stale or damaged library, or a failed build, never crashes: :func:`status` gives
``(False, reason)`` naming the cause and the fix, and backend selection turns that into one warning and the
``ref`` fallback. Nothing is retried within the process. :func:`info` says how it loaded or why not,
:func:`cuda_status` whether CUDA tensors can use it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import threading
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .. import config
from ..errors import BackendUnavailableError
from . import integrity, jit, sources
from .integrity import DIGEST_SUFFIX, library_digest, library_problem, write_digest_file
from .sources import source_dir, source_files, source_hash

__all__ = ["status", "load", "info", "cuda_status", "has_cuda", "source_dir", "source_files", "source_hash",
           "library_digest", "library_problem", "write_digest_file", "DIGEST_SUFFIX"]

# The ops whose CPU implementations the library must register (their schemas are defined in Python).
OPS = ("bias_act_fwd", "bias_act_grad", "bias_act_grad2", "bias_act_grad_db", "bias_act_grad2_db", "upfirdn2d_fwd")

_lock = threading.RLock()
_state: Optional[Tuple[bool, str]] = None
_info: Dict[str, object] = {}


def status() -> Tuple[bool, str]:
    """(loaded, reason-if-not). The first call loads or builds the extension; later calls are free."""
    state = _state
    if state is not None:
        return state
    with _lock:
        if _state is None:
            try:
                result = _load()
            except Exception as exc:  # never let a loader bug break the ops: they fall back to ref
                result = (False, f"loading the gan_fast C++ extension failed unexpectedly ({exc!r}); "
                                 "set GAN_FAST_EXT=0 to skip it, and please report this")
            _set_state(result)
        return _state  # type: ignore[return-value]


def load() -> str:
    """Loads the extension now, building it if needed (as the first ``cpp`` call would), so that its
    ``torch.ops.gan_fast.*`` ops exist (e.g. before ``torch.export.load``); returns the library's path.
    Raises :class:`~gan_fast.errors.BackendUnavailableError` (a ``RuntimeError``) naming the reason when it
    cannot be loaded."""
    ok, why = status()
    if not ok:
        raise BackendUnavailableError(f"the gan_fast C++ extension cannot be loaded: {why}")
    return str(_info["path"])


def cuda_status() -> Tuple[bool, str]:
    """(the loaded extension runs CUDA tensors, the reason if not)."""
    ok, why = status()
    if not ok:
        return False, why
    if _info.get("cuda"):
        return True, ""
    import torch

    if torch.version.cuda is None:
        return False, "torch is a CPU build (torch.version.cuda is None)"
    recorded = _info.get("cuda_reason") or "the reason was not recorded (a library built by an older gan_fast)"
    return False, f"the extension was built without CUDA kernels: {recorded}"


def has_cuda() -> bool:
    """True when the loaded extension carries CUDA kernels."""
    return cuda_status()[0]


def info() -> Dict[str, object]:
    """How the extension was obtained: ``loaded``, ``reason`` (why not), ``how`` ('prebuilt', 'jit-built',
    'jit-cached'), ``path``, ``cuda`` and ``cuda_reason``, ``notes`` (why the steps before did not apply,
    e.g. why no prebuilt library was used), ``mode``, ``source_hash``, and ``summary``: all that in a line."""
    ok, reason = status()
    out = dict(_info, loaded=ok, reason=reason)
    notes = "; ".join(out.get("notes") or [])  # type: ignore[arg-type]
    how = out.get("how")
    if not ok:
        out["summary"] = f"not loaded: {reason}"
    elif how == "prebuilt":
        out["summary"] = f"the prebuilt library, built at install: {out['path']}"
    elif how == "jit-built":
        out["summary"] = (f"built on first use (JIT) in {out['build_seconds']} s into {out['build_dir']}, "
                          f"because {notes}")
    else:
        out["summary"] = f"the JIT build made by an earlier first use, from {out['build_dir']}, because {notes}"
    return out


def _set_state(state: Tuple[bool, str]) -> None:
    global _state
    _state = state


# ----------------------------------------------------------------------------------------------------- loading


def _load() -> Tuple[bool, str]:
    mode = config.extension_mode()
    _info.update(mode=mode, notes=[])
    if mode == "off":
        return False, ("the gan_fast C++ extension is off (GAN_FAST_EXT=0 or gan_fast.config); unset GAN_FAST_EXT "
                       "to use it")
    import torch  # noqa: F401 - the library links against libtorch, which must be loaded first

    src = source_dir()
    files = source_files(src) if src is not None else []
    expected = source_hash(files) if files else None
    _info.update(source_dir=str(src) if src else None, source_hash=expected)
    notes: List[str] = _info["notes"]  # type: ignore[assignment]
    if mode == "jit":
        notes.append("GAN_FAST_EXT=jit ignores a prebuilt library")
    else:
        path, data, why = _prebuilt(expected)
        if path is not None:
            return _loaded("prebuilt", path, data)
        notes.append(why)
        if mode == "prebuilt":
            return False, f"no usable prebuilt gan_fast._C ({why}); reinstall gan_fast with a compiler present"
    if not config.build_settings()["build"]:
        return False, ("the gan_fast C++ extension is not prebuilt here and GAN_FAST_BUILD_EXT=0 forbids building "
                       f"it ({'; '.join(notes)}); unset GAN_FAST_BUILD_EXT to build it")
    if not files:
        return False, ("the gan_fast C++ sources (csrc/) are not installed, so the extension cannot be built; "
                       "reinstall gan_fast from a wheel or source checkout that includes them")
    ok, why, built = jit.build(src, files, expected)  # type: ignore[arg-type]
    if not ok:
        return False, why
    if "rebuilt" in built:
        notes.append(built.pop("rebuilt"))  # type: ignore[arg-type]
    _info.update(built)
    return _loaded(str(built["how"]), str(built["path"]))


def _loaded(how: str, path: str, data: Optional[bytes] = None) -> Tuple[bool, str]:
    import torch

    # build_info is defined by the same static registration that registers the kernels of OPS (csrc/ops.cpp);
    # the library's sources were checked against ours before it was loaded.
    if not hasattr(torch.ops.gan_fast, "build_info"):
        return False, f"the gan_fast extension {path} loaded but registered nothing; rebuild it"
    built = integrity.embedded_build(Path(path).read_bytes() if data is None else data)
    _info.update(how=how, path=path, cuda=bool(built and built[1]))
    return True, ""


def _prebuilt(expected: Optional[str]) -> Tuple[Optional[str], bytes, str]:
    """(path of the loaded prebuilt gan_fast._C and its bytes, or None, b"" and why not)."""
    try:
        spec = importlib.util.find_spec("gan_fast._C")
    except Exception as exc:
        return None, b"", f"looking for gan_fast._C failed: {exc!r}"
    if spec is None or not spec.origin:
        return None, b"", _why_not_installed()
    try:
        data = Path(spec.origin).read_bytes()
    except OSError as exc:
        return None, b"", f"the prebuilt {spec.origin} cannot be read ({exc})"
    try:
        recorded: Optional[str] = Path(spec.origin + DIGEST_SUFFIX).read_text()
    except OSError:
        recorded = None  # not built by setup.py: the structure is still checked
    problem = library_problem(spec.origin, recorded, data)
    if problem is not None:
        return None, b"", (f"the prebuilt {spec.origin} is damaged: {problem}; not loading it (reinstall gan_fast, "
                           "or rebuild it with `python setup.py build_ext --inplace`)")
    built = integrity.embedded_build(data)
    built_from = built[0] if built else None
    if expected is not None and built_from != expected:
        return None, b"", (f"the prebuilt {os.path.basename(spec.origin)} was built from other sources "
                           f"({built_from} != {expected}); not loading a stale build")
    try:
        importlib.import_module("gan_fast._C")
    except Exception as exc:  # e.g. built against another torch: undefined symbols
        return None, b"", f"importing the prebuilt gan_fast._C failed: {exc}"
    _info["cuda_reason"] = integrity.record_notes(recorded).get("cuda_reason", "")
    return spec.origin, data, ""


def _why_not_installed() -> str:
    """Why there is no gan_fast._C: what the install most likely met, and the command that prebuilds it."""
    checkout = source_dir() == Path(sources.__file__).resolve().parents[2] / "csrc"
    cxx = os.environ.get("CXX", "c++")
    if shutil.which((cxx.split() or ["c++"])[0]) is None:
        return f"gan_fast._C is not installed: no C++ compiler ({cxx}; CXX selects it) was found to build it"
    command = "pip install --no-build-isolation -e ." if checkout else "pip install --no-build-isolation ."
    return (f"gan_fast._C is not installed: the install did not build it (pip's build isolation hid torch; "
            f"`{command}` prebuilds it)")

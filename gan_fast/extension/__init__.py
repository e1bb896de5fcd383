"""Loading the optional compiled extension (C++/CUDA kernels from ``csrc/``).

The kernels register themselves as ``torch.ops.gan_fast.*`` when their shared
library is loaded. :func:`status` finds one, once per process, in this order:

1. **Prebuilt**: ``gan_fast._C``, built by ``setup.py`` at install time. It is
   used only if it was built from the sources that ship with this copy of
   gan_fast (the library carries a hash of its sources; a stale build in an
   edited checkout is skipped, never loaded).
2. **JIT**: ``torch.utils.cpp_extension.load`` with ninja compiles the sources
   (``csrc/`` of a checkout, or ``gan_fast/csrc`` inside a wheel) into
   ``<cache>/ext/<source hash>-f<flags hash>-torch<version>-py<version>-<cpu|cudaX.Y>/``, so
   a later process just loads the library. A per-build ``flock`` makes
   concurrent processes wait for one build instead of racing; the kernel
   releases it when its holder dies, so a crashed build never leaves a stale
   lock, and waiting gives up after ``GAN_FAST_BUILD_TIMEOUT`` seconds.
   CUDA kernels are compiled when torch is a CUDA build and a CUDA toolkit is
   found; if that build fails, a CPU-only build is tried.

Before a library is loaded it is checked whole (:func:`library_problem`): a
library cut short (an interrupted copy, a full disk, a cache sync) or
overwritten would otherwise map and crash the process (SIGBUS) on its first op
call. Its size must cover what its ELF headers say the file holds (program
segments and section headers), and where a digest was recorded when it was
built (``<library>.sha256`` next to a prebuilt one, written by ``setup.py``;
the ``gan_fast_build_ok`` marker of a JIT build), its sha256 must match. A
damaged prebuilt library is skipped like a stale one (the JIT build is tried);
a damaged JIT build is deleted and built again.

Any failure gives ``status() == (False, reason)``; the reason names the cause
and the fix, backend selection turns it into one warning and the ``ref``
fallback. Nothing is retried within the process. This module imports nothing
from gan_fast (``setup.py`` loads it standalone to hash the sources and to
record the library's digest).

Environment:
    ``GAN_FAST_EXT``: ``auto`` (default: prebuilt, else JIT), ``prebuilt``,
        ``jit`` (ignore a prebuilt library), ``0``/``off`` (never load).
    ``GAN_FAST_BUILD_EXT=0``: never compile (neither ``setup.py`` nor JIT).
    ``GAN_FAST_BUILD_CUDA=0``: compile the CPU kernels only.
    ``GAN_FAST_CACHE_DIR``: cache root (default ``$XDG_CACHE_HOME/gan_fast``,
        else ``~/.cache/gan_fast``).
    ``GAN_FAST_BUILD_TIMEOUT``: seconds to wait for another process's build
        (default 1200).
    ``GAN_FAST_BUILD_VERBOSE=1``: show the compiler's output.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import logging
import os
import re
import struct
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Tuple

__all__ = ["status", "has_cuda", "info", "source_dir", "source_files", "source_hash", "cache_root",
           "library_digest", "write_digest_file", "library_problem"]

SOURCE_SUFFIXES = (".cpp", ".cu", ".h", ".cuh")
JIT_NAME = "gan_fast_C"
# -fno-trapping-math lets the compiler turn the activations' selects into vector
# blends (results are unchanged: PyTorch never unmasks floating-point traps).
# Keep in sync with setup.py.
CXX_FLAGS = ["-O3", "-fno-trapping-math", "-fno-math-errno"]
NVCC_FLAGS = ["-O3", "--use_fast_math"]
_OK_MARKER = "gan_fast_build_ok"
DIGEST_SUFFIX = ".sha256"  # the digest file next to a prebuilt library
_DIGEST_RE = re.compile(r"sha256=([0-9a-f]{64}) size=(\d+)")
_HASH_RE = re.compile(rb"gan_fast_source_hash=(h[0-9a-f]{16}|unknown);cuda=[01]\x00")
_FIX = ("install a C++ compiler (g++ or clang++; CXX selects it) and ninja (pip install ninja), then restart "
        "Python; or set GAN_FAST_EXT=0 to use the reference ops without this warning")

_lock = threading.RLock()
_state: Optional[Tuple[bool, str]] = None
_info: Dict[str, object] = {}


# ----------------------------------------------------------------------------- sources


def source_dir() -> Optional[Path]:
    """The directory holding the kernel sources: ``gan_fast/csrc`` in a wheel, ``csrc/`` in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "csrc", here.parent / "csrc"):
        if candidate.is_dir() and any(p.suffix == ".cpp" for p in candidate.iterdir()):
            return candidate
    return None


def source_files(directory: Optional[Path] = None) -> List[Path]:
    """The files that make up the extension (sources and headers), sorted by name."""
    directory = source_dir() if directory is None else Path(directory)
    if directory is None:
        return []
    return sorted((p for p in directory.iterdir() if p.suffix in SOURCE_SUFFIXES and p.is_file()),
                  key=lambda p: p.name)


def source_hash(files: Optional[List[Path]] = None) -> str:
    """'h' + 16 hex digits of sha256 over the names and contents of ``files`` (default: the sources)."""
    files = source_files() if files is None else files
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return "h" + digest.hexdigest()[:16]


def cache_root() -> Path:
    """Where JIT builds are kept (``GAN_FAST_CACHE_DIR``, else the user's cache directory)."""
    env = os.environ.get("GAN_FAST_CACHE_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache")
    return base / "gan_fast"


# ----------------------------------------------------------------------------- library integrity


def library_digest(data: bytes) -> str:
    """The digest line recorded for a built library: ``sha256=<hex> size=<bytes>``."""
    return f"sha256={hashlib.sha256(data).hexdigest()} size={len(data)}"


def write_digest_file(library: str) -> str:
    """Records the digest of ``library`` in ``<library>.sha256`` (setup.py calls this after a build); its path."""
    path = library + DIGEST_SUFFIX
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(library_digest(Path(library).read_bytes()) + "\n")
    os.replace(tmp, path)
    return path


def _recorded_digest(text: Optional[str]) -> Optional[str]:
    match = _DIGEST_RE.search(text or "")
    return match.group(0) if match else None


def _elf_problem(data: bytes) -> Optional[str]:
    """Why ``data`` is not a whole ELF file (too short for what its headers describe), or None."""
    if len(data) < 16 or data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        return f"it is not an ELF shared library ({len(data)} bytes, no valid ELF header)"
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    header = struct.Struct(end + ("16xHHIQQQIHHHHHH" if is64 else "16xHHIIIIIHHHHHH"))
    if len(data) < header.size:
        return f"it is cut inside its ELF header ({len(data)} bytes)"
    _, _, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, _ = header.unpack_from(data)
    need = [header.size, phoff + phnum * phentsize, shoff + max(shnum, 1) * shentsize if shoff else 0]
    if len(data) >= need[1]:
        segment = struct.Struct(end + ("IIQQQQ" if is64 else "IIIIII"))  # p_type and p_offset .. p_filesz
        for i in range(phnum):
            fields = segment.unpack_from(data, phoff + i * phentsize)
            p_type, p_offset, p_filesz = fields[0], (fields[2] if is64 else fields[1]), (fields[5] if is64 else fields[4])
            if p_type != 0:  # PT_NULL describes nothing
                need.append(p_offset + p_filesz)
    if len(data) < max(need):
        return (f"it is cut short: {len(data)} bytes, where its ELF headers describe {max(need)} "
                "(an interrupted copy or build, or a full disk?)")
    return None


def library_problem(path: str, recorded: Optional[str] = None, data: Optional[bytes] = None) -> Optional[str]:
    """Why the shared library at ``path`` must not be loaded (damaged), or None when it looks whole.

    ``recorded``: the text of the digest written when it was built (:func:`library_digest`, e.g. the content
    of ``<library>.sha256``), if any. Without one, only the structure is checked (ELF files: the size against
    their headers; other formats: nothing).
    """
    try:
        data = Path(path).read_bytes() if data is None else data
    except OSError as exc:
        return f"it cannot be read ({exc})"
    if recorded is not None:
        digest = _recorded_digest(recorded)
        if digest is None:
            return f"the digest recorded for it is unreadable ({recorded.strip()[:100]!r})"
        if library_digest(data) != digest:
            return (f"its content does not match the digest recorded when it was built ({len(data)} bytes, "
                    f"{_DIGEST_RE.search(digest).group(2)} when built)")
    if data[:4] == b"\x7fELF" or sys.platform.startswith("linux"):
        return _elf_problem(data)
    return None


# ----------------------------------------------------------------------------- public state


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


def has_cuda() -> bool:
    """True when the loaded extension carries CUDA kernels."""
    return status()[0] and bool(_info.get("cuda"))


def info() -> Dict[str, object]:
    """How the extension was obtained: loaded, how (prebuilt/jit-cached/jit-built), path, hash, cuda, notes."""
    ok, reason = status()
    return dict(_info, loaded=ok, reason=reason)


def _set_state(state: Tuple[bool, str]) -> None:
    global _state
    _state = state


# ----------------------------------------------------------------------------- loading


def _load() -> Tuple[bool, str]:
    mode = os.environ.get("GAN_FAST_EXT", "auto").strip().lower() or "auto"
    if mode in ("0", "off", "none", "false", "no"):
        return False, "the gan_fast C++ extension is disabled by GAN_FAST_EXT=%s (unset it to enable)" % mode
    if mode not in ("auto", "prebuilt", "jit"):
        return False, f"GAN_FAST_EXT={mode!r} is not one of auto, prebuilt, jit, 0"
    import torch  # noqa: F401 - the library links against libtorch, which must be loaded first

    src = source_dir()
    files = source_files(src) if src is not None else []
    expected = source_hash(files) if files else None
    _info.update(source_dir=str(src) if src else None, source_hash=expected, notes=[])
    notes: List[str] = _info["notes"]  # type: ignore[assignment]

    if mode in ("auto", "prebuilt"):
        ok, why = _load_prebuilt(expected)
        if ok:
            return _verify()
        notes.append(why)
        if mode == "prebuilt":
            return False, f"no usable prebuilt gan_fast._C ({why}); reinstall gan_fast with a compiler present"
    if os.environ.get("GAN_FAST_BUILD_EXT", "1").strip() == "0":
        return False, ("the gan_fast C++ extension is not prebuilt here and GAN_FAST_BUILD_EXT=0 forbids building "
                       f"it ({'; '.join(notes) or 'JIT build skipped'}); unset GAN_FAST_BUILD_EXT to build it")
    if not files:
        return False, ("the gan_fast C++ sources (csrc/) are not installed, so the extension cannot be built; "
                       "reinstall gan_fast from a wheel or source checkout that includes them")
    ok, why = _load_jit(src, files, expected)
    if not ok:
        return False, why
    return _verify()


def _verify() -> Tuple[bool, str]:
    import torch

    try:
        build = str(torch.ops.gan_fast.build_info())
        for name in ("bias_act_fwd", "bias_act_grad", "bias_act_grad2", "bias_act_grad_db", "bias_act_grad2_db",
                     "upfirdn2d_fwd"):
            getattr(torch.ops.gan_fast, name)
    except Exception as exc:  # a library that loaded but registered nothing we know
        return False, f"the gan_fast extension loaded but its ops are missing ({exc!r}); rebuild it"
    _info["cuda"] = build.endswith("cuda=1")
    _info["build_info"] = build
    return True, ""


def _load_prebuilt(expected: Optional[str]) -> Tuple[bool, str]:
    try:
        spec = importlib.util.find_spec("gan_fast._C")
    except Exception as exc:
        return False, f"looking for gan_fast._C failed: {exc!r}"
    if spec is None or not spec.origin:
        return False, "gan_fast._C is not installed (no compiler at install time, or an editable/source install)"
    try:
        data = Path(spec.origin).read_bytes()
    except OSError as exc:
        return False, f"the prebuilt {spec.origin} cannot be read ({exc})"
    try:
        recorded = Path(spec.origin + DIGEST_SUFFIX).read_text()
    except OSError:
        recorded = None  # not built by setup.py: the structure is still checked
    problem = library_problem(spec.origin, recorded, data)
    if problem is not None:
        return False, (f"the prebuilt {spec.origin} is damaged: {problem}; not loading it (reinstall gan_fast, or "
                       "rebuild it with `python setup.py build_ext --inplace`)")
    built_from = _embedded_hash_in(data)
    if expected is not None and built_from != expected:
        return False, (f"the prebuilt {os.path.basename(spec.origin)} was built from other sources "
                       f"({built_from} != {expected}); not loading a stale build")
    try:
        importlib.import_module("gan_fast._C")
    except Exception as exc:  # e.g. built against another torch: undefined symbols
        return False, f"importing the prebuilt gan_fast._C failed: {exc}"
    _info.update(how="prebuilt", path=spec.origin)
    return True, ""


def _embedded_hash(path: str) -> Optional[str]:
    """The source hash a library was built from (the NUL-terminated build-info string in it); None if unknown."""
    try:
        return _embedded_hash_in(Path(path).read_bytes())
    except OSError:
        return None


def _embedded_hash_in(data: bytes) -> Optional[str]:
    found = {m.group(1).decode() for m in _HASH_RE.finditer(data)}
    return found.pop() if len(found) == 1 else None


def _cuda_toolkit() -> Tuple[bool, str]:
    """Whether the JIT build should compile the CUDA kernels, and why not."""
    import torch

    if os.environ.get("GAN_FAST_BUILD_CUDA", "1").strip() == "0":
        return False, "GAN_FAST_BUILD_CUDA=0"
    if torch.version.cuda is None:
        return False, "this torch is not a CUDA build"
    with _quiet_torch_logs():
        from torch.utils import cpp_extension
    if cpp_extension.CUDA_HOME is None:
        return False, "no CUDA toolkit found (set CUDA_HOME)"
    return True, ""


def _load_jit(src: Path, files: List[Path], digest: str) -> Tuple[bool, str]:
    cuda_ok, cuda_why = _cuda_toolkit()
    has_cu = any(p.suffix == ".cu" for p in files)
    if not has_cu:
        cuda_ok, cuda_why = False, "no .cu sources"
    attempts = [True, False] if cuda_ok else [False]
    errors = []
    for with_cuda in attempts:
        ok, why = _build_and_load(src, files, digest, with_cuda)
        if ok:
            if not with_cuda and cuda_ok:
                cuda_why = f"the CUDA build failed: {errors[0]}"
            _info["cuda_reason"] = "" if with_cuda else cuda_why
            return True, ""
        errors.append(why)
    return False, f"the gan_fast C++ extension could not be built: {errors[-1]}. Fix: {_FIX}"


def _build_key(digest: str, with_cuda: bool) -> str:
    """The JIT build directory's name: sources, build flags, torch, Python and CPU/CUDA flavour."""
    import torch

    flavour = f"cuda{torch.version.cuda}" if with_cuda else "cpu"
    flags = hashlib.sha256(repr((CXX_FLAGS, NVCC_FLAGS, _openmp_flags())).encode()).hexdigest()[:6]
    key = f"{digest}-f{flags}-torch{torch.__version__}-py{sys.version_info[0]}{sys.version_info[1]}-{flavour}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key)


def _openmp_flags() -> List[str]:
    return [] if sys.platform in ("darwin", "win32") else ["-fopenmp"]


def _build_and_load(src: Path, files: List[Path], digest: str, with_cuda: bool) -> Tuple[bool, str]:
    build_dir = cache_root() / "ext" / _build_key(digest, with_cuda)
    marker = build_dir / _OK_MARKER
    state, why = _load_cached(marker)
    if state in ("loaded", "failed"):
        return state == "loaded", why
    try:
        build_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return False, f"cannot create the build directory {build_dir} ({exc}); set GAN_FAST_CACHE_DIR"
    timeout = float(os.environ.get("GAN_FAST_BUILD_TIMEOUT", "1200") or 1200)
    damaged = ""
    try:
        with _file_lock(build_dir.with_name(build_dir.name + ".lock"), timeout):
            state, why = _load_cached(marker)  # another process may have finished (or repaired it) while we waited
            if state in ("loaded", "failed"):
                return state == "loaded", why
            if state == "damaged":  # delete it, so that the build below links it again
                damaged = f"the cached build was damaged ({why})"
                with contextlib.suppress(OSError):
                    os.remove(build_dir / marker.read_text().split("\n", 1)[0].strip())
                with contextlib.suppress(OSError):
                    os.remove(marker)
            # We hold the build lock, so a baton left by torch in this directory is stale.
            with contextlib.suppress(FileNotFoundError):
                os.remove(build_dir / "lock")
            started = time.monotonic()
            library = _compile(src, files, digest, with_cuda, build_dir)
            marker.write_text(os.path.basename(library) + "\n" + library_digest(Path(library).read_bytes()) + "\n")
    except TimeoutError as exc:
        return False, str(exc)
    except Exception as exc:  # compiler missing or failing, ninja missing, bad environment, ...
        return False, (f"{damaged} and rebuilding it failed: " if damaged else "") + _describe_build_error(
            exc, build_dir)
    _info.update(how="jit-built", path=str(library), build_seconds=round(time.monotonic() - started, 1))
    if damaged:
        _info["notes"].append(f"{damaged} and was rebuilt")  # type: ignore[union-attr]
    return True, ""


def _load_cached(marker: Path) -> Tuple[str, str]:
    """Loads a finished build named by ``marker``: ("loaded", ""), ("none", "") when there is none,
    ("damaged", why) when its library is damaged (never loaded), ("failed", why) when loading it failed."""
    import torch

    try:
        lines = marker.read_text().split("\n")
    except OSError:
        return "none", ""
    name = lines[0].strip()
    library = marker.parent / name
    if not name or not library.is_file():
        return ("damaged", f"{library} is missing") if name else ("none", "")
    problem = library_problem(str(library), "\n".join(lines[1:]).strip() or None)  # no digest: an older marker
    if problem is not None:
        return "damaged", f"{library}: {problem}"
    try:
        torch.ops.load_library(str(library))
    except Exception as exc:
        return "failed", f"loading the cached build {library} failed ({exc}); delete {marker.parent} to rebuild"
    _info.update(how="jit-cached", path=str(library))
    return "loaded", ""


def _compile(src: Path, files: List[Path], digest: str, with_cuda: bool, build_dir: Path) -> str:
    with _quiet_torch_logs():
        from torch.utils import cpp_extension
    defines = [f"-DGAN_FAST_SOURCE_HASH={digest}"] + (["-DGAN_FAST_WITH_CUDA"] if with_cuda else [])
    openmp = _openmp_flags()
    sources = [str(p) for p in files if p.suffix == ".cpp" or (with_cuda and p.suffix == ".cu")]
    verbose = os.environ.get("GAN_FAST_BUILD_VERBOSE", "0").strip() not in ("", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # compiler-ABI notes etc.: a failure is reported once, by the caller
        return cpp_extension.load(
            name=JIT_NAME,
            sources=sources,
            extra_cflags=CXX_FLAGS + openmp + defines,
            extra_cuda_cflags=NVCC_FLAGS + defines,
            extra_ldflags=openmp,
            extra_include_paths=[str(src)],
            build_directory=str(build_dir),
            with_cuda=with_cuda,
            is_python_module=False,
            verbose=verbose,
        )


def _describe_build_error(exc: BaseException, build_dir: Path) -> str:
    text = str(exc).strip() or repr(exc)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "not found" in ln.lower() or "failed" in ln.lower()]
    tail = (errors or lines)[-6:]
    cxx = os.environ.get("CXX", "c++")
    summary = " | ".join(ln.strip()[:300] for ln in tail).rstrip(". ")
    return f"{type(exc).__name__} while compiling with CXX={cxx!r} in {build_dir}: {summary}"


@contextlib.contextmanager
def _quiet_torch_logs():
    """Silences torch.utils.cpp_extension's import-time notes (e.g. 'No CUDA runtime is found')."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float):
    """An exclusive lock on ``path`` across processes; gives up after ``timeout`` seconds.

    POSIX ``flock`` (Windows: ``msvcrt.locking``) locks belong to the open file
    and vanish when the holder exits or crashes, so they are never stale.
    """
    fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                _try_lock(fd)
                break
            except (BlockingIOError, PermissionError, OSError):
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"gave up after {timeout:.0f} s waiting for another process that is building the gan_fast "
                        f"extension (lock {path}); raise GAN_FAST_BUILD_TIMEOUT, or stop that process") from None
                time.sleep(0.25)
        try:
            yield
        finally:
            _unlock(fd)
    finally:
        os.close(fd)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

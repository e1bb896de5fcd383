"""The first-use (JIT) build: ``torch.utils.cpp_extension.load`` with ninja compiles the sources into
``<cache>/ext/<source hash>-f<flags>-torch<version>-py<version>-<cpu|cudaX.Y>/``, once per key.

* One build per key across processes: a ``flock`` on ``<key>.lock`` (released by the kernel when its holder
  dies, so a crashed build never leaves a stale lock) makes the other processes wait for it, and give up
  after ``config.build_settings()['timeout']`` seconds. A finished build is named by its marker file
  (``gan_fast_build_ok``: the library's name and digest); a damaged one is deleted and built again.
* It says what it does, once per process, on one line of stderr: the building process that it builds
  (minutes), a waiting one that it waits for another process's build.
* CUDA kernels are compiled when :func:`cuda_plan` allows (as ``setup.py`` decides, but only in a process that
  sees a GPU, unless ``GAN_FAST_BUILD_CUDA=1``); if that build fails,
  the failure is recorded in its directory (later processes then go straight to the CPU build, until the
  toolchain changes or the record is deleted) and a CPU-only build is tried.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from .. import config
from . import integrity, sources

NAME = "gan_fast_C"
OK_MARKER = "gan_fast_build_ok"
CUDA_FAILED = "gan_fast_cuda_failed"
LIBRARY_SUFFIXES = (".so", ".pyd", ".dylib")
FIX = ("install a C++ compiler (g++ or clang++; CXX selects it) and ninja (pip install ninja), then restart "
       "Python; or set GAN_FAST_EXT=0 to use the reference ops without this warning")

_said: set = set()  # the notices this process printed


def notice(kind: str, line: str) -> None:
    """Prints ``line`` to stderr, once per process per ``kind``."""
    if kind not in _said:
        _said.add(kind)
        print(line, file=sys.stderr, flush=True)


def build(src: Path, files: List[Path], digest: str) -> Tuple[bool, str, Dict[str, object]]:
    """Loads the cached build for these sources, or builds it: (ok, why not, info about the build)."""
    import torch

    with _quiet_torch_logs():
        from torch.utils import cpp_extension
    with_cuda, cuda_reason = cuda_plan(torch, cpp_extension.CUDA_HOME, any(p.suffix == ".cu" for p in files),
                                       config.build_settings()["cuda"])
    if with_cuda:
        ok, why, info = _build_and_load(src, files, digest, True)
        if ok:
            return True, "", dict(info, cuda_reason="")
        cuda_reason = f"the CUDA build failed: {why}"
    ok, why, info = _build_and_load(src, files, digest, False)
    if not ok:
        return False, f"the gan_fast C++ extension could not be built: {why}. Fix: {FIX}", {}
    return True, "", dict(info, cuda_reason=cuda_reason)


NO_GPU = ("no GPU was visible to the process that built it on first use, so only the CPU kernels were compiled "
          "(a process that sees a GPU builds the CUDA kernels on its first use; GAN_FAST_BUILD_CUDA=1 compiles them "
          "anyway)")


def cuda_plan(torch, cuda_home: Optional[str], has_cu: bool, mode: str) -> Tuple[bool, str]:
    """(compile the CUDA kernels?, why not) for a first-use build. As ``setup.py`` decides
    (:func:`sources.cuda_plan`), except that under ``GAN_FAST_BUILD_CUDA=auto`` a process that sees no GPU
    compiles the CPU kernels only: it could not run the CUDA ones, and they cost most of the build's minutes."""
    with_cuda, why = sources.cuda_plan(torch, cuda_home, has_cu, mode != "0")
    if with_cuda and mode == "auto" and not _gpu_visible(torch):
        return False, NO_GPU
    return with_cuda, why


def _gpu_visible(torch) -> bool:
    try:
        return torch.cuda.device_count() > 0
    except Exception:  # a driver that cannot be queried: no GPU for this process
        return False


def build_dir(digest: str, with_cuda: bool) -> Path:
    """The build directory for these sources, build flags, torch, Python and CPU/CUDA flavour."""
    import torch

    flags = [sources.CXX_FLAGS, sources.NVCC_FLAGS, sources.openmp_flags()] + ([_cuda_archs(torch)] if with_cuda else [])
    flavour = f"cuda{torch.version.cuda}" if with_cuda else "cpu"
    key = (f"{digest}-f{hashlib.sha256(repr(flags).encode()).hexdigest()[:6]}-torch{torch.__version__}"
           f"-py{sys.version_info[0]}{sys.version_info[1]}-{flavour}")
    return Path(config.cache_dir()) / "ext" / re.sub(r"[^A-Za-z0-9_.-]", "_", key)


def _build_and_load(src: Path, files: List[Path], digest: str, with_cuda: bool) -> Tuple[bool, str, Dict[str, object]]:
    directory = build_dir(digest, with_cuda)
    state, why = _load_cached(directory)
    if state in ("loaded", "failed"):
        return _cached(state, why, directory)
    settings = config.build_settings()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return False, f"cannot create the build directory {directory} ({exc}); set GAN_FAST_CACHE_DIR", {}
    lock = directory.with_name(directory.name + ".lock")
    damaged = ""
    try:
        with file_lock(lock, settings["timeout"], on_wait=lambda: notice("wait", (
                f"gan_fast: waiting for another process's build of the C++ extension (lock {lock}, "
                f"at most {settings['timeout']:.0f} s)"))):
            state, why = _load_cached(directory)  # another process may have finished (or repaired) it meanwhile
            if state in ("loaded", "failed"):
                return _cached(state, why, directory)
            if state == "damaged":  # deleted, so that the build below links it again
                damaged = f"the cached build was damaged ({why})"
                for stale in [p for p in directory.iterdir() if p.suffix in LIBRARY_SUFFIXES] + [directory / OK_MARKER]:
                    with contextlib.suppress(OSError):
                        stale.unlink()
            with contextlib.suppress(FileNotFoundError):  # we hold the lock: a baton torch left here is stale
                os.remove(directory / "lock")
            import torch

            kernels = "C++/CUDA" if with_cuda else "C++"
            notice("build", f"gan_fast: building the {kernels} extension for torch {torch.__version__} (first use, "
                            "a few minutes; GAN_FAST_EXT=0 skips it)")
            started = time.monotonic()
            library = compile(src, files, digest, with_cuda, directory, bool(settings["verbose"]))
            (directory / OK_MARKER).write_text(
                os.path.basename(library) + "\n" + integrity.library_digest(Path(library).read_bytes()) + "\n")
    except TimeoutError as exc:
        return False, str(exc), {}
    except Exception as exc:  # compiler missing or failing, ninja missing, bad environment, ...
        why = (f"{damaged} and rebuilding it failed: " if damaged else "") + _describe_build_error(exc, directory)
        if with_cuda:
            with contextlib.suppress(OSError):
                (directory / CUDA_FAILED).write_text(_toolchain() + "\n" + why + "\n")
        return False, why, {}
    info: Dict[str, object] = dict(how="jit-built", path=library, build_dir=str(directory),
                                   build_seconds=round(time.monotonic() - started, 1))
    if damaged:
        info["rebuilt"] = f"{damaged} and was rebuilt"
    return True, "", info


def _cached(state: str, why: str, directory: Path) -> Tuple[bool, str, Dict[str, object]]:
    if state == "loaded":
        return True, "", dict(how="jit-cached", path=why, build_dir=str(directory))
    return False, why, {}


def _load_cached(directory: Path) -> Tuple[str, str]:
    """The finished build in ``directory``: ("loaded", its path), ("none", ""), ("damaged", why: never loaded),
    ("failed", why: loading it failed, or a CUDA build that failed with this toolchain)."""
    import torch

    try:
        lines = (directory / OK_MARKER).read_text().split("\n")
    except OSError:
        with contextlib.suppress(OSError, ValueError):
            toolchain, why = (directory / CUDA_FAILED).read_text().split("\n", 1)
            if toolchain == _toolchain():
                return "failed", f"{why.strip()} (recorded in {directory / CUDA_FAILED}: delete it to try again)"
        return "none", ""
    name = lines[0].strip()
    library = directory / name
    if not name or not library.is_file():
        return ("damaged", f"{library} is missing") if name else ("none", "")
    problem = integrity.library_problem(str(library), "\n".join(lines[1:]).strip() or None)  # no digest: older
    if problem is not None:
        return "damaged", f"{library}: {problem}"
    try:
        torch.ops.load_library(str(library))
    except Exception as exc:
        return "failed", f"loading the cached build {library} failed ({exc}); delete {directory} to rebuild"
    return "loaded", str(library)


def compile(src: Path, files: List[Path], digest: str, with_cuda: bool, directory: Path, verbose: bool) -> str:
    """Compiles and loads the library (``torch.utils.cpp_extension.load``); returns its path."""
    import torch

    with _quiet_torch_logs():
        from torch.utils import cpp_extension
    defines = [f"-DGAN_FAST_SOURCE_HASH={digest}"] + (["-DGAN_FAST_WITH_CUDA"] if with_cuda else [])
    archs = sources.cuda_arch_default(torch) if with_cuda else None
    if archs:
        notice("archs", sources.cuda_arch_notice(archs))
        os.environ["TORCH_CUDA_ARCH_LIST"] = archs  # torch's arch detection fails with no GPU visible
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # compiler-ABI notes etc.: a failure is reported once, by the caller
            returned = cpp_extension.load(
                name=NAME,
                sources=[str(p) for p in files if p.suffix == ".cpp" or (with_cuda and p.suffix == ".cu")],
                extra_cflags=sources.CXX_FLAGS + sources.openmp_flags() + defines,
                extra_cuda_cflags=sources.NVCC_FLAGS + defines,
                extra_ldflags=sources.openmp_flags(),
                extra_include_paths=[str(src)],
                build_directory=str(directory),
                with_cuda=with_cuda,
                is_python_module=False,
                verbose=verbose,
            )
    finally:
        if archs:
            os.environ.pop("TORCH_CUDA_ARCH_LIST", None)
    return find_library(directory, returned)


def find_library(directory: Path, returned: object) -> str:
    """The library a build left in ``directory``. torch >= 2.5 returns its path, 2.4 returns None; its name is
    ``gan_fast_C``, or ``gan_fast_C_v<N>`` when this process already built one of that name with other
    sources or flags (a failed CUDA attempt before the CPU one). The newest one is this build's."""
    if isinstance(returned, str) and os.path.isfile(returned):
        return returned
    found = [p for p in directory.glob(NAME + "*") if p.suffix in LIBRARY_SUFFIXES and p.is_file()]
    if not found:
        raise FileNotFoundError(f"the build in {directory} left no library ({NAME}*.so)")
    return str(max(found, key=lambda p: p.stat().st_mtime_ns))


def _cuda_archs(torch) -> str:
    """The GPU architectures a CUDA build compiles for (part of its key)."""
    archs = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip() or sources.cuda_arch_default(torch)
    if archs:
        return archs
    return ";".join(sorted({"%d.%d" % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}))


def _toolchain() -> str:
    """What a failed CUDA build is recorded against: retried when any of these changes."""
    return repr([os.environ.get(v) for v in ("CXX", "CUDAHOSTCXX", "CUDA_HOME", "TORCH_CUDA_ARCH_LIST")])


def _describe_build_error(exc: BaseException, directory: Path) -> str:
    lines = [ln for ln in (str(exc).strip() or repr(exc)).splitlines() if ln.strip()]
    errors = [ln for ln in lines if any(w in ln.lower() for w in ("error", "not found", "failed"))]
    summary = " | ".join(ln.strip()[:300] for ln in (errors or lines)[-6:]).rstrip(". ")
    return f"{type(exc).__name__} while compiling with CXX={os.environ.get('CXX', 'c++')!r} in {directory}: {summary}"


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
def file_lock(path: Path, timeout: float, on_wait: Optional[Callable[[], None]] = None):
    """An exclusive lock on ``path`` across processes; calls ``on_wait()`` once if it must wait, and gives up
    after ``timeout`` seconds. ``flock`` locks belong to the open file and vanish when the holder exits or
    crashes, so they are never stale."""
    fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                _try_lock(fd)
                break
            except OSError:  # BlockingIOError, PermissionError
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"gave up after {timeout:.0f} s waiting for another process that is building the gan_fast "
                        f"extension (lock {path}); raise GAN_FAST_BUILD_TIMEOUT, or stop that process") from None
                if on_wait is not None:
                    on_wait()
                    on_wait = None
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

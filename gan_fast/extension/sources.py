"""What the extension is built from and how: its sources and their hash, the compiler flags, whether CUDA
kernels are compiled and for which GPUs. Shared by ``setup.py`` (which loads this file standalone, before
gan_fast is importable: it imports only the standard library) and the JIT build.
"""

import hashlib
import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple

SOURCE_SUFFIXES = (".cpp", ".cu", ".h", ".cuh")
# -fno-trapping-math lets the compiler turn the activations' selects into vector blends (results are
# unchanged: PyTorch never unmasks floating-point traps).
CXX_FLAGS = ["-O3", "-fno-trapping-math", "-fno-math-errno"]
NVCC_FLAGS = ["-O3", "--use_fast_math"]
# Compiled for when no GPU is visible (a Docker build step, a login node) and TORCH_CUDA_ARCH_LIST is unset:
# A100 and H100 code, plus PTX that newer GPUs compile at load.
DEFAULT_CUDA_ARCHS = "8.0;9.0+PTX"


def switched_off(value: Optional[str]) -> bool:
    """True for the spellings of "off" that gan_fast.config accepts in its on/off variables (0, false, off, no):
    ``setup.py`` reads GAN_FAST_BUILD_EXT / GAN_FAST_BUILD_CUDA with this, before gan_fast is importable."""
    return (value or "").strip().lower() in ("0", "false", "off", "no")


def openmp_flags() -> List[str]:
    return [] if sys.platform in ("darwin", "win32") else ["-fopenmp"]


def source_dir() -> Optional[Path]:
    """The directory holding the kernel sources: ``gan_fast/csrc`` in a wheel, ``csrc/`` in a checkout."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "csrc", package.parent / "csrc"):
        if candidate.is_dir() and any(p.suffix == ".cpp" for p in candidate.iterdir()):
            return candidate
    return None


def source_files(directory=None) -> List[Path]:
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


def cuda_plan(torch, cuda_home: Optional[str], has_cu: bool, allowed: bool) -> Tuple[bool, str]:
    """(compile the CUDA kernels?, why not): the same decision for ``setup.py`` and the JIT build.

    ``cuda_home``: ``torch.utils.cpp_extension.CUDA_HOME`` (where nvcc was found); ``allowed``: False under
    ``GAN_FAST_BUILD_CUDA=0``."""
    if not has_cu:
        return False, "the sources hold no CUDA kernels"
    if not allowed:
        return False, "built with GAN_FAST_BUILD_CUDA=0"
    if torch.version.cuda is None:
        return False, "torch is a CPU build (torch.version.cuda is None)"
    if cuda_home is None:
        return False, "no CUDA toolkit was found when the extension was built (nvcc; set CUDA_HOME)"
    return True, ""


def cuda_arch_default(torch, environ=os.environ) -> Optional[str]:
    """The ``TORCH_CUDA_ARCH_LIST`` a CUDA build must set, or None to leave torch's own choice.

    Unset, torch compiles for the visible GPUs, and with none visible its arch detection fails (an
    ``IndexError`` in ``_get_cuda_arch_flags``): then :data:`DEFAULT_CUDA_ARCHS`."""
    if environ.get("TORCH_CUDA_ARCH_LIST", "").strip():
        return None
    try:
        visible = torch.cuda.device_count()
    except Exception:  # a driver that cannot be queried: no GPU for this build
        visible = 0
    return None if visible else DEFAULT_CUDA_ARCHS


def cuda_arch_notice(archs: str) -> str:
    """The one line a CUDA build prints when it compiles for :func:`cuda_arch_default`'s list."""
    return (f"gan_fast: no GPU is visible: compiling the CUDA kernels for TORCH_CUDA_ARCH_LIST={archs} "
            "(set TORCH_CUDA_ARCH_LIST to choose)")

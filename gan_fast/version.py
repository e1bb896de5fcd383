"""gan_fast's version and the versions of its dependencies it supports (imports nothing of gan_fast).

Supported, and tested (README's version table says how and at which commit): torch >= 2.11 with triton >= 3.6,
on Python >= 3.11 — torch 2.13 + triton 3.9 on Python 3.11 (CI: the whole suite), torch 2.11 + triton 3.6 on
Python 3.12 (the GPU machine's stack: the whole suite once per release, the smoke subset by ``.ci/versions``).
"""

import re
from typing import Optional, Tuple

__version__ = "0.1.0"

MIN_TORCH = (2, 11)
MIN_TRITON = (3, 6)
MIN_PYTHON = (3, 11)
# Triton's interpreter before 3.9 converts one-element numpy arrays with int(), which numpy 2.4 refuses.
INTERPRETER_NUMPY_LIMIT = {"triton_below": (3, 9), "numpy_below": (2, 4)}


def parse(version: str) -> Tuple[int, int]:
    """(major, minor) of a version string such as '2.13.0+cpu'."""
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        raise ValueError(f"not a version: {version!r}")
    return int(match.group(1)), int(match.group(2))


def torch_problem(torch_version: str) -> Optional[str]:
    """Why this torch is outside the supported range, or None."""
    if parse(torch_version) < MIN_TORCH:
        return (f"gan_fast {__version__} needs torch >= {MIN_TORCH[0]}.{MIN_TORCH[1]} (with triton >= "
                f"{MIN_TRITON[0]}.{MIN_TRITON[1]}, Python >= {MIN_PYTHON[0]}.{MIN_PYTHON[1]}); this is torch "
                f"{torch_version}: pip install 'torch>={MIN_TORCH[0]}.{MIN_TORCH[1]}'")
    return None


def interpreter_problem(triton_version: str, numpy_version: str) -> Optional[str]:
    """Why Triton's interpreter (the CPU test mode) cannot run with this numpy, or None."""
    lim = INTERPRETER_NUMPY_LIMIT
    if parse(triton_version) < lim["triton_below"] and parse(numpy_version) >= lim["numpy_below"]:
        return (f"triton {triton_version}'s interpreter cannot run with numpy {numpy_version} (it converts "
                f"one-element arrays with int(), which numpy >= 2.4 refuses): install 'numpy<2.4' "
                f"(.ci/constraints-triton-pre3.9.txt) or triton >= 3.9")
    return None

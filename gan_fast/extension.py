"""Loading the optional compiled extension ``gan_fast._C``.

Until csrc/ holds kernels this only reports that no extension is present;
the prebuilt-or-JIT loader lives here so backend selection has one place to ask.
"""

from __future__ import annotations

from typing import Tuple


def status() -> Tuple[bool, str]:
    """(loaded, reason-if-not)."""
    return False, "the gan_fast C++ extension is not part of this build"


def has_cuda() -> bool:
    """True when the loaded extension carries CUDA kernels."""
    return False

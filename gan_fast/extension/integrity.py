"""Is a built library whole, and what was it built from? Checked before it is loaded.

A shared library cut short (an interrupted copy, a full disk, a cache sync) or overwritten maps fine and
then crashes the process (SIGBUS) on its first op call. So, before loading, :func:`library_problem` checks
its size against what its ELF headers say the file holds (program segments and section headers) and, where
one was recorded when it was built, its sha256: ``<library>.sha256`` next to a prebuilt library (written by
``setup.py``, which may add ``key=value`` lines such as ``cuda_reason=...``), the ``gan_fast_build_ok``
marker of a JIT build. :func:`embedded_build` reads the build-info string that ``csrc/ops.cpp`` compiles
into the library (source hash, CUDA or not) from its bytes, without loading it.

Imports only the standard library (``setup.py`` loads this file standalone).
"""

import hashlib
import os
import re
import struct
import sys
from pathlib import Path
from typing import Dict, Optional, Tuple

DIGEST_SUFFIX = ".sha256"  # the build record next to a prebuilt library
_DIGEST_RE = re.compile(r"sha256=([0-9a-f]{64}) size=(\d+)")
_BUILD_RE = re.compile(rb"gan_fast_source_hash=(h[0-9a-f]{16}|unknown);cuda=([01])\x00")


def library_digest(data: bytes) -> str:
    """The digest line recorded for a built library: ``sha256=<hex> size=<bytes>``."""
    return f"sha256={hashlib.sha256(data).hexdigest()} size={len(data)}"


def write_digest_file(library: str, **notes: str) -> str:
    """Records the digest of ``library`` (and ``key=value`` lines for ``notes``) in ``<library>.sha256``,
    atomically; returns its path. ``setup.py`` calls this after a build."""
    path = library + DIGEST_SUFFIX
    lines = [library_digest(Path(library).read_bytes())]
    lines += [f"{key}={' '.join(str(value).split())}" for key, value in notes.items()]
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def record_notes(text: Optional[str]) -> Dict[str, str]:
    """The ``key=value`` lines of a build record after its digest line."""
    lines = (text or "").splitlines()[1:]
    return dict(line.split("=", 1) for line in lines if "=" in line)


def embedded_build(data: bytes) -> Optional[Tuple[str, bool]]:
    """(source hash, has CUDA kernels) of a library's bytes; None when it holds no single build-info string.
    Only the whole NUL-terminated string counts (an optimiser may also store garbled overlapping copies)."""
    found = {(m.group(1).decode(), m.group(2) == b"1") for m in _BUILD_RE.finditer(data)}
    return found.pop() if len(found) == 1 else None


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

    ``recorded``: the build record written when it was built (its first line :func:`library_digest`), if
    any. Without one, only the structure is checked (ELF files: the size against their headers)."""
    try:
        data = Path(path).read_bytes() if data is None else data
    except OSError as exc:
        return f"it cannot be read ({exc})"
    if recorded is not None:
        match = _DIGEST_RE.search(recorded)
        if match is None:
            return f"the digest recorded for it is unreadable ({recorded.strip()[:100]!r})"
        if library_digest(data) != match.group(0):
            return (f"its content does not match the digest recorded when it was built ({len(data)} bytes, "
                    f"{match.group(2)} when built)")
    if data[:4] == b"\x7fELF" or sys.platform.startswith("linux"):
        return _elf_problem(data)
    return None

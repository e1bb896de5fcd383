"""A damaged compiled extension costs one warning and ``ref``, never a crash.

A shared library cut short (an interrupted copy, a full disk, a cache sync)
maps fine and then kills the process with SIGBUS on the first call into the
missing pages. gan_fast checks a library before loading it (its size against
its ELF headers, and the digest recorded when it was built). Here copies of the
built library are cut at ten points, inside and outside its loaded segments,
and one is overwritten in place; each runs in its own (forked) process, as the
prebuilt ``gan_fast._C`` (with and without its recorded digest) or as a
JIT-cached build (which gan_fast then deletes and tries to build again, with a
compiler that fails here). Every process must exit normally after exactly one
warning, with the reference results.
"""

import importlib.machinery
import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gan_fast import extension
from gan_fast.extension import jit

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="cuts an ELF shared library")

# One process imports torch and gan_fast once (seconds), then forks a fresh process per damaged library (the
# extension is loaded on first use, so each child starts with none): each child loads its own copy and runs the
# ops; a crash shows as a signal in its exit status.
FORKER = textwrap.dedent("""
    import json, os, sys, traceback, warnings
    import torch
    import gan_fast
    from gan_fast import config, extension, ops
    assert extension._state is None, "the parent must not load the extension"

    def check(kind, directory):
        if kind == "prebuilt":
            gan_fast.__path__.insert(0, directory)  # the damaged copy shadows the installed gan_fast._C
        x, b, img, f = torch.randn(2, 3, 4), torch.randn(3), torch.randn(1, 2, 6, 6), torch.tensor([1.0, 3.0, 3.0, 1.0])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(2):
                y = ops.bias_act(x, b, act="lrelu")
                z = ops.upfirdn2d(img, f, up=2)
        equal = (torch.equal(y, ops.bias_act(x, b, act="lrelu", impl="ref")),
                 torch.equal(z, ops.upfirdn2d(img, f, up=2, impl="ref")))
        return dict(equal=equal, warnings=[str(w.message) for w in caught], status=list(extension.status()))

    for case in json.loads(sys.argv[1]):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.environ.update(case["env"])
                config._settings.__init__()  # the settings are read from the environment once: read them again
                result = check(case["kind"], case["dir"])
                code = 0
            except BaseException:
                result = dict(error=traceback.format_exc())
            finally:
                with open(case["out"], "w") as fh:
                    json.dump(result, fh)
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(json.dumps(dict(name=case["name"], rc=os.waitstatus_to_exitcode(status))), flush=True)
""")


def _loaded_segments(data):
    """[(offset, size)] of the PT_LOAD segments of a 64-bit little-endian ELF file (read independently here)."""
    assert data[:6] == b"\x7fELF\x02\x01", "expected a 64-bit little-endian ELF library"
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    out = []
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 1:
            out.append((p_offset, p_filesz))
    return out


def _cut_points(data):
    """(name, bytes of the damaged library): ten cuts, inside and outside the loaded segments, and one overwrite."""
    segments = _loaded_segments(data)
    end = max(o + s for o, s in segments)
    assert end < len(data), "the library should hold unloaded data (symbols) after its segments"
    text = max(segments, key=lambda seg: seg[1])  # the largest: code
    cuts = {"empty": 0, "in the ELF ident": 7, "in the ELF header": 40, "in the program headers": 300,
            "in the code": text[0] + text[1] // 2, "at the start of the last segment": segments[-1][0] + 8,
            "one byte short of the loaded end": end - 1, "at the loaded end": end,
            "in the symbols": (end + len(data)) // 2, "one byte short": len(data) - 1}
    assert all(0 <= n < len(data) for n in cuts.values())
    damaged = [(f"cut {where} ({n} bytes)", data[:n]) for where, n in cuts.items()]
    page = text[0] + text[1] // 2 // 4096 * 4096
    damaged.append(("a page of the code zeroed", data[:page] + bytes(4096) + data[page + 4096:]))
    return damaged


def _variants(damaged):
    """(name, kind, with digest, bytes): the damaged copies as prebuilt (with and without the recorded digest,
    which only the overwrite needs) or as a JIT-cached build."""
    kinds = [("prebuilt", True), ("jit", True), ("prebuilt", False)]
    out = []
    for i, (name, data) in enumerate(damaged):
        kind, digest = kinds[i % len(kinds)] if "zeroed" not in name else ("prebuilt", True)
        out.append((name, kind, digest, data))
    return out


def _case(tmp, name, kind, digest, data, whole):
    """Writes the damaged library where the child will find it; the child's case description."""
    directory = tmp / name.replace(" ", "_").replace("(", "").replace(")", "")
    if kind == "prebuilt":
        directory.mkdir(parents=True)
        library = directory / ("_C" + importlib.machinery.EXTENSION_SUFFIXES[0])  # found as gan_fast._C
        library.write_bytes(data)
        if digest:
            Path(str(library) + extension.DIGEST_SUFFIX).write_text(extension.library_digest(whole) + "\n")
        env = dict(GAN_FAST_EXT="prebuilt")
    else:  # a finished JIT build in a cache of its own; rebuilding it fails (no usable compiler)
        build_dir = directory / "ext" / jit.build_dir(extension.source_hash(), False).name
        build_dir.mkdir(parents=True)
        (build_dir / "gan_fast_C.so").write_bytes(data)
        marker = "gan_fast_C.so\n" + (extension.library_digest(whole) + "\n" if digest else "")
        (build_dir / "gan_fast_build_ok").write_text(marker)
        env = dict(GAN_FAST_EXT="jit", GAN_FAST_CACHE_DIR=str(directory), GAN_FAST_BUILD_CUDA="0", CXX="/bin/false")
    return dict(name=name, kind=kind, dir=str(directory), env=env, out=str(tmp / f"{directory.name}.json"))


@pytest.mark.slow
def test_damaged_library_falls_back_to_ref_with_one_warning(tmp_path):
    ok, why = extension.status()
    assert ok, why
    whole = Path(extension.info()["path"]).read_bytes()
    cases = [_case(tmp_path, name, kind, digest, data, whole) for name, kind, digest, data in
             _variants(_cut_points(whole))]
    env = dict(os.environ)
    env.pop("GAN_FAST_IMPL", None)
    proc = subprocess.run([sys.executable, "-c", FORKER, json.dumps(cases)], env=env, cwd=str(REPO),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    exits = {r["name"]: r["rc"] for r in map(json.loads, proc.stdout.splitlines())}
    failures = []
    for case in cases:
        rc = exits.get(case["name"])
        result = json.loads(Path(case["out"]).read_text()) if Path(case["out"]).exists() else {}
        ours = [w for w in result.get("warnings", []) if "gan_fast" in w]
        good = (rc == 0 and result.get("equal") == [True, True] and len(result["warnings"]) == 1 and len(ours) == 1
                and result["status"][0] is False and "damaged" in result["status"][1])
        if not good:
            failures.append(f"{case['name']} as {case['kind']} ({case['env']}): exit {rc}: {result}")
    assert not failures, "\n\n".join(failures) + "\n" + proc.stderr[-3000:]


def test_library_problem_on_every_cut(tmp_path):
    """In-process: the check itself, at every cut point, with and without the recorded digest."""
    whole = Path(extension.info()["path"]).read_bytes()
    recorded = extension.library_digest(whole)
    lib = tmp_path / "lib.so"
    lib.write_bytes(whole)
    assert extension.library_problem(str(lib)) is None
    assert extension.library_problem(str(lib), recorded) is None
    for name, data in _cut_points(whole):
        lib.write_bytes(data)
        assert extension.library_problem(str(lib), recorded) is not None, name
        if "zeroed" not in name:  # same size: only the digest can tell
            assert "ELF" in extension.library_problem(str(lib)), name
    assert "cannot be read" in extension.library_problem(str(tmp_path / "missing.so"))


def test_digest_file_roundtrip(tmp_path):
    lib = tmp_path / "lib.so"
    lib.write_bytes(Path(extension.info()["path"]).read_bytes())
    path = extension.write_digest_file(str(lib))
    assert path == str(lib) + ".sha256" and extension.library_problem(str(lib), Path(path).read_text()) is None
    assert Path(path).read_text() == extension.library_digest(lib.read_bytes()) + "\n"
    assert "unreadable" in extension.library_problem(str(lib), "sha256=12 size=3")
    if extension.info()["how"] == "prebuilt":  # setup.py recorded the installed library's digest
        recorded = Path(extension.info()["path"] + extension.DIGEST_SUFFIX).read_text()
        assert extension.library_problem(extension.info()["path"], recorded) is None

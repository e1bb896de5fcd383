"""The compiled extension's loader: build identity, fallback on a broken toolchain, locks, switches.

The environment-changing cases run in subprocesses (an extension, once loaded,
cannot be unloaded, and a failed status is kept for the life of a process).
The CUDA sources are compile-checked by csrc/check_cuda.sh, which .ci/run calls.
"""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from gan_fast import extension
from gan_fast.extension import integrity, jit

REPO = Path(__file__).resolve().parents[1]


def _run(code, timeout=240, **env):
    full = dict(os.environ)
    full.pop("GAN_FAST_IMPL", None)
    full.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full, cwd=str(REPO),
                          capture_output=True, text=True, timeout=timeout)


def test_loaded_library_was_built_from_these_sources():
    ok, why = extension.status()
    assert ok, why
    info = extension.info()
    assert info["how"] in ("prebuilt", "jit-built", "jit-cached")
    assert Path(info["source_dir"]) == REPO / "csrc" or Path(info["source_dir"]).name == "csrc"
    assert torch.ops.gan_fast.build_info() == f"gan_fast_source_hash={extension.source_hash()};cuda=" + (
        "1" if extension.has_cuda() else "0")
    assert integrity.embedded_build(Path(info["path"]).read_bytes())[0] == extension.source_hash()


def test_source_hash_tracks_content(tmp_path):
    (tmp_path / "a.cpp").write_text("int a;")
    (tmp_path / "b.h").write_text("#pragma once")
    (tmp_path / "notes.txt").write_text("not a source")
    files = extension.source_files(tmp_path)
    assert [p.name for p in files] == ["a.cpp", "b.h"]
    h = extension.source_hash(files)
    assert h.startswith("h") and len(h) == 17
    (tmp_path / "notes.txt").write_text("changed")
    assert extension.source_hash(extension.source_files(tmp_path)) == h
    (tmp_path / "b.h").write_text("#pragma once\n")
    assert extension.source_hash(extension.source_files(tmp_path)) != h


def test_embedded_hash_ignores_fragments(tmp_path):
    # An optimiser may also store the string as overlapping immediates (a garbled copy); only the
    # whole NUL-terminated string counts.
    data = (b"\x00gan_fast_source_hash=h0123456789ab89abcdef;cuda=0build_info\x00junk"
            b"gan_fast_source_hash=h0123456789abcdef;cuda=1\x00")
    assert integrity.embedded_build(data) == ("h0123456789abcdef", True)
    assert integrity.embedded_build(b"no build info here") is None


def test_broken_compiler_falls_back_to_ref_with_one_warning(tmp_path):
    """CXX=/bin/false, a fresh cache holding a stale torch build baton: no hang, one warning, ref results."""
    code = f"""
        import warnings, torch
        from gan_fast import extension, ops, backend
        from gan_fast.reference.bias_act import bias_act as ref_bias_act
        # A baton left by a killed build would make torch wait forever; the loader must clear it.
        build_dir = extension.jit.build_dir(extension.source_hash(), False)
        build_dir.mkdir(parents=True)
        (build_dir / "lock").write_text("")
        x, b = torch.randn(2, 3, 4), torch.randn(3)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                y = ops.bias_act(x, b, act="lrelu")
                z = ops.upfirdn2d(torch.randn(1, 2, 5, 5), torch.ones(3))
        assert torch.equal(y, ref_bias_act(x, b, 1, "lrelu", 0.2, 2 ** 0.5, None))
        ours = [w for w in caught if "gan_fast" in str(w.message)]
        print("WARNINGS", len(caught), len(ours))
        print("MESSAGE", ours[0].message)
        try:
            ops.bias_act(x, b, impl="cpp")
        except backend.BackendUnavailableError as exc:
            print("EXPLICIT", exc)
        print("STATUS", extension.status())
    """
    start = time.monotonic()
    proc = _run(code, timeout=180, CXX="/bin/false", GAN_FAST_EXT="jit", GAN_FAST_CACHE_DIR=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.monotonic() - start < 120
    out = proc.stdout
    assert "WARNINGS 1 1" in out, out
    message = out.split("MESSAGE", 1)[1].split("\n", 1)[0]
    assert "could not be built" in message and "/bin/false" in message and "Fix:" in message
    assert "reference implementation" in message
    assert "EXPLICIT" in out and "could not be built" in out.split("EXPLICIT", 1)[1]
    assert "STATUS (False" in out
    assert proc.stderr.count("gan_fast: building the C++ extension for torch") == 1, proc.stderr


def test_switches_disable_loading_and_building(tmp_path):
    code = """
        from gan_fast import extension
        print("STATUS", extension.status())
    """
    off = _run(code, GAN_FAST_EXT="0")
    assert "STATUS (False" in off.stdout and "GAN_FAST_EXT=0" in off.stdout, off.stdout + off.stderr
    nobuild = _run(code, GAN_FAST_EXT="jit", GAN_FAST_BUILD_EXT="0", GAN_FAST_CACHE_DIR=str(tmp_path))
    assert "STATUS (False" in nobuild.stdout and "GAN_FAST_BUILD_EXT=0" in nobuild.stdout, nobuild.stdout
    assert not any(tmp_path.iterdir())  # nothing was built


@pytest.mark.slow  # a full JIT build of the extension where it was prebuilt (minutes on 2 cores)
def test_jit_cache_is_reused_without_a_compiler(tmp_path):
    """A finished JIT build loads in a new process without compiling (the compiler is not even needed)."""
    code = """
        from gan_fast import extension
        print("STATUS", extension.status(), extension.info()["how"])
    """
    env = dict(GAN_FAST_EXT="jit")
    if extension.info()["how"] == "prebuilt":  # (CI) build the JIT cache first, CPU kernels only, in a fresh dir
        env.update(GAN_FAST_CACHE_DIR=str(tmp_path), GAN_FAST_BUILD_CUDA="0")
        built = _run(code, timeout=600, **env)
        assert "STATUS (True, '') jit-built" in built.stdout, built.stdout + built.stderr[-2000:]
    elif os.environ.get("GAN_FAST_CACHE_DIR"):
        env["GAN_FAST_CACHE_DIR"] = os.environ["GAN_FAST_CACHE_DIR"]
    proc = _run(code, CXX="/bin/false", **env)
    assert "STATUS (True, '') jit-cached" in proc.stdout, proc.stdout + proc.stderr[-2000:]


@pytest.mark.skipif(sys.platform == "win32", reason="uses fcntl to hold the lock from another process")
def test_build_lock_waits_then_gives_up(tmp_path):
    lock = tmp_path / "x.lock"
    lock.write_text("")  # a lock file left behind by a dead process is not held: acquired at once
    with jit.file_lock(lock, timeout=1):
        pass
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, sys, time
        fd = os.open({str(lock)!r}, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("held", flush=True)
        time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        start, waits = time.monotonic(), []
        with pytest.raises(TimeoutError, match="GAN_FAST_BUILD_TIMEOUT"):
            with jit.file_lock(lock, timeout=0.5, on_wait=lambda: waits.append(1)):
                pass
        assert time.monotonic() - start < 5
        assert waits == [1]  # told once that it waits
    finally:
        holder.kill()
        holder.wait()
    with jit.file_lock(lock, timeout=5):  # released when its holder died
        pass


def test_check_cuda_script_skips_without_nvcc():
    proc = subprocess.run(["bash", str(REPO / "csrc" / "check_cuda.sh")], env=dict(os.environ, NVCC="/nonexistent/nvcc"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "SKIP" in proc.stdout


@pytest.mark.parametrize("args,match", [
    ((2 ** 62, 1, 1, 1, 0, 0, 0, 0), "upsampled size along x"),
    ((1, 2 ** 62, 1, 1, 0, 0, 0, 0), "upsampled size along y"),
    ((1, 1, 1, 1, 2 ** 62, 2 ** 62, 0, 0), "padding along x"),
    ((1, 1, 1, 1, 0, 0, -2 ** 63, 0), "padding along y"),
    ((2 ** 40, 2 ** 40, 1, 1, 0, 0, 0, 0), "more elements than int64"),
])
def test_cpp_upfirdn2d_checks_output_size(args, match):
    """The C++ kernel checks its output size before allocating (2**62 once wrapped around to a tiny tensor)."""
    assert extension.status()[0]
    x, f = torch.randn(1, 2, 5, 5), torch.ones(3, 3)
    with pytest.raises(RuntimeError, match=match):
        torch.ops.gan_fast.upfirdn2d_fwd(x, f, *args, False, 1.0)
    y = torch.ops.gan_fast.upfirdn2d_fwd(x, f, 2, 2, 1, 1, 1, 1, 1, 1, False, 1.0)  # a sane call still runs
    assert y.shape == (1, 2, 10, 10)

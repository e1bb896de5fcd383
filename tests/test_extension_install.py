"""What the extension loader says and does in each install mode, and setup.py's build decisions.

The first-use builds here are simulated: ``torch.utils.cpp_extension.load`` is replaced, in a subprocess, by
one that behaves as torch 2.4's (it leaves ``gan_fast_C_v1.so``, a copy of the library this process loaded,
in the build directory, loads it and returns None), so each case takes seconds, not a compile. The real JIT
build is tested by tests/test_extension_build.py.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from gan_fast import extension
from gan_fast.extension import jit, sources

REPO = Path(__file__).resolve().parents[1]
NOTICE = f"gan_fast: building the C++ extension for torch {torch.__version__} (first use, a few minutes; " \
         "GAN_FAST_EXT=0 skips it)"
WAITING = "gan_fast: waiting for another process's build of the C++ extension"

# Prepended to a subprocess's code: torch 2.4's cpp_extension.load (builds, loads, returns None), after DELAY
# seconds, or once the file named by DELAY exists.
FAKE_BUILD = """
import os, shutil, sys, time
import torch
from torch.utils import cpp_extension
LIBRARY, DELAY = sys.argv[1], sys.argv[2]

def _fake_load(name, build_directory, **kwargs):
    if os.sep in DELAY:
        deadline = time.monotonic() + 120
        while not os.path.exists(DELAY) and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        time.sleep(float(DELAY))
    target = os.path.join(build_directory, name + "_v1.so")
    shutil.copyfile(LIBRARY, target)
    torch.ops.load_library(target)
    return None

cpp_extension.load = _fake_load
"""
# (torch.utils.cpp_extension is imported by gan_fast with its import-time notes silenced; FAKE_BUILD imports it
# first, so it silences them as gan_fast does: a CUDA torch with no GPU logs "No CUDA runtime is found".)
FAKE_BUILD = "import logging\nlogging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)\n" + FAKE_BUILD

# Hides the installed gan_fast._C, as after `pip install .` under build isolation.
NO_PREBUILT = """
import importlib.util
_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name == "gan_fast._C" else _find_spec(name, *a)
"""

REPORT = """
from gan_fast import extension
info = extension.info()
print("INFO " + json.dumps({k: info.get(k) for k in ("loaded", "reason", "how", "path", "notes", "summary")}))
"""


def _library():
    ok, why = extension.status()
    if not ok:
        pytest.skip(f"no built extension to copy: {why}")
    return extension.info()["path"]


def _env(**env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("GAN_FAST_")}
    full.update(env)
    return full


def _python(parts, delay=0.0, **env):
    """The command line running the code ``parts`` (each dedented) with FAKE_BUILD's arguments, and its env."""
    code = "\n".join(textwrap.dedent(part) for part in ((parts,) if isinstance(parts, str) else parts))
    return [sys.executable, "-c", "import json\n" + code, _library(), str(delay)], _env(**env)


def _run(parts, delay=0.0, timeout=180, **env):
    args, full = _python(parts, delay, **env)
    proc = subprocess.run(args, env=full, cwd=str(REPO), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    return proc


def _info(proc):
    return json.loads(proc.stdout.split("INFO ", 1)[1].splitlines()[0])


# ------------------------------------------------------------------------------------------------ cuda_status


def test_cuda_status_on_a_cpu_torch():
    if torch.version.cuda is not None:
        pytest.skip("torch is a CUDA build here")
    ok, why = extension.status()
    expected = (False, "torch is a CPU build (torch.version.cuda is None)") if ok else (False, why)
    assert extension.cuda_status() == expected
    assert not extension.has_cuda()


def test_cuda_status_names_why_the_build_has_no_cuda_kernels(monkeypatch):
    _library()
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setitem(extension._info, "cuda", False)
    monkeypatch.setitem(extension._info, "cuda_reason", "built with GAN_FAST_BUILD_CUDA=0")
    assert extension.cuda_status() == (False, "the extension was built without CUDA kernels: built with "
                                              "GAN_FAST_BUILD_CUDA=0")
    monkeypatch.setitem(extension._info, "cuda", True)
    assert extension.cuda_status() == (True, "") and extension.has_cuda()


@pytest.mark.parametrize("cuda,home,has_cu,allowed,expected", [
    ("12.8", "/usr/local/cuda", True, True, (True, "")),
    (None, "/usr/local/cuda", True, True, (False, "torch is a CPU build (torch.version.cuda is None)")),
    ("12.8", None, True, True, (False, "no CUDA toolkit was found when the extension was built (nvcc; set CUDA_HOME)")),
    ("12.8", "/usr/local/cuda", True, False, (False, "built with GAN_FAST_BUILD_CUDA=0")),
    ("12.8", "/usr/local/cuda", False, True, (False, "the sources hold no CUDA kernels")),
])
def test_cuda_plan_reasons(cuda, home, has_cu, allowed, expected):
    fake_torch = SimpleNamespace(version=SimpleNamespace(cuda=cuda))
    assert sources.cuda_plan(fake_torch, home, has_cu, allowed) == expected


def _torch_with_gpus(count):
    def device_count():
        if count is None:
            raise RuntimeError("the driver cannot be queried")
        return count

    return SimpleNamespace(version=SimpleNamespace(cuda="12.8"), cuda=SimpleNamespace(device_count=device_count))


@pytest.mark.parametrize("gpus,mode,expected", [
    (1, "auto", (True, "")),
    (0, "auto", (False, jit.NO_GPU)),
    (None, "auto", (False, jit.NO_GPU)),
    (0, "1", (True, "")),
    (1, "0", (False, "built with GAN_FAST_BUILD_CUDA=0")),
])
def test_a_first_use_build_compiles_cuda_kernels_only_where_a_gpu_is_visible(gpus, mode, expected):
    """A process that sees no GPU cannot run the CUDA kernels, and they are most of the build's minutes: its
    first-use build compiles the CPU kernels only (into the 'cpu' build directory, so a process with a GPU
    builds its own), unless GAN_FAST_BUILD_CUDA=1. setup.py builds them regardless (test_setup_* below)."""
    assert jit.cuda_plan(_torch_with_gpus(gpus), "/usr/local/cuda", True, mode) == expected


def test_build_cuda_setting_values(monkeypatch):
    from gan_fast import config

    for raw, expected in (("", "auto"), ("auto", "auto"), ("1", "1"), ("yes", "1"), ("0", "0"), ("off", "0")):
        monkeypatch.setenv("GAN_FAST_BUILD_CUDA", raw)
        assert config._Settings().build_cuda == expected
    monkeypatch.setenv("GAN_FAST_BUILD_CUDA", "sometimes")
    with pytest.raises(ValueError, match="GAN_FAST_BUILD_CUDA='sometimes' is invalid"):
        config._Settings()


# --------------------------------------------------------------------------------------- info() per install mode


def test_info_of_a_prebuilt_library():
    _library()
    if extension.info()["how"] != "prebuilt":
        pytest.skip(f"no usable prebuilt gan_fast._C here: {'; '.join(extension.info()['notes'])}")
    proc = _run(REPORT, GAN_FAST_EXT="prebuilt")
    info = _info(proc)
    assert info["loaded"] and info["how"] == "prebuilt", info
    assert info["summary"].startswith("the prebuilt library, built at install: ")
    assert proc.stderr == ""


def test_off_says_so_and_stays_silent():
    """GAN_FAST_EXT=0, which the build-failure warning recommends: no build, no warning, no line on stderr."""
    proc = _run((REPORT, """
        import torch, warnings
        from gan_fast import ops
        from gan_fast.errors import BackendUnavailableError
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ops.bias_act(torch.randn(2, 3, 4), torch.randn(3), act="lrelu")
            ops.upfirdn2d(torch.randn(1, 2, 5, 5), torch.ones(3))
        print("WARNINGS", [str(w.message) for w in caught])
        try:
            extension.load()
        except BackendUnavailableError as exc:
            print("LOAD", exc)
    """), GAN_FAST_EXT="0")
    info = _info(proc)
    assert not info["loaded"] and "GAN_FAST_EXT=0" in info["reason"] and info["summary"].startswith("not loaded: ")
    assert "WARNINGS []" in proc.stdout, proc.stdout
    assert "LOAD the gan_fast C++ extension cannot be loaded: " in proc.stdout
    assert proc.stderr == ""


def test_info_after_an_install_that_did_not_build_it(tmp_path):
    """`pip install .` under build isolation: no gan_fast._C, a compiler present. The first use says on one line
    that it builds, info() says why; the next process loads the cached build silently."""
    first = _run((NO_PREBUILT, FAKE_BUILD, REPORT), GAN_FAST_CACHE_DIR=str(tmp_path))
    info = _info(first)
    assert info["loaded"] and info["how"] == "jit-built", info
    assert info["path"].endswith("gan_fast_C_v1.so")  # torch 2.4's load() returned None: found by name
    assert len(info["notes"]) == 1 and "the install did not build it (pip's build isolation hid torch; " \
        "`pip install --no-build-isolation" in info["notes"][0]
    assert info["summary"].startswith("built on first use (JIT) in ") and info["notes"][0] in info["summary"]
    assert first.stderr.splitlines() == [NOTICE]

    again = _run((NO_PREBUILT, FAKE_BUILD, REPORT), GAN_FAST_CACHE_DIR=str(tmp_path))
    info = _info(again)
    assert info["loaded"] and info["how"] == "jit-cached" and info["path"].endswith("gan_fast_C_v1.so"), info
    assert info["summary"].startswith("the JIT build made by an earlier first use, from ")
    assert again.stderr == ""


def test_info_without_a_compiler(tmp_path):
    proc = _run((NO_PREBUILT, REPORT), GAN_FAST_CACHE_DIR=str(tmp_path), CXX="/nonexistent/c++", GAN_FAST_BUILD_EXT="0")
    info = _info(proc)
    assert not info["loaded"] and "no C++ compiler (/nonexistent/c++; CXX selects it) was found" in info["reason"]
    assert "GAN_FAST_BUILD_EXT=0" in info["reason"]


def test_info_under_jit_mode(tmp_path):
    info = _info(_run((FAKE_BUILD, REPORT), GAN_FAST_EXT="jit", GAN_FAST_CACHE_DIR=str(tmp_path)))
    assert info["how"] == "jit-built" and info["notes"] == ["GAN_FAST_EXT=jit ignores a prebuilt library"]


# ------------------------------------------------------------------------------------------ the build notice


def test_build_notice_once_when_threads_race(tmp_path):
    proc = _run((NO_PREBUILT, FAKE_BUILD, """
        import threading
        from gan_fast import backend, extension
        barrier, results = threading.Barrier(8), []
        def first_use():
            barrier.wait()
            results.append(extension.status())
            results.append(backend.available_backends("cpu")["cpp"])
        threads = [threading.Thread(target=first_use) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        print("RESULTS", sorted(set(results)))
    """), delay=1.0, GAN_FAST_CACHE_DIR=str(tmp_path))
    assert "RESULTS [(True, '')]" in proc.stdout, proc.stdout
    assert proc.stderr.splitlines() == [NOTICE]


def test_waiting_process_says_so_once(tmp_path):
    """Two processes (DDP ranks) start on the same cache: one builds, the other says once that it waits."""
    code, go = (NO_PREBUILT, FAKE_BUILD, REPORT), tmp_path / "go"
    args, env = _python(code, str(go), GAN_FAST_CACHE_DIR=str(tmp_path))
    popen = dict(env=env, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    builder = subprocess.Popen(args, **popen)
    waiter = None
    try:
        assert builder.stderr.readline().rstrip("\n") == NOTICE  # it holds the build lock now
        waiter = subprocess.Popen(args, **popen)
        assert waiter.stderr.readline().startswith(WAITING)
        go.write_text("")  # the builder finishes its build
        out, err = builder.communicate(timeout=120)
        waiter_out, waiter_err = waiter.communicate(timeout=120)
    finally:
        for proc in (builder, waiter):
            if proc is not None:
                proc.kill()
    assert builder.returncode == 0 and err == "", err
    assert waiter.returncode == 0 and waiter_err == "", waiter_err  # the one line was all it said
    assert _info(SimpleNamespace(stdout=out))["how"] == "jit-built"
    assert _info(SimpleNamespace(stdout=waiter_out))["how"] == "jit-cached"


# ------------------------------------------------------------------- torch 2.4: load() returns None (issue 23)


def test_compile_finds_the_library_when_load_returns_none(tmp_path, monkeypatch):
    from torch.utils import cpp_extension

    def load_as_torch_2_4(name, build_directory, **kwargs):
        old, new = Path(build_directory, name + ".so"), Path(build_directory, name + "_v1.so")
        old.write_bytes(b"an earlier attempt")
        os.utime(old, (time.time() - 60, time.time() - 60))
        new.write_bytes(b"this build")
        return None

    src = sources.source_dir()
    monkeypatch.setattr(cpp_extension, "load", load_as_torch_2_4)
    path = jit.compile(src, sources.source_files(src), "h0", False, tmp_path, False)
    assert path == str(tmp_path / "gan_fast_C_v1.so")

    monkeypatch.setattr(cpp_extension, "load", lambda name, build_directory, **kw: str(tmp_path / "gan_fast_C.so"))
    assert jit.compile(src, sources.source_files(src), "h0", False, tmp_path, False) == str(tmp_path / "gan_fast_C.so")

    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(cpp_extension, "load", lambda **kw: None)
    with pytest.raises(FileNotFoundError, match="left no library"):
        jit.compile(src, sources.source_files(src), "h0", False, empty, False)


# ---------------------------------------------------------------------------------------- setup.py's decisions


@pytest.fixture
def setup_py(monkeypatch):
    """setup.py imported as a module (setuptools.setup mocked: importing it must not run it)."""
    import setuptools

    calls = []
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: calls.append(kwargs))
    spec = importlib.util.spec_from_file_location("gan_fast_setup_under_test", REPO / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert calls == []
    return module


@pytest.mark.parametrize("visible,env,expected", [
    (0, {}, "8.0;9.0+PTX"),  # no GPU (a Docker build, a login node): torch's own detection would fail
    (RuntimeError("no driver"), {}, "8.0;9.0+PTX"),
    (2, {}, None),  # torch compiles for the visible GPUs
    (0, {"TORCH_CUDA_ARCH_LIST": "8.6"}, None),  # the user's choice
])
def test_setup_cuda_archs_without_a_gpu(setup_py, monkeypatch, visible, env, expected):
    def device_count():
        if isinstance(visible, Exception):
            raise visible
        return visible

    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "device_count", device_count)
    assert setup_py.cuda_build_plan(torch, "/usr/local/cuda", env) == (True, "", expected)
    assert setup_py.cuda_build_plan(torch, None, env)[:2] == (False, "no CUDA toolkit was found when the extension "
                                                                      "was built (nvcc; set CUDA_HOME)")
    for off in ("0", "off", "False"):  # the spellings gan_fast.config accepts
        assert setup_py.cuda_build_plan(torch, "/usr/local/cuda", dict(env, GAN_FAST_BUILD_CUDA=off)) == (
            False, "built with GAN_FAST_BUILD_CUDA=0", None)
    assert setup_py.cuda_build_plan(torch, "/usr/local/cuda", dict(env, GAN_FAST_BUILD_CUDA="auto"))[0]
    monkeypatch.setattr(torch.version, "cuda", None)
    assert setup_py.cuda_build_plan(torch, "/usr/local/cuda", env) == (
        False, "torch is a CPU build (torch.version.cuda is None)", None)


def test_setup_builds_cuda_and_cpu_kernels_with_no_gpu_visible(setup_py, monkeypatch, capsys, tmp_path):
    """A CUDA torch, nvcc, no GPU: one CUDAExtension with every source, compiled for the default archs, and one
    line saying so."""
    from torch.utils import cpp_extension

    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "")
    ext_modules, cmdclass = setup_py.extension_build({})
    assert os.environ["TORCH_CUDA_ARCH_LIST"] == "8.0;9.0+PTX"
    assert capsys.readouterr().err.splitlines() == [sources.cuda_arch_notice("8.0;9.0+PTX")]
    (ext,) = ext_modules
    assert {Path(s).suffix for s in ext.sources} == {".cpp", ".cu"} and "build_ext" in cmdclass
    assert "-DGAN_FAST_WITH_CUDA" in ext.extra_compile_args["cxx"]
    assert setup_py.extension_build({"GAN_FAST_BUILD_EXT": "0"}) == ([], {})
    assert setup_py.extension_build({"GAN_FAST_BUILD_EXT": "no"}) == ([], {})


def test_setup_helpers_import_nothing_of_gan_fast():
    """setup.py loads gan_fast/extension/{sources,integrity}.py standalone, before gan_fast is importable."""
    code = f"""
        import importlib.util, sys
        for name in ("sources", "integrity"):
            spec = importlib.util.spec_from_file_location(name, {str(REPO / 'gan_fast' / 'extension')!r} + f"/{{name}}.py")
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("gan_fast", "torch", "numpy")))
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------------ the registration


@pytest.mark.slow  # torch.export in four processes (about 30 s on 2 cores)
def test_exported_program_runs_after_load(tmp_path):
    """The C++ ops are defined when gan_fast is imported, their kernels registered when the extension loads: a
    fresh process runs a saved ExportedProgram that calls them after `import gan_fast` and
    gan_fast.extension.load(); with the import alone it loads the program but has no kernel to run it."""
    from gan_fast import config, ops

    _library()

    class Layer(torch.nn.Module):
        def forward(self, x, b):
            return ops.bias_act(x, b, act="lrelu", impl="cpp")

    x, b = torch.randn(2, 3, 4, 4), torch.randn(3)
    with torch.no_grad():
        program = torch.export.export(Layer(), (x, b))
    assert "gan_fast.bias_act_fwd" in str(program.graph) and "build_info" not in str(program.graph)
    torch.export.save(program, str(tmp_path / "layer.pt2"))
    torch.save((x, b, Layer()(x, b)), str(tmp_path / "io.pt"))
    code = f"""
        import sys, torch
        if sys.argv[1] != "torch only":
            import gan_fast.extension
        if sys.argv[1] == "load":
            gan_fast.extension.load()
        x, b, y = torch.load({str(tmp_path / 'io.pt')!r})
        try:
            program = torch.export.load({str(tmp_path / 'layer.pt2')!r})
        except Exception as exc:
            print("LOAD FAILED", type(exc).__name__)
        else:
            try:
                print("EQUAL", torch.equal(program.module()(x, b), y))
            except NotImplementedError as exc:
                print("RUN FAILED", str(exc).splitlines()[0])
    """
    for mode, expected in (("load", "EQUAL True"), ("import", "RUN FAILED Could not run 'gan_fast::bias_act_fwd'"),
                           ("torch only", "LOAD FAILED")):
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), mode], cwd=str(REPO),
                              env=_env(GAN_FAST_CACHE_DIR=config.cache_dir()),  # where this process's build is
                              capture_output=True, text=True, timeout=180)
        assert expected in proc.stdout, mode + ": " + proc.stdout + proc.stderr[-2000:]

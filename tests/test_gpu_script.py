"""benchmarks/gpu.sh's control flow, proven on a CPU before a GPU ever sees it.

The orchestrator (benchmarks/gpu.py) runs every step as a subprocess of ``--python``; here that is a stub that
plays each command (a preflight that finds CUDA or not, a benchmark runner that only stops at SIGTERM and then
writes its JSON, pytest shards that only stop at SIGINT and then print a failure, an extension build) so that
the budget arithmetic, the step skipping and the signals are checked for real, in seconds. The real runner's
SIGTERM handling is checked last, with the real ``python -m benchmarks``.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from benchmarks import gpu

STUB = textwrap.dedent('''
    import json, os, signal, sys, time
    args = sys.argv[1:]
    mode = os.environ.get("STUB_MODE", "")
    def forever(on_signal, sig):
        signal.signal(sig, lambda *a: (on_signal(), sys.exit(3)))
        while True:
            time.sleep(0.05)
    if args[:3] == ["-m", "benchmarks.gpu", "--preflight"]:
        if mode == "slowpreflight":  # a cold start that outlasts the preflight's time: it writes nothing
            forever(lambda: None, signal.SIGINT)
        assert not any(k.startswith("GAN_FAST_") and k != "GAN_FAST_EXT" for k in os.environ), "env leaked"
        info = {"cuda": mode != "nocuda", "why": "stub: no GPU", "triton_kernel": "ok", "nvcc": "/stub/nvcc",
                "ninja": True, "python_h": True, "pytest": True, "device": "Stub GPU", "capability": [9, 0]}
        json.dump(info, open(args[3], "w"))
        sys.exit(0 if info["cuda"] else 1)
    if args[:2] == ["-m", "pip"]:
        sys.exit(1 if mode == "noinstall" else 0)
    if args[:1] == ["-c"] and "registered()" in args[1]:
        print("fast_op slow_op"); sys.exit(0)
    if args[:2] == ["-m", "gan_fast.self_test"]:
        if "slow_op" in args[-1]:
            forever(lambda: None, signal.SIGTERM)
        print("  fast_op triton ok (0.1 s)"); sys.exit(0)
    if args[:2] == ["-m", "benchmarks"]:
        out = args[args.index("--out") + 1]
        tag = args[args.index("--tag") + 1] if "--tag" in args else ""
        # as the runner names a run stopped before it completed
        path = os.path.join(out, "bench-decisive" + ("-" + tag if tag else "") + "-partial.json")
        forever(lambda: json.dump({"meta": {"interrupted": "signal 15"}, "records": []}, open(path, "w")),
                signal.SIGTERM)
    if args[:2] == ["-m", "pytest"]:
        forever(lambda: print("FAILED tests/test_x.py::test_y - AssertionError: boom\\n1 failed, 3 passed", flush=True),
                signal.SIGINT)
    if args[:1] == ["-c"] and "extension" in args[1]:
        print("EXTENSION True True"); sys.exit(0)
    if args[:2] == ["-m", "benchmarks.report"]:
        print("### Stub GPU\\n| target | where it stands | status |\\n|---|---|---|\\n| a | b | met |"); sys.exit(0)
    print("stub: unexpected command", args); sys.exit(9)
''')

SMALL_STEPS = {"preflight": (3, 1), "install": (3, 1), "self-test": (2, 1), "decisive": (3, 2), "tests": (2, 1),
               "cpp": (2, 1), "compile": (2, 1), "report": (2, 1)}


@pytest.fixture
def stub(tmp_path, monkeypatch):
    path = tmp_path / "python_stub.py"
    path.write_text(STUB)
    exe = tmp_path / "python"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} {path} \"$@\"\n")
    exe.chmod(0o755)
    monkeypatch.setattr(gpu, "STEPS", SMALL_STEPS)
    monkeypatch.setattr(gpu, "REPORT_RESERVE", 2)
    return str(exe)


def _run(stub, out, total, mode="", monkeypatch=None):
    monkeypatch.setenv("STUB_MODE", mode)
    t = time.monotonic()
    rc = gpu.main([str(out), "--total-s", str(total), "--python", stub, "--shards", "2"])
    return rc, time.monotonic() - t, (out / "gpu.log").read_text(), json.loads((out / "summary.json").read_text())


def test_without_cuda_it_stops_at_the_preflight(stub, tmp_path, monkeypatch):
    rc, took, log, summary = _run(stub, tmp_path / "out", 60, "nocuda", monkeypatch)
    assert rc == 2 and took < 10
    assert "CUDA is not available" in log and "install:" not in log and set(summary) == {"preflight", "total_s"}


def test_every_step_runs_within_the_budget_and_signals_keep_what_was_measured(stub, tmp_path, monkeypatch):
    rc, took, log, summary = _run(stub, tmp_path / "out", 40, "", monkeypatch)
    assert rc == 0
    assert took < 40 + 5  # the budget (and the signal graces)
    # the self-test process that never ends is stopped at its deadline; the other reports ok
    assert summary["self-test"]["rc"].count(None) == 1 and any(" ok" in ln for ln in summary["self-test"]["lines"])
    # the benchmark runner only stops at SIGTERM, and then writes its JSON
    assert summary["decisive"]["rc"] is None and (tmp_path / "out" / "bench-decisive-partial.json").exists()
    # pytest shards stopped with SIGINT still name their failures
    assert summary["tests"]["failures"] == ["FAILED tests/test_x.py::test_y - AssertionError: boom"] * 2
    assert summary["extension"]["built_with_cuda"] and "cpp" in summary
    assert (tmp_path / "out" / "report.md").read_text().startswith("### Stub GPU")
    assert len(os.listdir(tmp_path / "out")) <= 8  # what the device tool brings back


def test_steps_that_no_longer_fit_are_skipped_and_the_report_still_runs(stub, tmp_path, monkeypatch):
    rc, took, log, summary = _run(stub, tmp_path / "out", 9, "noinstall", monkeypatch)
    assert "staged tree" in log
    assert "SKIPPED" in log and summary["compile"]["status"] == "skipped"
    assert took < 9 + 5
    assert rc == (0 if (tmp_path / "out" / "report.md").exists() else 1)


def test_a_preflight_that_runs_out_of_time_does_not_stop_the_run(stub, tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_FAST_AUTOTUNE", "first")  # inherited settings never reach a step
    rc, took, log, summary = _run(stub, tmp_path / "out", 30, "slowpreflight", monkeypatch)
    assert summary["preflight"]["rc"] is None and "going on" in summary["preflight"]["info"]["why"]
    assert "install:" in log and "STOP" not in log


def test_every_decisive_case_exists():
    """presets.DECISIVE names cases by label: a renamed case must not silently drop out of the GPU run."""
    import torch

    from benchmarks import presets
    from benchmarks.__main__ import collect_cases
    from benchmarks.harness import dtype_name

    found = {(c.label, dtype_name(c.dtype)) for c in collect_cases("decisive", torch.device("cuda"), None)}
    assert set(presets.DECISIVE) == found


def test_gpu_sh_without_cuda_stops_within_a_minute(tmp_path):
    """The real script on this CPU machine: non-zero, in seconds, naming CUDA."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    t = time.monotonic()
    out = subprocess.run(["bash", os.path.join(root, "benchmarks", "gpu.sh"), str(tmp_path / "o")],
                         capture_output=True, text=True, env=dict(os.environ, PYTHON=sys.executable), timeout=60)
    assert out.returncode == 2 and time.monotonic() - t < 60
    assert "CUDA is not available" in out.stdout


def test_the_runner_writes_its_json_when_stopped_by_sigterm(tmp_path):
    """The real ``python -m benchmarks``: SIGTERM in the middle of a case ends the run cleanly, the case in flight
    recorded as interrupted, the rows it did not get to as well, the JSON written under the partial name."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks", "--preset", "ci", "--only", "^bias_act",
                             "--out", str(tmp_path), "--no-chart", "--no-compile"],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:  # the first measurement has started
        if "library 1/" in line:
            break
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    data = json.loads((tmp_path / "bench-ci-only-bias_act-partial.json").read_text())
    assert proc.returncode == 3 and data["meta"]["complete"] is False
    assert not (tmp_path / "bench-ci-only-bias_act.json").exists()
    assert "interrupted" in data["meta"]["interrupted"]
    assert any(r["status"] == "interrupted" for r in data["records"])
    s = data["meta"]["summary"]
    assert s["run"] + s["skipped"] + s["errored"] == s["total"] == len(data["records"])
    assert out.strip().splitlines()[-1].startswith(f"summary: {s['total']} rows: ")


def test_the_staged_tree_resolves_gan_fast_kernels_without_an_install(tmp_path):
    """The install step's fallback: from the staged tree (working directory), ``gan_fast.kernels`` and the C++
    sources resolve to the checkout's kernels/ and csrc/ with no import hook of an install (the editable finder
    is removed from sys.meta_path in the child), and the benchmarks run from there."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    stage = gpu.stage_checkout(root, str(tmp_path / "stage"))
    assert os.path.islink(os.path.join(stage, "gan_fast", "kernels"))
    assert not os.path.lexists(os.path.join(root, "gan_fast", "kernels"))  # the checkout itself is untouched
    code = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
            "import os, gan_fast, gan_fast.kernels, gan_fast.kernels.bias_act, benchmarks.naming; "
            "print(os.path.realpath(gan_fast.kernels.__file__)); print(os.path.realpath(gan_fast.__file__)); "
            "from gan_fast.extension import sources; print(sources.source_dir())")
    out = subprocess.run([sys.executable, "-c", code], cwd=stage, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=stage))
    assert out.returncode == 0, out.stderr[-2000:]
    kernels, package, csrc = out.stdout.split()
    assert kernels == os.path.realpath(os.path.join(root, "kernels", "__init__.py"))
    assert package == os.path.realpath(os.path.join(root, "gan_fast", "__init__.py"))
    assert os.path.realpath(csrc) == os.path.realpath(os.path.join(root, "csrc"))

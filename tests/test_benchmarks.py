"""The benchmark suite (benchmarks/): what the main job measures first and how it says what it did (issue 25), the
hand-written overhead baselines (issue 22), the bytes model (issue 21), file names and partial runs, and that the
suite names backends through the library's API only.

The main job itself runs once here, with a 30 s budget (marked slow); everything else takes seconds.
"""

from __future__ import annotations

import glob
import importlib
import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import OP_MODULES  # noqa: E402
from benchmarks import __main__ as runner  # noqa: E402
from benchmarks import harness, report, traffic  # noqa: E402
from benchmarks.naming import name_pattern, run_name  # noqa: E402

SUMMARY = re.compile(r"^summary: (\d+) rows: (\d+) run, (\d+) skipped, (\d+) errored")


def _run(args, timeout):
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def _fake_run(path, preset="ci", complete=True, only=None, created="2026-01-01T00:00:00+00:00", device="CPU X"):
    meta = {"preset": preset, "complete": complete, "only": only, "tag": "", "created": created, "device": device,
            "device_type": "cpu", "torch": "t", "triton": "t", "git_commit": "c"}
    rec = {"op": "bias_act", "case": "c", "dtype": "float32", "pass": "fwd", "backend": "eager", "status": "ok",
           "median_ms": 1.0, "speedup_vs_eager": 1.0, "library": True}
    with open(path, "w") as f:
        json.dump({"meta": meta, "records": [rec]}, f)


# ---------------------------------------------------------------------------------------------- the main job


@pytest.mark.slow
def test_the_main_job_measures_the_library_first_and_counts_what_it_did(tmp_path):
    """``python -m benchmarks --preset ci`` with a 30 s budget: every library row (eager, fast backends, extra
    baselines) of every case was measured before any torch.compile row; the last line counts the rows run /
    skipped / errored, summing to the total; ``complete`` only when nothing was skipped; a complete full run
    already in the folder is never replaced by a partial one."""
    full = tmp_path / "bench-ci.json"
    _fake_run(full)
    before = full.read_text()
    proc = _run(["--preset", "ci", "--budget-s", "30", "--out", str(tmp_path), "--no-chart"], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    m = SUMMARY.match(last)
    assert m, last
    total, run, skipped, errored = map(int, m.groups())
    assert run + skipped + errored == total

    complete = skipped == 0
    path = full if complete else tmp_path / "bench-ci-partial.json"
    data = json.loads(path.read_text())
    if not complete:
        assert full.read_text() == before  # the partial run left the complete one alone
    meta, records = data["meta"], data["records"]
    assert meta["complete"] is complete and len(records) == total
    assert meta["summary"]["total"] == total and meta["summary"]["run"] == run
    assert ("INCOMPLETE" in last) is (not complete)

    compiled = [r["seq"] for r in records if r["backend"] == "compile" and r.get("seq") is not None]
    library = [r for r in records if r.get("backend") not in (None, "compile")]
    started = [r["seq"] for r in library if r.get("seq") is not None]
    if compiled:  # a compile row ran: then every library row had already run
        assert all(r.get("seq") is not None for r in library), "a library row was left for after compile"
        assert max(started) < min(compiled)
    # every op's fast-path row (the first library row of each case) ran, or the budget is named as the reason
    for r in library:
        assert r["status"] in ("ok", "error") or "budget" in (r.get("reason") or ""), r
    assert meta["summary"]["library_run"] > 0


def test_a_partial_run_never_replaces_a_full_one_and_is_named_by_its_selection(tmp_path):
    """``--only`` writes ``bench-<preset>-only-<regex>.json`` beside the full run, which it leaves alone."""
    full = tmp_path / "bench-ci.json"
    _fake_run(full)
    before = full.read_text()
    proc = _run(["--preset", "ci", "--only", "overhead/gradient_norm", "--quick", "--no-chart", "--out",
                 str(tmp_path)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert full.read_text() == before
    data = json.loads((tmp_path / "bench-ci-only-overhead-gradient_norm.json").read_text())
    assert data["meta"]["only"] == "overhead/gradient_norm" and data["meta"]["complete"] is True
    assert report.is_partial(data) and "--only" in report.is_partial(data)


def test_a_run_that_measures_none_of_the_library_rows_fails(tmp_path, monkeypatch, capsys):
    """Exit status 4 (and the summary still printed) when not one eager or fast-backend row could be measured."""
    def make(device, dtype, batch):
        raise RuntimeError("inputs cannot be built here")

    case = harness.Case(op="bias_act", name="broken", shape="-", dtype=torch.float32, make=make,
                        run=lambda t, impl: t["x"], diff=(), compile=False)
    monkeypatch.setattr(runner, "collect_cases", lambda preset, device, only: [case])
    threads = torch.get_num_threads()
    try:
        rc = runner.main(["--preset", "ci", "--out", str(tmp_path), "--no-chart", "--no-bytes"])
    finally:
        torch.set_num_threads(threads)
    out, err = capsys.readouterr()
    assert rc == runner.EXIT_NOTHING_MEASURED
    assert SUMMARY.match(out.strip().splitlines()[-1]).groups() == ("2", "0", "0", "2")
    assert "could not measure any of the library's rows" in err
    data = json.loads((tmp_path / "bench-ci-partial.json").read_text())  # never replaces a run that measured
    assert data["meta"]["summary"]["library_run"] == 0 and data["meta"]["complete"] is False


def test_file_names_and_how_the_report_finds_them(tmp_path):
    assert run_name("ci") == "bench-ci"
    assert run_name("ci", "overhead") == "bench-ci-only-overhead"
    assert run_name("decisive", "bias_act|r1_step", "cpp") == "bench-decisive-only-bias_act-r1_step-cpp"
    rx = name_pattern("ci")
    assert rx.match("bench-ci.json") and rx.match("bench-ci-partial.json")
    assert rx.match("cpu-amd-epyc-1-thread-ci-2026-11-30.json")  # recorded: <device>-<name>-<date>
    assert not rx.match("bench-ci-only-overhead.json") and not rx.match("bench-stylegan2.json")
    assert name_pattern("ci", "overhead").match("bench-ci-only-overhead.json")
    assert name_pattern().match("bench-stylegan2.json")

    _fake_run(tmp_path / "bench-ci.json", created="2026-01-02T00:00:00+00:00")
    _fake_run(tmp_path / "bench-ci-only-overhead.json", only="overhead", created="2026-01-03T00:00:00+00:00")
    _fake_run(tmp_path / "bench-ci-partial.json", complete=False, created="2026-01-04T00:00:00+00:00")
    with open(tmp_path / "static-sm90-x.json", "w") as f:  # another tool's JSON in the same folder
        json.dump({"kernels": []}, f)
    found = report.find([str(tmp_path)])
    assert {os.path.basename(p) for p in found} == {"bench-ci.json", "bench-ci-only-overhead.json",
                                                    "bench-ci-partial.json"}
    assert [os.path.basename(p) for p in report.find([str(tmp_path)], preset="ci", only="overhead")] == \
        ["bench-ci-only-overhead.json"]
    runs = report.load(found)
    assert sorted(bool(report.is_partial(r)) for r in runs) == [False, True, True]


def test_partial_runs_never_feed_readme(tmp_path, capsys):
    _fake_run(tmp_path / "bench-ci.json", created="2026-01-01T00:00:00+00:00")
    _fake_run(tmp_path / "bench-ci-partial.json", complete=False, created="2026-02-01T00:00:00+00:00")
    _fake_run(tmp_path / "bench-ci-only-x.json", only="x", created="2026-03-01T00:00:00+00:00")
    assert report.main([str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "`" + str(tmp_path / "bench-ci.json") + "`" in out or "bench-ci.json" in out
    assert "bench-ci-partial.json" not in out and "bench-ci-only-x.json" not in out
    assert err.count("left out of README's results") == 2
    assert report.main([str(tmp_path), "--include-partial"]) == 0
    out, _ = capsys.readouterr()
    assert "partial:" in out


# ------------------------------------------------------------------------------------------------ summary, chart


def test_the_summary_counts_sum_to_the_total_and_say_why():
    recs = [{"status": "ok", "library": True}, {"status": "ok", "noisy": True},
            {"status": "skipped", "reason": "time budget of the run exhausted", "library": True},
            {"status": "interrupted", "reason": "interrupted (signal 15) in the compile phase"},
            {"status": "error", "error": "RuntimeError: boom (details)"}]
    s = runner.summarize(recs)
    assert (s["total"], s["run"], s["skipped"], s["errored"]) == (5, 2, 2, 1)
    assert s["skipped_why"] == {"time budget of the run exhausted": 1, "interrupted": 1}
    assert s["errored_why"] == {"RuntimeError: boom": 1}
    line = runner.summary_line(s, complete=False)
    assert SUMMARY.match(line).groups() == ("5", "2", "2", "1")
    assert "time budget" in line and "RuntimeError: boom" in line and "1 noisy" in line and "INCOMPLETE" in line


def _rows(device="CPU x"):
    base = {"op": "bias_act", "case": "c", "dtype": "float32", "pass": "fwd", "status": "ok", "device": device}
    return [dict(base, backend="eager", median_ms=2.0, q1_ms=1.9, q3_ms=2.1, iqr_ms=0.2, library=True),
            dict(base, backend="triton", median_ms=1.0, q1_ms=0.5, q3_ms=2.0, iqr_ms=1.5, library=True,
                 bytes=3_350_000_000),
            dict(base, backend="compile", median_ms=4.0, q1_ms=3.9, q3_ms=4.1, iqr_ms=0.2, eager_clock_ms=3.0),
            dict(base, backend="chain", median_ms=0.5, q1_ms=0.5, q3_ms=0.5, iqr_ms=0.0)]


def test_finalize_ratios_spread_and_bandwidth():
    recs = _rows("NVIDIA H100 80GB HBM3")
    harness.finalize(recs, "NVIDIA H100 80GB HBM3")
    eager, fast, comp, chain = recs
    assert fast["speedup_vs_eager"] == 2.0
    assert comp["speedup_vs_eager"] == 0.75  # against the eager timed with it (3.0 ms), not the first phase's
    assert fast["speedup_vs_compile"] == pytest.approx(2.0 / 0.75, rel=1e-3)
    assert fast["vs_chain"] == 0.5 and eager["vs_chain"] == 0.25
    assert fast["noisy"] is True and eager["noisy"] is False and fast["spread"] == 1.5
    assert fast["gbps"] == pytest.approx(3350.0) and fast["pct_peak"] == pytest.approx(100.0)
    recs = _rows("Some Unknown GPU")
    harness.finalize(recs, "Some Unknown GPU")
    assert recs[1]["gbps"] == pytest.approx(3350.0) and "pct_peak" not in recs[1]


def test_peak_bandwidth_table():
    assert traffic.peak_gbps("NVIDIA H100 80GB HBM3") == 3350.0
    assert traffic.peak_gbps("NVIDIA H100 PCIe") == 2000.0
    assert traffic.peak_gbps("NVIDIA H200") == 4800.0
    assert traffic.peak_gbps("NVIDIA A100-SXM4-40GB") == 1555.0
    assert traffic.peak_gbps("NVIDIA A100-SXM4-80GB") == 2039.0
    assert traffic.peak_gbps("NVIDIA H100 NVL") is None and traffic.peak_gbps("CPU AMD EPYC") is None


def test_noisy_rows_are_flagged_in_the_table_and_drawn_with_their_spread(tmp_path):
    pytest.importorskip("matplotlib")
    recs = _rows()
    harness.finalize(recs, "CPU x")
    meta = {"preset": "ci", "device": "CPU x", "device_type": "cpu", "torch": "t", "triton": "t", "complete": False}
    table = runner.format_table(recs, meta)
    assert "NOISY (IQR 150% of median" in table
    png = tmp_path / "c.png"
    assert runner.write_chart(recs, meta, str(png)) is None and png.stat().st_size > 0


# ------------------------------------------------------------------------------------------------ bytes model


def _bias_act_case(n=2, c=8, h=4):
    from benchmarks import bench_bias_act

    return bench_bias_act._case(n, c, h, torch.float32, None, "t", 0)


def test_bytes_model_of_bias_act_is_the_stated_one():
    """Every launch reads each distinct input once and writes each output once: bias_act forward fused = read x
    and b, write y; the eager chain = x + b (read x, b, write t), lrelu (read t, write u), * gain (read u, write y);
    fwd+bwd fused adds one launch reading dy, x, b and writing dx, db."""
    case = _bias_act_case()
    x, b = 2 * 8 * 4 * 4 * 4, 8 * 4
    assert traffic.count_pass(case, "triton", "triton", {}, "fwd") == (2 * x + b, "")
    assert traffic.count_pass(case, "eager", "ref", {}, "fwd") == (6 * x + b, "")
    assert traffic.count_pass(case, "triton", "triton", {}, "fwdbwd") == (5 * x + 3 * b, "")
    # eager backward: * gain (read dy, write g1), lrelu's backward (read g1, t, write g2), db = sum(g2)
    assert traffic.count_pass(case, "eager", "ref", {}, "fwdbwd") == (12 * x + 2 * b, "")
    assert traffic.count_pass(case, "eager", "ref", {}, "dbl")[0] is None


def test_counting_leaves_the_backend_choice_as_it_was():
    """Counting lifts the device checks for its own calls only: the cached choices and the checks are as before."""
    from gan_fast import backend

    status, choices, traced = backend._device_status, dict(backend._choices), dict(backend._traced)
    case = _bias_act_case()
    got = traffic.case_bytes(case, harness.Runner(torch.device("cpu"), harness.TimingConfig()).plan(case)[0])
    assert got[("fused", "", "fwd")] and got[("eager", "", "fwd")]
    assert backend._device_status is status and backend._choices == choices and backend._traced == traced
    assert torch.is_autocast_enabled("cpu") is False


def test_every_ci_case_has_its_bytes_counted():
    """Each op case of the ci preset records the fused path's and the eager chain's bytes for fwd and fwd+bwd
    (the composite steps' forward too), and the fused path moves fewer."""
    dev = torch.device("cpu")
    r = harness.Runner(dev, harness.TimingConfig())
    missing = []
    for case in runner.collect_cases("ci", dev, None):
        if isinstance(case, harness.Skipped) or not case.traffic or case.op == "stylegan2_iteration":
            continue
        got = traffic.case_bytes(case, r.plan(case)[0], passes=("fwd",))
        if not (got.get(("fused", "", "fwd")) and got.get(("eager", "", "fwd"))):
            missing.append(case.label)
        elif not got[("fused", "", "fwd")] < got[("eager", "", "fwd")]:
            missing.append(f"{case.label}: fused {got[('fused', '', 'fwd')]} >= eager {got[('eager', '', 'fwd')]}")
    assert not missing


# ------------------------------------------------------------------------------------------ overhead baselines


def test_the_hand_written_chains_compute_the_ops():
    from benchmarks import bench_overhead as O
    from gan_fast import ops

    torch.manual_seed(0)
    x, b = torch.randn(2, 32, 4, 4, dtype=torch.float64), torch.randn(32, dtype=torch.float64)
    torch.testing.assert_close(O.bias_act_chain(x, b), ops.bias_act(x, b, act="lrelu"))
    f = ops.setup_filter([1, 3, 3, 1]).double()
    torch.testing.assert_close(O.upsample_chain(x, O.upsample_weight(f, 32)), ops.upsample2d(x, f))
    assert O.SQRT2 == math.sqrt(2)


def test_the_overhead_cases_follow_the_protocol():
    """bias_act and upsample2d gain the chain row; median of >= 5 samples of >= 1,000 calls, interleaved."""
    from benchmarks import bench_overhead as O

    cases = {c.name: c for c in O.cases("ci", torch.device("cpu"))}
    for name in ("bias_act", "upsample2d"):
        c = cases[name]
        assert "chain" in c.extra_baselines and "gan_fast" in c.extra_baselines
        assert c.reps >= 5 and c.sample_calls >= 1000 and "fwdbwd" in c.passes


# ------------------------------------------------------------------------------------------- names and the API


def _bench_files():
    return sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(BENCH, "bench_*.py")))


def test_the_benchmarks_mirror_the_ops_by_name():
    """bench_<op>.py holds the cases whose op is <op>; every public op with a backend spec has one; every
    bench module is run."""
    from gan_fast.backends import SPECS

    assert set(_bench_files()) == set(OP_MODULES)
    ops = {s.op for s in SPECS} | {"modulated_conv2d", "modulated_conv2d_bias_act"}
    assert {f"bench_{op}" for op in ops} <= set(OP_MODULES)
    for name in OP_MODULES:
        mod = importlib.import_module(f"benchmarks.{name}")
        for preset in ("ci", "biggan"):
            for case in mod.cases(preset, torch.device("cpu")):
                assert name == f"bench_{case.op}", (name, case.label)


def test_one_parametrised_pytest_benchmark_file():
    assert not glob.glob(os.path.join(BENCH, "test_bench_*.py"))
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider",
                          os.path.join(BENCH, "test_benchmarks.py")], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    ids = [ln for ln in out.stdout.splitlines() if "::test_benchmark[" in ln]
    ops = {re.search(r"\[([a-z0-9_]+)-", ln).group(1) for ln in ids}
    assert {m[len("bench_"):] for m in OP_MODULES} - {"stylegan2_iteration"} <= ops


def test_the_benchmarks_choose_backends_through_the_api():
    """No environment variable chooses a backend, and nothing reaches into the old internals."""
    mine = [p for p in glob.glob(os.path.join(BENCH, "*.py"))
            if os.path.basename(p) not in ("compile_check.py", "static_report.py", "static_cases.py")]
    banned = (r"FAST_BACKENDS", r"backend\.resolve", r"environ\[[\"']GAN_FAST_IMPL", r"setenv\([\"']GAN_FAST_IMPL",
              r"op_module\(", r"gan_fast[./]_checkout", r"_self_test_cases", r"gan_fast\.fused")
    for path in mine:
        with open(path) as f:
            text = f.read()
        for pattern in banned:
            assert not re.search(pattern, text), f"{os.path.basename(path)}: {pattern}"

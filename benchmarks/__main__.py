"""The benchmark runner: ``python -m benchmarks --preset ci|stylegan2|biggan|stylegan3|decisive --out DIR``.

Times every case of the preset on one device (CUDA when present, else CPU) in two phases, what the library is
about first: every case's eager, fast-backend and extra-baseline rows, then every case's ``torch.compile`` rows.
Prints a progress line per measurement, the comparison table and, last, one summary line counting the rows run /
skipped / errored (summing to the total) and why. Writes ``DIR/<name>.json`` (``<name>-partial.json`` while it
runs and when it did not complete) and ``DIR/<name>.png``, ``<name>`` = ``bench-<preset>[-only-<regex>][-<tag>]``.
See ``benchmarks/__init__.py`` for the record schema and the exit statuses.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import re
import shutil
import signal
import sys
import time
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

from . import presets
from .presets import PRESETS

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# The ci preset must finish in under 3 minutes on 2 CPU cores: past this, measurements are recorded as skipped.
DEFAULT_BUDGET_S = {"ci": 165.0}
COMPILE_RESERVE = 0.1  # of the budget: a compile case starts only with this much left
EXIT_INTERRUPTED, EXIT_NOTHING_MEASURED, EXIT_NO_CASES = 3, 4, 2


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=PRESETS, default="ci")
    p.add_argument("--tag", default="", help="a name for this run beside its preset (output bench-<preset>-<tag>.json; "
                   "the report keeps the newest run of each device, preset and tag)")
    p.add_argument("--out", default="bench_out", help="output folder (created)")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    p.add_argument("--only", default=None, help="regex on 'op/case' (e.g. 'bias_act|r1_step'); a partial run: its "
                   "files are named bench-<preset>-only-<regex>.* and never feed README's results")
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile baseline")
    p.add_argument("--compile-mode", default="auto",
                   help="torch.compile mode (auto: max-autotune-no-cudagraphs on CUDA, default on CPU)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="stop starting measurements after this many seconds (the rest is recorded as skipped); "
                        "default 165 for ci, none otherwise")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    p.add_argument("--autotune", choices=("full", "first"), default=None,
                   help="gan_fast.config.set_autotune for the Triton kernels (default: the library's, full)")
    p.add_argument("--no-bytes", action="store_true", help="do not count the bytes model (benchmarks/traffic.py)")
    p.add_argument("--record", action="store_true",
                   help="also copy a complete run's JSON to benchmarks/results/<device>-<name>-<date>.json")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads; default 1 on CPU: on shared cores OpenMP parallel regions stall "
                        "(measured 48 ms vs 2 ms per call for the same op here), which would drown the ratios")
    p.add_argument("--no-chart", action="store_true")
    return p.parse_args(argv)


class _Terminated(BaseException):
    """SIGTERM (`timeout`): a BaseException, so that no `except Exception` on the way swallows it."""


def _on_sigterm(signum, frame):  # `timeout` sends SIGTERM: finish writing what was measured
    raise _Terminated(f"signal {signum}")


def collect_cases(preset: str, device, only: Optional[str]) -> List[Any]:
    from . import OP_MODULES

    if preset == "decisive":
        return _decisive_cases(device, only)
    cases = []
    for name in OP_MODULES:
        mod = importlib.import_module(f"benchmarks.{name}")
        cases += mod.cases(preset, device)
    if only:
        rx = re.compile(only)
        cases = [c for c in cases if rx.search(c.label)]
    cases.sort(key=lambda c: c.priority)  # stable: module order within a priority
    return cases


def _decisive_cases(device, only: Optional[str]) -> List[Any]:
    """presets.DECISIVE, in its order: the cases of the full-size presets that answer an open question."""
    from .harness import dtype_name

    pool = {}
    for name in presets.DECISIVE_SOURCES:
        for case in collect_cases(name, device, None):
            pool.setdefault((case.label, dtype_name(case.dtype)), case)
    chosen = []
    for rank, (label, dtype) in enumerate(presets.DECISIVE):
        case = pool.get((label, dtype))
        if case is not None and (not only or re.search(only, case.label)):
            case.priority = rank
            chosen.append(case)
    return chosen


def timing_for(preset: str, device, quick: bool):
    from .harness import TimingConfig

    if quick:
        return TimingConfig(warmup=1, min_reps=3, max_reps=5, max_seconds=0.2, min_sample_ms=0.0)
    if device.type == "cuda":
        return TimingConfig(warmup=3, min_reps=10, max_reps=100, max_seconds=0.4, min_sample_ms=1.0)
    if preset == "ci":
        return TimingConfig(warmup=1, min_reps=5, max_reps=25, max_seconds=0.4)
    return TimingConfig(warmup=1, min_reps=3, max_reps=10, max_seconds=1.0)


# ------------------------------------------------------------------------------ output


def _fmt(x, spec: str, none: str = "-") -> str:
    if x is None:
        return none
    try:
        return format(x, spec)
    except (TypeError, ValueError):
        return str(x)


def _traffic_cell(r: Dict[str, Any], gpu: bool) -> str:
    """GPU: the row's GB/s (and % of the device's peak); CPU: on the fast rows, eager bytes / fused bytes, the
    ceiling of a bandwidth-bound speedup."""
    if gpu:
        if r.get("gbps") is None:
            return ""
        return f"{r['gbps']:.0f} GB/s" + (f" {r['pct_peak']:.0f}%" if r.get("pct_peak") is not None else "")
    if r.get("byte_ratio") and r.get("library"):
        return f"{r['byte_ratio']:.2f}x"
    return ""


def format_table(records: List[Dict[str, Any]], meta: Dict[str, Any]) -> str:
    """The comparison table (plain text). CPU rows are marked; their ratios are the point."""
    from .harness import NOISY_SPREAD

    gpu = meta.get("device_type") == "cuda"
    head = ["op/case", "dtype", "pass", "backend", "median ms", "IQR %", "x eager", "x compile", "peak MB",
            "max err", "rel err", "GB/s %peak" if gpu else "bytes e/f", "status"]
    rows = []
    for r in records:
        be = r.get("backend") or "-"
        if r.get("variant"):
            be += f"[{r['variant']}]"
        if r.get("explicit"):
            be += " (explicit)"
        status = r.get("status")
        if r.get("wrong"):
            status = "WRONG: " + r["wrong"]
        elif status == "error":
            status = "error: " + (r.get("error") or "")[:70]
        elif status in ("skipped", "interrupted"):
            status = f"{status}: " + (r.get("reason") or r.get("error") or "")[:70]
        if r.get("noisy"):
            status += f" NOISY (IQR {100 * r['spread']:.0f}% of median > {100 * NOISY_SPREAD:.0f}%)"
        if r.get("vs_chain") is not None and r.get("backend") != "chain":
            status += f" chain/this {r['vs_chain']:.2f}"
        if r.get("images_per_s"):
            status += f" {r['images_per_s']:.1f} img/s"
        spread = f"{100 * r['spread']:.0f}" if r.get("spread") is not None else "-"
        rows.append([f"{r['op']}/{r['case']}", r["dtype"], r.get("pass") or "-", be,
                     _fmt(r.get("median_ms"), ".3f"), spread,
                     _fmt(None if r.get("wrong") else r.get("speedup_vs_eager"), ".2f"),
                     _fmt(None if r.get("wrong") else r.get("speedup_vs_compile"), ".2f"),
                     _fmt(r.get("peak_mem_mb"), ".0f"), _fmt(r.get("max_abs_err"), ".1e"),
                     _fmt(r["max_abs_err"] / r["ref_max_abs"] if r.get("max_abs_err") is not None
                          and r.get("ref_max_abs") else None, ".1e"),
                     _traffic_cell(r, gpu), status])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)] if rows else [len(h) for h in head]
    widths[-1] = min(widths[-1], 110)
    lines = []
    title = (f"gan_fast benchmarks — preset {meta['preset']} on {meta['device']} — torch {meta['torch']}, "
             f"triton {meta['triton']}")
    lines.append(title)
    if not gpu:
        lines.append("CPU timings: noisy (shared cores); compare the ratios within this run, not absolute times. "
                     "bytes e/f: the eager chain's modelled bytes / the fused path's, the ceiling of a "
                     "bandwidth-bound speedup (benchmarks/traffic.py).")
    lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    lines.append("  ".join("-" * w for w in widths))
    prev = None
    for row in rows:
        key = (row[0], row[1], row[2])
        if prev is not None and key[:2] != prev[:2]:
            lines.append("")
        prev = key
        lines.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def summarize(records: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The counts of the summary line: rows run / skipped / errored (they sum to ``total``) with the reasons
    (grouped by their first words), and how many rows ran but are wrong or noisy."""
    run = [r for r in records if r.get("status") == "ok"]
    errored = [r for r in records if r.get("status") == "error"]
    skipped = [r for r in records if r.get("status") not in ("ok", "error")]

    def why(rs, field):
        c = Counter(((r.get(field) or r.get("reason") or r.get("status") or "?").split(" (")[0])[:80] for r in rs)
        return dict(c.most_common())

    library = [r for r in records if r.get("library")]
    return {"total": len(records), "run": len(run), "skipped": len(skipped), "errored": len(errored),
            "skipped_why": why(skipped, "reason"), "errored_why": why(errored, "error"),
            "wrong": sum(1 for r in run if r.get("wrong")), "noisy": sum(1 for r in run if r.get("noisy")),
            "library_rows": len(library), "library_run": sum(1 for r in library if r.get("status") == "ok")}


def summary_line(s: Dict[str, Any], complete: bool) -> str:
    def reasons(d):
        return "; ".join(f"{k}: {v}" for k, v in d.items())

    line = f"summary: {s['total']} rows: {s['run']} run, {s['skipped']} skipped, {s['errored']} errored"
    parts = []
    if s["skipped"]:
        parts.append(f"skipped — {reasons(s['skipped_why'])}")
    if s["errored"]:
        parts.append(f"errored — {reasons(s['errored_why'])}")
    if parts:
        line += " (" + "; ".join(parts) + ")"
    if s["wrong"] or s["noisy"]:
        line += f"; of the rows run, {s['wrong']} wrong against float64, {s['noisy']} noisy"
    line += f"; library rows run: {s['library_run']} of {s['library_rows']}"
    line += "; complete" if complete else "; INCOMPLETE (partial: not for README)"
    return line


def write_chart(records: List[Dict[str, Any]], meta: Dict[str, Any], path: str) -> Optional[str]:
    """Horizontal bars of speedup vs eager for every non-eager measurement, each with its spread (the speedup at
    the row's first and third quartile); noisy rows hatched and labelled. None if drawn, else why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as exc:
        return f"chart skipped: matplotlib is not available ({type(exc).__name__}: {exc})"
    rows = [r for r in records if r.get("status") == "ok" and r.get("backend") != "eager"
            and r.get("speedup_vs_eager") and not r.get("wrong")]
    if not rows:
        return "chart skipped: no non-eager measurement succeeded"
    labels, values, lo, hi, hatches = [], [], [], [], []
    for r in rows:
        label = f"{r['op']}/{r['case']} {r['dtype']} {r['pass']} {r['backend']}" + (
            f"[{r['variant']}]" if r.get("variant") else "")
        v = r["speedup_vs_eager"]
        # the spread of this row's time, as a speedup range (its eager reference held at its median)
        q1, q3, med = r.get("q1_ms"), r.get("q3_ms"), r["median_ms"]
        v_lo = v * med / q3 if q3 else v
        v_hi = v * med / q1 if q1 else v
        if r.get("noisy"):
            label += f"  NOISY (IQR {100 * r['spread']:.0f}%)"
        labels.append(label)
        values.append(v)
        lo.append(max(v - v_lo, 0.0))
        hi.append(max(v_hi - v, 0.0))
        hatches.append("//" if r.get("noisy") else "")
    backends = sorted({r["backend"] for r in rows})
    cmap = plt.get_cmap("tab10")
    colors = [cmap(backends.index(r["backend"]) % 10) for r in rows]
    fig, ax = plt.subplots(figsize=(11, max(3.0, 0.22 * len(rows) + 1.5)))
    y = list(range(len(rows)))[::-1]
    bars = ax.barh(y, values, color=colors, xerr=[lo, hi], error_kw={"elinewidth": 0.8, "capsize": 2})
    for bar, hatch in zip(bars, hatches):
        if hatch:
            bar.set_hatch(hatch)
            bar.set_alpha(0.5)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("speedup vs eager ref (same run; > 1 is faster)\nwhiskers: the row's quartiles; hatched: noisy "
                  "(IQR > half its median)", fontsize=8)
    cpu = " (CPU: noisy, ratios only)" if meta.get("device_type") != "cuda" else ""
    part = "" if meta.get("complete") else " — PARTIAL run"
    ax.set_title(f"gan_fast {meta['preset']} — {meta['device']}{cpu}{part}", fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i % 10)) for i in range(len(backends))]
    ax.legend(handles, backends, fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def write_json(path: str, meta: Dict[str, Any], records: List[Dict[str, Any]]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"meta": meta, "records": records}, f, indent=1)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------ main


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.monotonic()
    signal.signal(signal.SIGTERM, _on_sigterm)

    import torch

    from gan_fast import backend as gf_backend
    from gan_fast import config as gf_config

    from . import harness, traffic
    from .report import judge_errors

    # The runner chooses every row's backend itself: a process-wide forced backend (GAN_FAST_IMPL) is cleared.
    ignored = {op: b for op in ("bias_act",) if (b := gf_config.process_forced_backend(op))}
    gf_config.set_backend()
    if args.autotune:
        gf_config.set_autotune(args.autotune)

    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    threads = args.threads or (1 if device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    os.makedirs(args.out, exist_ok=True)
    env = harness.environment(device)
    name = harness.run_name(args.preset, args.only, args.tag)
    meta = dict(env, preset=args.preset, only=args.only, tag=args.tag, name=name,
                created=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                compile_mode=(harness.compile_mode(device) if args.compile_mode == "auto" else args.compile_mode),
                compile_enabled=not args.no_compile, command=" ".join(["python -m benchmarks"] + sys.argv[1:]),
                complete=False, wall_s=None, timings_note=("CPU timings are noisy: quote ratios from one run only"
                                                           if device.type != "cuda" else ""))
    if ignored:
        meta["ignored_forced_backend"] = f"a process-wide forced backend ({ignored}) is ignored by the runner"
    final_json = os.path.join(args.out, name + ".json")
    partial_json = os.path.join(args.out, name + "-partial.json")

    t_disc = time.monotonic()  # may build the C++ extension on first use (JIT): timed, reported
    meta["backends"] = {k: ({"ok": True} if ok else {"ok": False, "why": why})
                        for k, (ok, why) in gf_backend.available_backends(device).items()}
    meta["backend_discovery_s"] = round(time.monotonic() - t_disc, 1)
    cases = collect_cases(args.preset, device, args.only)
    if not cases:
        print(f"no cases match preset {args.preset!r} and --only {args.only!r}", file=sys.stderr)
        return EXIT_NO_CASES
    budget = args.budget_s if args.budget_s is not None else DEFAULT_BUDGET_S.get(args.preset)
    meta["budget_s"] = budget
    deadline = t_start + budget if budget else None
    tty = sys.stderr.isatty()
    counter = {"step": 0, "steps": 0, "phase": "library"}

    def progress(msg: str) -> None:
        i, n = counter["step"], max(counter["steps"], 1)
        bar = "#" * int(20 * (i - 1) / n) + "." * (20 - int(20 * (i - 1) / n))
        line = f"[{bar}] {counter['phase']} {i}/{n} {time.monotonic() - t_start:6.1f}s  {msg}"
        if tty:
            sys.stderr.write("\r" + line[:150].ljust(150))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    runner = harness.Runner(device, timing_for(args.preset, device, args.quick), compile_enabled=not args.no_compile,
                            compile_mode_name=None if args.compile_mode == "default" else args.compile_mode,
                            deadline=deadline, on_step=progress)

    # Every case's rows, planned up front: the run's total is known before it starts.
    plans: List[Tuple[Any, list, list]] = []
    not_measured: List[Dict[str, str]] = []
    for case in cases:
        if isinstance(case, harness.Skipped):
            plans.append((case, [], []))
            continue
        lib, comp, missing = runner.plan(case)
        plans.append((case, lib, comp))
        for backend, why in missing.items():
            not_measured.append({"case": case.label, "dtype": harness.dtype_name(case.dtype), "backend": backend,
                                 "why": why})
    meta["not_measured"] = not_measured
    phase2 = [(case, comp) for case, _, comp in plans if comp]
    counter["steps"] = len(plans) + len(phase2)
    print(f"gan_fast benchmarks: preset {args.preset}, {len(cases)} cases on {env['device']} "
          f"(torch {env['torch']}, triton {env['triton']}): the library's rows first, then "
          f"{len(phase2)} cases' torch.compile rows", file=sys.stderr)

    by_case: Dict[int, List[Dict[str, Any]]] = {i: [] for i in range(len(plans))}
    case_order = {}
    for i, (case, _, _) in enumerate(plans):
        case_order.setdefault((case.op, case.name, harness.dtype_name(case.dtype)), i)

    def all_records() -> List[Dict[str, Any]]:
        return [r for i in range(len(plans)) for r in by_case[i]]

    def save(path: str) -> None:
        meta["wall_s"] = round(time.monotonic() - t_start, 1)
        write_json(path, meta, all_records())

    interrupted = None
    count_bytes = not args.no_bytes
    traffic_by_case: Dict[int, Dict] = {}
    in_flight: Optional[Tuple[int, Any]] = None
    done_lib, done_comp = set(), set()
    try:
        for i, (case, lib, comp) in enumerate(plans):  # phase 1: the library's rows
            counter["step"] += 1
            if isinstance(case, harness.Skipped):
                by_case[i] += harness.to_records(case, [], args.preset, env)
                progress(f"{case.label}: {case.note}")
                done_lib.add(i)
                continue
            if runner.out_of_time():
                ms = harness.skipped(lib, case.passes, "time budget of the run exhausted")
            else:
                in_flight = (i, case)
                try:
                    ms = runner.run_library(case, lib)
                except Exception as exc:  # building the case's inputs failed (e.g. out of memory)
                    ms = [harness.Measurement(r.backend, r.variant, p, status="error", error=harness.short_error(exc),
                                              library=r.library, explicit=r.explicit, row=r.index)
                          for p in case.passes for r in lib]
                in_flight = None
            by_case[i] += harness.to_records(case, ms, args.preset, env)
            done_lib.add(i)
            if count_bytes and any(m.status == "ok" for m in ms):  # the bytes model: meta tensors, a fraction of a s
                t_bytes = time.monotonic()
                traffic_by_case[i] = traffic.case_bytes(case, lib)
                meta["bytes_model_s"] = round(meta.get("bytes_model_s", 0.0) + time.monotonic() - t_bytes, 2)
            save(partial_json)
        counter["phase"] = "compile"
        # A compile case is started only with this much of the budget left: its first call (the compilation, tens of
        # seconds for a network on 2 cores) cannot be stopped once started.
        reserve = COMPILE_RESERVE * budget if budget else 0.0
        for i, (case, lib, comp) in enumerate(plans):  # phase 2: the torch.compile baselines
            if not comp:
                continue
            counter["step"] += 1
            if runner.out_of_time() or (deadline is not None and deadline - time.monotonic() < reserve):
                ms = harness.skipped(comp, case.passes, "time budget of the run exhausted")
            else:
                in_flight = (i, case)
                try:
                    ms = runner.run_compile(case, comp)
                except Exception as exc:
                    ms = [harness.Measurement(r.backend, r.variant, p, status="error", error=harness.short_error(exc),
                                              row=r.index) for p in case.passes for r in comp]
                in_flight = None
            by_case[i] += harness.to_records(case, ms, args.preset, env)
            done_comp.add(i)
            save(partial_json)
    except (KeyboardInterrupt, _Terminated) as exc:
        interrupted = f"interrupted ({exc or 'KeyboardInterrupt'}) in the {counter['phase']} phase"
        if in_flight is not None:
            i, case = in_flight
            by_case[i] += harness.to_records(case, runner.interrupted(case, interrupted), args.preset, env)
            (done_lib if counter["phase"] == "library" else done_comp).add(i)
        for i, (case, lib, comp) in enumerate(plans):  # what the run did not get to: rows, skipped
            if isinstance(case, harness.Skipped):
                continue
            rows = ([] if i in done_lib else lib) + ([] if i in done_comp else comp)
            by_case[i] += harness.to_records(case, harness.skipped(rows, case.passes, interrupted, "interrupted"),
                                             args.preset, env)
    if tty:
        sys.stderr.write("\n")

    for i, counted in traffic_by_case.items():
        harness.add_traffic(by_case[i], counted)
    records = all_records()
    harness.finalize(records, env["device"])
    harness.sort_records(records, case_order)
    meta["wrong_rows"] = judge_errors(records)
    stats = summarize(records)
    # complete: nothing skipped (and something of the library measured: a run that measured none never replaces one)
    complete = interrupted is None and stats["skipped"] == 0 and stats["library_run"] > 0
    meta["complete"] = complete
    meta["summary"] = stats
    if interrupted:
        meta["interrupted"] = interrupted
    meta["wall_s"] = round(time.monotonic() - t_start, 1)
    out_json = final_json if complete else partial_json
    write_json(out_json, meta, records)
    if complete and os.path.exists(partial_json):
        os.remove(partial_json)
    print(format_table(records, meta))
    if not_measured:
        groups = Counter(f"{d['backend']} ({d['why'][:90]})" for d in not_measured)
        print("not measured here by design (no rows): " + "; ".join(f"{k} x{v}" for k, v in groups.items()))
    if interrupted:
        print(f"\n{interrupted}", file=sys.stderr)
    if not args.no_chart:
        png = out_json[:-5] + ".png"
        msg = write_chart(records, meta, png)
        print(msg if msg else f"chart: {png}", file=sys.stderr)
    print(f"json: {out_json}  (wall {meta['wall_s']} s)", file=sys.stderr)
    if args.record:
        if complete and not args.only:
            os.makedirs(RESULTS_DIR, exist_ok=True)
            date = meta["created"][:10]
            dest = os.path.join(RESULTS_DIR, f"{harness.slug(env['device'])}-{name[len('bench-'):]}-{date}.json")
            shutil.copyfile(out_json, dest)
            print(f"recorded: {dest}", file=sys.stderr)
        else:
            print("not recorded: a partial run (--only, or rows skipped) never feeds README's results",
                  file=sys.stderr)
    print(summary_line(stats, complete), flush=True)
    if interrupted:
        return EXIT_INTERRUPTED
    if stats["library_run"] == 0:
        print("the run could not measure any of the library's rows (eager or a fast backend)", file=sys.stderr)
        return EXIT_NOTHING_MEASURED
    return 0


if __name__ == "__main__":
    sys.exit(main())

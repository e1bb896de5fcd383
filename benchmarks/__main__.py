"""The benchmark runner: ``python -m benchmarks --preset ci|stylegan2|biggan --out DIR``.

Times every case of the preset on one device (CUDA when present, else CPU), prints a
progress line per measurement and the comparison table, and writes
``DIR/bench-<preset>.json`` (after every case, so a run cut short keeps what it measured)
and ``DIR/bench-<preset>.png``. See ``benchmarks/__init__.py`` for the record schema.
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
from typing import Any, Dict, List, Optional

from . import presets
from .presets import PRESETS

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
# The ci preset must finish in under 3 minutes on 2 CPU cores: past this, measurements are recorded as skipped.
DEFAULT_BUDGET_S = {"ci": 165.0}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=PRESETS, default="ci")
    p.add_argument("--tag", default="", help="a name for this run beside its preset (output bench-<preset>-<tag>.json; "
                   "the report keeps the newest run of each device, preset and tag)")
    p.add_argument("--out", default="bench_out", help="output folder (created)")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    p.add_argument("--only", default=None, help="regex on 'op/case' (e.g. 'bias_act|r1_step')")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline")
    p.add_argument("--compile-mode", default="auto",
                   help="torch.compile mode (auto: max-autotune-no-cudagraphs on CUDA, default on CPU)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="stop starting measurements after this many seconds (the rest is recorded as skipped); "
                        "default 165 for ci, none otherwise")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    p.add_argument("--record", action="store_true",
                   help="also copy the JSON to benchmarks/results/<device>-<preset>-<date>.json")
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


def format_table(records: List[Dict[str, Any]], meta: Dict[str, Any]) -> str:
    """The comparison table (plain text). CPU rows are marked; their ratios are the point."""
    cpu = meta.get("device_type") != "cuda"
    head = ["op/case", "dtype", "pass", "backend", "median ms", "IQR ms", "x eager", "x compile", "peak MB",
            "max err", "rel err", "status"]
    rows = []
    for r in records:
        be = r.get("backend") or "-"
        if r.get("variant"):
            be += f"[{r['variant']}]"
        status = r.get("status")
        if r.get("wrong"):
            status = "WRONG: " + r["wrong"]
        elif status == "error":
            status = "error: " + (r.get("error") or "")[:70]
        elif status in ("skipped", "unavailable"):
            status = f"{status}: " + (r.get("reason") or r.get("error") or "")[:70]
        extra = ""
        if r.get("gbps"):
            extra = f" {r['gbps']:.3g} GB/s"
        if r.get("images_per_s"):
            extra = f" {r['images_per_s']:.1f} img/s"
        rows.append([f"{r['op']}/{r['case']}", r["dtype"], r.get("pass") or "-", be,
                     _fmt(r.get("median_ms"), ".3f"), _fmt(r.get("iqr_ms"), ".3f"),
                     _fmt(None if r.get("wrong") else r.get("speedup_vs_eager"), ".2f"),
                     _fmt(None if r.get("wrong") else r.get("speedup_vs_compile"), ".2f"),
                     _fmt(r.get("peak_mem_mb"), ".0f"), _fmt(r.get("max_abs_err"), ".1e"),
                     _fmt(r["max_abs_err"] / r["ref_max_abs"] if r.get("max_abs_err") is not None
                          and r.get("ref_max_abs") else None, ".1e"),
                     (status if status != "ok" else "ok") + extra])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)] if rows else [len(h) for h in head]
    widths[-1] = min(widths[-1], 90)
    lines = []
    title = (f"gan_fast benchmarks — preset {meta['preset']} on {meta['device']} — torch {meta['torch']}, "
             f"triton {meta['triton']}")
    lines.append(title)
    if cpu:
        lines.append("CPU timings: noisy (shared cores); compare the ratios within this run, not absolute times.")
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


def write_chart(records: List[Dict[str, Any]], meta: Dict[str, Any], path: str) -> Optional[str]:
    """Horizontal bars of speedup vs eager for every non-eager measurement; None if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as exc:
        return f"chart skipped: matplotlib is not available ({type(exc).__name__}: {exc})"
    rows = [r for r in records if r.get("status") == "ok" and r.get("backend") != "eager"
            and r.get("speedup_vs_eager")]
    if not rows:
        return "chart skipped: no non-eager measurement succeeded"
    labels = [f"{r['op']}/{r['case']} {r['dtype']} {r['pass']} {r['backend']}"
              + (f"[{r['variant']}]" if r.get("variant") else "") for r in rows]
    values = [r["speedup_vs_eager"] for r in rows]
    backends = sorted({r["backend"] for r in rows})
    cmap = plt.get_cmap("tab10")
    colors = [cmap(backends.index(r["backend"]) % 10) for r in rows]
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.22 * len(rows) + 1.5)))
    y = list(range(len(rows)))[::-1]
    ax.barh(y, values, color=colors)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("speedup vs eager ref (same run; > 1 is faster)")
    cpu = " (CPU: noisy, ratios only)" if meta.get("device_type") != "cuda" else ""
    ax.set_title(f"gan_fast {meta['preset']} — {meta['device']}{cpu}", fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(i % 10)) for i in range(len(backends))]
    ax.legend(handles, backends, fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def write_json(path: str, meta: Dict[str, Any], records: List[Dict[str, Any]]) -> None:
    from .report import judge_errors

    meta["wrong_rows"] = judge_errors(records)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"meta": meta, "records": records}, f, indent=1)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------ main


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.monotonic()
    signal.signal(signal.SIGTERM, _on_sigterm)
    forced = os.environ.pop("GAN_FAST_IMPL", None)  # the runner chooses backends itself

    import torch

    from . import harness

    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    threads = args.threads or (1 if device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    os.makedirs(args.out, exist_ok=True)
    env = harness.environment(device)
    meta = dict(env, preset=args.preset, created=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                compile_mode=(harness.compile_mode(device) if args.compile_mode == "auto" else args.compile_mode),
                compile_enabled=not args.no_compile, command=" ".join(["python -m benchmarks"] + sys.argv[1:]),
                complete=False, wall_s=None, timings_note=("CPU timings are noisy: quote ratios from one run only"
                                                           if device.type != "cuda" else ""))
    if forced:
        meta["ignored_env"] = f"GAN_FAST_IMPL={forced} was set and is ignored by the runner"
    meta["tag"] = args.tag
    base = os.path.join(args.out, f"bench-{args.preset}" + (f"-{args.tag}" if args.tag else ""))
    json_path, png_path = base + ".json", base + ".png"

    t_disc = time.monotonic()  # may build the C++ extension on first use (JIT): timed, reported
    from gan_fast import backend as gf_backend

    meta["backends"] = {k: ({"ok": True} if ok else {"ok": False, "why": why})
                        for k, (ok, why) in gf_backend.available_backends(device).items()}
    meta["backend_discovery_s"] = round(time.monotonic() - t_disc, 1)
    cases = collect_cases(args.preset, device, args.only)
    if not cases:
        print(f"no cases match preset {args.preset!r} and --only {args.only!r}", file=sys.stderr)
        return 2
    budget = args.budget_s if args.budget_s is not None else DEFAULT_BUDGET_S.get(args.preset)
    meta["budget_s"] = budget
    deadline = t_start + budget if budget else None
    tty = sys.stderr.isatty()
    counter = {"case": 0}

    def progress(msg: str) -> None:
        i, n = counter["case"], len(cases)
        bar = "#" * int(20 * (i - 1) / n) + "." * (20 - int(20 * (i - 1) / n))
        line = f"[{bar}] case {i}/{n} {time.monotonic() - t_start:6.1f}s  {msg}"
        if tty:
            sys.stderr.write("\r" + line[:150].ljust(150))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    runner = harness.Runner(device, timing_for(args.preset, device, args.quick), compile_enabled=not args.no_compile,
                            compile_mode_name=None if args.compile_mode == "default" else args.compile_mode,
                            deadline=deadline, on_step=progress)
    print(f"gan_fast benchmarks: preset {args.preset}, {len(cases)} cases on {env['device']} "
          f"(torch {env['torch']}, triton {env['triton']})", file=sys.stderr)
    records: List[Dict[str, Any]] = []
    interrupted = None
    in_flight = None  # the case being measured (its records not yet written)
    try:
        for case in cases:
            counter["case"] += 1
            if isinstance(case, harness.Skipped):
                records += harness.to_records(case, [], args.preset, env)
                progress(f"{case.label}: {case.note}")
                continue
            if runner.out_of_time():
                ms = [harness.Measurement(b, "", p, status="skipped", note="time budget of the run exhausted")
                      for b in ("eager",) for p in case.passes]
                records += harness.to_records(case, ms, args.preset, env)
                continue
            in_flight = case
            try:
                ms = runner.run_case(case)
            except Exception as exc:  # building the case's inputs failed (e.g. out of memory)
                ms = [harness.Measurement("eager", "", p, status="error", error=harness.short_error(exc))
                      for p in case.passes]
            records += harness.to_records(case, ms, args.preset, env)
            in_flight = None
            meta["wall_s"] = round(time.monotonic() - t_start, 1)
            write_json(json_path, meta, records)
    except (KeyboardInterrupt, _Terminated) as exc:
        interrupted = f"interrupted ({exc or 'KeyboardInterrupt'}) in case {counter['case']} of {len(cases)}"
        if in_flight is not None:
            records += harness.to_records(in_flight, runner.interrupted(in_flight, interrupted), args.preset, env)
    if tty:
        sys.stderr.write("\n")
    meta["wall_s"] = round(time.monotonic() - t_start, 1)
    meta["complete"] = interrupted is None
    if interrupted:
        meta["interrupted"] = interrupted
    write_json(json_path, meta, records)
    print(format_table(records, meta))
    if interrupted:
        print(f"\n{interrupted}", file=sys.stderr)
    if not args.no_chart:
        msg = write_chart(records, meta, png_path)
        print(msg if msg else f"chart: {png_path}", file=sys.stderr)
    print(f"json: {json_path}  (wall {meta['wall_s']} s)", file=sys.stderr)
    if args.record:
        os.makedirs(RESULTS_DIR, exist_ok=True)
        date = meta["created"][:10]
        dest = os.path.join(RESULTS_DIR, f"{harness.slug(env['device'])}-{args.preset}"
                            f"{'-' + args.tag if args.tag else ''}-{date}.json")
        shutil.copyfile(json_path, dest)
        print(f"recorded: {dest}", file=sys.stderr)
    return 0 if interrupted is None else 3


if __name__ == "__main__":
    sys.exit(main())

"""Renders the README's results section (markdown) from recorded runs.

``python -m benchmarks.report [FILES or DIRS...] [--preset P] [--tag T] [--only REGEX] [--include-partial]``
reads ``benchmarks/results/*.json`` (or the given files, or the runs found in the given folders by their names:
``bench-<preset>[-only-<regex>][-<tag>][-partial].json`` as ``python -m benchmarks`` writes them, ``--preset`` /
``--tag`` / ``--only`` selecting one), keeps the newest run of each (device, preset, tag), and prints, per device,
a table of same-run ratios and the standing of the performance targets. CPU runs are labelled as such and quote
ratios only (their absolute times are noise).

**Partial runs never feed README's results**: a run with ``--only`` or one that did not complete (``complete``
false: rows skipped by its time budget, or interrupted) is left out, with a line on stderr saying so, unless
``--include-partial`` is given (the GPU script's own report does, and labels them).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .naming import name_pattern
from .devices import peak_gbps

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
FAST = ("triton", "cpp")


# A row is wrong when its error against float64 exceeds ERROR_FACTOR times the eager ref's own error in the same
# case, dtype and pass, plus FLOOR_EPS units of the dtype's rounding at the reference's scale: the rule of the
# first-use self-test (gan_fast.self_test), applied to what a benchmark measured.
ERROR_FACTOR = 8.0
FLOOR_EPS = {"float32": 64.0, "float64": 64.0, "float16": 4.0, "bfloat16": 4.0}  # as gan_fast.self_test
EPS = {"float32": 2.0 ** -23, "float64": 2.0 ** -52, "float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}


def judge_errors(records: List[Dict[str, Any]]) -> int:
    """Marks ``r['wrong']`` (the reason) on every measured row whose error is out of bounds; returns how many.
    A wrong row's speedups are never quoted (its time measured a different computation)."""
    eager: Dict[Tuple, float] = {}
    for r in records:
        if r.get("backend") == "eager" and r.get("status") == "ok" and r.get("max_abs_err") is not None:
            key = (r["op"], r["case"], r["dtype"], r.get("pass"))
            eager[key] = min(eager.get(key, float("inf")), r["max_abs_err"])
    wrong = 0
    for r in records:
        err = r.get("max_abs_err")
        if r.get("status") != "ok" or err is None or r.get("backend") == "eager":
            continue
        base = eager.get((r["op"], r["case"], r["dtype"], r.get("pass")), 0.0)
        scale = r.get("ref_rms") or r.get("ref_max_abs") or 0.0  # the RMS floor (older records: the max)
        floor = FLOOR_EPS.get(r["dtype"], 64.0) * EPS.get(r["dtype"], 2.0 ** -23) * scale
        bound = ERROR_FACTOR * base + floor
        if not err <= bound:  # NaN included
            r["wrong"] = (f"error {err:.2g} against float64 exceeds {bound:.2g} ({ERROR_FACTOR:g} × eager's "
                          f"{base:.2g} + {floor:.2g} floor)")
            wrong += 1
    return wrong


def is_run(data: Any) -> bool:
    """A benchmark run's JSON (``{"meta": {... "preset" ...}, "records": [...]}``), not another tool's (the static
    report's ``static-*.json`` lives in the same folder)."""
    return isinstance(data, dict) and isinstance(data.get("records"), list) and isinstance(data.get("meta"), dict) \
        and "preset" in data["meta"]


def is_partial(run: Dict[str, Any]) -> Optional[str]:
    """Why a run is partial (never README's), or None: a ``--only`` selection, or a run that did not complete."""
    meta = run["meta"]
    if meta.get("only"):
        return f"a --only {meta['only']!r} selection"
    if not meta.get("complete"):
        why = meta.get("interrupted") or "rows skipped (its time budget)"
        return f"incomplete: {why}"
    return None


def find(paths: Sequence[str], preset: Optional[str] = None, tag: str = "", only: Optional[str] = None) -> List[str]:
    """The run files among ``paths``: files as given, folders searched for runs by name (``bench-*.json`` as the
    runner names them, else any ``*.json``); ``preset``/``tag``/``only`` keep the runs of that name
    (:func:`benchmarks.naming.run_name`; complete, ``-partial`` or recorded with a device and date)."""
    out: List[str] = []
    for path in paths:
        if os.path.isdir(path):
            out += sorted(glob.glob(os.path.join(path, "bench-*.json"))) or \
                sorted(glob.glob(os.path.join(path, "*.json")))
        else:
            out.append(path)
    if preset is not None or tag or only:
        rx = name_pattern(preset, only, tag)
        out = [p for p in out if rx.match(os.path.basename(p))]
    return out


def load(paths: List[str]) -> List[Dict[str, Any]]:
    runs = []
    for p in paths:
        try:
            with open(p) as f:
                d = json.load(f)
        except (OSError, ValueError) as exc:
            print(f"skipping {p}: {exc}", file=sys.stderr)
            continue
        if not is_run(d):
            print(f"skipping {p}: not a benchmark run", file=sys.stderr)
            continue
        d["_path"] = p
        judge_errors(d["records"])
        runs.append(d)
    return runs


def newest(runs: List[Dict[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    """{device: [newest run of each preset (and tag) on it]}."""
    best: Dict[Tuple[str, str, str], Dict[str, Any]] = {}
    for r in runs:
        key = (r["meta"]["device"], r["meta"]["preset"], r["meta"].get("tag", ""))
        if key not in best or r["meta"]["created"] > best[key]["meta"]["created"]:
            best[key] = r
    out: Dict[str, List[Dict[str, Any]]] = {}
    for (dev, _, _), r in sorted(best.items(), key=lambda kv: kv[0]):
        out.setdefault(dev, []).append(r)
    return out


def _dev(name: str, cpu: bool) -> str:
    return f"{name} (CPU)" if cpu and "CPU" not in name else name


def _x(v: Optional[float]) -> str:
    return "—" if v is None else f"{v:.2f}×"


def _err(v: Optional[float]) -> str:
    return "—" if v is None else f"{v:.1e}"


def run_table(run: Dict[str, Any]) -> List[str]:
    meta = run["meta"]
    cpu = meta["device_type"] != "cuda"
    lines = [f"#### {_dev(meta['device'], cpu)} — preset `{meta['preset']}`"
             f"{' (' + meta['tag'] + ')' if meta.get('tag') else ''}, "
             f"{meta['created'][:10]}, torch {meta['torch']}, triton {meta['triton']}, "
             f"commit {meta.get('git_commit')}", ""]
    src = run.get("_path", "?")
    repo = os.path.dirname(os.path.dirname(RESULTS_DIR))
    if os.path.abspath(src).startswith(repo + os.sep):
        src = os.path.relpath(os.path.abspath(src), repo)
    partial = is_partial(run)
    status = f" (partial: {partial})" if partial else ""
    if cpu:
        lines += ["CPU run: timings on shared cores are noisy, so only ratios measured within this one run are "
                  f"quoted, never absolute times. Source: `{src}`{status}. bytes e/f: the eager chain's modelled "
                  "global-memory bytes over the fused path's (`benchmarks/traffic.py`), the ceiling of a "
                  "bandwidth-bound speedup.", ""]
        head = "| op / case | dtype | pass | backend | × eager | × compile | bytes e/f | max abs err (ref scale) |"
        lines += [head, "|---|---|---|---|---|---|---|---|"]
        blanks = 3
    else:
        lines += [f"Source: `{src}`{status}. GB/s: the row's modelled global-memory bytes / its median "
                  "(`benchmarks/traffic.py`), with its share of the device's peak where the device is known.", ""]
        head = ("| op / case | dtype | pass | backend | median ms | × eager | × compile | GB/s (% peak) | peak MB "
                "| max abs err (ref scale) |")
        lines += [head, "|---|---|---|---|---|---|---|---|---|---|"]
        blanks = 5
    for r in run["records"]:
        if r.get("status") == "skipped" and r.get("backend") is not None:
            continue
        be = (r.get("backend") or "—") + (f" [{r['variant']}]" if r.get("variant") else "")
        if r.get("algorithm"):
            be += f" ({r['algorithm']})"
        if r.get("explicit"):
            be += " (explicit)"
        name = f"{r['op']} / {r['case']}"
        if r.get("wrong"):
            row = [name, r["dtype"], r["pass"], be] + [f"**WRONG**: {r['wrong']}"] + [""] * blanks
        elif r.get("status") == "ok":
            err = f"{_err(r.get('max_abs_err'))} ({_err(r.get('ref_max_abs'))})" if r.get("max_abs_err") is not None \
                else "—"
            extra = f", {r['images_per_s']:.3g} img/s" if r.get("images_per_s") and not cpu else ""
            x_eager = _x(r.get("speedup_vs_eager"))
            if r.get("vs_chain") is not None and r.get("backend") != "chain":
                x_eager += f" (chain/this {r['vs_chain']:.2f})"
            if r.get("noisy"):
                x_eager += f" ⚠ noisy: IQR {100 * r['spread']:.0f}% of median"
            cells = [x_eager, _x(r.get("speedup_vs_compile"))]
            if cpu:
                ratio = f"{r['byte_ratio']:.2f}×" if r.get("byte_ratio") and r.get("library") else ""
                row = [name, r["dtype"], r["pass"], be] + cells + [ratio, err]
            else:
                bw = "" if r.get("gbps") is None else f"{r['gbps']:.0f}" + (
                    f" ({r['pct_peak']:.0f}%)" if r.get("pct_peak") is not None else "")
                row = [name, r["dtype"], r["pass"], be, f"{r['median_ms']:.3f}{extra}"] + cells + \
                      [bw, ("—" if r.get("peak_mem_mb") is None else f"{r['peak_mem_mb']:.0f}"), err]
        else:
            why = (r.get("error") or r.get("reason") or r.get("status") or "")[:80].replace("|", "/")
            row = [name, r["dtype"], r.get("pass") or "—", be] + [f"{r.get('status')}: {why}"] + [""] * blanks
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return lines + [""]


# ------------------------------------------------------------------------------ targets


def _fast_ok(records, op, pass_name, dtype=None, case_prefix=None):
    """{case/dtype: best fast-backend record} for an op and pass."""
    best: Dict[str, Dict[str, Any]] = {}
    for r in records:
        if r["op"] != op or r.get("pass") != pass_name or r.get("backend") not in FAST or r.get("status") != "ok" \
                or r.get("wrong"):
            continue
        if dtype and r["dtype"] != dtype:
            continue
        if case_prefix and not r["case"].startswith(case_prefix):
            continue
        key = f"{r['case']} {r['dtype']}"
        if key not in best or r["median_ms"] < best[key]["median_ms"]:
            best[key] = r
    return best


def _min_ratio(best: Dict[str, Dict[str, Any]], field: str) -> Tuple[Optional[float], str]:
    vals = [(r.get(field), k) for k, r in best.items() if r.get(field) is not None]
    if not vals:
        return None, ""
    v, k = min(vals)
    return v, k


def targets(records: List[Dict[str, Any]], device: str, device_type: str) -> List[Tuple[str, str, str]]:
    """[(target, where it stands, met / missed / not measured)]."""
    out = []

    def add(target, best, field, threshold, extra=""):
        v, where = _min_ratio(best, field)
        if v is None:
            out.append((target, "no fast backend measured", "not measured"))
            return
        out.append((target, f"worst of {len(best)} shapes: {v:.2f}× ({where}){extra}",
                    "met" if v >= threshold else "missed"))

    out.append(host_overhead(records))
    if device_type != "cuda":
        best = _fast_ok(records, "bias_act", "fwdbwd", "float32", "8x256x32x32")
        best = {k: r for k, r in best.items() if r["backend"] == "cpp"}
        add("CPU: cpp bias_act fwd+bwd ≥ 2× eager at [8, 256, 32, 32] fp32", best, "speedup_vs_eager", 2.0)
        return out
    best = _fast_ok(records, "bias_act", "fwdbwd")
    add("bias_act fwd+bwd ≥ 3× eager", best, "speedup_vs_eager", 3.0)
    add("bias_act fwd+bwd ≥ 1.1× compile", best, "speedup_vs_compile", 1.1)
    peak = peak_gbps(device)
    bw = [(r["pct_peak"] / 100, k) for k, r in best.items() if r.get("pct_peak") is not None]
    if bw and peak:
        v, k = min(bw)
        out.append(("bias_act within 80% of the bandwidth bound", f"worst: {100 * v:.0f}% of {peak:.0f} GB/s ({k})",
                    "met" if v >= 0.8 else "missed"))
    else:
        out.append(("bias_act within 80% of the bandwidth bound", "no fast backend measured (or unknown peak)",
                    "not measured"))
    add("upfirdn2d up-2 fwd+bwd ≥ 2× eager", _fast_ok(records, "upfirdn2d", "fwdbwd", case_prefix="up2"),
        "speedup_vs_eager", 2.0)
    add("modulated conv synthesis layer fwd+bwd ≥ 1.3× faster eager variant",
        _fast_ok(records, "modulated_conv2d", "fwdbwd"), "speedup_vs_eager", 1.3)
    # spectral norm vs PyTorch's parametrization, same run
    sn = [r for r in records if r["op"] == "spectral_normalize" and r.get("status") == "ok"]
    torch_ms = {r["pass"]: r["median_ms"] for r in sn if r["backend"] == "torch_sn"}
    fast = {}
    for r in sn:  # the op with a fast backend, or gan_fast.nn.spectral_norm modules with one forced
        is_fast = r["backend"] in FAST or (r["backend"].startswith("nn_sn:") and r["backend"][6:] in FAST)
        if is_fast and (r["pass"] not in fast or r["median_ms"] < fast[r["pass"]]):
            fast[r["pass"]] = r["median_ms"]
    if fast and torch_ms:
        vals = {p: torch_ms[p] / fast[p] for p in fast if p in torch_ms}
        v = min(vals.values())
        out.append(("spectral norm, all BigGAN D layers, ≥ 5× torch spectral_norm",
                    ", ".join(f"{p}: {x:.2f}×" for p, x in vals.items()), "met" if v >= 5 else "missed"))
    else:
        out.append(("spectral norm, all BigGAN D layers, ≥ 5× torch spectral_norm", "no fast backend measured",
                    "not measured"))
    r1 = [r for r in records if r["op"] == "r1_step" and r.get("pass") == "dbl" and r.get("status") == "ok"]
    eager_mem = {r["dtype"]: r.get("peak_mem_mb") for r in r1 if r["backend"] == "eager"}
    best = _fast_ok(records, "r1_step", "dbl")
    if best:
        mems = [(r.get("peak_mem_mb") or 0) / eager_mem[r["dtype"]] for r in best.values()
                if eager_mem.get(r["dtype"])]
        extra = f"; peak memory {max(mems):.2f}× eager" if mems else ""
        v, where = _min_ratio(best, "speedup_vs_eager")
        ok = v is not None and v >= 1.5 and (not mems or max(mems) <= 0.8)
        out.append(("R1 step ≥ 1.5× eager double backward with ≤ 0.8× peak memory",
                    f"{v:.2f}× ({where}){extra}", "met" if ok else "missed"))
    else:
        out.append(("R1 step ≥ 1.5× eager double backward with ≤ 0.8× peak memory", "no fast backend measured",
                    "not measured"))
    add("full StyleGAN2 iteration ≥ 1.3× eager", _fast_ok(records, "stylegan2_iteration", "iter"),
        "speedup_vs_eager", 1.3)
    best = _fast_ok(records, "filtered_lrelu", "fwdbwd")
    fl_eager = {(r["case"], r["dtype"]): r.get("peak_mem_mb") for r in records
                if r["op"] == "filtered_lrelu" and r.get("pass") == "fwdbwd" and r["backend"] == "eager"
                and r.get("status") == "ok"}
    mems = [(r.get("peak_mem_mb") or 0) / fl_eager[(r["case"], r["dtype"])] for r in best.values()
            if fl_eager.get((r["case"], r["dtype"]))]
    add("filtered_lrelu fwd+bwd ≥ 3× eager", best, "speedup_vs_eager", 3.0,
        f"; peak memory {max(mems):.2f}× eager (goal ≤ 0.5×)" if mems else "")
    out.append(synthesis_layer_decision(records))
    return out


def host_overhead(records: List[Dict[str, Any]]) -> Tuple[str, str, str]:
    """Issue 22's goal: at a tiny shape, chain / gan_fast (fwd+bwd) >= 0.8 for every op (overhead/<op> cases): the
    hand-written chain where the case has one (``vs_chain``), else the reference called directly."""
    title = ("host overhead: chain / gan_fast (impl=None) ≥ 0.8 fwd+bwd at a tiny shape, every op (the "
             "hand-written chain for bias_act and upsample2d, the reference for the others)")

    def ratios(backend):
        out = {}
        for r in records:
            if r["op"] == "overhead" and r.get("pass") == "fwdbwd" and r.get("backend") == backend \
                    and r.get("status") == "ok" and not r.get("wrong"):
                v = r.get("vs_chain") if r.get("vs_chain") is not None else r.get("speedup_vs_eager")
                if v is not None:
                    out[r["case"]] = v
        return out

    rows = ratios("gan_fast")
    if not rows:
        return title, "not measured", "not measured"
    worst = min(rows, key=rows.get)
    below = sorted(k for k, v in rows.items() if v < 0.8)
    where = f"worst of {len(rows)} ops: {rows[worst]:.2f} ({worst})" + (f"; below 0.8: {', '.join(below)}"
                                                                          if below else "")
    if records and records[0].get("device_type") != "cuda":
        glue = ", ".join(f"{k} {v:.2f}" for k, v in sorted(ratios("gan_fast:cpp").items()))
        where += ("; on CPU this is validation and dispatch (the ops run ref here, bias_act too below 16K "
                  "elements)" + (f"; the C++ glue when asked for: {glue}" if glue else "") +
                  "; the Triton glue is measured on a GPU only")
    return title, where, "met" if not below else "missed"


def synthesis_layer_decision(records: List[Dict[str, Any]]) -> Tuple[str, str, str]:
    """Which algorithm of modulated_conv2d_bias_act (DEFAULT_ALGORITHM) the fwd+bwd times at the largest layer
    favour: the default triton row (cuDNN + fused epilogue) against triton:implicit_gemm, float32 first."""
    title = "synthesis layer algorithm (cudnn vs implicit_gemm), fwd+bwd"
    ms = {}
    for r in records:
        if r["op"] == "modulated_conv2d_bias_act" and r.get("pass") == "fwdbwd" and r.get("status") == "ok" \
                and not r.get("wrong") and r["case"].startswith("conv1_"):
            alg = r.get("algorithm") or ("implicit_gemm" if r["backend"] == "triton:implicit_gemm" else None)
            if alg and r["backend"] in ("triton", "triton:implicit_gemm"):
                ms.setdefault((r["case"], r["dtype"]), {})[alg] = r["median_ms"]
    pairs = {k: v for k, v in ms.items() if len(v) == 2}
    if not pairs:
        return title, "not both measured (or one was wrong)", "not measured"
    parts, wins = [], 0
    for (case, dtype), v in sorted(pairs.items()):
        ratio = v["cudnn"] / v["implicit_gemm"]
        wins += ratio > 1
        parts.append(f"{case} {dtype}: implicit_gemm {ratio:.2f}× cudnn")
    verdict = "implicit_gemm faster" if wins == len(pairs) else "cudnn faster or mixed"
    return title, "; ".join(parts), verdict


def render(runs: List[Dict[str, Any]]) -> str:
    lines = ["## Measured results", "",
             "Generated by `python -m benchmarks.report` from the newest complete recorded run of each device and "
             "preset in `benchmarks/results/` (partial runs are left out). Every ratio compares backends measured "
             "in the same run on the same device; max abs err is against a float64 `ref` run of the same pass (its "
             "largest magnitude in parentheses); a row marked noisy has an inter-quartile range above half its "
             "median.", ""]
    for dev, dev_runs in newest(runs).items():
        dtype = dev_runs[0]["meta"]["device_type"]
        lines += [f"### {_dev(dev, dtype != 'cuda')}", ""]
        recs = [r for run in dev_runs for r in run["records"]]
        lines += ["| target | where it stands | status |", "|---|---|---|"]
        lines += [f"| {t} | {w} | {s} |" for t, w, s in targets(recs, dev, dtype)]
        lines.append("")
        for run in dev_runs:
            lines += run_table(run)
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", help="result JSON files or folders (default: benchmarks/results/)")
    p.add_argument("--results", default=RESULTS_DIR)
    p.add_argument("--preset", default=None, help="only the runs of this preset (by file name)")
    p.add_argument("--tag", default="", help="only the runs of this tag (by file name)")
    p.add_argument("--only", default=None, help="only the runs of this --only selection (by file name)")
    p.add_argument("--include-partial", action="store_true",
                   help="also render --only selections and incomplete runs (labelled; never for README)")
    args = p.parse_args(argv)
    paths = find(args.files or [args.results], args.preset, args.tag, args.only)
    if not paths:
        print(f"no results in {', '.join(args.files or [args.results])}", file=sys.stderr)
        return 1
    runs = load(paths)
    if not args.include_partial:
        kept = []
        for run in runs:
            why = is_partial(run)
            if why:
                print(f"left out of README's results: {run['_path']} ({why})", file=sys.stderr)
            else:
                kept.append(run)
        runs = kept
    if not runs:
        print("no complete run to report (--include-partial shows partial ones)", file=sys.stderr)
        return 1
    print(render(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The static kernel report (``benchmarks/static_report.py``, issue 21) holds the line without a GPU.

* The decisive cases it compiles (``benchmarks/static_cases.py``) are the labels of ``presets.DECISIVE``, at the
  shapes the benchmark modules use.
* The committed report (``benchmarks/results/static-sm90-*.json``) was made from the kernels in the tree (the
  kernel-source digests match; if not: re-run the command it names) and meets the bars: no spills in a
  float32 / float16 / bfloat16 specialisation outside the experimental implicit GEMM, memory-bound kernels at
  >= 25% theoretical occupancy (autotuned ones in at least one config per launch), filtered_lrelu's float32
  dots on tensor cores.
* Marked slow: two small specialisations recompiled reproduce the committed numbers.

The compiled numbers belong to the pinned Triton (3.9.0) and its bundled ptxas: on another Triton these tests
skip (ptxas differs).
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PINNED_TRITON = "3.9.0"
sys.path.insert(0, ROOT)

from benchmarks import presets, static_cases, static_report  # noqa: E402


def _triton_version():
    import triton

    return triton.__version__


def _report():
    paths = sorted(glob.glob(os.path.join(ROOT, "benchmarks", "results", "static-sm90-*.json")))
    if not paths:
        pytest.fail(f"no committed static report: run {static_report.COMMAND}")
    with open(paths[-1]) as f:
        return paths[-1], json.load(f)


pinned = pytest.mark.skipif(_triton_version() != PINNED_TRITON,
                            reason=f"the committed static report is for triton {PINNED_TRITON} (its ptxas); this "
                                   f"is triton {_triton_version()}: registers and spills differ")


# ------------------------------------------------------------------------------------------ cases in sync


def test_the_static_cases_are_the_decisive_preset():
    want = []
    for label, _ in presets.DECISIVE:
        if label not in want:
            want.append(label)
    assert static_cases.labels() == want
    assert set(static_cases.CASES) == set(want)


def test_the_stylegan3_layers_match_the_labels_and_the_layer_class():
    for label in static_cases.labels():
        m = re.search(r"/L(\d+)_(\d+)to(\d+)px_up(\d+)$", label)
        if not m:
            continue
        index, h, out, up = map(int, m.groups())
        cin, cout, size, up_t, fu, down, fd, pad, k = static_cases.SG3_LAYERS[index]
        assert up_t == up
        if label.startswith("filtered_lrelu/"):
            assert size + k - 1 == h   # the op's input is the conv output
        else:
            assert size == h
    try:
        from gan_fast.nn.alias_free import AliasFreeSynthesisLayer, stylegan3_layer_configs
    except Exception as exc:  # noqa: BLE001 - gan_fast.nn may be mid-migration
        pytest.skip(f"gan_fast.nn.alias_free does not import here: {exc}")
    cfgs = stylegan3_layer_configs(static_cases.SG3_RES)
    for index, row in static_cases.SG3_LAYERS.items():
        layer = AliasFreeSynthesisLayer(**cfgs[index])
        assert row == (layer.in_channels, layer.out_channels, layer.in_size[1], layer.up_factor, layer.up_taps,
                       layer.down_factor, layer.down_taps, tuple(layer.padding), layer.conv_kernel)


def _bench_module(*names):
    import importlib

    errors = []
    for name in names:
        try:
            return importlib.import_module(f"benchmarks.{name}")
        except Exception as exc:  # noqa: BLE001 - the op modules may be mid-migration
            errors.append(f"{name}: {exc}")
    pytest.skip(f"the benchmark module does not import here ({'; '.join(errors)})")


def test_the_biggan_shapes_match_the_benchmark():
    mod = _bench_module("bench_spectral_normalize", "bench_spectral_norm")
    assert static_cases.biggan128_d_shapes(96) == mod.biggan128_d_shapes(96)


def test_the_stylegan3_batch_matches_the_benchmarks():
    for name in ("bench_filtered_lrelu", "bench_alias_free_layer"):
        mod = _bench_module(name)
        assert (mod.SG3_RES, mod.SG3_BATCH) == (static_cases.SG3_RES, static_cases.SG3_BATCH)


def test_every_kernel_has_a_class_and_a_model():
    from benchmarks.compile_check import defined_kernels

    defined = {k.replace("gan_fast.kernels.", "") for k in defined_kernels()}
    assert defined == set(static_report.KERNEL_CLASSES)


# -------------------------------------------------------------------------------------- the tool's errors


def test_an_unsupported_arch_is_one_line_and_nonzero():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.static_report", "--arch", "75"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unsupported arch sm_75" in lines[0], proc.stderr


def test_an_unknown_kernel_and_a_missing_ptxas_are_named(monkeypatch, tmp_path):
    from gan_fast.kernels import _device

    classes = dict(static_report.KERNEL_CLASSES)
    del classes["bias_act._bias_act_kernel"]
    monkeypatch.setattr(static_report, "KERNEL_CLASSES", classes)
    with pytest.raises(static_report.ToolError, match="unknown kernel bias_act._bias_act_kernel"):
        static_report.build(_device.SM90, 90, ["float32"], ["overhead/bias_act"], 1, str(tmp_path), log=lambda s: 0)
    monkeypatch.setattr(static_report, "triton_bin", lambda: str(tmp_path / "nowhere"))
    with pytest.raises(static_report.ToolError, match="no bundled cuobjdump"):
        static_report.tools(90)


# ---------------------------------------------------------------------------------- the committed report


@pinned
def test_the_committed_report_is_of_the_kernels_in_the_tree():
    path, report = _report()
    assert report["meta"]["versions"]["triton"] == PINNED_TRITON
    stale = sorted(k for k in static_report.KERNEL_CLASSES
                   if report["kernel_digests"].get(k) != static_report.kernel_digest(k))
    assert not stale, (f"kernels changed: re-run {report['meta']['command'].split(' --out')[0]} --out {path} "
                       f"(changed: {', '.join(stale)})")


@pinned
def test_the_committed_report_meets_the_bars():
    _, report = _report()
    assert report["meta"]["arch"] == 90 and report["meta"]["device"]["sm_count"] == 132
    assert set(report["meta"]["dtypes"]) >= {"float32", "float16", "bfloat16"}
    assert report["meta"]["cases"] == static_cases.labels()
    assert static_report.bars(report) == report["bars"]      # the stored verdict is the tool's
    assert report["bars"]["failures"] == [], report["bars"]["failures"]
    rows = report["rows"]
    gated = [r for r in rows if not r["experimental"] and r["dtype"] in static_report.GATED_DTYPES]
    assert gated and all("error" not in r for r in gated)
    assert [r for r in gated if r["spill_store_bytes"] or r["spill_load_bytes"]] == []
    for r in gated:
        if r["class"] == static_report.MEMORY and not r["autotuned"]:
            assert r["occupancy"] >= static_report.OCCUPANCY_BAR, r
    # filtered_lrelu's dots run on tensor cores in every dtype (float32 through tf32x3)
    flrelu = [r for r in gated if r["kernel"].startswith("filtered_lrelu.")]
    assert flrelu and all(r["tensor_cores"] for r in flrelu)
    assert all(any("tf32x3" in d for d in r["dots"]) for r in flrelu if r["dtype"] == "float32")
    # the experimental implicit GEMM is listed (with its spills), not gated
    assert all(r["experimental"] for r in rows if r["kernel"].endswith("_modconv_bias_act_kernel"))
    assert report["bars"]["experimental"]


@pytest.mark.slow
@pinned
def test_two_small_specialisations_recompile_to_the_committed_numbers(tmp_path):
    """The tool's numbers reproduce: record one small case, compile two of its specialisations afresh (no
    cache), compare with the committed rows of the same specialisation key."""
    _, report = _report()
    script = f"""
import json, sys
sys.path.insert(0, {ROOT!r})
from benchmarks import static_report as S
from gan_fast.kernels import _device
import triton
paths = S.tools(90)
versions = {{"triton": triton.__version__, "ptxas": S._version_line(paths["ptxas"]),
            "cuobjdump": S._version_line(paths["cuobjdump"]), "torch": S.torch.__version__}}
out = {{}}
for launch in S.record(_device.SM90, ["float32"], ["overhead/gradient_norm_penalty", "overhead/bias_act"]):
    for job in S.specialise(launch, 90):
        if job["kernel"] in ("gradient_norm_penalty._gnp_bwd_kernel", "bias_act._bias_act_kernel"):
            key = S.spec_key(job, 90, versions, S.kernel_digest(job["kernel"]))
            out.setdefault(job["kernel"], (key, S.compile_one(job, 90, paths["cuobjdump"])))
print(json.dumps(out))
"""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(got) == {"gradient_norm_penalty._gnp_bwd_kernel", "bias_act._bias_act_kernel"}
    by_key = {r["key"]: r for r in report["rows"]}
    for kernel, (key, res) in got.items():
        assert key in by_key, f"{kernel}: specialisation {key} is not in the committed report"
        row = by_key[key]
        for field in ("registers", "spill_store_bytes", "spill_load_bytes", "shared_bytes", "num_warps",
                      "tensor_cores", "dots"):
            assert res[field] == row[field], (kernel, field, res[field], row[field])

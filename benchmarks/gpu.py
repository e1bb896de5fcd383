"""The prepared GPU-machine run (``bash benchmarks/gpu.sh OUT_DIR``): a few minutes that answer every open question.

A GPU machine is lent rarely and briefly (about 15 minutes, start-up included), so this run is ordered by what
each minute answers, stays inside one wall-clock budget (``--total-s``, default 360 s) and never loses what it
measured when a step runs out of time:

1. **preflight** (seconds; at most 60): CUDA usable, a one-line Triton kernel compiles and runs, and which of nvcc, ninja and
   ``Python.h`` exist. Without CUDA the run stops here with status 2 and says so.
2. **install**: ``pip install --no-deps --no-build-isolation -e .`` without the C++ extension (seconds); if that
   fails, every later step runs in a staged tree (:func:`stage_checkout`: a temporary folder of symlinks to the
   checkout in which ``gan_fast/kernels`` and ``gan_fast/csrc`` exist, as an install lays them out), with that
   folder as the working directory and on ``PYTHONPATH``.
3. **self-test**: ``gan-fast-self-test --device cuda``, one process per op in parallel: every op x fast backend
   x dtype (float32, float16, bfloat16) judged against float64 ``ref`` (and it warms Triton's cache).
4. **decisive benchmarks** (``python -m benchmarks --preset decisive --no-compile``): the synthesis layer's
   algorithms, the R1 and path-length steps, spectral norm over every BigGAN layer, bias_act, upfirdn2d,
   filtered_lrelu, minibatch discrimination, the full iteration; in the order of ``benchmarks.presets.DECISIVE``.
5. **tests**, sharded over the cores as several pytest processes (the most valuable files first), each stopped
   with SIGINT at the deadline so pytest still prints which tests failed and why (``-rfE``). Meanwhile, when
   nvcc, ninja and Python.h exist, the C++/CUDA extension builds in the background (capped; it overlaps the
   tests, never the timings).
6. **cpp**: if the extension built, its self-test, its benchmark rows (bias_act, upfirdn2d) and its tests.
7. **compile rows**: ``torch.compile`` (default mode) of the top decisive cases, if time is left.
8. **report**: ``python -m benchmarks.report --include-partial`` over this run's JSON -> ``report.md`` (rows whose
   error against float64 exceeds their dtype's bound are marked WRONG and their speedups never quoted; a run cut
   short by its budget is labelled partial).

Output folder (at most 8 files): ``gpu.log`` (every step's output), ``preflight.json``,
``bench-decisive*.json`` (``-partial`` when a step's budget cut it short), ``report.md``, ``summary.json``. The
last lines printed are a summary.
Exit status: 0 when the report was written, 2 without CUDA, 1 otherwise.

This module imports only the standard library: every step runs in a subprocess of ``--python``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Test files in order of what a failure there would cost (the kernels that run in every training step, then
# the new kernels, then integration); files not listed follow in name order.
PRIORITY_TESTS = [
    "test_self_test.py", "test_cuda_graphs.py", "test_autotune_configs.py", "test_modulated_conv2d_bias_act.py",
    "test_modulated_conv2d_backends.py", "test_bias_act_triton_kernels.py", "test_upfirdn2d_triton_kernels.py",
    "test_gradient_norm_penalty_backends.py", "test_spectral_norm_backends.py", "test_filtered_lrelu_triton.py",
    "test_minibatch_discrimination_backends.py", "test_bias_act_backends.py", "test_upfirdn2d_backends.py",
    "test_alias_free.py", "test_rosinality.py", "test_grid_sample_gradfix.py", "test_compile.py", "test_autocast.py",
    "test_conv2d_gradfix.py", "test_models.py", "test_train_e2e.py", "test_ddp.py",
]
# The decisive cases whose torch.compile rows are measured when time is left (step 7).
COMPILE_CASES = r"modulated_conv2d_bias_act/conv1_256px|r1_step/D256|bias_act/synth256|filtered_lrelu/L11"
CPP_CASES = r"^(bias_act|upfirdn2d)/"
CPP_TESTS = ["tests/test_bias_act_backends.py", "tests/test_upfirdn2d_backends.py", "tests/test_self_test.py"]

# Per step: (cap in seconds, the least worth starting with).
STEPS = {
    "preflight": (60, 5), "install": (30, 5), "self-test": (60, 20), "decisive": (110, 30), "tests": (90, 30),
    "cpp": (40, 15), "compile": (120, 40), "report": (10, 3),
}
REPORT_RESERVE = 15  # always kept for the report (and the summary)


def stage_checkout(root: str, dest: str) -> str:
    """Lays the checkout ``root`` out in ``dest`` as an install would, without copying it: ``dest/gan_fast`` is a
    folder of symlinks to ``root/gan_fast``'s entries plus ``kernels`` -> ``root/kernels`` and ``csrc`` ->
    ``root/csrc`` (``gan_fast.kernels`` and ``gan_fast.csrc`` are mapped there by ``setup.py``); every other
    top-level entry of ``root`` (``benchmarks``, ``tests``, ``pyproject.toml`` ...) is a symlink. Returns ``dest``:
    a working directory (and ``PYTHONPATH`` entry) from which ``import gan_fast.kernels`` works without an
    install."""
    os.makedirs(dest, exist_ok=True)
    for name in os.listdir(root):
        if name in ("gan_fast", ".git"):
            continue
        target = os.path.join(dest, name)
        if not os.path.lexists(target):
            os.symlink(os.path.join(root, name), target)
    pkg = os.path.join(dest, "gan_fast")
    os.makedirs(pkg, exist_ok=True)
    for name in os.listdir(os.path.join(root, "gan_fast")):
        target = os.path.join(pkg, name)
        if not os.path.lexists(target):
            os.symlink(os.path.join(root, "gan_fast", name), target)
    for name, src in (("kernels", "kernels"), ("csrc", "csrc")):
        target = os.path.join(pkg, name)
        if os.path.isdir(os.path.join(root, src)) and not os.path.lexists(target):
            os.symlink(os.path.join(root, src), target)
    return dest


class Run:
    def __init__(self, out: str, total: float, python: str, shards: int):
        self.out, self.total, self.python, self.shards = out, total, python, shards
        self.t0 = time.monotonic()
        self.log_path = os.path.join(out, "gpu.log")
        self.summary: Dict[str, Dict] = {}
        open(self.log_path, "w").close()
        # Nothing inherited decides a step (GAN_FAST_AUTOTUNE=first would time one config only,
        # GAN_FAST_REQUIRE_BACKENDS would fail the cpp tests the extension-less steps skip ...).
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GAN_FAST_") and k != "TRITON_INTERPRET"}
        self.env.update(PYTHONUNBUFFERED="1", GAN_FAST_EXT="0")
        self.children: List[subprocess.Popen] = []
        self.cwd = ROOT           # the staged tree when the install failed (stage_checkout)
        self.stage: Optional[str] = None

    # -------------------------------------------------------------------------------------------- plumbing

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return self.total - self.elapsed()

    def log(self, msg: str) -> None:
        line = f"[gpu {self.elapsed():5.0f}s] {msg}"
        print(line, flush=True)
        with open(self.log_path, "a") as f:
            f.write(line + "\n")

    def grant(self, step: str, reserve: float = REPORT_RESERVE, tag: Optional[str] = None) -> Optional[float]:
        """Seconds step ``step`` may take, or None (logged under ``tag``) when less than its minimum is left."""
        cap, least = STEPS[step]
        t = min(cap, self.left() - reserve)
        if t < least:
            tag = tag or step
            self.log(f"{tag}: SKIPPED (only {max(t, 0):.0f} s left of the {self.total:.0f} s budget)")
            self.summary[tag] = {"status": "skipped", "left_s": round(max(t, 0), 1)}
            return None
        return t

    def start(self, cmd: Sequence[str], log_path: str, env: Optional[Dict] = None) -> subprocess.Popen:
        with open(log_path, "ab") as f:
            proc = subprocess.Popen(list(cmd), stdout=f, stderr=subprocess.STDOUT, cwd=self.cwd, env=env or self.env,
                                    start_new_session=True)
        self.children.append(proc)
        return proc

    def kill_children(self) -> None:
        """Every process group still running is killed (this run ends; a warm machine must not keep them), and the
        staged tree (symlinks only) removed."""
        for proc in self.children:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.stage:
            shutil.rmtree(self.stage, ignore_errors=True)

    @staticmethod
    def stop(proc: subprocess.Popen, sig: int = signal.SIGINT, grace: float = 10.0) -> None:
        """``sig`` to the process group (pytest prints its summary on SIGINT, the runner writes its JSON on
        SIGTERM), then SIGKILL after ``grace`` seconds."""
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()

    def wait_all(self, procs: List[subprocess.Popen], deadline: float, sig: int) -> List[Optional[int]]:
        """Waits until every process ended or the deadline (monotonic) passed; stops the rest with ``sig``;
        returns the return codes (None: stopped at the deadline)."""
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.2)
        stopped = [p for p in procs if p.poll() is None]
        for p in stopped:  # every one signalled first, then one shared grace period
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
        grace = time.monotonic() + 10.0
        while any(p.poll() is None for p in stopped) and time.monotonic() < grace:
            time.sleep(0.1)
        for p in stopped:
            if p.poll() is None:
                self.stop(p, signal.SIGKILL, grace=5.0)
        return [None if p in stopped else p.returncode for p in procs]

    def step(self, name: str, cmd: Sequence[str], timeout: float, env: Optional[Dict] = None,
             sig: int = signal.SIGINT) -> Optional[int]:
        """Runs one command into gpu.log under ``timeout``; returns its status (None: stopped at the timeout)."""
        self.log(f"{name}: start (timeout {timeout:.0f} s): {' '.join(cmd)}")
        s = time.monotonic()
        with open(self.log_path, "a") as f:
            f.write(f"----- {name} -----\n")
        proc = self.start(cmd, self.log_path, env)
        rc = self.wait_all([proc], s + timeout, sig)[0]
        took = time.monotonic() - s
        self.log(f"{name}: {'TIMED OUT' if rc is None else f'rc={rc}'} in {took:.0f} s")
        self.summary[name] = {"rc": rc, "seconds": round(took, 1)}
        return rc

    def py(self, *args: str) -> List[str]:
        return [self.python, *args]

    # -------------------------------------------------------------------------------------------- steps

    def preflight(self) -> Dict:
        """What the machine offers. The JSON is written as soon as CUDA has been probed and again after the
        Triton probe, so a slow cold start costs the Triton line, never the run: only a recorded cuda=False
        stops it."""
        t = self.grant("preflight")
        path = os.path.join(self.out, "preflight.json")
        rc = self.step("preflight", self.py("-m", "benchmarks.gpu", "--preflight", path), t or 5)
        try:
            with open(path) as f:
                info = json.load(f)
        except (OSError, ValueError):
            info = {"cuda": None, "why": f"the preflight wrote nothing (rc={rc}); going on"}
        self.summary["preflight"]["info"] = info
        return info

    def install(self) -> None:
        t = self.grant("install")
        env = dict(self.env, GAN_FAST_BUILD_EXT="0")
        rc = None if t is None else self.step("install", self.py("-m", "pip", "install", "--no-deps",
                                                                 "--no-build-isolation", "-e", "."), t, env)
        if rc != 0:
            self.stage = stage_checkout(ROOT, tempfile.mkdtemp(prefix="gan_fast_stage_"))
            self.cwd = self.stage
            self.env["PYTHONPATH"] = self.stage + os.pathsep + self.env.get("PYTHONPATH", "")
            self.log(f"install: using the checkout through a staged tree {self.stage} (gan_fast/kernels linked in; "
                     "working directory and PYTHONPATH)")

    def self_test(self, ops_pattern: Optional[str] = None, tag: str = "self-test", env=None) -> None:
        t = self.grant("self-test", tag=tag)
        if t is None:
            return
        # One autotune config: the self-test's tiny cases would otherwise tune every kernel (as users' first calls
        # do not: their shapes tune once).
        env = dict(env or self.env, GAN_FAST_AUTOTUNE="first")
        names = self.op_names() if ops_pattern is None else [ops_pattern]
        self.log(f"{tag}: {len(names)} processes (timeout {t:.0f} s)")
        logs = [os.path.join(self.out, f".{tag}-{i}.log") for i in range(len(names))]
        s = time.monotonic()
        procs = [self.start(self.py("-m", "gan_fast.self_test", "--device", "cuda", "--op", pat), log, env)
                 for pat, log in zip(names, logs)]
        codes = self.wait_all(procs, s + t, signal.SIGTERM)
        lines = self.collect(logs, f"----- {tag} -----")
        verdicts = [ln.strip() for ln in lines if re.search(r"\s(ok|FAILED|unavailable)", ln)]
        self.summary[tag] = {"rc": codes, "seconds": round(time.monotonic() - s, 1), "lines": verdicts}
        self.log(f"{tag}: {sum(' ok' in v for v in verdicts)} ok, {sum('FAILED' in v for v in verdicts)} FAILED, "
                 f"{sum(c is None for c in codes)} stopped at the deadline")

    def op_names(self) -> List[str]:
        """The registered self-test ops (one process each), read without importing torch here."""
        try:
            out = subprocess.run(self.py("-c", "import gan_fast.self_test as s; print(' '.join(sorted(s.registered())))"),
                                 cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=60)
            names = out.stdout.split()
        except subprocess.TimeoutExpired:
            names = []
        return [f"^{re.escape(n)}$" for n in names] or [".*"]

    def collect(self, logs: List[str], header: str) -> List[str]:
        """Appends the logs to gpu.log under ``header``, deletes them, returns their lines."""
        lines = []
        with open(self.log_path, "a") as out:
            out.write(header + "\n")
            for path in logs:
                try:
                    with open(path, errors="replace") as f:
                        text = f.read()
                except OSError:
                    continue
                out.write(f"--- {os.path.basename(path)}\n{text}\n")
                lines += text.splitlines()
                os.remove(path)
        return lines

    def bench(self, step: str, args: Sequence[str], env=None, reserve: float = REPORT_RESERVE) -> Optional[int]:
        t = self.grant(step, reserve)
        if t is None:
            return None
        # the cpp step's benchmark and its tests are both "cpp" steps: keep their summaries apart
        # The runner stops starting measurements at --budget-s and writes its JSON; SIGTERM is the backstop.
        cmd = self.py("-m", "benchmarks", "--out", self.out, "--no-chart", "--budget-s", f"{max(t - 15, t / 2):.0f}",
                      *args)
        return self.step(step, cmd, t, env, sig=signal.SIGTERM)

    def test_files(self) -> List[str]:
        files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "tests", "test_*.py")))
        first = [f for f in PRIORITY_TESTS if f in files]
        return [f"tests/{f}" for f in first + [f for f in files if f not in first]]

    def tests(self, tools: Dict) -> Optional[subprocess.Popen]:
        """The sharded test step, with the extension build in the background when the tools exist; returns
        the build process (still running or not) or None."""
        t = self.grant("tests")
        build = self.start_extension_build(tools, (t or 0) + 20)
        if t is None:
            return build
        files = self.test_files()
        shards = [files[i::self.shards] for i in range(self.shards)]
        logs = [os.path.join(self.out, f".tests-{i}.log") for i in range(len(shards))]
        self.log(f"tests: {len(files)} files in {len(shards)} shards (timeout {t:.0f} s)")
        s = time.monotonic()
        procs = [self.start(self.py("-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "-m", "not slow", *shard),
                            log) for shard, log in zip(shards, logs)]
        codes = self.wait_all(procs, s + t, signal.SIGINT)
        lines = self.collect(logs, "----- tests -----")
        self.summary["tests"] = {"rc": codes, "seconds": round(time.monotonic() - s, 1),
                                 "failures": [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))][:60],
                                 "results": [ln for ln in lines if re.search(r"\d+ (passed|failed)", ln)]}
        self.log(f"tests: {len(self.summary['tests']['failures'])} failures; shards {codes}")
        return build

    def start_extension_build(self, tools: Dict, cap: float) -> Optional[subprocess.Popen]:
        missing = [k for k in ("nvcc", "ninja", "python_h") if not tools.get(k)]
        if missing:
            self.log(f"extension: not built ({', '.join(missing)} missing); the cpp rows are skipped")
            self.summary["extension"] = {"status": "not built", "missing": missing}
            return None
        self.ext_env = dict(self.env, GAN_FAST_EXT="jit", GAN_FAST_CACHE_DIR="/tmp/gan_fast_gpu_cache",
                            MAX_JOBS=str(max(2, (os.cpu_count() or 4) // 4)), TORCH_CUDA_ARCH_LIST="9.0")
        code = ("from gan_fast import extension as e; ok, why = e.status(); "
                "print('EXTENSION', ok, e.has_cuda() if ok else False, why)")
        self.log(f"extension: building in the background (cap {cap:.0f} s)")
        self.ext_log = os.path.join(self.out, ".extension.log")
        proc = self.start(self.py("-c", code), self.ext_log, self.ext_env)
        proc.deadline = time.monotonic() + cap  # type: ignore[attr-defined]
        return proc

    def finish_extension_build(self, proc: Optional[subprocess.Popen]) -> bool:
        if proc is None:
            return False
        rc = self.wait_all([proc], min(proc.deadline, time.monotonic() + max(self.left() - 60, 0)),  # type: ignore
                           signal.SIGINT)[0]
        lines = self.collect([self.ext_log], "----- extension build -----")
        verdict = next((ln for ln in lines if ln.startswith("EXTENSION")), "")
        ok = rc == 0 and verdict.startswith("EXTENSION True True")
        self.summary["extension"] = {"rc": rc, "built_with_cuda": ok, "line": verdict[:300]}
        self.log(f"extension: {'built with CUDA kernels' if ok else 'not usable: ' + (verdict or f'rc={rc}')}")
        return ok

    def cpp(self) -> None:
        env = self.ext_env
        self.self_test(r"^(bias_act|upfirdn2d)$", tag="self-test-cpp", env=env)
        self.bench("cpp", ["--preset", "decisive", "--only", CPP_CASES, "--tag", "cpp"], env=env)
        t = self.grant("cpp", tag="cpp-tests")
        if t is not None:
            self.step("cpp-tests", self.py("-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "-k", "cpp",
                                           *CPP_TESTS), t, env)

    def report(self) -> bool:
        jsons = sorted(glob.glob(os.path.join(self.out, "bench-*.json")))
        if not jsons:
            self.log("report: no benchmark JSON was written")
            return False
        path = os.path.join(self.out, "report.md")
        try:
            with open(path, "w") as f:
                rc = subprocess.call(self.py("-m", "benchmarks.report", "--include-partial", *jsons), stdout=f,
                                     stderr=subprocess.STDOUT, cwd=self.cwd, env=self.env, timeout=60)
        except subprocess.TimeoutExpired:
            rc = None
        self.summary["report"] = {"rc": rc, "files": [os.path.basename(p) for p in jsons]}
        return rc == 0

    def write_summary(self) -> None:
        self.summary["total_s"] = round(self.elapsed(), 1)
        with open(os.path.join(self.out, "summary.json"), "w") as f:
            json.dump(self.summary, f, indent=1, default=str)
        print("\n===== summary =====", flush=True)
        for name, item in self.summary.items():
            if not isinstance(item, dict):
                print(f"{name}: {item}")
                continue
            brief = {k: v for k, v in item.items() if k not in ("lines", "failures", "results", "info")}
            print(f"{name}: {brief}")
            for key in ("lines", "failures", "results"):
                for line in item.get(key, [])[:40]:
                    print(f"    {line}")
        report = os.path.join(self.out, "report.md")
        if os.path.exists(report):
            with open(report) as f:
                text = f.read()
            for line in text.splitlines():  # the targets and decisions, not the long tables
                if line.startswith(("### ", "| target", "|---|---|---|")) or (
                        line.count("|") == 4 and not line.startswith("| op")):
                    print(line)
        sys.stdout.flush()


def preflight(path: str) -> int:
    """Writes what this machine offers as JSON to ``path``; 0 when CUDA and Triton run."""
    import importlib.util
    import sysconfig

    info: Dict = {"python": sys.version.split()[0], "cpus": os.cpu_count()}

    def write():
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(info, f, indent=1)
        os.replace(tmp, path)

    cuda_home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    info["nvcc"] = shutil.which("nvcc") or (os.path.join(cuda_home, "bin", "nvcc")
                                            if os.path.exists(os.path.join(cuda_home, "bin", "nvcc")) else None)
    info["ninja"] = shutil.which("ninja") or (importlib.util.find_spec("ninja") is not None)
    info["python_h"] = os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h"))
    for mod in ("pytest", "numpy", "matplotlib"):
        info[mod] = importlib.util.find_spec(mod) is not None
    try:
        import torch

        info.update(torch=torch.__version__, cuda_build=torch.version.cuda, cuda=torch.cuda.is_available())
        if info["cuda"]:
            info.update(device=torch.cuda.get_device_name(), capability=list(torch.cuda.get_device_capability()))
        else:
            info["why"] = ("torch.cuda.is_available() is False (no NVIDIA driver or GPU visible, or a CPU build "
                           f"of torch: torch.version.cuda = {torch.version.cuda})")
    except Exception as exc:  # noqa: BLE001
        info.update(cuda=False, why=f"import torch failed: {exc!r}")
    write()
    if info.get("cuda"):
        try:
            import triton
            import triton.language as tl

            @triton.jit
            def _add_one(x_ptr, n, BLOCK: tl.constexpr):
                offs = tl.arange(0, BLOCK)
                tl.store(x_ptr + offs, tl.load(x_ptr + offs, mask=offs < n) + 1, mask=offs < n)

            x = torch.zeros(1000, device="cuda")
            _add_one[(1,)](x, 1000, BLOCK=1024)
            info["triton"] = triton.__version__
            info["triton_kernel"] = "ok" if bool((x == 1).all()) else "ran but gave a wrong result"
        except Exception as exc:  # noqa: BLE001
            info["triton_kernel"] = f"failed: {exc!r}"[:500]
        write()
    print(json.dumps(info), flush=True)
    return 0 if info.get("cuda") and info.get("triton_kernel") == "ok" else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bash benchmarks/gpu.sh", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default=os.environ.get("OUT") or "gpu_out", help="output folder")
    ap.add_argument("--total-s", type=float, default=float(os.environ.get("GAN_FAST_GPU_TOTAL_S", 360)),
                    help="wall-clock budget of the whole run (default 360)")
    ap.add_argument("--python", default=os.environ.get("PYTHON") or sys.executable)
    ap.add_argument("--shards", type=int, default=6, help="parallel pytest processes")
    ap.add_argument("--preflight", metavar="JSON", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.preflight:
        return preflight(args.preflight)
    os.makedirs(args.out, exist_ok=True)
    run = Run(os.path.abspath(args.out), args.total_s, args.python, args.shards)
    run.log(f"out {run.out}, budget {args.total_s:.0f} s, python {args.python}")

    def terminated(signum, frame):  # the device tool's timeout: end the children, keep the summary
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminated)
    try:
        info = run.preflight()
        if info.get("cuda") is False:
            run.log(f"STOP: CUDA is not available here: {info.get('why', 'unknown')}. Nothing was installed, "
                    "tested or benchmarked (this script is for a CUDA GPU machine).")
            return 2
        run.log(f"preflight: {info.get('device')} sm_{''.join(map(str, info.get('capability', [])))}, torch "
                f"{info.get('torch')}, triton {info.get('triton')} ({info.get('triton_kernel')}), nvcc "
                f"{info.get('nvcc')}, ninja {info.get('ninja')}, Python.h {info.get('python_h')}, pytest "
                f"{info.get('pytest')}")
        run.install()
        run.self_test()
        run.bench("decisive", ["--preset", "decisive", "--no-compile"])
        build = run.tests(info) if info.get("pytest", True) else run.start_extension_build(info, 60)
        if run.finish_extension_build(build):
            run.cpp()
        run.bench("compile", ["--preset", "decisive", "--only", COMPILE_CASES, "--tag", "compile",
                              "--compile-mode", "default"])
        return 0 if run.report() else 1
    except KeyboardInterrupt as exc:
        run.log(f"STOPPED ({exc}): the steps still running are ended; what was written stays")
        run.report()
        return 1
    finally:
        run.kill_children()
        run.write_summary()


if __name__ == "__main__":
    sys.exit(main())

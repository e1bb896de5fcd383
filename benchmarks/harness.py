"""The measuring machinery shared by the runner and the pytest-benchmark files.

A :class:`Case` is one op at one shape and dtype. For each case the harness
builds one set of inputs and, for every *backend*, runs each *pass*:

* backends: ``eager`` (the ``ref`` implementation, eager), ``compile``
  (``torch.compile`` of the same ``ref`` call; ``max-autotune-no-cudagraphs`` on
  CUDA, the default mode on CPU), every fast backend the op module lists in
  ``FAST_BACKENDS`` that can run on the device (never ``triton`` for CPU
  tensors), and optional extra baselines (e.g. PyTorch's own spectral norm).
* passes: ``fwd`` (forward with autograd recording, as in training), ``fwdbwd``
  (forward + gradients of all differentiable inputs for a fixed random
  cotangent) and ``dbl`` (the double-backward step that R1 / path length
  need: first gradients with ``create_graph=True``, then the gradient of a
  fixed random projection of them w.r.t. every input and the cotangent).

Each measurement gives the median and inter-quartile range of the time per
call (CUDA events on GPU, ``perf_counter`` on CPU), the peak extra CUDA memory
of one call (None on CPU), and the max abs error of all the pass's results
against the float64 ``ref`` run of the same pass on the same values.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import math
import os
import platform
import statistics
import subprocess
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

PASSES = ("fwd", "fwdbwd", "dbl")
PASS_TITLES = {"fwd": "forward", "fwdbwd": "fwd+bwd", "dbl": "double bwd"}
BASELINES = ("eager", "compile")

Tensors = Dict[str, torch.Tensor]


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One op at one shape and dtype.

    ``make(device, dtype, batch)`` returns the named input tensors (``batch`` None
    means the case's own batch; a smaller one is used for the float64 error
    check when ``err_batch`` is set). ``run(tensors, impl, **variant)`` calls the
    op (or a composite step built from ops) with ``impl`` and returns a tensor or
    a tuple/list of tensors. ``diff`` names the inputs that require grad; ``first``
    the ones the first gradient of the ``dbl`` pass is taken with respect to
    (default: ``diff``). ``steps`` maps a pass name to a function that replaces
    (or adds) that pass: ``step(forward, tensors, cot) -> tuple of tensors``.
    ``check_error=False`` skips the float64 comparison (e.g. a training
    iteration that updates its own state); ``items_per_call`` (e.g. the batch)
    adds a throughput figure. ``compile=False`` records the compile backend as
    skipped with ``compile_note`` as the reason.
    """

    op: str
    name: str
    shape: str
    dtype: torch.dtype
    make: Callable[..., Tensors]
    run: Callable[..., Any]
    diff: Sequence[str]
    op_modules: Sequence[Any] = ()
    first: Optional[Sequence[str]] = None
    passes: Sequence[str] = ("fwd", "fwdbwd")
    variants: Dict[str, Dict[str, Any]] = field(default_factory=lambda: {"": {}})
    extra_baselines: Dict[str, Callable[[Tensors], Tuple[Callable[[Tensors], Any], Tensors]]] = field(
        default_factory=dict)
    steps: Dict[str, Callable[..., Tuple[torch.Tensor, ...]]] = field(default_factory=dict)
    check_error: bool = True
    items_per_call: Optional[int] = None
    err_batch: Optional[int] = None
    compile: bool = True
    compile_note: str = ""
    compile_mode: Optional[str] = "auto"  # "auto": the run's mode; else this torch.compile mode (None: default)
    bytes_moved: Dict[str, float] = field(default_factory=dict)  # pass -> bytes, for GB/s
    reps: Optional[int] = None  # fixed number of timed samples (slow cases), else the run's TimingConfig
    priority: int = 0  # lower runs first (a run cut short by its time budget keeps the important shapes)
    note: str = ""
    # backend label -> extra fields of its records, e.g. {"triton": {"algorithm": "cudnn"}}: what a row ran
    record_fields: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.op}/{self.name}"


# ------------------------------------------------------------------------ environment


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    n = torch.get_num_threads()
    return f"CPU {model} ({n} thread{'s' if n > 1 else ''})"


def slug(text: str) -> str:
    out = "".join(c.lower() if c.isalnum() else "-" for c in text)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")[:60]


def triton_version() -> Optional[str]:
    try:
        import triton

        return triton.__version__
    except Exception:
        return None


def git_commit() -> Optional[str]:
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=10)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except Exception:
        return None


def environment(device: torch.device) -> Dict[str, Any]:
    import gan_fast

    env = {
        "device": device_name(device),
        "device_type": device.type,
        "torch": torch.__version__,
        "triton": triton_version(),
        "gan_fast": getattr(gan_fast, "__version__", None),
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
        env["sm_count"] = props.multi_processor_count
    return env


def compile_mode(device: torch.device) -> Optional[str]:
    return "max-autotune-no-cudagraphs" if device.type == "cuda" else None


# --------------------------------------------------------------------------- backends


def op_module(name: str):
    """The module ``gan_fast.ops.<name>`` (``from gan_fast.ops import bias_act`` gives the function)."""
    return importlib.import_module(f"gan_fast.ops.{name}")


def fast_backends(op_modules: Sequence[Any], device: torch.device) -> Tuple[List[str], Dict[str, str]]:
    """(usable fast backends, {listed-but-unusable backend: why}) for a case's op modules.

    A backend counts when any of the op modules lists it for ``device.type`` in
    ``FAST_BACKENDS`` (the composite steps force it on every op that has it).
    Triton is never used for CPU tensors: its interpreter is a test mode.
    """
    from gan_fast import backend as gf_backend

    listed: List[str] = []
    for mod in op_modules:
        if not isinstance(getattr(mod, "FAST_BACKENDS", None), dict):
            raise TypeError(f"{mod!r} is not an op module with a FAST_BACKENDS dict")
        for name in mod.FAST_BACKENDS.get(device.type, ()):
            name = gf_backend.normalize_impl(name)
            if name not in listed and name != "ref":
                listed.append(name)
    status = gf_backend.available_backends(device)
    usable, unusable = [], {}
    for name in listed:
        if name == "triton" and device.type != "cuda":
            unusable[name] = "triton is never timed on CPU tensors (the interpreter is a test mode)"
            continue
        ok, why = status.get(name, (False, "unknown backend"))
        if ok:
            usable.append(name)
        else:
            unusable[name] = why
    return usable, unusable


# ------------------------------------------------------------------------------ timing


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class TimingConfig:
    warmup: int = 2
    min_reps: int = 5
    max_reps: int = 30
    max_seconds: float = 0.6      # per measurement, after warmup
    min_sample_ms: float = 0.0    # on CUDA: repeat a call inside one sample until it lasts this long


def _sample(fn: Callable[[], Any], device: torch.device, number: int) -> float:
    """One timing sample: ms per call, averaged over ``number`` back-to-back calls."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / number
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) * 1e3 / number


def _stats(times: List[float]) -> Tuple[float, float, int]:
    times = sorted(times)
    med = statistics.median(times)
    if len(times) >= 4:
        q = statistics.quantiles(times, n=4)
        iqr = q[2] - q[0]
    else:
        iqr = times[-1] - times[0]
    return med, iqr, len(times)


def time_interleaved(fns: Sequence[Callable[[], Any]], device: torch.device,
                     cfg: TimingConfig) -> List[Any]:
    """Times several callables with their samples interleaved (round robin, alternating order), so
    that a change of machine load hits every backend alike: the ratios of one run stay fair on a
    shared CPU. Returns, per callable, (median ms, IQR ms, samples) or the exception it raised."""
    out: List[Any] = [None] * len(fns)
    alive = []
    for i, fn in enumerate(fns):
        try:
            for _ in range(cfg.warmup):
                fn()
            synchronize(device)
            alive.append(i)
        except Exception as exc:
            out[i] = exc
    number = {i: 1 for i in alive}
    if device.type == "cuda" and cfg.min_sample_ms > 0:
        for i in alive:
            est = _sample(fns[i], device, 1)
            number[i] = max(1, min(100, int(math.ceil(cfg.min_sample_ms / max(est, 1e-3)))))
    times: Dict[int, List[float]] = {i: [] for i in alive}
    t_start = time.perf_counter()
    budget = cfg.max_seconds * max(len(alive), 1)
    for rep in range(cfg.max_reps):
        order = alive if rep % 2 == 0 else alive[::-1]
        for i in list(order):
            try:
                times[i].append(_sample(fns[i], device, number[i]))
            except Exception as exc:
                out[i] = exc
                alive.remove(i)
        if rep + 1 >= cfg.min_reps and time.perf_counter() - t_start > budget:
            break
    for i, ts in times.items():
        if out[i] is None and ts:
            out[i] = _stats(ts)
    return out


def time_callable(fn: Callable[[], Any], device: torch.device, cfg: TimingConfig) -> Tuple[float, float, int]:
    """(median ms, IQR ms, samples) of ``fn`` per call."""
    res = time_interleaved([fn], device, cfg)[0]
    if isinstance(res, BaseException):
        raise res
    return res


def peak_memory_mb(fn: Callable[[], Any], device: torch.device) -> Optional[float]:
    """Peak CUDA memory of one call above what was allocated before it (None off CUDA)."""
    if device.type != "cuda":
        return None
    synchronize(device)
    gc.collect()
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    out = fn()
    synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    del out
    return (peak - base) / 2**20


# ------------------------------------------------------------------------------ passes


class Cotangents:
    """Fixed random cotangents / projection vectors, the same values for every backend of a case.

    Values are drawn once per (role, shape) in float32 from a seeded generator,
    then cast to the case dtype; the float64 reference gets exactly those values.
    """

    def __init__(self, device: torch.device, dtype: torch.dtype, seed: int = 1234):
        self.device, self.dtype, self.seed = device, dtype, seed
        self._cache: Dict[Tuple[str, Tuple[int, ...]], torch.Tensor] = {}

    def get(self, role: str, shape: Sequence[int], dtype: torch.dtype, requires_grad: bool = False) -> torch.Tensor:
        key = (role, tuple(shape))
        if key not in self._cache:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(self.seed + len(self._cache))
            base = torch.randn(tuple(shape), generator=gen, device=self.device, dtype=torch.float32)
            self._cache[key] = base.to(self.dtype)
        t = self._cache[key].to(dtype)
        return t.detach().requires_grad_(requires_grad)


def _as_tuple(out) -> Tuple[torch.Tensor, ...]:
    if isinstance(out, torch.Tensor):
        return (out,)
    return tuple(out)


def _differentiable(outs: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    return [o for o in outs if isinstance(o, torch.Tensor) and o.requires_grad]


def make_pass(case: Case, pass_name: str, forward: Callable[[Tensors], Any], tensors: Tensors,
              cot: Cotangents, impl: str = "ref") -> Callable[[], Tuple[torch.Tensor, ...]]:
    """A no-argument callable running one pass; it returns every result the error check compares.

    ``impl`` is the backend of ``forward`` (``ref`` for torch.compile), for custom steps that call
    ops outside the forward (e.g. the penalty of the R1 step).
    """
    diff = [tensors[n] for n in case.diff]
    first = [tensors[n] for n in (case.first or case.diff)]

    if pass_name in case.steps:
        step = case.steps[pass_name]

        def run():
            return _as_tuple(step(forward, tensors, cot, impl))
        return run

    if pass_name == "fwd":
        def run():
            return _as_tuple(forward(tensors))
        return run

    if pass_name == "fwdbwd":
        def run():
            outs = _as_tuple(forward(tensors))
            douts = _differentiable(outs)
            dys = [cot.get(f"dy{i}", o.shape, o.dtype) for i, o in enumerate(douts)]
            grads = torch.autograd.grad(douts, diff, dys, allow_unused=True)
            return tuple(outs) + tuple(grads)
        return run

    if pass_name == "dbl":
        def run():
            outs = _differentiable(_as_tuple(forward(tensors)))
            dys = [cot.get(f"ddy{i}", o.shape, o.dtype, requires_grad=True) for i, o in enumerate(outs)]
            g = torch.autograd.grad(outs, first, dys, create_graph=True)
            loss = sum((gi * cot.get(f"v{i}", gi.shape, gi.dtype)).sum() for i, gi in enumerate(g))
            second = torch.autograd.grad(loss, diff + dys, allow_unused=True)
            return tuple(g) + tuple(second)
        return run

    raise ValueError(f"unknown pass {pass_name!r}")


def to_float64(tensors: Tensors) -> Tensors:
    out = {}
    for k, t in tensors.items():
        if t.is_floating_point():
            out[k] = t.detach().to(torch.float64).requires_grad_(t.requires_grad)
        else:
            out[k] = t
    return out


def max_abs_error(results: Sequence[Optional[torch.Tensor]], ref: Sequence[Optional[torch.Tensor]]) -> float:
    """Max over all result tensors of |result - ref| (None counts as zeros)."""
    if len(results) != len(ref):
        raise RuntimeError(f"pass returned {len(results)} results, the float64 reference {len(ref)}")
    err = 0.0
    for a, b in zip(results, ref):
        if a is None and b is None:
            continue
        if a is None:
            a = torch.zeros_like(b)
        if b is None:
            b = torch.zeros_like(a)
        if a.shape != b.shape:
            raise RuntimeError(f"result shape {tuple(a.shape)} != reference shape {tuple(b.shape)}")
        if a.numel():
            d = (a.detach().to(torch.float64) - b.detach().to(torch.float64)).abs().max().item()
            err = max(err, d) if not math.isnan(d) else float("nan")
    return err


def ref_scale(ref: Sequence[Optional[torch.Tensor]]) -> float:
    return max((float(t.detach().abs().max()) for t in ref if t is not None and t.numel()), default=0.0)


def ref_rms(ref: Sequence[Optional[torch.Tensor]]) -> float:
    """The largest RMS among the pass's results: the scale of benchmarks.report's error floor (max_abs_err is
    the max over the same results; the RMS, unlike the max, is not set by a few large entries)."""
    return max((float(t.detach().double().square().mean().sqrt()) for t in ref if t is not None and t.numel()),
               default=0.0)


def short_error(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ------------------------------------------------------------------------------ running


@contextlib.contextmanager
def forced_impl(name: Optional[str]):
    """Sets GAN_FAST_IMPL for code (gan_fast.models) that calls ops with impl=None."""
    old = os.environ.get("GAN_FAST_IMPL")
    if name is None:
        os.environ.pop("GAN_FAST_IMPL", None)
    else:
        os.environ["GAN_FAST_IMPL"] = name
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("GAN_FAST_IMPL", None)
        else:
            os.environ["GAN_FAST_IMPL"] = old


def reset_compiler() -> None:
    """Fresh torch.compile caches for each case, and a recompile limit that a case (variants x
    error-check shapes) cannot reach: hitting it would silently fall back to eager."""
    torch._dynamo.reset()
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(64, getattr(torch._dynamo.config, name)))


def _bind(case: Case, impl: str, variant: Dict[str, Any]) -> Callable[[Tensors], Any]:
    def forward(tensors):
        return case.run(tensors, impl, **variant)
    return forward


@dataclass
class Measurement:
    backend: str
    variant: str
    pass_name: str
    status: str = "ok"                # ok | error | unavailable | skipped | interrupted
    median_ms: Optional[float] = None
    iqr_ms: Optional[float] = None
    reps: Optional[int] = None
    first_call_s: Optional[float] = None
    peak_mem_mb: Optional[float] = None
    max_abs_err: Optional[float] = None
    ref_max_abs: Optional[float] = None
    ref_rms: Optional[float] = None
    error: Optional[str] = None
    note: str = ""


class Runner:
    """Runs cases on one device; ``run_case`` returns one :class:`Measurement` per (backend, variant, pass).

    For each case: every backend's first call of every pass (compilation included) and its error
    check run first; then, pass by pass, all backends are timed with interleaved samples.
    """

    def __init__(self, device: torch.device, timing: TimingConfig, compile_enabled: bool = True,
                 compile_mode_name: Optional[str] = "auto", deadline: Optional[float] = None,
                 on_step: Optional[Callable[[str], None]] = None):
        self.in_flight: List[Measurement] = []
        self.device = device
        self.timing = timing
        self.compile_enabled = compile_enabled
        self.compile_mode = compile_mode(device) if compile_mode_name == "auto" else compile_mode_name
        self.deadline = deadline
        self.on_step = on_step or (lambda msg: None)

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def backends(self, case: Case) -> Tuple[List[Tuple[str, str]], Dict[str, str]]:
        """[(backend label, impl it calls)] in order, and {listed but unusable backend: why}."""
        fast, unusable = fast_backends(case.op_modules, self.device)
        out = [("eager", "ref"), ("compile", "ref")]
        out += [(name, name) for name in fast]
        out += [(name, name) for name in case.extra_baselines]
        return out, unusable

    def run_case(self, case: Case) -> List[Measurement]:
        """One case's measurements. While it runs, ``self.in_flight`` holds them (a run stopped by a signal
        records what it has, the rest marked interrupted)."""
        dev = self.device
        results: List[Measurement] = []
        self.in_flight = results
        backends, unusable = self.backends(case)
        for name, why in unusable.items():
            for p in case.passes:
                results.append(Measurement(name, "", p, status="unavailable", error=why))

        ctx = _CaseContext(case, dev)
        reset_compiler()
        first_variant = next(iter(case.variants))
        timed: List[Tuple[Measurement, Callable[[], Any]]] = []
        for backend, impl in backends:
            for vname, variant in case.variants.items():
                if backend in case.extra_baselines and vname != first_variant:
                    continue  # extra baselines have no variants
                label = "" if backend in case.extra_baselines else vname
                ms, fns = self._prepare(ctx, backend, impl, label, variant)
                results += ms
                timed += [(m, fn) for m, fn in zip(ms, fns) if fn is not None]

        for p in case.passes:
            group = [(m, fn) for m, fn in timed if m.pass_name == p]
            if not group:
                continue
            if self.out_of_time():
                for m, _ in group:
                    m.status, m.note = "skipped", "time budget of the run exhausted"
                continue
            self.on_step(f"{case.label} {dtype_name(case.dtype)} {p}: timing {len(group)} backends")
            timing = self.timing
            if case.reps is not None:
                timing = TimingConfig(warmup=1, min_reps=case.reps, max_reps=case.reps, max_seconds=0.0,
                                      min_sample_ms=0.0)
            stats = time_interleaved([fn for _, fn in group], dev, timing)
            for (m, fn), st in zip(group, stats):
                if isinstance(st, BaseException):
                    m.status, m.error = "error", short_error(st)
                    continue
                m.median_ms, m.iqr_ms, m.reps = st
                try:
                    m.peak_mem_mb = peak_memory_mb(fn, dev)
                except Exception as exc:
                    m.note = f"peak memory not measured: {short_error(exc, 120)}"
        del timed
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        order = {p: i for i, p in enumerate(case.passes)}
        results.sort(key=lambda m: order.get(m.pass_name, 99))  # stable: backend order within a pass
        self.in_flight = []
        return results

    def interrupted(self, case: Case, reason: str) -> List[Measurement]:
        """The measurements of the case in flight when the run was stopped: those finished as they are, the
        others ``interrupted`` (one per pass when none had started)."""
        done = getattr(self, "in_flight", None) or []
        self.in_flight = []
        out = []
        for m in done:
            if m.status == "ok" and m.median_ms is None:
                m.status, m.note = "interrupted", reason
            out.append(m)
        return out or [Measurement("eager", "", p, status="interrupted", note=reason) for p in case.passes]

    def _forwards(self, ctx: "_CaseContext", backend: str, impl: str, variant: Dict[str, Any]):
        """(timed forward, its tensors, error-check forward, its tensors)."""
        case = ctx.case
        if backend in case.extra_baselines:
            fwd, tens = case.extra_baselines[backend](ctx.tensors)
            if ctx.err_tensors is ctx.tensors:
                return fwd, tens, fwd, tens
            fwd_e, tens_e = case.extra_baselines[backend](ctx.err_tensors)
            return fwd, tens, fwd_e, tens_e
        if backend == "compile":
            mode = self.compile_mode if case.compile_mode == "auto" else case.compile_mode
            fwd = torch.compile(_bind(case, "ref", variant), mode=mode, dynamic=False)
            if ctx.err_tensors is not ctx.tensors:
                # A second compile for the error-check batch would cost as much as the first: compile runs
                # ref, whose own error is the eager row's; its error is not checked.
                return fwd, ctx.tensors, None, None
            return fwd, ctx.tensors, fwd, ctx.err_tensors
        fwd = _bind(case, impl, variant)
        return fwd, ctx.tensors, fwd, ctx.err_tensors

    def _prepare(self, ctx: "_CaseContext", backend: str, impl: str, vlabel: str, variant: Dict[str, Any],
                 passes: Optional[Sequence[str]] = None):
        """Measurements (one per pass) and the timed callables (None where the pass cannot be timed),
        after each pass's first call and error check."""
        case, dev = ctx.case, self.device
        passes = case.passes if passes is None else passes
        ms = [Measurement(backend, vlabel, p) for p in passes]
        fns: List[Optional[Callable[[], Any]]] = [None] * len(ms)
        if backend == "compile" and not self.compile_enabled:
            for m in ms:
                m.status, m.note = "skipped", "compile disabled (--no-compile)"
            return ms, fns
        if backend == "compile" and not case.compile:
            for m in ms:
                m.status, m.note = "skipped", case.compile_note
            return ms, fns
        if backend == "compile" and case.compile_mode != "auto":
            for m in ms:
                m.note = f"torch.compile mode={case.compile_mode!r} for this case"
        step_impl = "ref" if backend in BASELINES or backend in case.extra_baselines else impl
        fwd = None
        for k, (m, p) in enumerate(zip(ms, passes)):
            if self.out_of_time():
                m.status, m.note = "skipped", "time budget of the run exhausted"
                continue
            self.on_step(f"{case.label} {dtype_name(case.dtype)} {backend}{'[' + vlabel + ']' if vlabel else ''} {p}")
            try:
                if fwd is None or backend in case.extra_baselines:  # stateful baselines start afresh per pass
                    fwd, tens, fwd_e, tens_e = self._forwards(ctx, backend, impl, variant)
                fn = make_pass(case, p, fwd, tens, ctx.cot, step_impl)
                # The first call compiles (torch.compile, Triton JIT); its results feed the error check.
                t0 = time.perf_counter()
                res = fn()
                synchronize(dev)
                m.first_call_s = time.perf_counter() - t0
                if case.check_error and fwd_e is None:
                    m.note = "error not checked (torch.compile of ref at the error-check batch would compile twice)"
                elif case.check_error:
                    if tens_e is not tens:
                        del res
                        res = make_pass(case, p, fwd_e, tens_e, ctx.err_cot, step_impl)()
                    ref = ctx.reference(p)
                    m.max_abs_err = max_abs_error(res, ref)
                    m.ref_max_abs = ref_scale(ref)
                    m.ref_rms = ref_rms(ref)
                del res
                fns[k] = fn
            except Exception as exc:
                m.status, m.error = "error", short_error(exc)
                if os.environ.get("GAN_FAST_BENCH_TRACEBACK"):
                    traceback.print_exc()
        return ms, fns


class _CaseContext:
    """The inputs, cotangents and float64 reference results of one case, shared by its backends."""

    def __init__(self, case: Case, device: torch.device):
        self.case, self.device = case, device
        self.tensors = self._make(None)
        self.err_tensors = self.tensors if case.err_batch is None else self._make(case.err_batch)
        self.cot = Cotangents(device, case.dtype)
        self.err_cot = self.cot if case.err_batch is None else Cotangents(device, case.dtype, seed=4321)
        self._err64: Optional[Tensors] = None
        self._refs: Dict[str, List[Optional[torch.Tensor]]] = {}

    def _make(self, batch: Optional[int]) -> Tensors:
        torch.manual_seed(0)
        tensors = self.case.make(self.device, self.case.dtype, batch)
        for n in self.case.diff:
            tensors[n].requires_grad_(True)
        return tensors

    def reference(self, pass_name: str) -> List[Optional[torch.Tensor]]:
        """float64 ``ref`` results of a pass on the error-check inputs (first variant: variants pick
        algorithms, never results)."""
        if pass_name not in self._refs:
            if self._err64 is None:
                self._err64 = to_float64(self.err_tensors)
            variant = next(iter(self.case.variants.values()))
            fn = make_pass(self.case, pass_name, _bind(self.case, "ref", variant), self._err64, self.err_cot)
            self._refs[pass_name] = [None if t is None else t.detach() for t in fn()]
        return self._refs[pass_name]


def speedups(measurements: List[Measurement]) -> Dict[int, Tuple[Optional[float], Optional[float]]]:
    """{index: (speedup vs best eager variant, vs best compile variant)} within one case, per pass."""
    best: Dict[Tuple[str, str], float] = {}
    for m in measurements:
        if m.status == "ok" and m.backend in BASELINES and m.median_ms:
            key = (m.backend, m.pass_name)
            best[key] = min(best.get(key, float("inf")), m.median_ms)
    out = {}
    for i, m in enumerate(measurements):
        if m.status != "ok" or not m.median_ms:
            out[i] = (None, None)
            continue
        e = best.get(("eager", m.pass_name))
        c = best.get(("compile", m.pass_name))
        out[i] = (e / m.median_ms if e else None, c / m.median_ms if c else None)
    return out


DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16",
               torch.float64: "float64"}


def dtype_name(dtype: torch.dtype) -> str:
    return DTYPE_NAMES.get(dtype, str(dtype).replace("torch.", ""))


@dataclass
class Skipped:
    """A case that cannot be built here (e.g. its model does not exist yet): one record says why."""

    op: str
    name: str
    note: str
    shape: str = ""
    dtype: torch.dtype = torch.float32
    priority: int = 0

    @property
    def label(self) -> str:
        return f"{self.op}/{self.name}"


def to_records(case, measurements: List[Measurement], preset: str, env: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One JSON record per measurement (the schema documented in benchmarks/__init__.py)."""
    base = {"op": case.op, "case": case.name, "preset": preset, "shape": case.shape, "dtype": dtype_name(case.dtype),
            "device": env["device"], "device_type": env["device_type"], "torch": env["torch"],
            "triton": env["triton"]}
    if isinstance(case, Skipped):
        return [dict(base, backend=None, variant="", **{"pass": None}, status="skipped", median_ms=None, iqr_ms=None,
                     speedup_vs_eager=None, speedup_vs_compile=None, peak_mem_mb=None, max_abs_err=None,
                     reason=case.note)]
    sp = speedups(measurements)
    out = []
    for i, m in enumerate(measurements):
        r = dict(base)
        r.update({"backend": m.backend, "variant": m.variant, "pass": m.pass_name, "status": m.status,
                  "median_ms": _round(m.median_ms), "iqr_ms": _round(m.iqr_ms), "reps": m.reps,
                  "speedup_vs_eager": _round(sp[i][0], 3), "speedup_vs_compile": _round(sp[i][1], 3),
                  "peak_mem_mb": _round(m.peak_mem_mb, 1), "max_abs_err": _sig(m.max_abs_err),
                  "ref_max_abs": _sig(m.ref_max_abs), "ref_rms": _sig(m.ref_rms),
                  "first_call_s": _round(m.first_call_s, 3)})
        if m.status == "ok" and m.median_ms:
            nbytes = case.bytes_moved.get(m.pass_name)
            if nbytes:
                r["gbps"] = _round(nbytes / (m.median_ms * 1e-3) / 1e9, 1)
            if case.items_per_call:
                r["images_per_s"] = _round(case.items_per_call / (m.median_ms * 1e-3), 1)
        r.update(case.record_fields.get(m.backend, {}))
        if m.error:
            r["error"] = m.error
        if m.note:
            r["reason"] = m.note
        if case.note:
            r["note"] = case.note
        out.append(r)
    return out


def _round(x: Optional[float], nd: int = 4) -> Optional[float]:
    if x is None:
        return None
    return round(float(x), nd) if abs(x) >= 1e-3 or x == 0 else float(f"{x:.3g}")


def _sig(x: Optional[float]) -> Optional[float]:
    return None if x is None else float(f"{x:.3g}")

"""The measuring machinery shared by the runner and the pytest-benchmark file.

A :class:`Case` is one op (or one training step built from ops) at one shape and dtype. For each case the
harness builds one set of inputs and, for every *row* (backend x variant), runs each *pass*:

* rows: ``eager`` (the ``ref`` implementation, eager), every fast backend the case's ops have
  (``gan_fast.backends.<op>.SPEC``: its automatic order on this device, then the backends that run only when
  asked for) that can run on the device (never ``triton`` for CPU tensors), optional extra baselines (e.g.
  PyTorch's own spectral norm, a hand-written chain), and ``compile`` (``torch.compile`` of the ``ref`` call;
  ``max-autotune-no-cudagraphs`` on CUDA, the default mode on CPU).
* passes: ``fwd`` (forward with autograd recording, as in training), ``fwdbwd`` (forward + gradients of all
  differentiable inputs for a fixed random cotangent) and ``dbl`` (the double-backward step that R1 / path
  length need: first gradients with ``create_graph=True``, then the gradient of a fixed random projection of
  them w.r.t. every input and the cotangent).

The runner measures in two phases (:class:`Runner`): the **library phase** times every case's eager, fast
and extra-baseline rows (interleaved samples, so the ratios of one run stay fair on a shared machine); only
then the **compile phase** times the ``torch.compile`` rows, each interleaved with the case's eager row again
(its clock: a compile row's speedups are ratios measured at the same moment). A run cut short by its time
budget has measured what the library is about before any compile baseline.

Each measurement gives the median, quartiles and inter-quartile range of the time per call (CUDA events on
GPU, ``perf_counter`` on CPU), the peak extra CUDA memory of one call (None on CPU), the max abs error of all
the pass's results against the float64 ``ref`` run of the same pass on the same values, and the modelled
global-memory bytes of its path (:mod:`benchmarks.traffic`).
"""

from __future__ import annotations

import gc
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

from gan_fast import config as gf_config
from gan_fast.backends.common import OpSpec

from .naming import run_name, slug  # noqa: F401 - re-exported

PASSES = ("fwd", "fwdbwd", "dbl")
PASS_TITLES = {"fwd": "forward", "fwdbwd": "fwd+bwd", "dbl": "double bwd"}
BASELINES = ("eager", "compile")
# A row whose IQR exceeds this fraction of its median is flagged noisy (table, chart, report).
NOISY_SPREAD = 0.5

Tensors = Dict[str, torch.Tensor]


# --------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One op at one shape and dtype.

    ``make(device, dtype, batch)`` returns the named input tensors (``batch`` None means the case's own
    batch; a smaller one is used for the float64 error check when ``err_batch`` is set). ``run(tensors, impl,
    **variant)`` calls the op (or a composite step built from ops) with ``impl`` and returns a tensor or a
    tuple/list of tensors. ``specs`` are the ``OpSpec`` of every op the case runs (its fast backends are the
    union of theirs; a composite step forces a backend on every op that has it). ``diff`` names the inputs
    that require grad; ``first`` the ones the first gradient of the ``dbl`` pass is taken with respect to
    (default: ``diff``). ``steps`` maps a pass name to a function that replaces (or adds) that pass:
    ``step(forward, tensors, cot, impl) -> tuple of tensors``. ``check_error=False`` skips the float64
    comparison (e.g. a training iteration that updates its own state); ``items_per_call`` (e.g. the batch)
    adds a throughput figure. ``compile=False`` leaves the compile row out (``compile_note`` says why in the
    run's list of what was not measured). ``reps``/``sample_calls``: a fixed number of timed samples of a fixed
    number of calls each (the host-overhead cases), else the run's :class:`TimingConfig`. ``traffic=False``
    skips the bytes model (:mod:`benchmarks.traffic`); ``count_extras`` names the extra baselines it counts.
    """

    op: str
    name: str
    shape: str
    dtype: torch.dtype
    make: Callable[..., Tensors]
    run: Callable[..., Any]
    diff: Sequence[str]
    specs: Sequence[OpSpec] = ()
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
    reps: Optional[int] = None  # fixed number of timed samples (slow cases), else the run's TimingConfig
    sample_calls: Optional[int] = None  # fixed number of calls per timed sample
    priority: int = 0  # lower runs first (a run cut short by its time budget keeps the important shapes)
    note: str = ""
    traffic: bool = True
    count_extras: Sequence[str] = ()  # extra baselines whose bytes are counted too (the library rows always are)
    # row label -> extra fields of its records, e.g. {"triton": {"algorithm": "cudnn"}}: what a row ran
    record_fields: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.op}/{self.name}"


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


def _listed(specs: Sequence[OpSpec], device_type: str) -> List[Tuple[str, bool]]:
    """[(backend, explicit only)]: the specs' automatic order on this device type, then the backends they run only
    when asked for (``OpSpec.explicit``), each once."""
    out: List[Tuple[str, bool]] = []
    for spec in specs:
        if not isinstance(spec, OpSpec):
            raise TypeError(f"{spec!r} is not an OpSpec (gan_fast.backends.<op>.SPEC)")
        for name in spec.fast.get(device_type, ()):
            if name != "ref" and name not in [n for n, _ in out]:
                out.append((name, False))
    for spec in specs:
        for name in spec.explicit:
            if name != "ref" and name not in [n for n, _ in out]:
                out.append((name, True))
    return out


def fast_backends(specs: Sequence[OpSpec], device: torch.device) -> Tuple[List[str], Dict[str, str]]:
    """(usable fast backends, {listed-but-unusable backend: why}) for a case's op specs.

    Listed: each spec's automatic order for ``device.type`` (``OpSpec.fast``), then the backends it runs only
    when asked for (``OpSpec.explicit``: the benchmark asks). Usable: what
    ``gan_fast.backend.available_backends(device)`` says can run here; Triton is never timed on CPU tensors
    (its interpreter is a test mode).
    """
    from gan_fast import backend as gf_backend

    status = gf_backend.available_backends(device)
    usable, unusable = [], {}
    for name, _ in _listed(specs, device.type):
        if name == "triton" and device.type != "cuda":
            unusable[name] = "triton is never timed on CPU tensors (the interpreter is a test mode)"
            continue
        ok, why = status.get(name, (False, "unknown backend"))
        if ok:
            usable.append(name)
        else:
            unusable[name] = why
    return usable, unusable


def explicit_only(specs: Sequence[OpSpec], device: torch.device) -> List[str]:
    """The backends the case's ops run only when asked for on this device (not an automatic choice)."""
    return [name for name, explicit in _listed(specs, device.type) if explicit]


def impl_for(spec: OpSpec, impl: Optional[str]) -> Optional[str]:
    """``impl`` for an op of a composite step: the requested backend where the op has it, else ``ref`` (as a
    backend forced with ``gan_fast.config.use_backend`` behaves); None stays None (automatic)."""
    if impl is None or impl == "ref":
        return impl
    return impl if impl in spec.backends else "ref"


def forced(impl: Optional[str]):
    """A ``gan_fast.config.use_backend`` block forcing ``impl`` on every op that has it (None: automatic), for
    code that calls the ops with ``impl=None`` (``gan_fast.models``, ``gan_fast.nn``)."""
    return gf_config.use_backend(impl)


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
    number: Optional[int] = None  # calls per sample, fixed (the host-overhead protocol)


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


@dataclass
class Stats:
    median: float
    q1: float
    q3: float
    n: int

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1


def _stats(times: List[float]) -> Stats:
    times = sorted(times)
    med = statistics.median(times)
    if len(times) >= 4:
        q = statistics.quantiles(times, n=4)
        return Stats(med, q[0], q[2], len(times))
    return Stats(med, times[0], times[-1], len(times))


def time_interleaved(fns: Sequence[Callable[[], Any]], device: torch.device, cfg: TimingConfig) -> List[Any]:
    """Times several callables with their samples interleaved (round robin, alternating order), so that a change
    of machine load hits every row alike: the ratios of one run stay fair on a shared CPU. Returns, per
    callable, its :class:`Stats` (ms per call) or the exception it raised."""
    out: List[Any] = [None] * len(fns)
    alive = []
    warm_calls = cfg.warmup * (cfg.number or 1) if cfg.number else cfg.warmup
    for i, fn in enumerate(fns):
        try:
            for _ in range(warm_calls):
                fn()
            synchronize(device)
            alive.append(i)
        except Exception as exc:
            out[i] = exc
    number = {i: cfg.number or 1 for i in alive}
    if device.type == "cuda" and cfg.min_sample_ms > 0 and not cfg.number:
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


def time_callable(fn: Callable[[], Any], device: torch.device, cfg: TimingConfig) -> Stats:
    """:class:`Stats` of ``fn`` per call."""
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
    """Fixed random cotangents / projection vectors, the same values for every row of a case.

    Values are drawn once per (role, shape) in float32 from a seeded generator, then cast to the case dtype;
    the float64 reference gets exactly those values.
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

    ``impl`` is the backend of ``forward`` (``ref`` for torch.compile), for custom steps that call ops outside
    the forward (e.g. the penalty of the R1 step).
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


def reset_compiler() -> None:
    """Fresh torch.compile caches for each case, and a recompile limit that a case (variants x error-check
    shapes) cannot reach: hitting it would silently fall back to eager."""
    torch._dynamo.reset()
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, max(64, getattr(torch._dynamo.config, name)))


def bind(case: Case, impl: Optional[str], variant: Dict[str, Any]) -> Callable[[Tensors], Any]:
    def forward(tensors):
        return case.run(tensors, impl, **variant)
    return forward


@dataclass
class Row:
    """One row of a case: a backend label, the impl it calls, its variant label and arguments."""
    backend: str
    impl: Optional[str]
    variant: str
    args: Dict[str, Any]
    library: bool = False      # eager or a fast backend: what the library is measured on
    explicit: bool = False     # a backend the op runs only when asked for on this device
    index: int = 0             # display order within the case


@dataclass
class Measurement:
    backend: str
    variant: str
    pass_name: str
    status: str = "ok"                # ok | error | skipped | interrupted
    median_ms: Optional[float] = None
    q1_ms: Optional[float] = None
    q3_ms: Optional[float] = None
    reps: Optional[int] = None
    calls_per_sample: Optional[int] = None
    first_call_s: Optional[float] = None
    peak_mem_mb: Optional[float] = None
    max_abs_err: Optional[float] = None
    ref_max_abs: Optional[float] = None
    ref_rms: Optional[float] = None
    error: Optional[str] = None
    note: str = ""
    seq: Optional[int] = None         # the order in which the run measured it (first call), across the run
    eager_clock_ms: Optional[float] = None  # compile rows: the eager median timed interleaved with them
    library: bool = False
    explicit: bool = False
    row: int = 0

    @property
    def iqr_ms(self) -> Optional[float]:
        return None if self.q1_ms is None or self.q3_ms is None else self.q3_ms - self.q1_ms


class Runner:
    """Runs cases on one device.

    :meth:`plan` lists a case's rows; :meth:`run_library` measures its eager, fast and extra-baseline rows,
    :meth:`run_compile` its compile rows (interleaved with the eager row as their clock). Each returns one
    :class:`Measurement` per (row, pass): every row's first call of every pass (compilation included) and its
    error check run first; then, pass by pass, the rows are timed with interleaved samples.
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
        self.seq = 0

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    # ---------------------------------------------------------------------------------------------- plan

    def plan(self, case: Case) -> Tuple[List[Row], List[Row], Dict[str, str]]:
        """(library-phase rows, compile rows, {row not measured here: why})."""
        fast, unusable = fast_backends(case.specs, self.device)
        explicit = explicit_only(case.specs, self.device)
        lib: List[Row] = []
        for vname, variant in case.variants.items():
            lib.append(Row("eager", "ref", vname, variant, library=True))
        for name in fast:
            for vname, variant in case.variants.items():
                lib.append(Row(name, name, vname, variant, library=True, explicit=name in explicit))
        for name in case.extra_baselines:
            lib.append(Row(name, None, "", {}))
        comp: List[Row] = []
        missing = {name: why for name, why in unusable.items()}
        if not self.compile_enabled:
            missing["compile"] = "compile disabled (--no-compile)"
        elif not case.compile:
            missing["compile"] = case.compile_note or "torch.compile is not timed for this case"
        else:
            comp = [Row("compile", "ref", vname, variant) for vname, variant in case.variants.items()]
        order = {"eager": 0, "compile": 1}
        rows = lib + comp
        rows.sort(key=lambda r: order.get(r.backend, 2))  # stable: eager, compile, fast, extras
        for i, r in enumerate(rows):
            r.index = i
        return lib, comp, missing

    # ----------------------------------------------------------------------------------------------- run

    def run_library(self, case: Case, rows: Optional[List[Row]] = None) -> List[Measurement]:
        if rows is None:
            rows = self.plan(case)[0]
        return self._run(case, rows, clock=[])

    def run_compile(self, case: Case, rows: Optional[List[Row]] = None) -> List[Measurement]:
        if rows is None:
            rows = self.plan(case)[1]
        if not rows:
            return []
        clock = [Row("eager", "ref", vname, variant) for vname, variant in case.variants.items()]
        return self._run(case, rows, clock=clock)

    def _run(self, case: Case, rows: List[Row], clock: List[Row]) -> List[Measurement]:
        """The measurements of ``rows`` (``clock`` rows are timed with them but not returned). While it runs,
        ``self.in_flight`` holds them (a run stopped by a signal records what it has, the rest interrupted)."""
        dev = self.device
        results: List[Measurement] = []
        self.in_flight = results
        ctx = _CaseContext(case, dev)
        if any(r.backend == "compile" for r in rows):
            reset_compiler()
        timed: List[Tuple[Measurement, Callable[[], Any], bool]] = []
        for r in clock + rows:
            is_clock = any(r is c for c in clock)
            ms, fns = self._prepare(ctx, r, check=not is_clock)
            if not is_clock:
                results += ms
            timed += [(m, fn, is_clock) for m, fn in zip(ms, fns) if fn is not None]

        timing = self.timing
        if case.reps is not None or case.sample_calls is not None:
            reps = case.reps or self.timing.min_reps
            timing = TimingConfig(warmup=1, min_reps=reps, max_reps=reps, max_seconds=0.0, min_sample_ms=0.0,
                                  number=case.sample_calls)
        for p in case.passes:
            group = [(m, fn, c) for m, fn, c in timed if m.pass_name == p]
            if not any(not c for _, _, c in group):
                continue
            if self.out_of_time():
                for m, _, _ in group:
                    m.status, m.note = "skipped", "time budget of the run exhausted"
                continue
            self.on_step(f"{case.label} {dtype_name(case.dtype)} {p}: timing {len(group)} rows")
            stats = time_interleaved([fn for _, fn, _ in group], dev, timing)
            for (m, fn, is_clock), st in zip(group, stats):
                if isinstance(st, BaseException):
                    m.status, m.error = "error", short_error(st)
                    continue
                m.median_ms, m.q1_ms, m.q3_ms, m.reps = st.median, st.q1, st.q3, st.n
                m.calls_per_sample = timing.number
                if is_clock:
                    continue
                try:
                    m.peak_mem_mb = peak_memory_mb(fn, dev)
                except Exception as exc:
                    m.note = f"peak memory not measured: {short_error(exc, 120)}"
            clocks = [m.median_ms for m, _, c in group if c and m.status == "ok" and m.median_ms]
            for m, _, c in group:
                if not c and m.backend == "compile" and clocks:
                    m.eager_clock_ms = min(clocks)
        del timed
        gc.collect()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        order = {p: i for i, p in enumerate(case.passes)}
        results.sort(key=lambda m: (order.get(m.pass_name, 99), m.row))
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
        return out or [Measurement("eager", "", p, status="interrupted", note=reason, library=True)
                       for p in case.passes]

    def _forwards(self, ctx: "_CaseContext", r: Row):
        """(timed forward, its tensors, error-check forward, its tensors)."""
        case = ctx.case
        if r.backend in case.extra_baselines:
            fwd, tens = case.extra_baselines[r.backend](ctx.tensors)
            if ctx.err_tensors is ctx.tensors:
                return fwd, tens, fwd, tens
            fwd_e, tens_e = case.extra_baselines[r.backend](ctx.err_tensors)
            return fwd, tens, fwd_e, tens_e
        if r.backend == "compile":
            mode = self.compile_mode if case.compile_mode == "auto" else case.compile_mode
            fwd = torch.compile(bind(case, "ref", r.args), mode=mode, dynamic=False)
            if ctx.err_tensors is not ctx.tensors:
                # A second compile for the error-check batch would cost as much as the first: compile runs
                # ref, whose own error is the eager row's; its error is not checked.
                return fwd, ctx.tensors, None, None
            return fwd, ctx.tensors, fwd, ctx.err_tensors
        fwd = bind(case, r.impl, r.args)
        return fwd, ctx.tensors, fwd, ctx.err_tensors

    def _prepare(self, ctx: "_CaseContext", r: Row, passes: Optional[Sequence[str]] = None, check: bool = True):
        """Measurements (one per pass) and the timed callables (None where the pass cannot be timed), after
        each pass's first call and (``check``) error check."""
        case, dev = ctx.case, self.device
        passes = case.passes if passes is None else passes
        ms = [Measurement(r.backend, r.variant, p, library=r.library, explicit=r.explicit, row=r.index)
              for p in passes]
        fns: List[Optional[Callable[[], Any]]] = [None] * len(ms)
        if r.backend == "compile" and case.compile_mode != "auto":
            for m in ms:
                m.note = f"torch.compile mode={case.compile_mode!r} for this case"
        step_impl = "ref" if r.backend in BASELINES or r.backend in case.extra_baselines else r.impl
        fwd = None
        for k, (m, p) in enumerate(zip(ms, passes)):
            if self.out_of_time():
                m.status, m.note = "skipped", "time budget of the run exhausted"
                continue
            self.seq += 1
            m.seq = self.seq
            self.on_step(f"{case.label} {dtype_name(case.dtype)} {r.backend}{'[' + r.variant + ']' if r.variant else ''}"
                         f" {p}")
            try:
                if fwd is None or r.backend in case.extra_baselines:  # stateful baselines start afresh per pass
                    fwd, tens, fwd_e, tens_e = self._forwards(ctx, r)
                fn = make_pass(case, p, fwd, tens, ctx.cot, step_impl)
                # The first call compiles (torch.compile, Triton JIT); its results feed the error check.
                t0 = time.perf_counter()
                res = fn()
                synchronize(dev)
                m.first_call_s = time.perf_counter() - t0
                if check and case.check_error and fwd_e is None:
                    m.note = "error not checked (torch.compile of ref at the error-check batch would compile twice)"
                elif check and case.check_error:
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
    """The inputs, cotangents and float64 reference results of one case, shared by its rows."""

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
            fn = make_pass(self.case, pass_name, bind(self.case, "ref", variant), self._err64, self.err_cot)
            self._refs[pass_name] = [None if t is None else t.detach() for t in fn()]
        return self._refs[pass_name]


DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16",
               torch.float64: "float64"}


def dtype_name(dtype: torch.dtype) -> str:
    return DTYPE_NAMES.get(dtype, str(dtype).replace("torch.", ""))


# ------------------------------------------------------------------------------ records


def to_records(case, measurements: List[Measurement], preset: str, env: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One JSON record per measurement (the schema documented in benchmarks/__init__.py); the ratios between rows
    are added by :func:`finalize` once the run is over, the bytes by :func:`add_traffic`."""
    base = {"op": case.op, "case": case.name, "preset": preset, "shape": case.shape, "dtype": dtype_name(case.dtype),
            "device": env["device"], "device_type": env["device_type"], "torch": env["torch"],
            "triton": env["triton"]}
    if isinstance(case, Skipped):
        return [dict(base, backend=None, variant="", **{"pass": None}, status="skipped", median_ms=None, iqr_ms=None,
                     speedup_vs_eager=None, speedup_vs_compile=None, peak_mem_mb=None, max_abs_err=None,
                     library=True, reason=case.note)]
    out = []
    for m in measurements:
        r = dict(base)
        r.update({"backend": m.backend, "variant": m.variant, "pass": m.pass_name, "status": m.status,
                  "median_ms": _round(m.median_ms), "iqr_ms": _round(m.iqr_ms), "q1_ms": _round(m.q1_ms),
                  "q3_ms": _round(m.q3_ms), "reps": m.reps, "peak_mem_mb": _round(m.peak_mem_mb, 1),
                  "max_abs_err": _sig(m.max_abs_err), "ref_max_abs": _sig(m.ref_max_abs), "ref_rms": _sig(m.ref_rms),
                  "first_call_s": _round(m.first_call_s, 3), "seq": m.seq, "library": m.library})
        if m.calls_per_sample:
            r["calls_per_sample"] = m.calls_per_sample
        if m.explicit:
            r["explicit"] = True
        if m.eager_clock_ms is not None:
            r["eager_clock_ms"] = _round(m.eager_clock_ms)
        if m.status == "ok" and m.median_ms and case.items_per_call:
            r["images_per_s"] = _round(case.items_per_call / (m.median_ms * 1e-3), 1)
        r.update(case.record_fields.get(m.backend, {}))
        if m.error:
            r["error"] = m.error
        if m.note:
            r["reason"] = m.note
        if case.note:
            r["note"] = case.note
        r["_row"] = m.row
        out.append(r)
    return out


def skipped(rows: Sequence[Row], passes: Sequence[str], reason: str, status: str = "skipped") -> List[Measurement]:
    """A measurement per (row, pass) that the run did not get to, with ``reason``."""
    return [Measurement(r.backend, r.variant, p, status=status, note=reason, library=r.library, explicit=r.explicit,
                        row=r.index) for p in passes for r in rows]


def add_traffic(records: List[Dict[str, Any]], traffic: Dict[Tuple[str, str, str], Optional[int]]) -> None:
    """Adds the bytes model of one case (:func:`benchmarks.traffic.case_bytes`) to its records: ``bytes`` (the
    row's path), ``bytes_fused``, ``bytes_eager`` and ``byte_ratio`` (eager / fused) per pass."""
    for r in records:
        p = r.get("pass")
        nbytes = traffic.get((r.get("backend"), r.get("variant") or "", p))
        if nbytes:
            r["bytes"] = nbytes
        fused, eager = traffic.get(("fused", "", p)), traffic.get(("eager", "", p))
        if fused:
            r["bytes_fused"] = fused
        if eager:
            r["bytes_eager"] = eager
        if fused and eager:
            r["byte_ratio"] = _round(eager / fused, 3)


def finalize(records: List[Dict[str, Any]], device_name_: str) -> None:
    """Adds what compares rows of one case, dtype and pass, measured in this run: ``speedup_vs_eager`` (the
    fastest eager variant's median / this median; a compile row's from the eager clock timed with it),
    ``speedup_vs_compile`` (this row's speedup over the best compile row's, so each is a ratio of times measured
    together), ``vs_chain`` (a hand-written ``chain`` row's median / this median, where the case has one),
    ``spread`` (IQR / median) and ``noisy``, and the bandwidth fields ``gbps`` (the row's modelled bytes / its
    median) and ``pct_peak`` (of the device's peak, :data:`benchmarks.devices.PEAK_GBPS`)."""
    from .devices import peak_gbps

    peak = peak_gbps(device_name_)
    groups: Dict[Tuple, List[Dict[str, Any]]] = {}
    for r in records:
        if r.get("backend") is None:
            continue
        groups.setdefault((r["op"], r["case"], r["dtype"], r.get("pass")), []).append(r)
    for rows in groups.values():
        ok = [r for r in rows if r.get("status") == "ok" and r.get("median_ms")]
        ok_ids = {id(r) for r in ok}
        eager = min((r["median_ms"] for r in ok if r["backend"] == "eager"), default=None)
        chain = min((r["median_ms"] for r in ok if r["backend"] == "chain"), default=None)
        vs_eager: Dict[int, Optional[float]] = {}
        for r in ok:
            if r["backend"] == "compile":
                clock = r.get("eager_clock_ms") or eager
                vs_eager[id(r)] = clock / r["median_ms"] if clock else None
            else:
                vs_eager[id(r)] = eager / r["median_ms"] if eager else None
        best_compile = max((v for r in ok if r["backend"] == "compile" and (v := vs_eager[id(r)]) is not None),
                           default=None)
        for r in rows:
            v = vs_eager.get(id(r))
            r["speedup_vs_eager"] = _round(v, 3) if v is not None else None
            r["speedup_vs_compile"] = _round(v / best_compile, 3) if v is not None and best_compile else None
            if id(r) in ok_ids:
                if chain:
                    r["vs_chain"] = _round(chain / r["median_ms"], 3)
                if r.get("iqr_ms") is not None:
                    r["spread"] = _round(r["iqr_ms"] / r["median_ms"], 3)
                    r["noisy"] = r["spread"] > NOISY_SPREAD
                if r.get("bytes"):
                    r["gbps"] = _round(r["bytes"] / (r["median_ms"] * 1e-3) / 1e9, 2)
                    if peak:
                        r["pct_peak"] = _round(100.0 * r["gbps"] / peak, 1)


def sort_records(records: List[Dict[str, Any]], case_order: Dict[Tuple[str, str, str], int]) -> None:
    """In place: by case (run order), pass, then row (eager, compile, fast backends, extras); drops the
    internal row index."""
    pass_order = {p: i for i, p in enumerate(PASSES + ("iter",))}
    records.sort(key=lambda r: (case_order.get((r["op"], r["case"], r["dtype"]), 1 << 30),
                                pass_order.get(r.get("pass"), 99), r.get("_row", 0)))
    for r in records:
        r.pop("_row", None)


def _round(x: Optional[float], nd: int = 4) -> Optional[float]:
    if x is None:
        return None
    return round(float(x), nd) if abs(x) >= 1e-3 or x == 0 else float(f"{x:.3g}")


def _sig(x: Optional[float]) -> Optional[float]:
    return None if x is None else float(f"{x:.3g}")

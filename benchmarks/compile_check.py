"""Compile every Triton kernel for a GPU architecture on a machine without a GPU.

Under ``TRITON_INTERPRET=1`` the kernels run as Python, so code the Triton
compiler rejects (a plain Python global in jit code, a dtype ``tl.dot`` does not
take, a bad constexpr branch) passes every CPU test and fails on the first GPU
call. This closes that gap in two steps:

1. ``record``: under the interpreter, run every op's self-test case on the
   ``triton`` backend (``gan_fast.self_test.registered()``, each op whose
   entry lists ``triton``) in float32, float64, float16 and bfloat16 (forward,
   gradient, second order; plus the spectral-norm launches a GPU takes for
   large layers) and record each kernel launch: the kernel, the argument types
   and the constexpr values.
2. ``compile``: in a process without the interpreter, compile each recorded
   specialisation with ``triton.compile`` for ``GPUTarget('cuda', arch, 32)``
   down to PTX and cubin (Triton's bundled ptxas) — with the interpreter's
   block sizes and the GPU's (each kernel module's ``GPU_CONSTEXPRS``, or the
   autotune configs of an autotuned kernel), and the GPU-only values of
   constexprs the interpreter never takes (``GPU_ONLY_CONSTEXPRS``).

It checks compilation, not numerics (those are the parity tests, on a GPU via
``benchmarks/gpu.sh``)::

    python -m benchmarks.compile_check [--arch 90] [--records FILE]

exits non-zero when a kernel fails to compile or a kernel defined in
``gan_fast.kernels`` was never launched by the self-tests (so never checked).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Constexprs whose value on a GPU differs from the interpreter's: each recorded launch that has one is also
# compiled with these values (when the condition on the recorded pointer dtypes holds).
GPU_ONLY_CONSTEXPRS = {
    # the implicit GEMM feeds tl.dot in fp16/bf16 on tensor cores, and float32 as TF32
    "LOW_PRECISION_DOT": (True, lambda sig: sig.get("x_ptr") in ("*fp16", "*bf16")),
    "INPUT_PRECISION": ("tf32", lambda sig: sig.get("x_ptr") == "*fp32"),
}
_DTYPES = {"float32": "fp32", "float64": "fp64", "float16": "fp16", "bfloat16": "bf16", "int32": "i32",
           "int64": "i64", "int8": "i8", "uint8": "u8", "bool": "i1"}


def _kernel_modules():
    import gan_fast.kernels as pkg  # noqa: PLC0415

    names = [m.name for m in pkgutil.iter_modules(pkg.__path__)]
    return [importlib.import_module(f"gan_fast.kernels.{n}") for n in names]


def defined_kernels() -> List[str]:
    """'module.name' of every top-level kernel (a jit function named *_kernel) in gan_fast.kernels."""
    out = []
    for mod in _kernel_modules():
        for name, obj in vars(mod).items():
            fn = getattr(obj, "fn", None)
            if name.endswith("_kernel") and callable(fn) and getattr(fn, "__module__", None) == mod.__name__:
                out.append(f"{mod.__name__}.{name}")
    return sorted(out)


def dot_out_dtype_violations() -> List[str]:
    """'module:line' of every ``tl.dot`` in gan_fast.kernels that takes an accumulator (a third argument or
    ``acc=``) without an explicit ``out_dtype=``: the default differs between Triton versions (3.6 asserts a
    float32 default against a float64 accumulator; 3.9 takes the accumulator's), so none may rely on it."""
    import ast  # noqa: PLC0415
    import inspect  # noqa: PLC0415

    out = []
    for mod in _kernel_modules():
        tree = ast.parse(inspect.getsource(mod))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "dot" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "tl":
                keys = {k.arg for k in node.keywords}
                if (len(node.args) >= 3 or "acc" in keys) and "out_dtype" not in keys:
                    out.append(f"{mod.__name__}:{node.lineno}")
    return out


# ---------------------------------------------------------------------------------------------------
# step 1: record launches under the interpreter


def _arg_type(value) -> str:
    import torch  # noqa: PLC0415

    if isinstance(value, torch.Tensor):
        return "*" + _DTYPES[str(value.dtype).replace("torch.", "")]
    if isinstance(value, bool):
        return "i1"
    if isinstance(value, int):
        return "i32" if -2**31 <= value < 2**31 else "i64"
    if isinstance(value, float):
        return "fp32"
    raise TypeError(f"unsupported kernel argument {type(value).__name__}")


def _encode(value):
    import triton.language as tl  # noqa: PLC0415

    return {"tl.dtype": str(value)} if isinstance(value, tl.dtype) else value


def _decode(consts: dict) -> dict:
    import triton.language as tl  # noqa: PLC0415

    return {k: tl.dtype(v["tl.dtype"]) if isinstance(v, dict) else v for k, v in consts.items()}


def _spectral_norm_unfused_launches(dtype) -> None:
    """The separate W / sigma and backward-apply launches, which a GPU takes for layers over 64K elements
    (the self-test's layers are tiny, so it fuses them)."""
    import torch  # noqa: PLC0415

    from gan_fast.kernels import spectral_norm as K  # noqa: PLC0415

    w = torch.randn(13, 9, dtype=dtype)
    u, v = torch.randn(13, dtype=dtype), torch.randn(9, dtype=dtype)
    for n in (0, 1, 2):
        plan, _ = K.power_launch([K.SNLayer(mat=w, u=u, v=v, y_mat=torch.empty_like(w))], n, 1e-12,
                                 fuse_max_numel=0, block_h=4, block_w=4)
        K.backward_launch([w], [torch.randn_like(w)], [torch.empty_like(w)], plan, fuse_max_numel=0,
                          block_h=4, block_w=4)


def record() -> List[dict]:
    """The distinct kernel launches of every op's self-test case on the triton backend, 4 dtypes."""
    if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        raise RuntimeError("record() needs TRITON_INTERPRET=1 set before triton is imported")
    import inspect  # noqa: PLC0415

    import torch  # noqa: PLC0415
    from triton.runtime.interpreter import InterpretedFunction  # noqa: PLC0415

    import gan_fast.ops  # noqa: F401, PLC0415 - registers every op's self-test case
    from gan_fast import self_test  # noqa: PLC0415

    seen: Dict[str, dict] = {}
    entries = {name: entry for name, entry in self_test.registered().items() if "triton" in entry.backends}
    original = InterpretedFunction.run

    def run(self, *args, **kwargs):
        params = inspect.signature(self.fn).parameters
        bound = dict(zip(self.arg_names, args))
        bound.update({k: v for k, v in kwargs.items() if k in params})
        sig, consts = {}, {}
        for name, p in params.items():
            value = bound.get(name, p.default)
            if "constexpr" in str(p.annotation) or value is None:
                sig[name], consts[name] = "constexpr", _encode(value)
            else:
                sig[name] = _arg_type(value)
        entry = {"kernel": f"{self.fn.__module__}.{self.fn.__name__}", "signature": sig, "constexprs": consts}
        seen.setdefault(json.dumps(entry, sort_keys=True, default=str), entry)
        return original(self, *args, **kwargs)

    InterpretedFunction.run = run
    try:
        for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
            for op in sorted(entries):
                for index in range(len(entries[op].cases)):  # a failed comparison still launched
                    self_test.check_case(op, index, "triton", torch.device("cpu"), dtype)
            _spectral_norm_unfused_launches(dtype)
    finally:
        InterpretedFunction.run = original
    return list(seen.values())


# ---------------------------------------------------------------------------------------------------
# step 2: compile for a GPU target (no interpreter)


def _autotuner_configs(jit_fn) -> list:
    import triton  # noqa: PLC0415

    tuners = [getattr(obj, "tuner", obj) for mod in _kernel_modules() for obj in vars(mod).values()]  # _common.Tuned
    return [cfg for obj in tuners if isinstance(obj, triton.runtime.Autotuner) and obj.fn is jit_fn
            for cfg in obj.configs]


def _gpu_constexprs(kernel: str, consts: dict) -> List[dict]:
    """The kernel module's ``GPU_CONSTEXPRS`` for this kernel: the launch parameters a GPU uses where the
    interpreter's differ (block sizes), each a dict or a callable of the recorded constexprs."""
    module, name = kernel.rsplit(".", 1)
    table = getattr(importlib.import_module(module), "GPU_CONSTEXPRS", {})
    return [entry(consts) if callable(entry) else dict(entry) for entry in table.get(name, [])]


def _variants(entry: dict, configs: list, first_of_signature: bool) -> List[Tuple[dict, dict]]:
    """(constexprs, options) to compile for one recorded launch.

    The recorded constexprs, each with the GPU-only values (``GPU_ONLY_CONSTEXPRS``) where they apply;
    then the GPU's launch parameters: the module's ``GPU_CONSTEXPRS`` (every recorded launch with its
    first entry, the first launch of each argument-type signature with all), or for autotuned kernels,
    which run only their configs on a GPU, the autotune configs (likewise).
    """
    base = dict(_decode(entry["constexprs"]))
    variants = [base]
    for name, (value, applies) in GPU_ONLY_CONSTEXPRS.items():
        if name in base and applies(entry["signature"]):
            variants.append({**base, name: value})
    gpu = [(cfg.kwargs, {"num_warps": cfg.num_warps, "num_stages": cfg.num_stages}) for cfg in configs]
    if not configs:
        variants_gpu = [(v, {}) for v in variants]  # the interpreter's blocks: what a CPU test ran
        gpu = [(c, {}) for c in _gpu_constexprs(entry["kernel"], base)]
    else:
        variants_gpu = []
    chosen = gpu if first_of_signature else gpu[:1]
    return variants_gpu + [({**v, **c}, opts) for v in variants for c, opts in chosen]


def _compile_one(job) -> str:
    """'' or the failure message of one compilation (runs in a worker process)."""
    import triton  # noqa: PLC0415
    from triton.backends.compiler import GPUTarget  # noqa: PLC0415
    from triton.compiler import ASTSource  # noqa: PLC0415

    kernel, signature, consts, options, arch = job
    module, name = kernel.rsplit(".", 1)
    jit_fn = getattr(importlib.import_module(module), name)
    names = list(signature)
    sig = {n: ("constexpr" if n in consts else t) for n, t in signature.items()}
    src = ASTSource(fn=jit_fn, signature=sig, constexprs={(names.index(n),): v for n, v in consts.items()})
    try:
        compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=options)
        if not compiled.asm.get("cubin"):
            raise RuntimeError("no cubin produced")
        return ""
    except Exception as exc:  # noqa: BLE001 - every failure is reported
        first = str(exc).strip().splitlines()
        return f"{kernel} {consts} {options}: {type(exc).__name__}: {first[0] if first else ''}"


def compile_records(records: List[dict], arch: int, workers: int = 0) -> List[str]:
    """Compiles every recorded launch (and its variants) for sm_<arch>; returns the failures."""
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise RuntimeError("compile_records() needs a process without TRITON_INTERPRET")
    from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415

    jobs, done, signatures = [], set(), set()
    for entry in records:
        module, name = entry["kernel"].rsplit(".", 1)
        configs = _autotuner_configs(getattr(importlib.import_module(module), name))
        sig_key = json.dumps([entry["kernel"], entry["signature"]], sort_keys=True)
        for consts, options in _variants(entry, configs, sig_key not in signatures):
            key = json.dumps([entry["kernel"], entry["signature"], consts, options], sort_keys=True, default=str)
            if key not in done:
                done.add(key)
                jobs.append((entry["kernel"], entry["signature"], consts, options, arch))
        signatures.add(sig_key)
    cache = _PassCache(arch)
    todo = [job for job in jobs if not cache.passed(job)]
    failures = []
    if todo:
        with ProcessPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
            for job, msg in zip(todo, pool.map(_compile_one, todo)):
                if msg:
                    failures.append(msg)
                else:
                    cache.add(job)
    cache.save()
    print(f"compiled {len(jobs) - len(failures)}/{len(jobs)} specialisations for sm_{arch} "
          f"({len(jobs) - len(todo)} unchanged since they last compiled: cached)")
    return failures


class _PassCache:
    """The specialisations that compiled, keyed by their kernel module's source digest, the argument types, the
    constexprs and options, the arch and the triton version: a re-run compiles only what changed. A failure is
    never cached. Kept in ``<gan_fast cache dir>/compile_check/sm_<arch>.json``."""

    def __init__(self, arch: int):
        import hashlib  # noqa: PLC0415

        import triton  # noqa: PLC0415
        from gan_fast import config  # noqa: PLC0415

        self.path = os.path.join(config.cache_dir(), "compile_check", f"sm_{arch}.json")
        self._hashlib, self.version, self.arch, self.digests = hashlib, triton.__version__, arch, {}
        try:
            with open(self.path) as f:
                self.keys = set(json.load(f))
        except (OSError, ValueError):
            self.keys = set()

    def _key(self, job) -> str:
        kernel, signature, consts, options, arch = job
        module = kernel.rsplit(".", 1)[0]
        if module not in self.digests:  # the module and the kernel modules it imports (their jit helpers)
            path = importlib.import_module(module).__file__
            folder, text = os.path.dirname(path), open(path, "rb").read()
            h = self._hashlib.sha256(text)
            for dep in sorted(set(re.findall(rb"^from \.(\w+) import", text, re.M))):
                with open(os.path.join(folder, dep.decode() + ".py"), "rb") as f:
                    h.update(f.read())
            self.digests[module] = h.hexdigest()[:16]
        text = json.dumps([kernel, self.digests[module], signature, consts, options, arch, self.version],
                          sort_keys=True, default=str)
        return self._hashlib.sha256(text.encode()).hexdigest()[:24]

    def passed(self, job) -> bool:
        return self._key(job) in self.keys

    def add(self, job) -> None:
        self.keys.add(self._key(job))

    def save(self) -> None:
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            tmp = f"{self.path}.tmp{os.getpid()}"
            with open(tmp, "w") as f:
                json.dump(sorted(self.keys), f)
            os.replace(tmp, self.path)
        except OSError:
            pass  # a read-only cache: the next run compiles everything again


# ---------------------------------------------------------------------------------------------------
# command line: both steps, each in its own process


def _cached_records_path() -> str:
    """Where the recorded launches of this tree are kept: named by the digest of everything that decides them
    (the kernels, the backends' glue, the parameter records, the self-test's cases)."""
    import hashlib  # noqa: PLC0415

    from gan_fast import config  # noqa: PLC0415

    h = hashlib.sha256()
    for folder in ("kernels", "gan_fast/backends", "gan_fast/params", "gan_fast/self_test/cases"):
        for name in sorted(os.listdir(os.path.join(_ROOT, folder))):
            if name.endswith(".py"):
                h.update(name.encode())
                with open(os.path.join(_ROOT, folder, name), "rb") as f:
                    h.update(f.read())
    return os.path.join(config.cache_dir(), "compile_check", f"launches-{h.hexdigest()[:24]}.json")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compile_check", description=__doc__.split("\n")[0])
    ap.add_argument("--arch", type=int, default=90, help="compute capability x10 (90: H100/H200, 80: A100)")
    ap.add_argument("--records", help="JSON file of recorded launches (default: record them now)")
    ap.add_argument("--step", choices=["all", "record", "compile"], default="all", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    t0 = time.time()
    if args.step == "record":
        records = record()
        with open(args.records, "w") as f:
            json.dump(records, f, default=str)
        return 0
    if args.step == "compile":
        with open(args.records) as f:
            records = json.load(f)
        failures = compile_records(records, args.arch)
        for line in failures:
            print("FAILED", line)
        missing = sorted(set(defined_kernels()) - {e["kernel"] for e in records})
        for name in missing:
            print("NOT LAUNCHED by any self-test (so not checked):", name)
        implicit = dot_out_dtype_violations()
        for where in implicit:
            print("tl.dot WITH AN ACCUMULATOR AND NO out_dtype (the Triton version would decide it):", where)
        return 1 if failures or missing or implicit else 0
    with tempfile.TemporaryDirectory() as tmp:
        path = args.records or _cached_records_path()
        env = dict(os.environ)
        if not args.records and not os.path.isfile(path):  # the launches change only with the sources that make them
            part = os.path.join(tmp, "launches.json")
            rc = subprocess.call([sys.executable, "-m", "benchmarks.compile_check", "--step", "record",
                                  "--records", part], env={**env, "TRITON_INTERPRET": "1"}, cwd=_ROOT)
            if rc:
                return rc
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.replace(part, path)
            except OSError:
                path = part
        env.pop("TRITON_INTERPRET", None)
        rc = subprocess.call([sys.executable, "-m", "benchmarks.compile_check", "--step", "compile",
                              "--records", path, "--arch", str(args.arch)], env=env, cwd=_ROOT)
    print(f"({time.time() - t0:.0f} s)")
    return rc


if __name__ == "__main__":
    sys.exit(main())

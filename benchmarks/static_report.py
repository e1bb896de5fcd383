"""What the compiler makes of every Triton launch of the ``decisive`` preset, for a GPU we do not have.

::

    python -m benchmarks.static_report --arch 90 --out benchmarks/results/static-sm90-DATE.json \
        [--table /work/helper_out/static_table.md] [--jobs 1]
    python -m benchmarks.static_report --table-only FILE.json --table OUT.md   # the README table from a JSON

Steps (one process, no GPU, no interpreter):

1. **record**: ``benchmarks.static_cases`` makes every launch of every decisive case at full shapes, in float32,
   float16 and bfloat16, on meta tensors, with the launchers planning for the described GPU
   (``gan_fast.kernels._device``: sm_90 = 132 SMs, sm_80 = 108); ``JITFunction.run`` / ``Autotuner.run`` are
   replaced by a recorder, so nothing runs.
2. **specialise**: each launch (each autotune config of an autotuned one) is bound by Triton's own binder for the
   target (``create_function_from_signature``: pointers 16-byte aligned as the caching allocator gives them,
   integers specialised on divisibility by 16 and on 1, as a real launch would have it) into a
   (signature, constexprs, attributes, options) specialisation.
3. **compile**: each distinct specialisation is compiled with ``triton.compile`` for ``GPUTarget('cuda', arch,
   32)`` (Triton's bundled ptxas; its ``-v`` log captured), and its cubin read with Triton's bundled
   ``cuobjdump`` (``--dump-resource-usage``, ``-sass``): registers, local memory, shared memory, spill
   stores/loads, tensor-core instructions (HGMMA = wgmma, HMMA = mma.sync), and the TTIR's ``tt.dot`` operand
   and accumulator types. Results are cached per specialisation key (kernel-source digest, signature,
   constexprs, attributes, options, arch, triton and ptxas versions) under ``gan_fast.config.cache_dir()``,
   so a re-run on an unchanged tree compiles nothing.
4. **report**: per kernel + config + dtype: the above, theoretical occupancy (:func:`gan_fast.kernels._device.
   occupancy`), grid programs against the SM count, the kernel's class, the modelled global bytes per output
   element (from the tile sizes, halo re-reads included) and dot multiply-adds per output, and the bars of
   issue 21 (no spills; memory-bound kernels >= 25% occupancy, autotuned ones in at least one config per
   launch), with the experimental implicit GEMM listed but not gated.

Exits non-zero, with one line, for an unknown kernel, an unsupported arch, or a triton without its bundled
ptxas / cuobjdump; and (with ``--check``) when a bar fails.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import importlib
import io
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}
GATED_DTYPES = ("float32", "float16", "bfloat16")
OCCUPANCY_BAR = 0.25
COMMAND = "python -m benchmarks.static_report --arch 90 --out benchmarks/results/static-sm90-<date>.json"

# Every kernel of gan_fast.kernels: its class. Memory-bound kernels are gated on occupancy; tile/dot kernels
# state theirs in their docstring. EXPERIMENTAL kernels are reported, never gated.
MEMORY, TILE = "memory-bound", "tile/dot"
KERNEL_CLASSES = {
    "bias_act._bias_act_kernel": MEMORY,
    "bias_act._bias_act_db_kernel": MEMORY,
    "upfirdn2d._upfirdn2d_kernel": MEMORY,
    "modulated_conv2d_bias_act._demod_bias_act_kernel": MEMORY,
    "modulated_conv2d_bias_act._demod_bias_act_bwd_kernel": MEMORY,
    "modulated_conv2d_bias_act._modconv_bias_act_kernel": TILE,
    "modulated_conv2d._demod_kernel": TILE,
    "modulated_conv2d._scale_channels_kernel": MEMORY,
    "modulated_conv2d._channel_dot_kernel": MEMORY,
    "modulated_conv2d._modulate_weight_kernel": MEMORY,
    "gradient_norm_penalty._gnp_fwd_kernel": MEMORY,
    "gradient_norm_penalty._gnp_bwd_kernel": MEMORY,
    "spectral_norm._sn_power_kernel": TILE,
    "spectral_norm._sn_scale_kernel": MEMORY,
    "spectral_norm._sn_bwd_kernel": MEMORY,
    "spectral_norm._sn_bwd_apply_kernel": MEMORY,
    "filtered_lrelu._flrelu_fwd_kernel": TILE,
    "filtered_lrelu._flrelu_bwd_kernel": TILE,
    "minibatch_discrimination._mbd_fwd_kernel": MEMORY,
    "minibatch_discrimination._mbd_bwd_kernel": MEMORY,
}
EXPERIMENTAL = {"modulated_conv2d_bias_act._modconv_bias_act_kernel":
                "algorithm='implicit_gemm' is experimental (never chosen automatically): see its docstring"}


class ToolError(Exception):
    """A problem that stops the tool: one line for the user."""


# --------------------------------------------------------------------------------------------------- environment


def triton_bin() -> str:
    import triton  # noqa: PLC0415

    return os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")


def tools(arch: int) -> Dict[str, str]:
    """Paths of the bundled ptxas Triton uses for ``arch`` and of cuobjdump; ToolError when missing."""
    from triton.backends.nvidia.compiler import get_ptxas  # noqa: PLC0415

    ptxas = get_ptxas(arch).path
    cuobjdump = os.path.join(triton_bin(), "cuobjdump")
    for name, path in (("ptxas", ptxas), ("cuobjdump", cuobjdump)):
        if not path or not os.path.isfile(path) or not os.access(path, os.X_OK):
            raise ToolError(f"this triton has no bundled {name} ({path or 'not found'}): the static report needs "
                            f"Triton's own ptxas and cuobjdump (pip install triton, not a source build without "
                            f"them)")
    return {"ptxas": ptxas, "cuobjdump": cuobjdump}


def _version_line(path: str) -> str:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60).stdout
    lines = [ln for ln in out.splitlines() if "release" in ln or ln.startswith("Build")]
    return "; ".join(lines) or out.strip().splitlines()[-1]


def device_for(arch: int):
    from gan_fast.kernels import _device  # noqa: PLC0415

    if arch not in _device.KNOWN:
        raise ToolError(f"unsupported arch sm_{arch}: the static report knows {sorted(_device.KNOWN)} "
                        f"(gan_fast.kernels._device.KNOWN)")
    return _device.KNOWN[arch]


# ------------------------------------------------------------------------------------------------------- digests


def _jit_functions(module) -> Dict[str, Any]:
    from triton.runtime.jit import JITFunction  # noqa: PLC0415

    return {k: v for k, v in vars(module).items() if isinstance(v, JITFunction)}


def kernel_digest(qualname: str) -> str:
    """sha256 of a kernel's source and of every ``@triton.jit`` function and ``tl.constexpr`` global it reaches
    (by name, transitively, across the kernel modules): what its compiled code depends on in this repository
    (line numbers and docstrings elsewhere do not count)."""
    import inspect  # noqa: PLC0415
    import textwrap  # noqa: PLC0415

    import triton.language as tl  # noqa: PLC0415

    jit_types = ("JITFunction", "InterpretedFunction")  # compiled, or under TRITON_INTERPRET: the same source
    module_name, name = qualname.rsplit(".", 1)
    mod = importlib.import_module(f"gan_fast.kernels.{module_name}")
    seen, parts, todo = set(), [], [getattr(mod, name)]
    while todo:
        f = getattr(todo.pop(), "fn")  # the Python function under the decorator
        key = (f.__module__, f.__name__)
        if key in seen:
            continue
        seen.add(key)
        src = textwrap.dedent(inspect.getsource(f))
        src = src[src.index("def "):]  # without the decorator
        parts.append(f"{key}:{src}")
        for ident in sorted(set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", src))):
            obj = f.__globals__.get(ident)
            if obj is None or ident == f.__name__:
                continue
            if type(obj).__name__ in jit_types:
                todo.append(obj)
            elif isinstance(obj, tl.constexpr):
                parts.append(f"{ident}={obj.value!r}")
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------------- record


def _qualname(fn) -> str:
    mod = fn.fn.__module__
    return f"{mod.rsplit('.', 1)[1]}.{fn.fn.__name__}"


def record(dev, dtypes: Sequence[str], labels: Sequence[str]) -> List[dict]:
    """Every launch of the decisive cases ``labels`` in ``dtypes``: {case, dtype, fn, args, kwargs, grid,
    configs}. Nothing runs."""
    from triton.runtime.autotuner import Autotuner  # noqa: PLC0415
    from triton.runtime.jit import JITFunction  # noqa: PLC0415

    from gan_fast.kernels import _common, _device  # noqa: PLC0415

    from . import static_cases  # noqa: PLC0415

    from triton.runtime.interpreter import InterpretedFunction  # noqa: PLC0415

    launches: List[dict] = []
    where: Dict[str, str] = {}

    def jit_run(self, *args, grid, warmup=False, **kwargs):
        launches.append(dict(where, fn=self, args=args, kwargs=kwargs, grid=grid, configs=None))

    def tuned_run(self, *args, **kwargs):
        grid = kwargs.pop("grid")
        kwargs.pop("warmup", None)
        launches.append(dict(where, fn=self.fn, args=args, kwargs=kwargs, grid=grid, configs=list(self.configs)))

    old = (JITFunction.run, Autotuner.run, _common.autotune_mode(), InterpretedFunction.run)
    # (under TRITON_INTERPRET the kernels are InterpretedFunctions: recorded the same way)
    JITFunction.run, Autotuner.run, InterpretedFunction.run = jit_run, tuned_run, jit_run
    _common.set_autotune_mode("full")
    try:
        with _device.assume_device(dev):
            for label in labels:
                if label not in static_cases.CASES:
                    raise ToolError(f"decisive case {label!r} has no launches in benchmarks/static_cases.py")
                for dt in dtypes:
                    where.update(case=label, dtype=dt)
                    static_cases.CASES[label](DTYPES[dt])
    finally:
        JITFunction.run, Autotuner.run, InterpretedFunction.run = old[0], old[1], old[3]
        _common.set_autotune_mode(old[2])
    return launches


# --------------------------------------------------------------------------------------------------- specialise


def _tensor_spec(t: torch.Tensor) -> dict:
    return {"shape": list(t.shape), "stride": list(t.stride()), "dtype": str(t.dtype).replace("torch.", "")}


def _plain(value):
    import triton.language as tl  # noqa: PLC0415

    if isinstance(value, torch.Tensor):
        return _tensor_spec(value)
    if isinstance(value, tl.dtype):
        return f"tl.{value}"
    if isinstance(value, tl.constexpr):
        return _plain(value.value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_BINDERS: Dict[Tuple[int, int], Any] = {}
_JIT: Dict[int, Any] = {}
_OPTION_KEYS = ("num_warps", "num_stages", "maxnreg", "num_ctas")


def specialise(launch: dict, arch: int) -> List[dict]:
    """The specialisations of one recorded launch (one per autotune config): what ``JITFunction.run`` would
    compile on an sm_<arch> device."""
    from triton.backends.compiler import GPUTarget  # noqa: PLC0415
    from triton.compiler import make_backend  # noqa: PLC0415
    from triton.runtime.jit import create_function_from_signature  # noqa: PLC0415

    from triton.runtime.jit import JITFunction  # noqa: PLC0415

    fn = launch["fn"]
    if not isinstance(fn, JITFunction):  # an InterpretedFunction (TRITON_INTERPRET): bind as the compiler would
        fn = _JIT.setdefault(id(fn), JITFunction(fn.fn))
    backend = make_backend(GPUTarget("cuda", arch, 32))
    binder = _BINDERS.get((id(fn), arch))
    if binder is None:
        binder = _BINDERS[(id(fn), arch)] = create_function_from_signature(fn.signature, fn.params, backend)
    configs = launch["configs"] or [None]
    out = []
    for index, cfg in enumerate(configs):
        kwargs = dict(launch["kwargs"])
        if cfg is not None:
            kwargs.update(cfg.kwargs)
            kwargs.update(num_warps=cfg.num_warps, num_stages=cfg.num_stages)
            if getattr(cfg, "maxnreg", None):
                kwargs["maxnreg"] = cfg.maxnreg
        bound, specialization, options = binder(*launch["args"], **kwargs)
        opts, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound, specialization, options)
        grid = launch["grid"]
        if callable(grid):
            grid = grid(bound)
        grid = tuple(int(g) for g in grid) + (1,) * (3 - len(grid))
        option_kwargs = {k: kwargs[k] for k in _OPTION_KEYS if k in kwargs}
        option_kwargs.setdefault("num_warps", opts.num_warps)
        option_kwargs.setdefault("num_stages", opts.num_stages)
        out.append({
            "kernel": _qualname(fn), "case": launch["case"], "dtype": launch["dtype"],
            "config": None if cfg is None else index, "autotuned": cfg is not None, "grid": grid,
            "signature": signature, "constexprs": constexprs, "attrs": attrs, "options": option_kwargs,
            "params": {name: _plain(v) for name, v in bound.items()},
        })
    return out


def spec_key(job: dict, arch: int, versions: dict, digest: str) -> str:
    payload = json.dumps([job["kernel"], digest, job["signature"],
                          sorted((str(k), repr(_plain(v))) for k, v in job["constexprs"].items()),
                          sorted((str(k), repr(v)) for k, v in job["attrs"].items()),
                          sorted(job["options"].items()), arch, versions["triton"], versions["ptxas"]],
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


# ------------------------------------------------------------------------------------------------------ compile


_PTXAS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_REGS = re.compile(r"Used (\d+) registers")
_RES = re.compile(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")
_DOT = re.compile(r"tt\.dot [^:]*: tensor<(?P<a>[^>]*)> \* tensor<(?P<b>[^>]*)> -> tensor<(?P<c>[^>]*)>")
_PREC = re.compile(r"inputPrecision = (\w+)")


def _elem(t: str) -> str:
    return t.split("x")[-1].split(",")[0]


def _local_bytes(sass: str, op: str) -> int:
    total = 0
    for m in re.finditer(rf"\b{op}(\.[A-Z0-9.]+)?\s", sass):
        width = m.group(1) or ""
        total += 16 if ".128" in width else 8 if ".64" in width else 4
    return total


def compile_one(job: dict, arch: int, cuobjdump: str) -> dict:
    """Compiles one specialisation (in a worker process) and reads its cubin."""
    import triton  # noqa: PLC0415
    from triton import knobs  # noqa: PLC0415
    from triton.backends.compiler import GPUTarget  # noqa: PLC0415
    from triton.compiler import ASTSource  # noqa: PLC0415

    module_name, name = job["kernel"].split(".")
    fn = getattr(importlib.import_module(f"gan_fast.kernels.{module_name}"), name)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TRITON_CACHE_DIR"] = tmp  # a fresh Triton cache: ptxas runs (and logs) for this compile
        knobs.nvidia.dump_ptxas_log = True
        log = io.StringIO()
        try:
            with contextlib.redirect_stdout(log):
                src = ASTSource(fn, job["signature"], job["constexprs"], job["attrs"])
                compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options=dict(job["options"]))
        except Exception as exc:  # noqa: BLE001 - reported per row
            first = (str(exc).strip().splitlines() or [""])[0]
            return {"error": f"{type(exc).__name__}: {first[:300]}"}
        cubin = os.path.join(tmp, "k.cubin")
        with open(cubin, "wb") as f:
            f.write(compiled.asm["cubin"])
        res = subprocess.run([cuobjdump, "--dump-resource-usage", cubin], capture_output=True, text=True,
                             timeout=300).stdout
        sass = subprocess.run([cuobjdump, "-sass", cubin], capture_output=True, text=True, timeout=300).stdout
    m = _RES.search(res)
    if not m:
        return {"error": f"cuobjdump --dump-resource-usage gave no resource line: {res.strip()[:200]}"}
    regs, stack, static_smem, local = map(int, m.groups())
    ptxas_log = log.getvalue()
    pm, rm = _PTXAS.search(ptxas_log), _REGS.search(ptxas_log)
    spill_st = int(pm.group(2)) if pm else _local_bytes(sass, "STL")
    spill_ld = int(pm.group(3)) if pm else _local_bytes(sass, "LDL")
    ttir = compiled.asm.get("ttir", "")
    dots = set()
    for line in ttir.splitlines():
        mm = _DOT.search(line)
        if mm:
            a, b, c = (_elem(mm.group(g)) for g in "abc")
            prec = _PREC.search(line)
            # TTIR prints inputPrecision only when it is not the default, which is IEEE for f32 operands
            dots.add(f"{a} x {b} -> {c}" + (f" ({prec.group(1) if prec else 'ieee'})" if a == "f32" else ""))
    dots = sorted(dots)
    ptx = compiled.asm.get("ptx", "")
    tc = []
    if re.search(r"\bHGMMA\b", sass):
        tc.append("wgmma (HGMMA)")
    if re.search(r"\bHMMA\b", sass):
        tc.append("mma (HMMA)")
    return {
        "registers": regs, "ptxas_registers": int(rm.group(1)) if rm else None,
        "spill_store_bytes": spill_st, "spill_load_bytes": spill_ld, "stack_bytes": stack, "local_bytes": local,
        "shared_bytes": int(compiled.metadata.shared) + static_smem, "num_warps": int(compiled.metadata.num_warps),
        "num_stages": int(compiled.metadata.num_stages), "dots": dots, "tensor_cores": tc,
        "ptx_mma": bool(re.search(r"\b(wgmma\.mma_async|mma\.sync)", ptx)), "ptxas_log": bool(pm),
        "compile_s": round(time.time() - t0, 1),
    }


def _compile_worker(args) -> Tuple[str, dict]:
    key, job, arch, cuobjdump = args
    os.nice(0)
    return key, compile_one(job, arch, cuobjdump)


# ------------------------------------------------------------------------------------------------------- models


_ELT = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1, "int32": 4, "int64": 8, "bool": 1}


def _e(p: Any) -> int:
    return _ELT.get(p["dtype"], 4) if isinstance(p, dict) and "dtype" in p else 4


def _numel(p: dict) -> int:
    return math.prod(p["shape"]) if p["shape"] else 1


def model(kernel: str, p: Dict[str, Any], grid: Tuple[int, int, int]) -> Tuple[int, float, float, str]:
    """(outputs, global bytes per output, dot multiply-adds per output, what an output is) of one launch,
    from its arguments and tile constexprs ``p``. Bytes count every tile's loads and stores once (so halo
    re-reads between tiles count; re-reads inside a tile from cache do not), small per-channel vectors and
    filter taps (cache-resident) excluded."""
    programs = grid[0] * grid[1] * grid[2]
    name = kernel.split(".")[1]
    if name == "_bias_act_kernel":
        mode = p["MODE"]
        b = _e(p["x_ptr"]) + _e(p["out_ptr"]) + (_e(p["dy_ptr"]) if mode >= 1 else 0) + \
            (_e(p["ddx_ptr"]) if mode == 2 else 0)
        return p["n"], b, 0.0, "element"
    if name == "_bias_act_db_kernel":
        acc = 8 if p["F64"] else 4
        part = acc / p["BLOCK_R"] if p["COLUMNS"] else acc / p["BLOCK_W"]
        b = _e(p["x_ptr"]) + _e(p["dy_ptr"]) + _e(p["out_ptr"]) + (_e(p["ddx_ptr"]) if p["MODE"] == 2 else 0)
        return p["n"], b + part, 0.0, "element"
    if name == "_upfirdn2d_kernel":
        bp, oh, ow = p["BLOCK_P"], p["OH"], p["OW"]
        rows, cols = (bp / ow, ow) if bp >= ow else (1, bp)
        iy = min(p["H"], math.ceil((math.ceil(rows) - 1) * p["DOWNY"] / p["UPY"]) + p["TY"])
        ix = min(p["W"], math.ceil((cols - 1) * p["DOWNX"] / p["UPX"]) + p["TX"])
        outs = p["x_ptr"]["shape"][0] * p["C"] * oh * ow
        return outs, iy * ix * _e(p["x_ptr"]) / (rows * cols) + _e(p["y_ptr"]), 0.0, "output sample"
    if name == "_gnp_fwd_kernel":
        return p["N"] * p["D"], _e(p["g_ptr"]) + (8 if p["F64"] else 4) / max(p["chunk"], 1), 0.0, "gradient element"
    if name == "_gnp_bwd_kernel":
        return p["total"], _e(p["g_ptr"]) + _e(p["out_ptr"]), 0.0, "element"
    if name in ("_sn_power_kernel", "_sn_bwd_kernel", "_sn_scale_kernel", "_sn_bwd_apply_kernel"):
        elt = {"tl.fp32": 4, "tl.fp16": 2, "tl.bf16": 2, "tl.fp64": 8}.get(p["ELT"], 4)
        acc = 8 if p["F64"] else 4
        if name == "_sn_power_kernel":  # W read twice (t = W v, then s partials), s partials written
            b = 2 * elt + acc / p["BLOCK_H"] if p["N_ITERS"] == 1 else elt
        elif name == "_sn_bwd_kernel":  # <g, W>: W and g read
            b = 2 * elt
        else:
            b = 2 * elt
        return programs * p.get("BLOCK", p.get("BLOCK_H", 1) * p.get("BLOCK_W", 1)), b, 0.0, "weight element"
    if name == "_demod_kernel":
        I, K = p["I"], p["K"]
        b = I * _e(p["s_ptr"]) / p["BLOCK_O"] + I * K * _e(p["w_ptr"]) / p["BLOCK_B"] + 4
        return p["B"] * p["O"], b, I + I * K / p["BLOCK_B"], "coefficient d[b, o]"
    if name == "_scale_channels_kernel":
        b = _e(p["x_ptr"]) + _e(p["y_ptr"]) + (_e(p["n_ptr"]) if p["HAS_NOISE"] else 0)
        return p["numel"], b, 0.0, "element"
    if name == "_channel_dot_kernel":
        return programs * p["BLOCK_C"] * p["chunk"], _e(p["a_ptr"]) + _e(p["b_ptr"]), 0.0, "input element"
    if name == "_modulate_weight_kernel":
        return p["numel"], _e(p["w_ptr"]) + _e(p["out_ptr"]), 0.0, "modulated weight element"
    if name == "_demod_bias_act_kernel":
        bm, bn = p["BLOCK_M"], p["BLOCK_N"]
        noise_c = p["noise_ptr"]["stride"][1] if p["HAS_NOISE"] else 0
        b = _e(p["c_ptr"]) + _e(p["y_ptr"]) + (4 / bm if p["HAS_DEMOD"] else 0)
        if p["HAS_NOISE"]:
            b += _e(p["noise_ptr"]) / (bn if p["snc"] == 0 else 1)
        del noise_c
        return p["M"] * p["O"], b, 0.0, "output element"
    if name == "_demod_bias_act_bwd_kernel":
        bm, bn = p["BLOCK_M"], p["BLOCK_N"]
        acc = 8 if p["F64"] else 4
        b = _e(p["gy_ptr"]) + _e(p["c_ptr"]) + (_e(p["gc_ptr"]) if p["NEED_C"] else 0)
        b += (4 / bm if p["HAS_DEMOD"] else 0) + (acc / bm) * (p["NEED_D"] + p["NEED_B"])
        if p["HAS_NOISE"]:
            b += _e(p["noise_ptr"]) / (bn if p["snc"] == 0 else 1)
        if p["NEED_NOISE"]:
            b += acc / bn
        return p["N"] * p["HW"] * p["O"], b, 0.0, "output element"
    if name == "_modconv_bias_act_kernel":
        bm, bn = p["BLOCK_M"], p["BLOCK_N"]
        red = p["I"] * p["KH"] * p["KW"]
        acc = 8 if p["F64"] else 4
        b = red * (_e(p["x_ptr"]) + acc) / bn + red * _e(p["w_ptr"]) / bm + _e(p["y_ptr"]) * (1 + p["STORE_C"])
        if p["HAS_NOISE"]:
            b += _e(p["noise_ptr"]) / (bn if p["snc"] == 0 else 1)
        return p["M"] * p["O"], b, float(red), "output element"
    if name == "_flrelu_fwd_kernel":
        to, bi, bu, bo, down = p["TO"], p["BI"], p["BU"], p["BO"], p["DOWN"]
        b = bi * bi * _e(p["x_ptr"]) + to * to * _e(p["y_ptr"])
        if p["MODE"] == 1:
            b += min(bu, to * down) ** 2
        elif p["MODE"] == 2:
            b += bu * bu
        macs = bi * bi * bu + bu * bi * bu + bo * bu * bu + bo * bu * bo
        return programs * to * to, b / (to * to), macs / (to * to), "output sample"
    if name == "_flrelu_bwd_kernel":
        ti, bi, bu, bo = p["TI"], p["BI"], p["BU"], p["BO"]
        b = bo * bo * _e(p["g_ptr"]) + bu * bu + ti * ti * _e(p["dx_ptr"]) + (4 if p["STORE_DB"] else 0)
        macs = bu * bo * bo + bu * bo * bu + bi * bu * bu + bi * bu * bi
        return programs * ti * ti, b / (ti * ti), macs / (ti * ti), "input-gradient sample"
    if name == "_mbd_fwd_kernel":
        n, c, bi, bj = p["N"], p["C"], p["BLOCK_I"], p["BLOCK_J"]
        b = math.ceil(n / bj) * (bi + bj) * c * _e(p["m_ptr"]) / bi + _e(p["o_ptr"])
        return n * p["B"], b, 0.0, "output o[i, b]"
    if name == "_mbd_bwd_kernel":
        n, c, bi, bj, bc = p["N"], p["C"], p["BLOCK_I"], p["BLOCK_J"], p["BLOCK_C"]
        e = _e(p["m_ptr"])
        per_j = (bi + bj) * c * e * (2 if p["SECOND"] else 1) + bj * bc * e + bj * e
        b = math.ceil(n / bj) * per_j / (bi * bc) + e
        return n * p["B"] * c, b, 0.0, "gradient element dm[i, b, c]"
    raise ToolError(f"unknown kernel {kernel}: add it to KERNEL_CLASSES and model() in benchmarks/static_report.py")


# ------------------------------------------------------------------------------------------------------- report


def _config_label(job: dict) -> str:
    tiles = {k: v for k, v in job["params"].items() if k.startswith("BLOCK") or k in ("TO", "TI", "BI", "BU", "BO")}
    tile = " ".join(f"{k}={v}" for k, v in sorted(tiles.items()))
    cfg = f"cfg {job['config']}: " if job["config"] is not None else ""
    maxnreg = f" maxnreg {job['options']['maxnreg']}" if job["options"].get("maxnreg") else ""
    return f"{cfg}{tile} w{job['options']['num_warps']} s{job['options']['num_stages']}{maxnreg}"


def _divisible(job: dict) -> List[str]:
    """The arguments Triton specialised as divisible by 16 (pointers: 16-byte aligned)."""
    names = list(job["params"])
    return [names[path[0]] for path, attrs in job["attrs"].items()
            if any(a and a[0] == "tt.divisibility" for a in attrs)]


def _flags(job: dict) -> str:
    """The non-tile constexprs of a specialisation, short."""
    skip = {"BLOCK", "TO", "TI", "BI", "BU", "BO"}
    items = [(k, v) for k, v in job["params"].items() if k in job.get("constexpr_names", ())
             and not any(k.startswith(s) for s in skip)]
    return " ".join(f"{k}={v}" for k, v in items)


def build(dev, arch: int, dtypes: Sequence[str], labels: Sequence[str], jobs_n: int, cache_root: str,
          log=print, kernels: str = "") -> dict:
    t0 = time.time()
    paths = tools(arch)
    import triton  # noqa: PLC0415

    versions = {"triton": triton.__version__, "ptxas": _version_line(paths["ptxas"]),
                "cuobjdump": _version_line(paths["cuobjdump"]), "torch": torch.__version__}
    launches = record(dev, dtypes, labels)
    for launch in launches:
        if _qualname(launch["fn"]) not in KERNEL_CLASSES:
            raise ToolError(f"unknown kernel {_qualname(launch['fn'])}: add it to KERNEL_CLASSES (and model()) in "
                            f"benchmarks/static_report.py")
    digests = {k: kernel_digest(k) for k in sorted(KERNEL_CLASSES)}
    specs: List[dict] = []
    for launch in launches:
        if kernels and not re.search(kernels, _qualname(launch["fn"])):
            continue
        for job in specialise(launch, arch):
            job["constexpr_names"] = [k for k, v in zip(job["params"], job["signature"].values())
                                      if v == "constexpr"]
            job["key"] = spec_key(job, arch, versions, digests[job["kernel"]])
            specs.append(job)
    log(f"recorded {len(launches)} launches -> {len(specs)} launch specialisations, "
        f"{len({s['key'] for s in specs})} distinct ({time.time() - t0:.0f} s)")

    cache_dir = os.path.join(cache_root, "static_report")
    os.makedirs(cache_dir, exist_ok=True)
    results: Dict[str, dict] = {}
    todo = {}
    for s in specs:
        if s["key"] in results or s["key"] in todo:
            continue
        path = os.path.join(cache_dir, s["key"] + ".json")
        if os.path.exists(path):
            with open(path) as f:
                results[s["key"]] = json.load(f)
        else:
            todo[s["key"]] = s
    log(f"{len(results)} cached, {len(todo)} to compile for sm_{arch}")
    if todo:
        items = [(k, {x: s[x] for x in ("kernel", "signature", "constexprs", "attrs", "options")}, arch,
                  paths["cuobjdump"]) for k, s in todo.items()]
        done = 0
        import multiprocessing  # noqa: PLC0415

        with ProcessPoolExecutor(max_workers=max(1, jobs_n), mp_context=multiprocessing.get_context("fork")) as pool:
            for key, res in pool.map(_compile_worker, items):
                done += 1
                results[key] = res
                if "error" not in res:
                    with open(os.path.join(cache_dir, key + ".json"), "w") as f:
                        json.dump(res, f)
                log(f"  [{done}/{len(items)}] {todo[key]['kernel']} {_config_label(todo[key])}: "
                    f"{res.get('error') or str(res['registers']) + ' regs'} ({res.get('compile_s', 0)} s)")
    return assemble(dev, arch, dtypes, labels, specs, results, digests, versions, time.time() - t0)


def assemble(dev, arch, dtypes, labels, specs, results, digests, versions, seconds) -> dict:
    from gan_fast.kernels._device import occupancy  # noqa: PLC0415

    rows: Dict[Tuple[str, str], dict] = {}
    for s in specs:
        res = results[s["key"]]
        row = rows.get((s["key"], s["dtype"]))
        outs, bpo, dpo, what = model(s["kernel"], s["params"], s["grid"])
        programs = s["grid"][0] * s["grid"][1] * s["grid"][2]
        launch = {"case": s["case"], "programs": programs, "outputs": outs, "bytes_per_output": round(bpo, 3),
                  "dot_macs_per_output": round(dpo, 2)}
        if row is None:
            row = rows[(s["key"], s["dtype"])] = {
                "kernel": s["kernel"], "class": KERNEL_CLASSES[s["kernel"]],
                "experimental": s["kernel"] in EXPERIMENTAL, "dtype": s["dtype"], "key": s["key"],
                "config": s["config"], "autotuned": s["autotuned"], "config_label": _config_label(s),
                "flags": _flags(s), "signature": " ".join(f"{k}:{v}" for k, v in s["signature"].items()
                                                          if v != "constexpr"),
                "divisible_by_16": " ".join(_divisible(s)),
                "num_warps": s["options"]["num_warps"], "num_stages": s["options"]["num_stages"],
                "output": what, "launches": []}
            row.update({k: v for k, v in res.items() if k != "compile_s"})
            if "error" not in res:
                occ, blocks, limiter = occupancy(dev, res["registers"], res["shared_bytes"], res["num_warps"])
                row.update(occupancy=round(occ, 4), blocks_per_sm=blocks, occupancy_limiter=limiter)
        if launch not in row["launches"]:
            row["launches"].append(launch)
    out_rows = sorted(rows.values(), key=lambda r: (r["kernel"], r["dtype"], r["config_label"], r["flags"]))
    for r in out_rows:
        big = max(r["launches"], key=lambda x: x["outputs"])
        r["programs_max"] = max(x["programs"] for x in r["launches"])
        r["programs_min"] = min(x["programs"] for x in r["launches"])
        r["bytes_per_output"] = big["bytes_per_output"]
        r["dot_macs_per_output"] = big["dot_macs_per_output"]
        r["cases"] = sorted({x["case"] for x in r["launches"]})
        per_case = []  # one entry a case: its largest launch, and the range of its grids
        for case in r["cases"]:
            xs = [x for x in r["launches"] if x["case"] == case]
            top = dict(max(xs, key=lambda x: x["outputs"]))
            top["programs"] = [min(x["programs"] for x in xs), max(x["programs"] for x in xs)]
            top["launch_shapes"] = len(xs)
            per_case.append(top)
        r["launches"] = per_case
    report = {
        "meta": {
            "tool": "benchmarks/static_report.py", "command": COMMAND.replace("<date>", _today()),
            "label": f"compiled for sm_{arch}, not run", "arch": arch, "device": dev.__dict__,
            "dtypes": list(dtypes), "cases": list(labels), "versions": versions, "date": _today(),
            "git_commit": _git_commit(), "seconds": round(seconds, 1),
            "occupancy_formula": "see gan_fast/kernels/_device.py occupancy()",
        },
        "kernel_digests": digests,
        "rows": out_rows,
    }
    report["bars"] = bars(report)
    return report


def bars(report: dict) -> dict:
    """The issue-21 bars over a report: failures (empty = met)."""
    fails: List[str] = []
    tuned: Dict[Tuple[str, str, str], List[dict]] = {}
    for r in report["rows"]:
        if r["experimental"] or r["dtype"] not in GATED_DTYPES:
            continue
        name = f"{r['kernel']} [{r['dtype']}] {r['config_label']} {r['flags']}".strip()
        if "error" in r:
            fails.append(f"{name}: does not compile: {r['error']}")
            continue
        if r["spill_store_bytes"] or r["spill_load_bytes"]:
            fails.append(f"{name}: spills {r['spill_store_bytes']}/{r['spill_load_bytes']} B")
        if r["class"] == MEMORY:
            if r["autotuned"]:
                for x in r["launches"]:
                    tuned.setdefault((r["kernel"], r["dtype"], x["case"] + r["flags"] + r["signature"]),
                                     []).append(r)
            elif r["occupancy"] < OCCUPANCY_BAR:
                fails.append(f"{name}: occupancy {r['occupancy']:.0%} < {OCCUPANCY_BAR:.0%}")
    for (kernel, dtype, _), rs in sorted(tuned.items()):
        if max(r["occupancy"] for r in rs) < OCCUPANCY_BAR:
            fails.append(f"{kernel} [{dtype}]: no autotune config reaches {OCCUPANCY_BAR:.0%} occupancy")
    experimental = [f"{r['kernel']} [{r['dtype']}] {r['config_label']}: {r.get('registers')} regs, spills "
                    f"{r.get('spill_store_bytes')}/{r.get('spill_load_bytes')} B, occupancy "
                    f"{r.get('occupancy', 0):.0%}" for r in report["rows"] if r["experimental"]]
    return {"failures": sorted(set(fails)), "experimental": experimental}


def dumps(report: dict) -> str:
    """The report as JSON, one row a line (readable diffs, a quarter of an indented file's size)."""
    head = {k: v for k, v in report.items() if k != "rows"}
    body = json.dumps(head, indent=1, default=str)[:-2]
    rows = ",\n".join(json.dumps(r, separators=(",", ":"), default=str) for r in report["rows"])
    return f'{body},\n "rows": [\n{rows}\n ]\n}}\n'


def _today() -> str:
    return datetime.date.today().isoformat()


def _git_commit() -> Optional[str]:
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "kernels"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else None
    except Exception:  # noqa: BLE001
        return None


# ------------------------------------------------------------------------------------------------------ table


def _pct(v) -> str:
    return "—" if v is None else f"{v:.0%}"


def _span(values, fmt="{}") -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}–{fmt.format(hi)}"


def markdown(report: dict) -> str:
    """The README table: one line per kernel + config + dtype, ranges over that line's specialisations (the
    flags and argument divisibility of the decisive launches) and launches."""
    m = report["meta"]
    dev = m["device"]
    lines = [f"**Static kernel report — compiled for sm_{m['arch']}, not run** "
             f"(triton {m['versions']['triton']}, {m['versions']['ptxas'].split(';')[0].strip()}; "
             f"{dev['sm_count']} SMs, {dev['regs_per_sm']} registers, {dev['smem_per_sm'] // 1024} KB shared "
             f"memory, {dev['max_warps_per_sm']} warps and {dev['max_blocks_per_sm']} blocks per SM; every launch "
             f"of the `decisive` preset at full shapes, every autotune config; `{m['command']}`, {m['date']}, "
             f"commit {m['git_commit']}). Occupancy: resident warps / {dev['max_warps_per_sm']} from registers, "
             f"shared memory and block limits. Bytes and dot multiply-adds per output are modelled from the tiles "
             f"(halo re-reads included).",
             "",
             "| kernel | class | dtype | config | specs | regs | spills st/ld (B) | smem (KB) | occupancy | "
             "tensor cores | dots | programs (max / SMs) | bytes / output | dot MACs / output |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    groups: Dict[Tuple[str, str, str], List[dict]] = {}
    for r in report["rows"]:
        groups.setdefault((r["kernel"], r["dtype"], r["config_label"]), []).append(r)
    order = {"float32": 0, "float16": 1, "bfloat16": 2, "float64": 3}
    for (kernel, dtype, cfg), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 9),
                                                                          kv[0][2])):
        ok = [r for r in rs if "error" not in r]
        cls = rs[0]["class"] + (" (experimental)" if rs[0]["experimental"] else "")
        if not ok:
            lines.append(f"| `{kernel}` | {cls} | {dtype} | {cfg} | {len(rs)} | error: {rs[0]['error'][:60]} |"
                         + " |" * 8)
            continue
        spill = max((r["spill_store_bytes"], r["spill_load_bytes"]) for r in ok)
        launches = [x for r in ok for x in r["launches"]]
        progs = max(max(x["programs"]) for x in launches)
        macs = [x["dot_macs_per_output"] for x in launches]
        lines.append("| " + " | ".join([
            f"`{kernel}`", cls, dtype, cfg, str(len(rs)), _span([r["registers"] for r in ok]),
            f"{spill[0]}/{spill[1]}", _span([r["shared_bytes"] / 1024 for r in ok], "{:.1f}"),
            _span([r["occupancy"] for r in ok], "{:.0%}"),
            ", ".join(sorted({t for r in ok for t in r["tensor_cores"]})) or "—",
            "; ".join(sorted({d for r in ok for d in r["dots"]})) or "—",
            f"{progs} ({progs / dev['sm_count']:.1f})",
            _span([x["bytes_per_output"] for x in launches], "{:.2f}"),
            _span(macs, "{:.0f}") if max(macs) else "—"]) + " |")
    b = report["bars"]
    lines += ["", f"Bars (issue 21; float32, float16, bfloat16; experimental kernels excluded): "
              f"{'all met' if not b['failures'] else str(len(b['failures'])) + ' failing'}: no spills in any "
              f"specialisation or autotune config; memory-bound kernels >= {OCCUPANCY_BAR:.0%} theoretical "
              f"occupancy (autotuned ones: at least one config per launch)."]
    lines += [f"- FAIL {f}" for f in b["failures"]]
    if b["experimental"]:
        lines += ["", "Experimental, not gated: " + "; ".join(sorted(set(b["experimental"]))) + "."]
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.static_report", description=__doc__.split("\n")[0])
    ap.add_argument("--arch", type=int, default=90, help="compute capability x10 (90: H100/H200, 80: A100)")
    ap.add_argument("--out", help="the JSON report (default: benchmarks/results/static-sm<arch>-<date>.json)")
    ap.add_argument("--table", help="also write the markdown table here")
    ap.add_argument("--table-only", metavar="JSON", help="write the markdown table of an existing report, no compile")
    ap.add_argument("--dtypes", default=",".join(GATED_DTYPES), help="comma-separated (float64 is not gated)")
    ap.add_argument("--cases", default="", help="regex on the decisive case labels (default: all)")
    ap.add_argument("--kernels", default="", help="regex on 'module._kernel' names (default: all)")
    ap.add_argument("--flrelu-fp32", choices=("tf32x3", "ieee"),
                    help="filtered_lrelu's float32 dot precision (default: the kernels' default, tf32x3)")
    ap.add_argument("--jobs", type=int, default=1, help="compile worker processes (default 1: shared cores)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a bar fails")
    args = ap.parse_args(argv)
    try:
        if args.table_only:
            with open(args.table_only) as f:
                report = json.load(f)
        else:
            dev = device_for(args.arch)
            from gan_fast.config import cache_dir  # noqa: PLC0415

            from . import static_cases  # noqa: PLC0415

            dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
            for d in dtypes:
                if d not in DTYPES:
                    raise ToolError(f"unknown dtype {d!r}: one of {sorted(DTYPES)}")
            labels = [lb for lb in static_cases.labels() if re.search(args.cases, lb)]
            static_cases.FLRELU_FP32 = args.flrelu_fp32
            report = build(dev, args.arch, dtypes, labels, args.jobs, cache_dir(),
                           log=lambda s: print(s, file=sys.stderr, flush=True), kernels=args.kernels)
            out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                           f"static-sm{args.arch}-{_today()}.json")
            with open(out, "w") as f:
                f.write(dumps(report))
            print(f"wrote {out}: {len(report['rows'])} rows, {len(report['bars']['failures'])} bar failures "
                  f"({report['meta']['seconds']:.0f} s)")
        if args.table:
            with open(args.table, "w") as f:
                f.write(markdown(report))
            print(f"wrote {args.table}")
        if args.check and report["bars"]["failures"]:
            for line in report["bars"]["failures"]:
                print("FAIL", line)
            return 1
        return 0
    except ToolError as exc:
        print(f"static_report: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Every Triton kernel compiles for sm_90 (H100/H200) on this GPU-less machine.

The interpreter runs kernels as Python, so it cannot see compile errors; these
tests run ``python -m benchmarks.compile_check``, which records the
launches of every op's self-test under the interpreter and compiles each one
(plus the autotune configs and GPU-only constexpr values) to cubin with
``triton.compile`` for an explicit GPU target. Marked slow (about 3 minutes
on 2 cores; Triton's cache makes reruns fast); on a GPU machine the kernels
run for real, so ``benchmarks/gpu.sh`` skips it.
"""

import os
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH", "")) if p)
    for key, value in extra.items():
        env[key] = os.pathsep.join((value, env[key])) if key == "PYTHONPATH" else value
    return env


@pytest.mark.slow
def test_every_triton_kernel_compiles_for_sm90():
    from benchmarks.compile_check import defined_kernels

    proc = subprocess.run([sys.executable, "-m", "benchmarks.compile_check", "--arch", "90"],
                          capture_output=True, text=True, env=_env(), timeout=1500, cwd=ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    done, total = map(int, re.search(r"compiled (\d+)/(\d+) specialisations for sm_90", out).groups())
    assert done == total >= len(defined_kernels()) >= 14
    assert "NOT LAUNCHED" not in out


def test_every_dot_with_an_accumulator_names_its_out_dtype():
    """Issue 23: triton 3.6's tl.dot defaults out_dtype to float32 and asserts the accumulator matches (the
    float64 implicit GEMM failed there); triton 3.9 takes the accumulator's. No kernel relies on either."""
    from benchmarks.compile_check import dot_out_dtype_violations

    assert dot_out_dtype_violations() == []


BROKEN = '''
import triton
import triton.language as tl

SCALE = 2.0                    # a plain Python global: the interpreter reads it, the compiler rejects it
SCALE_OK = tl.constexpr(2.0)


@triton.jit
def broken_kernel(x_ptr, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    tl.store(x_ptr + offs, tl.load(x_ptr + offs) * SCALE)


@triton.jit
def fixed_kernel(x_ptr, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    tl.store(x_ptr + offs, tl.load(x_ptr + offs) * SCALE_OK)
'''


@pytest.mark.slow
def test_compile_check_catches_what_the_interpreter_cannot(tmp_path):
    (tmp_path / "aot_probe.py").write_text(BROKEN)
    script = textwrap.dedent("""
        from benchmarks.compile_check import _compile_one
        sig = {"x_ptr": "*fp32", "BLOCK": "constexpr"}
        for name in ("broken_kernel", "fixed_kernel"):
            print(name, repr(_compile_one(("aot_probe." + name, sig, {"BLOCK": 64}, {}, 90))))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env=_env(PYTHONPATH=str(tmp_path)), cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.strip().splitlines())
    assert "CompilationError" in lines["broken_kernel"]
    assert lines["fixed_kernel"] == "''"

"""What keeps gan_fast working across the supported stacks (torch >= 2.11, triton >= 3.6), checked on whatever
stack runs the tests (the pinned one in every CI run; the others through .ci/versions)."""

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from gan_fast.version import interpreter_problem, parse, torch_problem

ROOT = Path(__file__).resolve().parents[1]


def _sources(folder):
    return sorted((ROOT / folder).rglob("*.py"))


def test_custom_op_modules_have_no_string_annotations():
    """``torch.library.custom_op`` infers its schema from the annotations; torch before 2.5 cannot read them as
    strings (``from __future__ import annotations``), so no module that defines a custom op postpones them."""
    offenders = []
    for path in _sources("gan_fast"):
        text = path.read_text()
        if "torch.library.custom_op" in text and "from __future__ import annotations" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_every_dot_with_an_accumulator_names_its_out_dtype():
    """``tl.dot(a, b, acc)``: triton 3.6 defaults ``out_dtype`` to float32 and asserts that acc matches (a float64
    accumulator fails there), triton 3.9 takes it from acc. Naming it leaves no version's default to decide."""
    missing = []
    for path in _sources("kernels"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "dot" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "tl":
                has_acc = len(node.args) >= 3 or any(k.arg == "acc" for k in node.keywords)
                if has_acc and not any(k.arg == "out_dtype" for k in node.keywords):
                    missing.append(f"{path.name}:{node.lineno}")
    assert missing == [], f"tl.dot with an accumulator and no out_dtype: {missing}"


def _kernel_functions():
    """(name, python function) of every Triton kernel (a JITFunction, or an InterpretedFunction under the
    interpreter; an Autotuner wraps either)."""
    from triton.runtime.jit import KernelInterface

    for path in _sources("kernels"):
        if path.name.startswith("_"):
            continue
        module = importlib.import_module(f"gan_fast.kernels.{path.stem}")
        for name, obj in vars(module).items():
            while isinstance(obj, KernelInterface) and isinstance(getattr(obj, "fn", None), KernelInterface):
                obj = obj.fn  # an Autotuner around the kernel
            if isinstance(obj, KernelInterface) and callable(getattr(obj, "fn", None)):
                yield f"{path.stem}.{name}", obj.fn


def test_triton_reads_every_constexpr_annotation():
    """Each parameter annotated ``tl.constexpr`` in the source is a constexpr for the installed triton's compiler
    (triton 3.0's interpreter read only the exact annotation 'constexpr'; these modules write the annotations as
    strings, ``from __future__ import annotations``)."""
    from triton.runtime.jit import JITFunction

    checked = 0
    for name, fn in _kernel_functions():
        source = ast.parse(inspect.getsource(fn).lstrip())
        args = source.body[0].args.args
        annotated = {a.arg for a in args if a.annotation is not None and "constexpr" in ast.unparse(a.annotation)}
        seen = {p.name for p in JITFunction(fn).params if p.is_constexpr}
        assert seen == annotated, (name, seen ^ annotated)
        checked += 1
    assert checked >= 10


def test_an_old_torch_is_refused_at_import_naming_the_range():
    assert torch_problem("2.13.0+cpu") is None and torch_problem("2.11.0") is None
    msg = torch_problem("2.10.1")
    assert "needs torch >= 2.11" in msg and "triton >= 3.6" in msg and "this is torch 2.10.1" in msg
    code = ("import torch; torch.__version__ = '2.4.0'\n"
            "try:\n    import gan_fast\nexcept ImportError as e:\n    print('ImportError', e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.startswith("ImportError gan_fast") and "torch 2.4.0" in out.stdout, out.stdout + out.stderr


def test_an_old_interpreter_with_new_numpy_is_one_line():
    assert interpreter_problem("3.9.0", "2.4.6") is None
    assert interpreter_problem("3.6.0", "2.3.5") is None
    msg = interpreter_problem("3.6.0", "2.4.0")
    assert "numpy<2.4" in msg and "\n" not in msg
    assert parse("2.13.0+cpu") == (2, 13)


def test_the_supported_range_is_stated_once():
    """pyproject's bounds, .ci/setup and README's version table agree with gan_fast/version.py."""
    from gan_fast import version

    pyproject = (ROOT / "pyproject.toml").read_text()
    torch_min = ".".join(map(str, version.MIN_TORCH))
    triton_min = ".".join(map(str, version.MIN_TRITON))
    python_min = ".".join(map(str, version.MIN_PYTHON))
    assert f'"torch>={torch_min}"' in pyproject
    assert f'requires-python = ">={python_min}"' in pyproject
    assert f"triton>={triton_min}" in pyproject
    readme = (ROOT / "README.md").read_text()
    assert f"torch >= {torch_min}" in readme and f"triton >= {triton_min}" in readme


@pytest.mark.parametrize("stack", ["py3.12-torch2.11.0-triton3.6.0"])
def test_ci_versions_knows_the_stacks(stack):
    script = (ROOT / ".ci" / "versions").read_text()
    assert f"[{stack}]=" in script
    out = subprocess.run(["bash", str(ROOT / ".ci" / "versions"), "no-such-stack"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown stack 'no-such-stack'" in out.stderr

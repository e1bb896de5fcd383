"""The architecture holds: no import cycle among gan_fast's modules (function-level imports included), kernels/
imports nothing of gan_fast but gan_fast.shapes, ``import gan_fast`` is light, custom ops exist after import,
and first calls from several threads at once are safe."""

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, Set

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> Dict[str, Path]:
    """{module name: file} for gan_fast (kernels/ under its installed name gan_fast.kernels)."""
    found = {}
    for top, name in ((ROOT / "gan_fast", "gan_fast"), (ROOT / "kernels", "gan_fast.kernels")):
        for path in top.rglob("*.py"):
            rel = path.relative_to(top).with_suffix("")
            parts = [name] + [p for p in rel.parts if p != "__init__"]
            found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path, known: Set[str]) -> Set[str]:
    """The gan_fast modules ``module`` imports anywhere in its file (inside functions too)."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # `from pkg import func`: the module is pkg
                name = name.rpartition(".")[0]
            if name and name != module and name.startswith("gan_fast"):
                out.add(name)
    return out


def _graph():
    modules = _modules()
    known = set(modules)
    return {m: _imports(m, p, known) for m, p in modules.items()}


def test_no_import_cycle():
    graph = _graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == [], f"import cycles: {cycles}"


def test_kernels_import_only_the_shapes_module():
    graph = _graph()
    for module, deps in graph.items():
        if module.startswith("gan_fast.kernels"):
            outside = {d for d in deps if not d.startswith("gan_fast.kernels")}
            assert outside <= {"gan_fast.shapes"}, (module, outside)
    assert _graph()["gan_fast.shapes"] == set()  # dependency-free


LEAVES = ("gan_fast.config", "gan_fast.errors", "gan_fast.shapes", "gan_fast.checks", "gan_fast.activations",
          "gan_fast.fir", "gan_fast.version", "gan_fast.conv2d_gradfix")
# layer -> the gan_fast modules it may import (its own layer included); docs/DESIGN.md, section 2.
ALLOWED = {
    "gan_fast.reference": LEAVES + ("gan_fast.reference",),
    "gan_fast.params": LEAVES + ("gan_fast.params",),
    "gan_fast.backends": LEAVES + ("gan_fast.reference", "gan_fast.params", "gan_fast.backends", "gan_fast.kernels",
                                   "gan_fast.extension"),
    "gan_fast.self_test": LEAVES + ("gan_fast.self_test", "gan_fast.params", "gan_fast.backends", "gan_fast.backend"),
    "gan_fast.extension": LEAVES + ("gan_fast.extension",),
}
# Training code and modules reach the kernels only through gan_fast.ops.
NEVER = {prefix: ("gan_fast.backends", "gan_fast.kernels", "gan_fast.extension")
         for prefix in ("gan_fast.nn", "gan_fast.models", "gan_fast.regularizers", "gan_fast.losses",
                        "gan_fast.unrolled", "gan_fast.examples")}


def test_each_layer_imports_only_what_it_may():
    wrong = []
    for module, deps in _graph().items():
        for layer, allowed in ALLOWED.items():
            if module == layer or module.startswith(layer + "."):
                wrong += [(module, d) for d in deps if not (d in allowed or d.startswith(tuple(a + "." for a in allowed)))]
        for layer, banned in NEVER.items():
            if module == layer or module.startswith(layer + "."):
                wrong += [(module, d) for d in deps if d.startswith(banned)]
    assert wrong == []


def _fresh(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **env}, timeout=600)


def test_import_is_light_and_registers_the_custom_ops():
    out = _fresh("""
        import sys, torch, gan_fast
        heavy = [m for m in sys.modules if m == "triton"
                 or m.startswith(("torch._dynamo", "gan_fast.kernels", "gan_fast.extension"))]
        print(heavy)
        print(hasattr(torch.ops.gan_fast, "triton_bias_act_fwd"), hasattr(torch.ops.gan_fast, "triton_upfirdn2d_fwd"))
        print([name for name in ("triton", "torch._dynamo") if name in sys.modules])
    """)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "[]", lines
    assert lines[1] == "True True"


def test_first_calls_from_several_threads(tmp_path):
    """A fresh process's first calls race: verdicts, the extension's load, fake registration, counters."""
    out = _fresh("""
        import threading, torch, gan_fast
        from gan_fast import ops
        errors = []
        def work(i):
            try:
                x = torch.randn(2, 4, 8, 8, requires_grad=True)
                b = torch.randn(4, requires_grad=True)
                y = ops.bias_act(x, b, act="lrelu", impl="cpp" if i % 2 else None)
                y = ops.upsample2d(y, ops.setup_filter([1, 3, 3, 1]))
                y.square().sum().backward()
                ops.gradient_norm_penalty(torch.randn(3, 5, requires_grad=True))
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))
        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print(errors)
    """, GAN_FAST_CACHE_DIR=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_the_design_document_the_code_cites_is_in_the_repository():
    assert (ROOT / "docs" / "DESIGN.md").is_file()
    assert "docs/DESIGN.md" in (ROOT / "README.md").read_text()

"""Every Python block of README.md runs as written (CPU, impl=None, within 10 s of work each), in a fresh
process from the repository root. A block that can only run on a GPU carries the marker line
``# needs a CUDA GPU`` as its first line; it is reported as a skip here (at most two such blocks)."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
GPU_MARKER = "# needs a CUDA GPU"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks():
    text = (ROOT / "README.md").read_text()
    out = []
    for match in BLOCK.finditer(text):
        line = text[:match.start()].count("\n") + 1
        out.append(pytest.param(match.group(1), id=f"README.md:{line}"))
    return out


BLOCKS = _blocks()


def test_readme_has_python_examples_and_few_gpu_only_ones():
    assert len(BLOCKS) >= 5
    assert sum(GPU_MARKER in b.values[0].splitlines()[0] for b in BLOCKS) <= 2


@pytest.fixture(scope="module")
def extension_cache(tmp_path_factory):
    """A cache whose ``ext/`` holds the extension, built once here where the install did not prebuild it (as
    after a user's first call): each block then starts from a fresh cache that shares only this ``ext/``, so
    the first-use build's minutes are not charged to every block."""
    root = tmp_path_factory.mktemp("readme_ext")
    env = {**os.environ, "GAN_FAST_CACHE_DIR": str(root), "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", "import gan_fast.extension as e\ntry: e.load()\nexcept Exception: pass"],
                   env=env, capture_output=True, timeout=1800)
    (root / "ext").mkdir(exist_ok=True)
    return root / "ext"


@pytest.mark.parametrize("code", BLOCKS)
def test_readme_block_runs(code, tmp_path, extension_cache):
    if code.splitlines()[0].strip() == GPU_MARKER and not torch.cuda.is_available():
        pytest.skip("README block marked as needing a CUDA GPU")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "ext").symlink_to(extension_cache, target_is_directory=True)
    env = {**os.environ, "GAN_FAST_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    env.pop("TRITON_INTERPRET", None)  # as a user runs it: the automatic choice, no test mode
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    took = time.perf_counter() - start
    assert out.returncode == 0, f"README block failed:\n{code}\n--- stderr:\n{out.stderr[-3000:]}"
    # 10 s of the block's own work; the interpreter start and `import torch` come on top on a loaded machine.
    assert took < 60, f"README block took {took:.0f} s"


def test_readme_lists_every_environment_variable_as_the_library_documents_it():
    """README's table of variables is gan_fast.config.ENVIRONMENT, row for row (a '|' in a cell escaped)."""
    from gan_fast import config

    text = (ROOT / "README.md").read_text()
    table = text[text.index("| variable | what it sets |"):].split("\n\n", 1)[0].splitlines()[2:]
    expected = [f"| `{name}` | {what.replace('|', chr(92) + '|')} |" for name, what in config.ENVIRONMENT.items()]
    assert table == expected

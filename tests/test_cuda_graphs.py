"""No host synchronisation in any op's hot path: a StyleGAN2 training step built from gan_fast's ops is captured
in a CUDA graph and replays the eager step's results (GPU), and the hot-path sources call nothing that syncs.

Capture fails on any host synchronisation (``.item()``, ``.cpu()``, a Python decision on a tensor value) and on
any work the first call of an op does (its backend choice, its self-test, Triton's compilation and autotuning):
the eager warm-up makes those, and the capture must not repeat them.
"""

import ast
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
# What a forward or backward call runs: public ops, the autograd glue, the Triton launchers, the modules.
HOT_PATHS = ["gan_fast/ops", "gan_fast/backends", "gan_fast/params", "gan_fast/reference", "kernels", "gan_fast/nn", "gan_fast/regularizers",
             "gan_fast/losses.py", "gan_fast/conv2d_gradfix.py", "gan_fast/models/stylegan2.py"]
SYNCING_METHODS = {"item", "cpu", "tolist", "numpy", "nonzero", "synchronize"}
ALLOWED: set = set()  # files of HOT_PATHS that may synchronise (none)


def _syncing_calls(source: str):
    """(line, call) of every syncing method call that is not part of a ``raise`` (an error message may format a
    tensor: that path ends the call anyway)."""
    tree = ast.parse(source)
    in_raise = {id(n) for r in ast.walk(tree) if isinstance(r, ast.Raise) for n in ast.walk(r)}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in SYNCING_METHODS and id(node) not in in_raise):
            yield node.lineno, node.func.attr


def test_hot_path_sources_call_nothing_that_syncs():
    found = []
    for entry in HOT_PATHS:
        path = ROOT / entry
        for file in sorted(path.rglob("*.py") if path.is_dir() else [path]):
            rel = str(file.relative_to(ROOT))
            if rel not in ALLOWED:
                found += [f"{rel}:{line}: .{call}()" for line, call in _syncing_calls(file.read_text())]
    assert not found, "host synchronisation in a hot path:\n" + "\n".join(found)


def test_the_lint_sees_a_sync_outside_an_error_message():
    code = "def f(x):\n    if x.sum().item() > 0:\n        raise ValueError(f'{x.tolist()}')\n    return x.cpu()\n"
    assert sorted(_syncing_calls(code)) == [(2, "item"), (4, "cpu")]


@pytest.mark.gpu
def test_a_stylegan2_training_step_is_captured_and_replays_the_eager_step(monkeypatch):
    from gan_fast import backend, self_test
    from gan_fast.models import Discriminator, Generator

    torch.manual_seed(0)
    dev = torch.device("cuda")
    G = Generator(64, 0, 64, 32, 3, mapping_kwargs=dict(num_layers=2), channel_base=2048, channel_max=64).to(dev)
    D = Discriminator(0, 32, 3, channel_base=2048, channel_max=64).to(dev)
    z = torch.randn(4, 64, device=dev)
    real = torch.randn(4, 3, 32, 32, device=dev)
    params = [p for p in list(G.parameters()) + list(D.parameters()) if p.requires_grad]

    def step():
        """The first-order G and D losses of a training iteration and their gradients."""
        fake = G(z, noise_mode="const")
        loss = F.softplus(-D(fake)).mean() + F.softplus(D(fake.detach())).mean() + F.softplus(-D(real)).mean()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        return [loss] + [g for g in grads if g is not None]

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up: backend choices, self-tests, compilation, autotuning
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)

    def forbidden(*args, **kwargs):
        raise AssertionError("first-call work (backend choice / self-test) repeated inside the capture")

    monkeypatch.setattr(backend, "_resolve", forbidden)
    monkeypatch.setattr(self_test, "check", forbidden)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static = step()
    graph.replay()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # the eager step itself makes no synchronising call either
    try:
        eager = step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    assert len(static) == len(eager) > 10
    for a, b in zip(static, eager):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)

"""DistributedDataParallel (gloo, 2 processes on 127.0.0.1, CPU) with double-backward penalties.

Checked here: a D step (spectral norm + bias_act discriminator, hinge loss + R1) and a G step
(StyleGAN2 generator + path length penalty) computed through DDP modules give each rank the
same gradients as the single-process average of the per-shard computations; and the
:class:`gan_fast.models.StyleGAN2Trainer` runs under DDP with lazy R1/path length steps and
keeps both ranks' weights identical.

The pattern a user must follow (what these tests and the trainer do):

1. Call the DDP-wrapped module for the forward (``logits = ddp_D(x)``), with
   ``x = real.detach().requires_grad_(True)``.
2. Get the input gradient with ``torch.autograd.grad(logits.sum(), x, create_graph=True)``
   (``gan_fast.regularizers.r1_penalty`` does this) -- with respect to the *input only*.
3. Call ``.backward()`` once on the total loss (main loss + penalty). The reducer's hooks fire
   for the parameter gradients of this double backward and DDP averages them as usual.
4. With the default ``find_unused_parameters=False`` every trainable parameter must get a
   gradient in every backward: for a penalty-only step add ``0 * logits.sum()`` (the output bias
   has no R1 gradient, ToRGB biases none for path length). Freezing a whole module for a phase
   (``requires_grad_(False)``, as StyleGAN2-ADA and the trainer do) is fine.

Known PyTorch limits:

* ``loss.backward(create_graph=True)`` through DDP (higher-order gradients with respect to the
  *parameters*) is not supported: the all-reduced gradients are not differentiable and higher-
  order gradients are not synchronised (PyTorch warns "Using DistributedDataParallel with
  create_graph=True is not well-supported", pytorch/pytorch#63929).
* ``torch.autograd.grad`` with respect to parameters bypasses DDP's reducer: those gradients
  are never averaged across ranks. Penalties need only input gradients (step 2).
* Batch statistics are per process: the minibatch-std layer groups samples within a rank's
  batch, and a standalone ``PathLengthPenalty`` keeps one EMA per rank; buffers inside the
  DDP module (spectral-norm u/v, ``w_avg``) are broadcast from rank 0 before each forward
  (``broadcast_buffers=True``). So DDP equals the average of per-shard computations (what
  is compared here), not a full-batch computation.
"""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

from gan_fast import losses, regularizers
from gan_fast.models import Discriminator, Generator, SNDiscriminator, StyleGAN2Trainer, make_adam

WORLD, SHARD = 2, 2
R1_GAMMA, PL_WEIGHT = 5.0, 2.0


def make_d():
    return SNDiscriminator(img_resolution=8, img_channels=3, channels=4, channel_multipliers=(1, 2),
                           min_resolution=4)


def make_g():
    return Generator(8, 0, 8, 8, 3, mapping_kwargs=dict(num_layers=2), channel_base=32, channel_max=4)


def d_step_grads(D, real, fake):
    """Hinge loss + gamma/2 * R1, one backward. Returns {name: grad}."""
    real_in = real.detach().requires_grad_(True)
    real_logits = D(real_in)
    fake_logits = D(fake)
    loss = losses.d_loss(real_logits, fake_logits, "hinge") + regularizers.r1_penalty(real_logits, real_in) * (
        R1_GAMMA / 2)
    loss.backward()
    return {k: p.grad.clone() for k, p in _unwrap(D).named_parameters()}


def g_step_grads(G, z, noise):
    """Path length penalty (plus 0 * images), one backward. Returns {name: grad}."""
    img, ws = G(z, noise_mode="const", return_ws=True)
    pen = regularizers.PathLengthPenalty()(img, ws, noise=noise)
    (img[:, 0, 0, 0].sum() * 0 + pen.mean() * PL_WEIGHT).backward()
    return {k: p.grad.clone() for k, p in _unwrap(G).named_parameters()}


def _unwrap(m):
    return m.module if isinstance(m, DDP) else m


def _inputs():
    g = torch.Generator().manual_seed(7)
    n = WORLD * SHARD
    return {"real": torch.randn(n, 3, 8, 8, generator=g), "fake": torch.randn(n, 3, 8, 8, generator=g),
            "z": torch.randn(n, 8, generator=g), "noise": torch.randn(n, 3, 8, 8, generator=g)}


def _worker(rank, port, out_dir, init):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        sl = slice(rank * SHARD, (rank + 1) * SHARD)
        x = _inputs()
        result = {}

        D = make_d()
        D.load_state_dict(init["D"])
        result["D"] = d_step_grads(DDP(D), x["real"][sl], x["fake"][sl])
        result["D_buffers"] = {k: b.clone() for k, b in D.named_buffers()}

        G = make_g()
        G.load_state_dict(init["G"])
        result["G"] = g_step_grads(DDP(G), x["z"][sl], x["noise"][sl])

        # The trainer under DDP: lazy R1 and path length steps, frozen D in the G step, EMA.
        torch.manual_seed(100 + rank)  # each rank draws its own z and noise
        G2 = Generator(8, 0, 8, 8, 3, mapping_kwargs=dict(num_layers=2), channel_base=32, channel_max=4)
        D2 = Discriminator(0, 8, 3, channel_base=32, channel_max=4, mbstd_group_size=2)
        G2.load_state_dict(init["G2"])
        D2.load_state_dict(init["D2"])
        trainer = StyleGAN2Trainer(DDP(G2), DDP(D2), make_adam(G2.parameters(), 0.01, reg_interval=2),
                                   make_adam(D2.parameters(), 0.01, reg_interval=2), r1_gamma=1.0, r1_interval=2,
                                   pl_interval=2, ema_kimg=0.01)
        for step in range(3):
            stats = trainer.step(x["real"][sl])
            assert all(torch.isfinite(v) for v in stats.values())
        result["trainer_stats_keys"] = sorted(stats)
        result["trainer_nimg"] = trainer.nimg
        result["G2"] = {k: v.clone() for k, v in G2.state_dict().items()}
        result["D2"] = {k: v.clone() for k, v in D2.state_dict().items()}
        result["G2_ema"] = {k: v.clone() for k, v in trainer.G_ema.state_dict().items()}
        torch.save(result, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    torch.manual_seed(0)
    init = {"D": make_d().state_dict(), "G": make_g().state_dict(),
            "G2": Generator(8, 0, 8, 8, 3, mapping_kwargs=dict(num_layers=2), channel_base=32,
                            channel_max=4).state_dict(),
            "D2": Discriminator(0, 8, 3, channel_base=32, channel_max=4, mbstd_group_size=2).state_dict()}
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(out), init), nprocs=WORLD, join=True)
    results = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    return init, results


def _single_process_average(make, init_state, fn, shards):
    total = None
    for args in shards:
        torch.manual_seed(0)
        m = make()
        m.load_state_dict(init_state)  # each shard starts from the same state, like each rank
        grads = fn(m, *args)
        total = grads if total is None else {k: total[k] + g for k, g in grads.items()}
    return {k: g / len(shards) for k, g in total.items()}


def test_d_step_with_spectral_norm_and_r1_matches_single_process(ddp_results):
    init, results = ddp_results
    x = _inputs()
    shards = [(x["real"][r * SHARD:(r + 1) * SHARD], x["fake"][r * SHARD:(r + 1) * SHARD]) for r in range(WORLD)]
    want = _single_process_average(make_d, init["D"], d_step_grads, shards)
    assert any("parametrizations.weight.original" in k for k in want)
    for r in range(WORLD):
        assert results[r]["D"].keys() == want.keys()
        for k, g in want.items():
            torch.testing.assert_close(results[r]["D"][k], g, rtol=1e-5, atol=1e-6, msg=f"rank {r} {k}")
    for k, b in results[0]["D_buffers"].items():  # spectral-norm u, v agree across ranks
        assert torch.equal(b, results[1]["D_buffers"][k]), k


def test_g_step_with_path_length_matches_single_process(ddp_results):
    init, results = ddp_results
    x = _inputs()
    shards = [(x["z"][r * SHARD:(r + 1) * SHARD], x["noise"][r * SHARD:(r + 1) * SHARD]) for r in range(WORLD)]
    want = _single_process_average(make_g, init["G"], g_step_grads, shards)
    for r in range(WORLD):
        for k, g in want.items():
            torch.testing.assert_close(results[r]["G"][k], g, rtol=1e-5, atol=1e-6, msg=f"rank {r} {k}")
    assert any(g.abs().sum() > 0 for k, g in want.items() if k.startswith("mapping."))


def test_trainer_under_ddp_keeps_ranks_identical(ddp_results):
    init, results = ddp_results
    assert results[0]["trainer_stats_keys"] == ["loss_D", "loss_G", "pl", "r1"]  # step 2: a lazy reg step
    assert results[0]["trainer_nimg"] == 3 * WORLD * SHARD
    for part in ("G2", "D2", "G2_ema"):
        changed = False
        for k, v in results[0][part].items():
            assert torch.equal(v, results[1][part][k]), (part, k)
            changed |= part != "G2_ema" and v.is_floating_point() and not torch.equal(v, init[part][k])
        assert changed or part == "G2_ema", part

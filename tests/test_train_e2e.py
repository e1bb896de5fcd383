"""End to end: 50 StyleGAN2 training steps (32x32, R1, path length, EMA, style mixing) on random
data on CPU without NaN, and a checkpoint round trip that resumes bit-identically."""

import io
import math

import pytest
import torch

from gan_fast.models import Discriminator, Generator, StyleGAN2Trainer, make_adam

STEPS, RESUME_AT, BATCH = 50, 25, 4


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-identical resumption also assumes the same thread count
    yield
    torch.set_num_threads(old)


def build(seed):
    torch.manual_seed(seed)
    G = Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=32, img_channels=3,
                  mapping_kwargs=dict(num_layers=2), channel_base=128, channel_max=8)
    D = Discriminator(c_dim=0, img_resolution=32, img_channels=3, channel_base=128, channel_max=8)
    G_opt = make_adam(G.parameters(), lr=0.0025, betas=(0, 0.99), reg_interval=4)
    D_opt = make_adam(D.parameters(), lr=0.0025, betas=(0, 0.99), reg_interval=4)
    return StyleGAN2Trainer(G, D, G_opt, D_opt, r1_gamma=1.0, r1_interval=4, pl_weight=2.0, pl_interval=4,
                            style_mixing_prob=0.9, ema_kimg=0.01, ema_rampup=0.05)


def data(step):
    g = torch.Generator().manual_seed(1000 + step)  # the "dataset": independent of the training RNG
    return torch.rand(BATCH, 3, 32, 32, generator=g) * 2 - 1


def flat_state(trainer):
    out = {}

    def walk(prefix, obj):
        if isinstance(obj, torch.Tensor):
            out[prefix] = obj
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(f"{prefix}.{i}", v)
        else:
            out[prefix] = obj

    walk("", trainer.state_dict())
    return out


def test_fifty_steps_finite_and_resume_bit_identical():
    trainer = build(seed=0)
    checkpoint = None
    regs = {"r1": 0, "pl": 0}
    for step in range(STEPS):
        if step == RESUME_AT:
            buf = io.BytesIO()
            torch.save(trainer.state_dict(), buf)
            checkpoint = buf.getvalue()
        stats = trainer.step(data(step))
        for k in regs:
            regs[k] += k in stats
        for k, v in stats.items():
            assert math.isfinite(v.item()), (step, k, v)
    assert regs == {"r1": 13, "pl": 13}  # lazy: steps 0, 4, ..., 48
    for name, t in flat_state(trainer).items():
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            assert torch.isfinite(t).all(), name
    assert trainer.pl.pl_mean.item() > 0
    img = trainer.G_ema(torch.randn(2, 16), noise_mode="const")
    assert img.shape == (2, 3, 32, 32) and torch.isfinite(img).all()

    resumed = build(seed=123)  # different initial weights: everything must come from the checkpoint
    resumed.load_state_dict(torch.load(io.BytesIO(checkpoint), weights_only=False))
    assert resumed.step_count == RESUME_AT
    for step in range(RESUME_AT, STEPS):
        resumed.step(data(step))

    want, got = flat_state(trainer), flat_state(resumed)
    assert want.keys() == got.keys()
    for name in want:
        a, b = want[name], got[name]
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), name
        else:
            assert a == b, name

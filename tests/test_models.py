"""gan_fast.models: StyleGAN2 G and D, the SN discriminator, and the training-step helper."""


import pytest
import torch
from torch.nn.utils import parametrize

from gan_fast import nn as gnn
from gan_fast import regularizers
from gan_fast.models import (Discriminator, Generator, SNDiscriminator, StyleGAN2Trainer, channel_table,
                             make_adam)

TINY = dict(channel_base=128, channel_max=8)


def tiny_g(res=16, c_dim=0, **kw):
    return Generator(8, c_dim, 8, res, 3, mapping_kwargs=dict(num_layers=2), **TINY, **kw)


def tiny_d(res=16, c_dim=0, **kw):
    return Discriminator(c_dim, res, 3, **TINY, **kw)


def test_channel_table_is_config_f():
    table = channel_table([4, 8, 16, 32, 64, 128, 256, 512, 1024])
    assert table == {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}
    g = tiny_g(32)
    assert [getattr(g.synthesis, f"b{r}").out_channels for r in (4, 8, 16, 32)] == [8, 8, 8, 4]
    assert g.num_ws == 2 * 4 - 1 + 1  # 1 + 2 + 2 + 2 convs, plus the last torgb


def test_generator_shapes_names_and_modes():
    torch.manual_seed(0)
    g = tiny_g(16, c_dim=2).eval()
    z, c = torch.randn(3, 8), torch.eye(2)[[0, 1, 0]]
    img, ws = g(z, c, noise_mode="const", return_ws=True)
    assert img.shape == (3, 3, 16, 16) and ws.shape == (3, g.num_ws, 8)
    torch.testing.assert_close(g(z, c, noise_mode="const", fused_modconv=False), img, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(g.synthesis(ws, noise_mode="const"), img)
    keys = set(g.state_dict())
    for k in ("mapping.fc0.weight", "mapping.embed.weight", "mapping.w_avg", "synthesis.b4.const",
              "synthesis.b4.conv1.affine.weight", "synthesis.b8.conv0.noise_strength", "synthesis.b16.torgb.bias"):
        assert k in keys, k
    # truncation to psi=0 gives every sample the average w
    g.mapping.w_avg.normal_()
    ws0 = g.mapping(z, c, truncation_psi=0)
    torch.testing.assert_close(ws0, g.mapping.w_avg.expand_as(ws0))
    # style mixing with probability 1: late layers come from another z
    torch.manual_seed(3)
    _, mixed = g(z, c, style_mixing_prob=1.0, return_ws=True)
    assert torch.equal(mixed[:, 0], ws[:, 0]) and not torch.equal(mixed[:, -1], ws[:, -1])


def test_discriminator_shapes_names_and_conditioning():
    torch.manual_seed(0)
    d = tiny_d(16)
    img = torch.randn(4, 3, 16, 16)
    assert d(img).shape == (4, 1)
    keys = set(d.state_dict())
    for k in ("b16.fromrgb.weight", "b16.skip.weight", "b8.conv1.weight", "b4.conv.weight", "b4.fc.weight",
              "b4.out.weight"):
        assert k in keys, k
    assert "b8.fromrgb.weight" not in keys  # resnet: only the first block reads the image
    dc = tiny_d(16, c_dim=3)
    c = torch.eye(3)[[0, 1, 2, 0]]
    out = dc(img, c)
    assert out.shape == (4, 1)
    assert not torch.allclose(out, dc(img, c.roll(1, dims=0)))


def test_sn_discriminator():
    torch.manual_seed(0)
    d = SNDiscriminator(img_resolution=16, img_channels=3, channels=4, channel_multipliers=(1, 2, 2), c_dim=3,
                        min_resolution=4)
    convs = [m for m in d.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert convs and all(parametrize.is_parametrized(m, "weight") for m in convs)
    assert all(isinstance(m.parametrizations.weight[0], gnn.SpectralNorm) for m in convs)
    img, c = torch.randn(2, 3, 16, 16), torch.eye(3)[[0, 2]]
    out = d(img, c)
    assert out.shape == (2, 1)
    # projection: the class term is <embed(c), h>
    assert not torch.allclose(out, d(img, torch.eye(3)[[1, 1]]))
    with pytest.raises(ValueError, match=r"c must have shape \[2, 3\]"):
        d(img, torch.eye(2))


def test_r1_and_path_length_through_the_models():
    torch.manual_seed(0)
    g, d = tiny_g(16), tiny_d(16)
    real = torch.randn(4, 3, 16, 16).requires_grad_(True)
    logits = d(real)
    r1 = regularizers.r1_penalty(logits, real)
    (logits.sum() * 0 + r1).backward()  # * 0: the output bias has no R1 gradient; give it a zero one
    assert torch.isfinite(r1) and r1 > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in d.parameters())
    img, ws = g(torch.randn(2, 8), return_ws=True)
    pl = regularizers.PathLengthPenalty()(img, ws)
    (img[:, 0, 0, 0].sum() * 0 + pl.mean()).backward()
    assert torch.isfinite(pl).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())


def test_model_errors():
    g, d = tiny_g(16), tiny_d(16)
    with pytest.raises(ValueError, match=r"img must have shape \[N, 3, 16, 16\]"):
        d(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"z must have shape \[N, 8\]"):
        g(torch.randn(2, 7))
    with pytest.raises(ValueError, match=r"ws must have shape \[N, 6, 8\]"):
        g.synthesis(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="img_resolution must be a power of two"):
        tiny_g(24)
    with pytest.raises(ValueError, match="batch size 6 must be divisible"):
        d(torch.randn(6, 3, 16, 16))


def _trainer(variant="stylegan2", d=None, **kw):
    torch.manual_seed(0)
    g = tiny_g(16)
    d = d if d is not None else tiny_d(16)
    return StyleGAN2Trainer(g, d, make_adam(g.parameters(), 0.002, reg_interval=kw.get("pl_interval", 4)),
                            make_adam(d.parameters(), 0.002, reg_interval=kw.get("r1_interval", 4)),
                            variant=variant, **kw)


def test_trainer_lazy_schedule_and_ema():
    t = _trainer(r1_interval=2, pl_interval=3, ema_kimg=0.001, ema_rampup=None)
    g0 = [p.detach().clone() for p in t.G.parameters()]
    real = torch.randn(4, 3, 16, 16)
    seen = []
    for _ in range(4):
        stats = t.step(real)
        assert all(torch.isfinite(v) for v in stats.values())
        seen.append(("r1" in stats, "pl" in stats))
    assert seen == [(True, True), (False, False), (True, False), (False, True)]
    assert t.step_count == 4 and t.nimg == 16
    assert not any(torch.equal(a, b) for a, b in zip(g0, t.G.parameters()) if a.numel() > 1)
    # EMA: beta = 0.5 ** (batch / (ema_kimg * 1000)) = 0.5 ** 4 here
    assert all(not p.requires_grad for p in t.G_ema.parameters())
    e0 = [e.clone() for e in t.G_ema.parameters()]
    assert any(not torch.equal(e, p) for e, p in zip(e0, t.G.parameters()))
    t._update_ema(4)
    for e, e_old, p in zip(t.G_ema.parameters(), e0, t.G.parameters()):
        torch.testing.assert_close(e, p.detach().lerp(e_old, 0.5 ** 4))
    # the generator's w_avg moved (update_emas in the D step) and is copied into the EMA
    assert not torch.equal(t.G.mapping.w_avg, torch.zeros(8))
    assert torch.equal(t.G_ema.mapping.w_avg, t.G.mapping.w_avg)


def test_trainer_ema_rampup_counts_images_before_the_batch():
    # StyleGAN2-ADA: ema_nimg = min(ema_kimg * 1000, cur_nimg * rampup) with cur_nimg not yet counting this
    # batch, so the first update copies G (beta = 0) and the second uses beta = 0.5 ** (4 / (4 * 0.5)).
    t = _trainer(ema_kimg=10.0, ema_rampup=0.5)
    real = torch.randn(4, 3, 16, 16)
    t.step(real)
    for e, p in zip(t.G_ema.parameters(), t.G.parameters()):
        torch.testing.assert_close(e, p.detach(), rtol=0, atol=0)
    e1 = [e.clone() for e in t.G_ema.parameters()]
    t.step(real)
    for e, e_old, p in zip(t.G_ema.parameters(), e1, t.G.parameters()):
        torch.testing.assert_close(e, p.detach().lerp(e_old, 0.5 ** 2))


def test_trainer_r3gan_variant_with_sn_discriminator():
    torch.manual_seed(0)
    d = SNDiscriminator(img_resolution=16, img_channels=3, channels=4, channel_multipliers=(1, 1))
    t = _trainer("r3gan", d=d, r1_gamma=1.0)
    assert t.loss_kind == "relativistic" and t.r1_lazy is None and t.r2_gamma == 1.0 and t.pl_weight == 0
    real = torch.randn(4, 3, 16, 16)
    for _ in range(2):
        stats = t.step(real)
        assert set(stats) == {"loss_D", "r1", "r2", "loss_G"}
        assert all(torch.isfinite(v) for v in stats.values())
    with pytest.raises(ValueError, match="variant must be one of"):
        _trainer("wgan")

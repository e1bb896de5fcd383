"""Smoke test of the toy 2-D example (a few seconds): metrics, a short training run, the CLI."""

import importlib.util
import math

import pytest
import torch

from gan_fast.examples import toy_2d


def test_metrics_on_known_samples():
    gen = torch.Generator().manual_seed(0)
    real = toy_2d.sample_ring(2000, generator=gen)
    modes, hq = toy_2d.evaluate(real)
    assert modes == 8
    assert hq == pytest.approx(1 - math.exp(-4.5), abs=0.01)  # P(chi2 with 2 dof < 9)
    collapsed = toy_2d.ring_centers()[3] + 0.02 * torch.randn(2000, 2, generator=gen)
    assert toy_2d.evaluate(collapsed)[0] == 1
    # A mode with fewer than 2% of the samples does not count.
    few = torch.cat([real[:1900], toy_2d.ring_centers()[:1].expand(100, 2)])
    few[:1900] = toy_2d.ring_centers()[1]
    assert toy_2d.evaluate(few) == (2, 1.0)
    off = torch.cat([real[:1000], torch.zeros(1000, 2)])
    assert toy_2d.evaluate(off)[1] == pytest.approx(0.5, abs=0.01)
    with pytest.raises(ValueError, match="samples"):
        toy_2d.evaluate(torch.zeros(5, 3))


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small MLPs: fastest, and polite on a shared machine
    yield
    torch.set_num_threads(threads)


def test_short_training_moves_samples_to_the_ring(one_thread):
    kw = dict(loss="relativistic", reg="r1r2", width=32, depth=2, batch_size=128, lr=2e-3, n_eval=500, seed=0)
    untrained = toy_2d.train(steps=0, **kw)
    trained = toy_2d.train(steps=150, **kw)
    gap = lambda res: (res.samples.norm(dim=1) - 2).abs().mean().item()  # noqa: E731
    assert gap(trained) < 0.6 * gap(untrained), (gap(trained), gap(untrained))
    assert trained.samples.shape == (500, 2) and torch.isfinite(trained.samples).all()
    with pytest.raises(ValueError, match="reg must be one of"):
        toy_2d.train(reg="r3")
    with pytest.raises(ValueError, match="loss must be one of"):
        toy_2d.train(loss="minimax")


def test_cli_runs_and_plots(tmp_path, capsys):
    threads = torch.get_num_threads()
    want_plot = importlib.util.find_spec("matplotlib") is not None
    path = tmp_path / "toy.png"
    argv = ["--run", "hinge:wgan_gp", "--run", "least_squares:approx_r1r2", "--steps", "5", "--batch-size", "32"]
    results = toy_2d.main(argv + (["--plot", str(path)] if want_plot else []))
    out = capsys.readouterr().out
    assert [(r.loss, r.reg) for r in results] == [("hinge", "wgan_gp"), ("least_squares", "approx_r1r2")]
    assert "loss=hinge reg=wgan_gp: modes covered" in out and "high-quality fraction" in out
    if want_plot:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert torch.get_num_threads() == threads  # main() restores the thread count it changed
    with pytest.raises(SystemExit):
        toy_2d.main(["--run", "hinge"])


def test_unroll_flag_tiny(capsys):
    kw = dict(width=16, depth=2, batch_size=16, n_eval=50, steps=3, seed=0)
    plain = toy_2d.train(**kw)
    unrolled = toy_2d.train(unroll=2, **kw)
    assert unrolled.unroll == 2 and torch.isfinite(unrolled.samples).all()
    assert not torch.equal(plain.samples, unrolled.samples)  # G was trained against the look-ahead D
    with pytest.raises(ValueError, match="relativistic"):
        toy_2d.train(loss="relativistic", unroll=2, **kw)
    with pytest.raises(ValueError, match="unroll must be"):
        toy_2d.train(unroll=-1, **kw)
    # The CLI: --unroll combined with --reg, and K per --run.
    results = toy_2d.main(["--reg", "r1", "--unroll", "2", "--steps", "2", "--batch-size", "16"])
    assert [(r.reg, r.unroll) for r in results] == [("r1", 2)]
    results = toy_2d.main(["--run", "hinge:none", "--run", "hinge:r2:3", "--unroll", "1", "--unroll-lr", "0.05",
                           "--steps", "2", "--batch-size", "16"])
    assert [(r.loss, r.reg, r.unroll) for r in results] == [("hinge", "none", 1), ("hinge", "r2", 3)]
    out = capsys.readouterr().out
    assert "loss=nonsaturating reg=r1 unroll=2: modes covered" in out and "reg=r2 unroll=3" in out
    for argv in (["--unroll", "-1"], ["--loss", "relativistic", "--unroll", "2"], ["--run", "hinge:none:x"]):
        with pytest.raises(SystemExit):
            toy_2d.main(argv + ["--steps", "1"])


def test_metz2017_preset_and_new_options_tiny(capsys, monkeypatch):
    tiny = dict(width=16, depth=2, batch_size=16, n_eval=50, steps=3, seed=0, z_dim=8)
    # The minimax objective without look-ahead trains exactly like the saturating loss (the real term is constant).
    a = toy_2d.train(loss="saturating", unroll_objective="minimax", **tiny)
    b = toy_2d.train(loss="saturating", **tiny)
    torch.testing.assert_close(a.samples, b.samples)
    # D's own Adam in the look-ahead differs from the SGD look-ahead; every new option runs.
    sgd = toy_2d.train(loss="saturating", unroll=2, unroll_objective="minimax", **tiny)
    adam = toy_2d.train(loss="saturating", unroll=2, unroll_objective="minimax", unroll_optimizer=True, **tiny)
    assert not torch.equal(sgd.samples, adam.samples) and torch.isfinite(adam.samples).all()
    res = toy_2d.train(unroll=1, unroll_optimizer=True, simultaneous=True, mbd=True, act="tanh", ortho_gain=1.4,
                       g_lr=1e-3, d_depth=1, d_input_scale=0.25, eps=1e-6, **tiny)
    assert res.mbd and res.unroll == 1 and res.steps == 3 and res.seconds_per_step > 0
    assert torch.isfinite(res.samples).all()
    with pytest.raises(ValueError, match="unroll_objective"):
        toy_2d.train(unroll_objective="x", **tiny)
    with pytest.raises(ValueError, match="act must be"):
        toy_2d.train(act="gelu", **tiny)
    # The preset's table: its five runs per seed, back to back, and a markdown summary.
    results = toy_2d.main(["--preset", "metz2017", "--steps", "2", "--batch-size", "16", "--z-dim", "4",
                           "--width", "8", "--seeds", "0", "1", "--table"])
    labels = ["saturating:none", "saturating:none:5", "saturating:none:10", "saturating:none:0:mbd", "saturating:r1"]
    assert [r.label for r in results] == labels * 2 and [r.seed for r in results] == [0] * 5 + [1] * 5
    out = capsys.readouterr().out
    assert "seed 1: loss=saturating reg=none unroll=10: modes covered" in out
    assert "| run | modes covered (seeds 0, 1) |" in out and "| saturating:none:0:mbd |" in out
    assert "| saturating:none | " in out and "| 1.0x |" in out
    # The preset's settings reach train(), and options given on the command line override them.
    seen = {}
    real_train = toy_2d.train

    def spy(*args, **kw):
        seen.update(kw)
        return real_train(*args, **{**kw, "steps": 1, "batch_size": 8, "width": 8, "z_dim": 4})

    monkeypatch.setattr(toy_2d, "train", spy)
    toy_2d.main(["--preset", "metz2017", "--run", "saturating:none:1", "--g-lr", "5e-4"])
    assert seen["lr"] == 1e-4 and seen["g_lr"] == 5e-4 and seen["betas"] == (0.5, 0.999) and seen["eps"] == 1e-8
    assert seen["unroll_optimizer"] and seen["unroll_objective"] == "minimax" and seen["act"] == "relu"
    for argv in (["--run", "hinge:none:1:xyz"], ["--preset", "nope"]):
        with pytest.raises(SystemExit):
            toy_2d.main(argv + ["--steps", "1"])

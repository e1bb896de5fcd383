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

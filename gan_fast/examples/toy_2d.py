"""Toy 2-D GAN: a small MLP GAN on the 8-Gaussians ring, on CPU in well under a minute.

Usage::

    python -m gan_fast.examples.toy_2d --loss nonsaturating --reg none
    python -m gan_fast.examples.toy_2d --loss relativistic --reg r1r2      # R3GAN's recipe
    python -m gan_fast.examples.toy_2d --run nonsaturating:none --run relativistic:r1r2 --plot toy_2d.png
    python -m gan_fast.examples.toy_2d --loss nonsaturating --unroll 5            # Unrolled GAN
    python -m gan_fast.examples.toy_2d --run nonsaturating:none --run nonsaturating:none:10 --plot unrolled.png

The data are 8 Gaussians of standard deviation ``std`` (0.02) centred on a
circle of radius 2. After training it draws 2,000 samples and reports

* modes covered: a mode counts when at least 2% of the samples fall within
  3 standard deviations of its centre;
* the high-quality fraction: samples within 3 standard deviations of some centre.

``--unroll K`` trains G against D after K look-ahead SGD steps
(:func:`gan_fast.unrolled.unrolled_logits`, learning rate ``--unroll-lr``) as in
Unrolled GAN; it combines with ``--reg`` (the regulariser acts on D's own step,
the look-ahead steps use the plain D loss). ``--run LOSS:REG:K`` sets K per run.

``--plot PATH`` writes a PNG scatter plot (needs matplotlib, imported only then).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

from .. import losses, regularizers
from ..unrolled import unrolled_logits

__all__ = ["REGS", "ToyResult", "ring_centers", "sample_ring", "evaluate", "train", "plot", "main"]

REGS = ("none", "r1", "r2", "r1r2", "wgan_gp", "approx_r1r2")
NUM_MODES = 8
RADIUS = 2.0


def ring_centers(num_modes: int = NUM_MODES, radius: float = RADIUS) -> torch.Tensor:
    """The mode centres, [num_modes, 2], on a circle."""
    angles = torch.arange(num_modes, dtype=torch.float64) * (2 * math.pi / num_modes)
    return (torch.stack([angles.cos(), angles.sin()], dim=1) * radius).float()


def sample_ring(n: int, std: float = 0.02, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """n samples [n, 2] of the 8-Gaussians ring."""
    centers = ring_centers()
    idx = torch.randint(0, len(centers), (n,), generator=generator)
    return centers[idx] + std * torch.randn(n, 2, generator=generator)


def evaluate(samples: torch.Tensor, std: float = 0.02, min_fraction: float = 0.02) -> Tuple[int, float]:
    """(modes covered, high-quality fraction) of samples [n, 2]; see the module docstring."""
    if not isinstance(samples, torch.Tensor) or samples.ndim != 2 or samples.shape[1] != 2 or len(samples) == 0:
        raise ValueError(f"samples must be a non-empty [n, 2] tensor, got {getattr(samples, 'shape', samples)}")
    dist = torch.cdist(samples.float(), ring_centers())  # [n, 8]
    nearest, mode = dist.min(dim=1)
    good = nearest <= 3 * std
    counts = torch.bincount(mode[good], minlength=NUM_MODES)
    covered = int((counts >= min_fraction * len(samples)).sum())
    return covered, float(good.float().mean())


def _mlp(d_in: int, d_out: int, width: int, depth: int) -> nn.Sequential:
    layers: List[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(d_in if i == 0 else width, width), nn.LeakyReLU(0.2)]
    layers.append(nn.Linear(width, d_out))
    return nn.Sequential(*layers)


@dataclass
class ToyResult:
    loss: str
    reg: str
    modes: int
    high_quality: float
    seconds: float
    samples: torch.Tensor = field(repr=False)
    unroll: int = 0

    def summary(self) -> str:
        unroll = f" unroll={self.unroll}" if self.unroll else ""
        return (f"loss={self.loss} reg={self.reg}{unroll}: modes covered {self.modes}/{NUM_MODES}, "
                f"high-quality fraction {self.high_quality:.3f} ({self.seconds:.1f} s)")


def train(loss: str = "nonsaturating", reg: str = "none", steps: int = 3000, batch_size: int = 256,
          lr: float = 2e-4, betas: Tuple[float, float] = (0.5, 0.9), gamma: float = 0.2, std: float = 0.02,
          width: int = 128, depth: int = 3, z_dim: int = 2, n_eval: int = 2000, seed: int = 0, unroll: int = 0,
          unroll_lr: float = 1e-2) -> ToyResult:
    """Trains G and D (MLPs, ``depth`` hidden layers of ``width``) for ``steps`` alternating steps.

    ``reg``: 'none'; 'r1', 'r2', 'r1r2' (exact, weight gamma/2 on each);
    'wgan_gp' (weight 10, centre 1); 'approx_r1r2' (the perturbation
    approximation, sigma = std, weight gamma/2 each). ``unroll`` > 0: G's loss
    is taken on D after ``unroll`` look-ahead SGD steps of learning rate
    ``unroll_lr`` on a fresh real batch (differentiated through, as in Unrolled
    GAN; not with the paired 'relativistic' loss, whose G loss also needs the real logits).
    Returns a :class:`ToyResult`.
    """
    if loss not in losses.KINDS:
        raise ValueError(f"loss must be one of {', '.join(losses.KINDS)}; got {loss!r}")
    if reg not in REGS:
        raise ValueError(f"reg must be one of {', '.join(REGS)}; got {reg!r}")
    if isinstance(unroll, bool) or not isinstance(unroll, int) or unroll < 0:
        raise ValueError(f"unroll must be an int >= 0, got {unroll!r}")
    if unroll and loss == "relativistic":
        raise ValueError("unroll > 0 needs a loss whose generator term uses fake logits only, not 'relativistic'")
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    G, D = _mlp(z_dim, 2, width, depth), _mlp(2, 1, width, depth)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    for _ in range(steps):
        # Discriminator step.
        real = sample_ring(batch_size, std, gen)
        with torch.no_grad():
            fake = G(torch.randn(batch_size, z_dim, generator=gen))
        need_grad = reg in ("r1", "r1r2", "r2")
        real.requires_grad_(reg in ("r1", "r1r2"))
        fake.requires_grad_(reg in ("r2", "r1r2"))
        real_logits, fake_logits = D(real), D(fake)
        d = losses.d_loss(real_logits, fake_logits, loss)
        if need_grad and reg != "r2":
            d = d + gamma / 2 * regularizers.r1_penalty(real_logits, real)
        if need_grad and reg != "r1":
            d = d + gamma / 2 * regularizers.r2_penalty(fake_logits, fake)
        if reg == "wgan_gp":
            d = d + 10.0 * regularizers.wgan_gp(D, real, fake, generator=gen)
        if reg == "approx_r1r2":
            d = d + gamma / 2 * (regularizers.approximate_r1(D, real, std, real_logits, generator=gen)
                                 + regularizers.approximate_r2(D, fake, std, fake_logits, generator=gen))
        opt_d.zero_grad(set_to_none=True)
        d.backward()
        opt_d.step()
        # Generator step (D's parameters frozen: no gradients are accumulated for them).
        D.requires_grad_(False)
        real = sample_ring(batch_size, std, gen)
        fake = G(torch.randn(batch_size, z_dim, generator=gen))
        real_logits = D(real) if loss == "relativistic" else None
        fake_logits = unrolled_logits(D, fake, real, unroll, unroll_lr, loss) if unroll else D(fake)
        g = losses.g_loss(fake_logits=fake_logits, real_logits=real_logits, kind=loss)
        opt_g.zero_grad(set_to_none=True)
        g.backward()
        opt_g.step()
        D.requires_grad_(True)
    with torch.no_grad():
        samples = G(torch.randn(n_eval, z_dim, generator=gen))
    modes, hq = evaluate(samples, std)
    return ToyResult(loss, reg, modes, hq, time.perf_counter() - start, samples, unroll)


def plot(results: Sequence[ToyResult], path: str, std: float = 0.02) -> None:
    """Writes a PNG scatter plot, one panel per result (matplotlib imported here)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 3.4), squeeze=False)
    centers = ring_centers()
    for ax, res in zip(axes[0], results):
        pts = res.samples.clamp(-3, 3)
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4, color="tab:blue", rasterized=True)
        ax.scatter(centers[:, 0], centers[:, 1], s=60, facecolors="none", edgecolors="tab:red", linewidths=1)
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        unroll = f", unroll {res.unroll}" if res.unroll else ""
        ax.set_title(f"{res.loss} + {res.reg}{unroll}\nmodes {res.modes}/{NUM_MODES}, HQ {res.high_quality:.2f}",
                     fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _run_spec(text: str) -> Tuple[str, str, Optional[int]]:
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and not parts[2].isdigit()):
        raise argparse.ArgumentTypeError(f"--run takes LOSS:REG or LOSS:REG:UNROLL, got {text!r}")
    return parts[0], parts[1], int(parts[2]) if len(parts) == 3 else None


def main(argv: Optional[Sequence[str]] = None) -> List[ToyResult]:
    p = argparse.ArgumentParser(prog="python -m gan_fast.examples.toy_2d", description=__doc__.split("\n\n")[0])
    p.add_argument("--loss", default="nonsaturating", choices=losses.KINDS)
    p.add_argument("--reg", default="none", choices=REGS)
    p.add_argument("--unroll", type=int, default=0, metavar="K",
                   help="train G against D after K look-ahead SGD steps (Unrolled GAN); 0: off")
    p.add_argument("--unroll-lr", type=float, default=1e-2, help="SGD learning rate of the look-ahead steps")
    p.add_argument("--run", action="append", type=_run_spec, metavar="LOSS:REG[:K]",
                   help="train several configurations (repeatable); overrides --loss/--reg (and --unroll if K given)")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--gamma", type=float, default=0.2, help="R1/R2 weight: the penalty is multiplied by gamma/2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (small MLPs: 1 is fastest)")
    p.add_argument("--plot", metavar="PATH", help="write a PNG scatter plot of the samples")
    args = p.parse_args(argv)
    if args.unroll < 0:
        p.error(f"--unroll must be >= 0, got {args.unroll}")
    runs = [(loss, reg, args.unroll if k is None else k) for loss, reg, k in (args.run or [(args.loss, args.reg, None)])]
    for loss, reg, k in runs:
        if loss not in losses.KINDS or reg not in REGS:
            p.error(f"--run {loss}:{reg}: loss must be one of {losses.KINDS}, reg one of {REGS}")
        if k and loss == "relativistic":
            p.error("--unroll needs a loss whose generator term uses fake logits only, not relativistic")
    results = []
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        for loss, reg, k in runs:
            res = train(loss, reg, steps=args.steps, batch_size=args.batch_size, lr=args.lr, gamma=args.gamma,
                        seed=args.seed, unroll=k, unroll_lr=args.unroll_lr)
            print(res.summary(), flush=True)
            results.append(res)
    finally:
        torch.set_num_threads(threads)
    if args.plot:
        plot(results, args.plot)
        print(f"wrote {args.plot}")
    return results


if __name__ == "__main__":
    main()

"""Toy 2-D GAN: a small MLP GAN on the 8-Gaussians ring, on CPU in well under a minute.

Usage::

    python -m gan_fast.examples.toy_2d --loss nonsaturating --reg none
    python -m gan_fast.examples.toy_2d --loss relativistic --reg r1r2      # R3GAN's recipe
    python -m gan_fast.examples.toy_2d --run nonsaturating:none --run relativistic:r1r2 --plot toy_2d.png
    python -m gan_fast.examples.toy_2d --loss nonsaturating --unroll 5            # Unrolled GAN
    python -m gan_fast.examples.toy_2d --run nonsaturating:none --run nonsaturating:none:10 --plot unrolled.png
    python -m gan_fast.examples.toy_2d --preset metz2017 --seeds 0 1 2 --table  # Unrolled GAN's own setting

The data are 8 Gaussians of standard deviation ``std`` (0.02) centred on a
circle of radius 2. After training it draws 2,000 samples and reports

* modes covered: a mode counts when at least 2% of the samples fall within
  3 standard deviations of its centre;
* the high-quality fraction: samples within 3 standard deviations of some centre.

``--unroll K`` trains G against D after K look-ahead steps
(:func:`gan_fast.unrolled.unrolled_logits`) as in Unrolled GAN: plain SGD steps of
learning rate ``--unroll-lr``, or with ``--unroll-optimizer`` D's own Adam update
(``unrolled_logits(..., optimizer=opt_d)``, as the paper unrolls it). It combines
with ``--reg`` (the regulariser acts on D's own step, the look-ahead steps use
the plain D loss). ``--unroll-objective minimax`` makes G minimise the whole
unrolled value ``-d_loss(D_K(real), D_K(fake))`` (the paper's
``f(theta_G, theta_D^K(theta_G))``, whose real term depends on G through the
look-ahead) instead of its own loss on ``D_K(fake)``. ``--run LOSS:REG[:K[:mbd]]``
sets K per run, and ``mbd`` puts a minibatch-discrimination layer
(:class:`gan_fast.nn.MinibatchDiscrimination`) before D's output layer.

``--preset metz2017`` is the 2-D setting of Metz et al. (2017) where their
notebook (github.com/poolio/unrolled_gan) fixes what the paper leaves open:
batch 512, z of dimension 256, Adam with beta1 0.5, beta2 0.999 and eps 1e-8,
D's learning rate 1e-4 and G's 1e-3, G and D MLPs with 2 hidden layers of 128
units, the minimax (saturating) loss with the minimax unrolled objective, and
the look-ahead through D's own Adam. Choices of ours: ReLU units with torch's
default initialisation (the notebook's tanh with orthogonal initialisation of
gain 1.4 did not collapse without unrolling here: 7 to 8 modes after 6000 to
8000 steps), alternating D and G steps (``--simultaneous`` is the notebook's
update), 4000 steps (the notebook runs 25000), the ring of radius 2 and std
0.02 (the notebook's has radius 1 and std 0.01), R1 weight ``--gamma`` 0.2 and
minibatch discrimination with 3 kernels of 3 dimensions. Without ``--run`` it
runs the comparison table: 0, 5 and 10 look-ahead steps, minibatch
discrimination and R1. ``--seeds`` repeats every run per seed; ``--table``
prints a markdown summary (modes and high-quality fraction per seed, CPU time
per training step and its ratio to the first run's, per seed, averaged; CPU
time, single-threaded, is what other processes on a shared machine change least).

``--plot PATH`` writes a PNG scatter plot of the (first seed's) runs (needs
matplotlib, imported only then).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .. import losses, regularizers
from ..nn import MinibatchDiscrimination
from ..unrolled import _lookahead, unrolled_logits

__all__ = ["REGS", "PRESETS", "ToyResult", "ring_centers", "sample_ring", "evaluate", "train", "plot", "table", "main"]

REGS = ("none", "r1", "r2", "r1r2", "wgan_gp", "approx_r1r2")
ACTS = ("leaky_relu", "relu", "tanh")
_ACT = {"leaky_relu": lambda: nn.LeakyReLU(0.2), "relu": nn.ReLU, "tanh": nn.Tanh}
OBJECTIVES = ("g_loss", "minimax")
NUM_MODES = 8
RADIUS = 2.0
MBD_KERNELS, MBD_DIMS = 3, 3  # minibatch discrimination: B kernels of C dimensions (small: the toy is 2-D)

# Unrolled GAN's 2-D setting (Metz et al. 2017, with the values of github.com/poolio/unrolled_gan's notebook and our
# choices where both are silent: see the module docstring), and the runs of its comparison table (--run specs).
PRESETS: Dict[str, Dict[str, object]] = {
    "metz2017": dict(loss="saturating", steps=4000, batch_size=512, lr=1e-4, g_lr=1e-3, betas=(0.5, 0.999), eps=1e-8,
                     z_dim=256, width=128, depth=2, act="relu", ortho_gain=None, unroll_optimizer=True,
                     unroll_objective="minimax", gamma=0.2),
}
PRESET_RUNS: Dict[str, List[str]] = {
    "metz2017": ["saturating:none:0", "saturating:none:5", "saturating:none:10", "saturating:none:0:mbd",
                 "saturating:r1:0"],
}


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


class _Scale(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _mlp(d_in: int, d_out: int, width: int, depth: int, act: str = "leaky_relu", mbd: bool = False,
         input_scale: float = 1.0) -> nn.Sequential:
    layers: List[nn.Module] = [] if input_scale == 1.0 else [_Scale(input_scale)]
    for i in range(depth):
        layers += [nn.Linear(d_in if i == 0 else width, width), _ACT[act]()]
    if mbd:
        layers.append(MinibatchDiscrimination(width if depth else d_in, MBD_KERNELS, MBD_DIMS))
    layers.append(nn.Linear((width if depth else d_in) + (MBD_KERNELS if mbd else 0), d_out))
    return nn.Sequential(*layers)


def _orthogonal_(net: nn.Module, gain: float) -> None:
    """Orthogonal weights of the given gain and zero biases on every Linear layer (the notebook's initialisation)."""
    for m in net.modules():
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, gain=gain)
            nn.init.zeros_(m.bias)


@dataclass
class ToyResult:
    loss: str
    reg: str
    modes: int
    high_quality: float
    seconds: float
    samples: torch.Tensor = field(repr=False)
    unroll: int = 0
    mbd: bool = False
    seed: int = 0
    steps: int = 0
    train_cpu_seconds: float = 0.0

    @property
    def label(self) -> str:
        """The run's LOSS:REG[:K[:mbd]] spec."""
        return f"{self.loss}:{self.reg}" + (f":{self.unroll}" if self.unroll or self.mbd else "") \
            + (":mbd" if self.mbd else "")

    @property
    def seconds_per_step(self) -> float:
        """CPU seconds per training step: the process's CPU time over the steps (with one thread, the compute
        itself, which other processes' load on a shared machine changes less than wall time, ``seconds``)."""
        return self.train_cpu_seconds / max(self.steps, 1)

    def summary(self) -> str:
        unroll = f" unroll={self.unroll}" if self.unroll else ""
        mbd = " mbd" if self.mbd else ""
        return (f"loss={self.loss} reg={self.reg}{unroll}{mbd}: modes covered {self.modes}/{NUM_MODES}, "
                f"high-quality fraction {self.high_quality:.3f} ({self.seconds:.1f} s)")


def train(loss: str = "nonsaturating", reg: str = "none", steps: int = 3000, batch_size: int = 256,
          lr: float = 2e-4, betas: Tuple[float, float] = (0.5, 0.9), gamma: float = 0.2, std: float = 0.02,
          width: int = 128, depth: int = 3, z_dim: int = 2, n_eval: int = 2000, seed: int = 0, unroll: int = 0,
          unroll_lr: float = 1e-2, *, g_lr: Optional[float] = None, eps: float = 1e-8, act: str = "leaky_relu",
          ortho_gain: Optional[float] = None, unroll_optimizer: bool = False, unroll_objective: str = "g_loss",
          mbd: bool = False, simultaneous: bool = False, d_depth: Optional[int] = None, d_input_scale: float = 1.0,
          log_every: int = 0) -> ToyResult:
    """Trains G and D (MLPs, ``depth`` hidden layers of ``width``) for ``steps`` alternating steps.

    ``reg``: 'none'; 'r1', 'r2', 'r1r2' (exact, weight gamma/2 on each);
    'wgan_gp' (weight 10, centre 1); 'approx_r1r2' (the perturbation
    approximation, sigma = std, weight gamma/2 each). ``unroll`` > 0: G's loss
    is taken on D after ``unroll`` look-ahead steps on a fresh real batch
    (differentiated through, as in Unrolled GAN; not with the paired
    'relativistic' loss, whose G loss also needs the real logits): SGD steps of
    learning rate ``unroll_lr``, or with ``unroll_optimizer`` D's own Adam update
    from its current state. ``unroll_objective``: 'g_loss' (G's loss on the
    look-ahead fake logits) or 'minimax' (G minimises ``-d_loss`` of the
    look-ahead D on the real and the fake batch, the paper's objective; with
    ``unroll`` = 0 its gradient is the 'saturating' loss's). ``lr`` and ``betas``,
    ``eps``: D's Adam (G's too, with ``g_lr`` if given). ``act``: 'leaky_relu',
    'relu' or 'tanh'; ``ortho_gain``: orthogonal initialisation of that gain
    (None or 0: torch's default). ``mbd``: a minibatch-discrimination layer
    before D's output layer.
    ``simultaneous``: G's and D's gradients are taken from the same parameters on
    one batch (real and z), then both step (the notebook's ``sess.run`` of both
    train ops); otherwise D steps first and G then steps on a fresh batch.
    ``d_depth``: D's hidden layers if not ``depth``; ``d_input_scale``: D
    multiplies its input by it first.
    ``log_every`` > 0: prints modes covered and the high-quality fraction every
    that many steps (on samples from a separate generator: the run is unchanged).
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
    if act not in ACTS:
        raise ValueError(f"act must be one of {', '.join(ACTS)}; got {act!r}")
    if unroll_objective not in OBJECTIVES:
        raise ValueError(f"unroll_objective must be one of {', '.join(OBJECTIVES)}; got {unroll_objective!r}")
    start, start_cpu = time.perf_counter(), time.process_time()
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    G = _mlp(z_dim, 2, width, depth, act)
    D = _mlp(2, 1, width, depth if d_depth is None else d_depth, act, mbd=mbd, input_scale=d_input_scale)
    if ortho_gain:
        _orthogonal_(G, ortho_gain)
        _orthogonal_(D, ortho_gain)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr if g_lr is None else g_lr, betas=betas, eps=eps)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas, eps=eps)
    minimax = unroll_objective == "minimax"
    for it in range(steps):
        if log_every and it and it % log_every == 0:
            with torch.no_grad():
                z = torch.randn(n_eval, z_dim, generator=torch.Generator().manual_seed(it))
                print(f"  step {it}: modes covered %d, high-quality fraction %.3f" % evaluate(G(z), std), flush=True)
        # Discriminator step (with simultaneous: its gradient only; the step waits for G's gradient).
        real = sample_ring(batch_size, std, gen)
        if simultaneous:  # G's step uses this same batch, from the same G and D
            fake_g = G(torch.randn(batch_size, z_dim, generator=gen))
            fake = fake_g.detach()
            real_g = real
        else:
            with torch.no_grad():
                fake = G(torch.randn(batch_size, z_dim, generator=gen))
        need_grad = reg in ("r1", "r1r2", "r2")
        real = real.detach().requires_grad_(reg in ("r1", "r1r2"))
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
        if not simultaneous:
            opt_d.step()
            real_g = sample_ring(batch_size, std, gen)
            fake_g = G(torch.randn(batch_size, z_dim, generator=gen))
        # Generator step (D's parameters frozen: no gradients are accumulated for them; the look-ahead starts
        # from D's parameters and Adam state as they are now).
        D.requires_grad_(False)
        look = dict(optimizer=opt_d) if unroll_optimizer else dict(lr=unroll_lr)
        if minimax:
            if unroll:
                (fake_logits, real_logits), _, _ = _lookahead(D, fake_g, real_g, unroll, look.get("lr", 1e-2), loss,
                                                              True, look.get("optimizer"), (fake_g, real_g))
            else:
                fake_logits, real_logits = D(fake_g), D(real_g)
            g = -losses.d_loss(real_logits, fake_logits, loss)
        else:
            real_logits = D(real_g) if loss == "relativistic" else None
            fake_logits = unrolled_logits(D, fake_g, real_g, unroll, kind=loss, **look) if unroll else D(fake_g)
            g = losses.g_loss(fake_logits=fake_logits, real_logits=real_logits, kind=loss)
        opt_g.zero_grad(set_to_none=True)
        g.backward()
        if simultaneous:
            opt_d.step()
        opt_g.step()
        D.requires_grad_(True)
    train_cpu_seconds = time.process_time() - start_cpu
    with torch.no_grad():
        samples = G(torch.randn(n_eval, z_dim, generator=gen))
    modes, hq = evaluate(samples, std)
    return ToyResult(loss, reg, modes, hq, time.perf_counter() - start, samples, unroll, mbd, seed, steps,
                     train_cpu_seconds)


def plot(results: Sequence[ToyResult], path: str, std: float = 0.02) -> None:
    """Writes a PNG scatter plot, one panel per result (matplotlib imported here)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 3.7), squeeze=False)
    centers = ring_centers()
    for ax, res in zip(axes[0], results):
        # The view is [-3, 3]^2, widened (up to 8) where samples lie outside it; farther ones sit on the border.
        lim = min(max(3.0, 1.05 * float(res.samples.abs().max())), 8.0) if len(res.samples) else 3.0
        pts = res.samples.clamp(-lim, lim)
        ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.4, color="tab:blue", rasterized=True)
        ax.scatter(centers[:, 0], centers[:, 1], s=60 * (3 / lim) ** 2, facecolors="none", edgecolors="tab:red",
                   linewidths=1)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        unroll = f", unroll {res.unroll}" if res.unroll else ""
        mbd = ", MBD" if res.mbd else ""
        ax.set_title(f"{res.loss} + {res.reg}{unroll}{mbd}\nmodes {res.modes}/{NUM_MODES}, HQ {res.high_quality:.2f}",
                     fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def table(results: Sequence[ToyResult]) -> str:
    """A markdown table, one row per run spec (in first-seen order) over its seeds: modes covered and the
    high-quality fraction per seed, the mean CPU time per training step, and its ratio to the first spec's (per
    seed, then averaged)."""
    specs: List[str] = []
    by: Dict[Tuple[str, int], ToyResult] = {}
    for r in results:
        if r.label not in specs:
            specs.append(r.label)
        by[(r.label, r.seed)] = r
    seeds = sorted({r.seed for r in results})
    lines = [f"| run | modes covered (seeds {', '.join(map(str, seeds))}) | high-quality fraction | "
             "CPU ms / step | time vs first row |", "| --- | --- | --- | --- | --- |"]
    for spec in specs:
        rows = [by.get((spec, s)) for s in seeds]
        got = [r for r in rows if r is not None]
        modes = ", ".join("-" if r is None else str(r.modes) for r in rows)
        hq = ", ".join("-" if r is None else f"{r.high_quality:.3f}" for r in rows)
        ms = 1e3 * sum(r.seconds_per_step for r in got) / len(got)
        ratios = [r.seconds_per_step / by[(specs[0], r.seed)].seconds_per_step for r in got
                  if (specs[0], r.seed) in by and by[(specs[0], r.seed)].seconds_per_step > 0]
        ratio = f"{sum(ratios) / len(ratios):.1f}x" if ratios else "-"
        lines.append(f"| {spec} | {modes} | {hq} | {ms:.1f} | {ratio} |")
    return "\n".join(lines)


def _run_spec(text: str) -> Tuple[str, str, Optional[int], bool]:
    parts = text.split(":")
    ok = len(parts) in (2, 3, 4) and (len(parts) < 3 or parts[2].isdigit()) and (len(parts) < 4 or parts[3] == "mbd")
    if not ok:
        raise argparse.ArgumentTypeError(f"--run takes LOSS:REG, LOSS:REG:UNROLL or LOSS:REG:UNROLL:mbd, got {text!r}")
    return parts[0], parts[1], int(parts[2]) if len(parts) >= 3 else None, len(parts) == 4


def main(argv: Optional[Sequence[str]] = None) -> List[ToyResult]:
    p = argparse.ArgumentParser(prog="python -m gan_fast.examples.toy_2d", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="start from a published setting (metz2017: Unrolled GAN's); other options override it")
    p.add_argument("--loss", default="nonsaturating", choices=losses.KINDS)
    p.add_argument("--reg", default="none", choices=REGS)
    p.add_argument("--unroll", type=int, default=0, metavar="K",
                   help="train G against D after K look-ahead steps (Unrolled GAN); 0: off")
    p.add_argument("--unroll-lr", type=float, default=1e-2,
                   help="SGD learning rate of the look-ahead steps (without --unroll-optimizer)")
    p.add_argument("--unroll-optimizer", action=argparse.BooleanOptionalAction, default=False,
                   help="look ahead with D's own Adam update and state (unrolled_logits(optimizer=opt_d))")
    p.add_argument("--unroll-objective", choices=OBJECTIVES, default="g_loss",
                   help="G's objective: its loss on D_K(fake), or minimax: -d_loss(D_K(real), D_K(fake))")
    p.add_argument("--run", action="append", type=_run_spec, metavar="LOSS:REG[:K[:mbd]]",
                   help="train several configurations (repeatable); overrides --loss/--reg (and --unroll if K given); "
                        "mbd: minibatch discrimination in D")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-4, help="D's Adam learning rate (and G's unless --g-lr)")
    p.add_argument("--g-lr", type=float, default=None, help="G's Adam learning rate (default: --lr)")
    p.add_argument("--betas", type=float, nargs=2, default=(0.5, 0.9), metavar=("BETA1", "BETA2"))
    p.add_argument("--eps", type=float, default=1e-8, help="Adam's eps")
    p.add_argument("--z-dim", type=int, default=2)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=3, help="hidden layers of G and of D")
    p.add_argument("--d-depth", type=int, default=None, help="hidden layers of D (default: --depth)")
    p.add_argument("--d-input-scale", type=float, default=1.0, help="D multiplies its input by this first")
    p.add_argument("--act", choices=ACTS, default="leaky_relu")
    p.add_argument("--ortho-gain", type=float, default=None,
                   help="orthogonal initialisation of this gain (0: torch's default)")
    p.add_argument("--gamma", type=float, default=0.2, help="R1/R2 weight: the penalty is multiplied by gamma/2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="run everything once per seed (overrides --seed)")
    p.add_argument("--table", action="store_true", help="print a markdown summary table at the end")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (small MLPs: 1 is fastest)")
    p.add_argument("--simultaneous", action=argparse.BooleanOptionalAction, default=False,
                   help="G and D take their gradients from the same parameters and batch, then both step")
    p.add_argument("--log-every", type=int, default=0, metavar="N", help="print the metrics every N steps")
    p.add_argument("--plot", metavar="PATH", help="write a PNG scatter plot of the samples")
    pre, _ = p.parse_known_args(argv)
    if pre.preset:
        p.set_defaults(**PRESETS[pre.preset])
    args = p.parse_args(argv)
    if args.unroll < 0:
        p.error(f"--unroll must be >= 0, got {args.unroll}")
    specs = args.run
    if specs is None and args.preset:
        specs = [_run_spec(s) for s in PRESET_RUNS[args.preset]]
    runs = [(loss, reg, args.unroll if k is None else k, mbd)
            for loss, reg, k, mbd in (specs or [(args.loss, args.reg, None, False)])]
    for loss, reg, k, _ in runs:
        if loss not in losses.KINDS or reg not in REGS:
            p.error(f"--run {loss}:{reg}: loss must be one of {losses.KINDS}, reg one of {REGS}")
        if k and loss == "relativistic":
            p.error("--unroll needs a loss whose generator term uses fake logits only, not relativistic")
    seeds = args.seeds if args.seeds is not None else [args.seed]
    results = []
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        for seed in seeds:  # every configuration of one seed back to back: time ratios compare like with like
            for loss, reg, k, mbd in runs:
                res = train(loss, reg, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                            betas=tuple(args.betas), gamma=args.gamma, width=args.width, depth=args.depth,
                            z_dim=args.z_dim, seed=seed, unroll=k, unroll_lr=args.unroll_lr, g_lr=args.g_lr,
                            eps=args.eps, act=args.act, ortho_gain=args.ortho_gain,
                            unroll_optimizer=args.unroll_optimizer, unroll_objective=args.unroll_objective, mbd=mbd,
                            simultaneous=args.simultaneous, d_depth=args.d_depth, d_input_scale=args.d_input_scale,
                            log_every=args.log_every)
                prefix = f"seed {seed}: " if args.seeds is not None else ""
                print(f"{prefix}{res.summary()}, {1e3 * res.seconds_per_step:.1f} ms CPU/step", flush=True)
                results.append(res)
    finally:
        torch.set_num_threads(threads)
    if args.table:
        print(table(results))
    if args.plot:  # with several seeds, the first seed's runs
        plot([r for r in results if r.seed == seeds[0]], args.plot)
        print(f"wrote {args.plot}")
    return results


if __name__ == "__main__":
    main()

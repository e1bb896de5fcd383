"""A StyleGAN2 / R3GAN training step: D step with (lazy) R1, G step with lazy path length,
optional EMA of G, and a checkpoint that resumes bit-identically.

Pattern (what :class:`StyleGAN2Trainer` does each :meth:`~StyleGAN2Trainer.step`):

* **D main**: ``fakes = G(z)`` without grad; ``d_loss(D(real), D(fake), kind)``; one
  optimiser step. With ``r1_interval=None`` (R3GAN) the penalties
  ``gamma/2 * (R1 + R2)`` are added to this loss every step.
* **D reg** (every ``r1_interval`` steps, StyleGAN2): a separate step on
  ``(gamma/2) * r1_interval * R1`` from a fresh ``D(real)``, plus ``0 * logits`` so
  every parameter gets a gradient (required by DDP with ``find_unused_parameters=False``).
* **G main**: ``g_loss(D(G(z)), D(real) if relativistic, kind)``; one optimiser step
  (D's parameters are frozen for it).
* **G reg** (every ``pl_interval`` steps): path length penalty on a batch shrunk by
  ``pl_batch_shrink``, times ``pl_weight * pl_interval``, plus ``0 * images``.
* **EMA**: ``G_ema = lerp(G, G_ema, 0.5 ** (global_batch / (ema_kimg * 1000)))``, buffers copied.

Lazy steps are separate optimiser steps, so the optimisers should use the Adam
adjustment of :class:`gan_fast.regularizers.LazyRegularization` (see :func:`make_adam`).

DistributedDataParallel: pass DDP-wrapped ``G``/``D`` (each built with the default
``find_unused_parameters=False``); the trainer unwraps them for EMA, freezing and
checkpoints. R1 and path length are computed through the DDP modules with
``torch.autograd.grad(..., inputs=<input>, create_graph=True)`` followed by a plain
``.backward()`` of the penalty: DDP averages the parameter gradients of that
(double) backward like any other. See ``tests/test_ddp.py`` for the limits
(no ``backward(create_graph=True)`` through DDP, no ``autograd.grad`` w.r.t. parameters).
"""

from __future__ import annotations

import copy
from typing import Dict, Iterable, Optional, Sequence

import torch
from torch import nn

from .. import checks, losses, regularizers
from ..nn.synthesis import NOISE_MODES
from ..regularizers import LazyRegularization, PathLengthPenalty

__all__ = ["StyleGAN2Trainer", "make_adam", "unwrap"]

VARIANTS = ("stylegan2", "r3gan")


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            module = module.module
        elif hasattr(module, "_orig_mod"):
            module = module._orig_mod
        else:
            return module


def make_adam(params: Iterable[torch.Tensor], lr: float = 0.0025, betas: Sequence[float] = (0.0, 0.99),
              reg_interval: Optional[int] = None, eps: float = 1e-8) -> torch.optim.Adam:
    """Adam with StyleGAN2's lazy-regularisation adjustment (lr * r, beta ** r with
    r = k / (k + 1)) when ``reg_interval = k`` is given; plain Adam for None."""
    lr = checks.number("lr", lr, minimum=0)
    eps = checks.number("eps", eps, minimum=0)
    if reg_interval is not None:
        kw = LazyRegularization(checks.positive_int("reg_interval", reg_interval)).adam(lr, betas)
        lr, betas = kw["lr"], kw["betas"]
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps)


def _world_size() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class StyleGAN2Trainer:
    """One StyleGAN2 (or R3GAN) training iteration per :meth:`step`.

    Args:
        G: a generator with ``z_dim``, ``forward(z, c, noise_mode=, update_emas=,
            style_mixing_prob=, return_ws=)`` (e.g. :class:`gan_fast.models.Generator`),
            optionally DDP-wrapped.
        D: a discriminator ``forward(img, c) -> logits``, optionally DDP-wrapped.
        G_opt, D_opt: their optimisers (see :func:`make_adam`).
        variant: 'stylegan2' (non-saturating loss, lazy R1, lazy path length) or
            'r3gan' (relativistic loss, R1 + R2 every step, no path length).
        loss_kind: override the loss (any kind of :mod:`gan_fast.losses`).
        r1_gamma: R1 weight gamma (penalty gamma/2 * R1); 0 disables.
        r2_gamma: R2 weight (default: r1_gamma for r3gan, 0 for stylegan2).
        r1_interval: lazy interval k (a separate D step every k steps), or None to add the
            penalties to the main D loss every step. Default 16 (stylegan2) / None (r3gan).
        pl_weight: path length weight (StyleGAN2: 2; 0 disables; r3gan default 0).
        pl_interval: lazy interval of the path length step (default 4).
        pl_batch_shrink: the path length batch is ``N // pl_batch_shrink``.
        pl_decay: EMA decay of the path length target.
        style_mixing_prob: passed to G (StyleGAN2 uses 0.9).
        ema_kimg: half-life of the G EMA in thousands of images (None: no EMA).
        ema_rampup: StyleGAN2-ADA's EMA ramp-up (half-life <= rampup * images seen), or None.
        noise_mode: G's noise mode during training.

    Call ``step(real [N, C, R, R], c=None, gen_c=None)``; it returns a dict of detached
    scalar tensors (``loss_D``, ``loss_G``, and ``r1``, ``r2``, ``pl`` when computed).
    """

    def __init__(self, G: nn.Module, D: nn.Module, G_opt: torch.optim.Optimizer, D_opt: torch.optim.Optimizer, *,
                 variant: str = "stylegan2", loss_kind: Optional[str] = None, r1_gamma: float = 10.0,
                 r2_gamma: Optional[float] = None, r1_interval: Optional[int] = -1, pl_weight: Optional[float] = None,
                 pl_interval: int = 4, pl_batch_shrink: int = 2, pl_decay: float = 0.01,
                 style_mixing_prob: float = 0.0, ema_kimg: Optional[float] = None,
                 ema_rampup: Optional[float] = None, noise_mode: str = "random"):
        variant = checks.choice("variant", variant, VARIANTS)
        r3 = variant == "r3gan"
        self.variant = variant
        self.G, self.D, self.G_opt, self.D_opt = G, D, G_opt, D_opt
        self.loss_kind = loss_kind if loss_kind is not None else ("relativistic" if r3 else "nonsaturating")
        if self.loss_kind not in losses.KINDS:
            raise ValueError(f"loss_kind must be one of {losses.KINDS}, got {self.loss_kind!r}")
        self.r1_gamma = checks.number("r1_gamma", r1_gamma, minimum=0)
        self.r2_gamma = checks.number("r2_gamma", r2_gamma, minimum=0) if r2_gamma is not None else \
            (self.r1_gamma if r3 else 0.0)
        if r1_interval == -1:
            r1_interval = None if r3 else 16
        self.r1_lazy = LazyRegularization(checks.positive_int("r1_interval", r1_interval)) \
            if r1_interval is not None else None
        self.pl_weight = checks.number("pl_weight", pl_weight, minimum=0) if pl_weight is not None else \
            (0.0 if r3 else 2.0)
        self.pl_lazy = LazyRegularization(checks.positive_int("pl_interval", pl_interval))
        self.pl_batch_shrink = checks.positive_int("pl_batch_shrink", pl_batch_shrink)
        self.pl = PathLengthPenalty(decay=checks.number("pl_decay", pl_decay, 0, 1, strict_min=True))
        self.style_mixing_prob = checks.probability("style_mixing_prob", style_mixing_prob)
        self.noise_mode = checks.choice("noise_mode", noise_mode, NOISE_MODES)
        self.ema_kimg = checks.number("ema_kimg", ema_kimg, minimum=0) if ema_kimg is not None else None
        self.ema_rampup = checks.number("ema_rampup", ema_rampup, minimum=0) if ema_rampup is not None else None
        g = unwrap(G)
        self.z_dim = g.z_dim
        self.pl.to(next(g.parameters()).device)
        self.G_ema = copy.deepcopy(g).eval().requires_grad_(False) if ema_kimg is not None else None
        self.step_count = 0   # completed steps
        self.nimg = 0         # images seen, over all processes

    # -- phases -------------------------------------------------------------------------------
    def _gen(self, n: int, c: Optional[torch.Tensor], device, **kw):
        z = torch.randn([n, self.z_dim], device=device)
        return self.G(z, c, noise_mode=self.noise_mode, style_mixing_prob=self.style_mixing_prob, **kw)

    def _penalties(self, real, real_logits, fake, fake_logits) -> Dict[str, torch.Tensor]:
        out = {}
        if self.r1_gamma > 0:
            out["r1"] = regularizers.r1_penalty(real_logits, real)
        if self.r2_gamma > 0 and fake is not None:
            out["r2"] = regularizers.r2_penalty(fake_logits, fake)
        return out

    def d_step(self, real: torch.Tensor, c: Optional[torch.Tensor] = None,
               gen_c: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """The D main step, and the lazy R1 step when due. Does not advance the step counter."""
        stats = {}
        n = real.shape[0]
        gen_c = c if gen_c is None else gen_c
        with torch.no_grad():
            fake = self._gen(n, gen_c, real.device, update_emas=True)
        eager = self.r1_lazy is None
        real_in = real.detach().requires_grad_(eager and self.r1_gamma > 0)
        fake_in = fake.detach().requires_grad_(eager and self.r2_gamma > 0)
        self.D_opt.zero_grad(set_to_none=True)
        real_logits = self.D(real_in, c)
        fake_logits = self.D(fake_in, gen_c)
        loss = losses.d_loss(real_logits, fake_logits, self.loss_kind)
        stats["loss_D"] = loss.detach()
        if eager:
            pen = self._penalties(real_in, real_logits, fake_in, fake_logits)
            for k, v in pen.items():
                gamma = self.r1_gamma if k == "r1" else self.r2_gamma
                loss = loss + v * (gamma / 2)
                stats[k] = v.detach()
        loss.backward()
        self.D_opt.step()

        if not eager and self.r1_lazy.is_due(self.step_count) and (self.r1_gamma > 0 or self.r2_gamma > 0):
            self.D_opt.zero_grad(set_to_none=True)
            real_in = real.detach().requires_grad_(self.r1_gamma > 0)
            real_logits = self.D(real_in, c)
            anchor = real_logits.sum() * 0
            fake_in = fake_logits = None
            if self.r2_gamma > 0:
                fake_in = fake.detach().requires_grad_(True)
                fake_logits = self.D(fake_in, gen_c)
                anchor = anchor + fake_logits.sum() * 0
            loss = anchor
            for k, v in self._penalties(real_in, real_logits, fake_in, fake_logits).items():
                gamma = self.r1_gamma if k == "r1" else self.r2_gamma
                loss = loss + v * (gamma / 2) * self.r1_lazy.gain
                stats[k] = v.detach()
            loss.backward()
            self.D_opt.step()
        return stats

    def g_step(self, real: torch.Tensor, c: Optional[torch.Tensor] = None,
               gen_c: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """The G main step, the lazy path length step when due, and the EMA update."""
        stats = {}
        n = real.shape[0]
        gen_c = c if gen_c is None else gen_c
        with _frozen(self.D):
            self.G_opt.zero_grad(set_to_none=True)
            fake = self._gen(n, gen_c, real.device)
            fake_logits = self.D(fake, gen_c)
            real_logits = self.D(real.detach(), c) if self.loss_kind == "relativistic" else None
            loss = losses.g_loss(fake_logits, real_logits, kind=self.loss_kind)
            stats["loss_G"] = loss.detach()
            loss.backward()
            self.G_opt.step()

        if self.pl_weight > 0 and self.pl_lazy.is_due(self.step_count):
            self.G_opt.zero_grad(set_to_none=True)
            b = max(n // self.pl_batch_shrink, 1)
            img, ws = self._gen(b, None if gen_c is None else gen_c[:b], real.device, return_ws=True)
            pen = self.pl(img, ws)
            loss = img[:, 0, 0, 0].sum() * 0 + pen.mean() * (self.pl_weight * self.pl_lazy.gain)
            stats["pl"] = pen.mean().detach()
            loss.backward()
            self.G_opt.step()

        global_batch = n * _world_size()
        if self.G_ema is not None:
            self._update_ema(global_batch)  # before counting this batch, as StyleGAN2-ADA's ramp-up does
        self.nimg += global_batch
        return stats

    @torch.no_grad()
    def _update_ema(self, batch: int) -> None:
        ema_nimg = self.ema_kimg * 1000
        if self.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.nimg * self.ema_rampup)  # images seen before this batch
        beta = 0.5 ** (batch / max(ema_nimg, 1e-8))
        g = unwrap(self.G)
        for p_ema, p in zip(self.G_ema.parameters(), g.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), g.buffers()):
            b_ema.copy_(b)

    def step(self, real: torch.Tensor, c: Optional[torch.Tensor] = None,
             gen_c: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """One iteration: :meth:`d_step` then :meth:`g_step`; advances the step counter."""
        stats = self.d_step(real, c, gen_c)
        stats.update(self.g_step(real, c, gen_c))
        self.step_count += 1
        return stats

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self, include_rng: bool = True) -> dict:
        """Everything needed to resume bit-identically: G, D, G_ema, both optimisers, the
        path length target, the counters and (``include_rng``) the CPU and CUDA RNG states."""
        state = {
            "G": unwrap(self.G).state_dict(), "D": unwrap(self.D).state_dict(),
            "G_opt": self.G_opt.state_dict(), "D_opt": self.D_opt.state_dict(),
            "pl": self.pl.state_dict(), "step": self.step_count, "nimg": self.nimg,
            "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
        }
        if include_rng:
            state["rng_cpu"] = torch.get_rng_state()
            if torch.cuda.is_available() and torch.cuda.is_initialized():
                state["rng_cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        unwrap(self.G).load_state_dict(state["G"])
        unwrap(self.D).load_state_dict(state["D"])
        self.G_opt.load_state_dict(state["G_opt"])
        self.D_opt.load_state_dict(state["D_opt"])
        self.pl.load_state_dict(state["pl"])
        self.step_count = int(state["step"])
        self.nimg = int(state["nimg"])
        if self.G_ema is not None and state.get("G_ema") is not None:
            self.G_ema.load_state_dict(state["G_ema"])
        if "rng_cpu" in state:
            torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state:
            torch.cuda.set_rng_state_all(state["rng_cuda"])


class _frozen:
    """Context: ``module`` parameters do not require grad inside (restored after)."""

    def __init__(self, module: nn.Module):
        self.params = [p for p in unwrap(module).parameters() if p.requires_grad]

    def __enter__(self):
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc):
        for p in self.params:
            p.requires_grad_(True)
        return False

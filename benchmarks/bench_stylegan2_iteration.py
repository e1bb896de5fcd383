"""stylegan2_iteration cases: one StyleGAN2 training iteration built from ``gan_fast.models`` (D main step +
lazy R1 step + G main step + lazy path-length step), images/second with each backend forced on every op that has
it (``gan_fast.config.use_backend``) against eager ``ref``."""

from __future__ import annotations

from typing import List

import torch

from gan_fast.backends import bias_act, gradient_norm_penalty, modulated_conv2d, power_iteration, spectral_normalize
from gan_fast.backends import upfirdn2d

from . import presets
from .harness import Case, Skipped, forced

OP = "stylegan2_iteration"
COMPILE_NOTE = ("not timed: the iteration's R1 and path-length steps need double backward, which "
                "torch.compile does not support (pytorch#183603)")


SPECS = tuple(m.SPEC for m in (bias_act, upfirdn2d, modulated_conv2d, gradient_norm_penalty, power_iteration,
                                spectral_normalize))


def _case(res: int, n: int, base: int, cmax: int, w_dim: int, mapping_layers: int, dtype, prio: int):
    try:
        from gan_fast import models
        for name in ("Generator", "Discriminator", "StyleGAN2Trainer", "make_adam"):
            getattr(models, name)
    except Exception as exc:
        return Skipped(OP, f"{res}px", f"skipped: gan_fast.models is not usable here ({type(exc).__name__}: {exc})",
                       dtype=dtype, priority=prio)
    state = {}

    def make(device, dtype, batch):
        torch.manual_seed(0)
        G = models.Generator(w_dim, 0, w_dim, res, 3, mapping_kwargs={"num_layers": mapping_layers},
                             channel_base=base, channel_max=cmax).to(device)
        D = models.Discriminator(0, res, 3, channel_base=base, channel_max=cmax).to(device)
        # Both lazy regularisers run on this iteration (interval 1): the cost of a StyleGAN2 iteration
        # on which R1 (every 16th) and path length (every 4th) are due; gains do not change the cost.
        trainer = models.StyleGAN2Trainer(G, D, models.make_adam(G.parameters()), models.make_adam(D.parameters()),
                                          r1_interval=1, pl_interval=1, noise_mode="const")
        state["trainer"] = trainer
        return {"real": torch.randn(n, 3, res, res, device=device)}

    def run(t, impl):
        with forced(impl):
            stats = state["trainer"].step(t["real"])
        return tuple(v for v in stats.values())

    return Case(op=OP, name=f"{res}px", shape=f"G+D {res}px, batch {n}, channel_base {base}, channel_max {cmax}",
                dtype=dtype, make=make, run=run, diff=(), specs=SPECS, passes=("iter",),
                steps={"iter": lambda fwd, t, cot, impl: fwd(t)}, check_error=False, compile=False,
                compile_note=COMPILE_NOTE, items_per_call=n, priority=prio, reps=3,
                note="iteration with D main + R1 + G main + path length (both lazy steps due); "
                     "backends forced with gan_fast.config.use_backend")


def cases(preset: str, device: torch.device) -> List:
    if preset == "ci":
        return [_case(presets.CI_E2E_RES, presets.CI_BATCH, presets.CI_E2E_BASE, presets.CI_E2E_CMAX, presets.CI_W_DIM,
                      2, torch.float32, 3)]
    if preset == "stylegan2":
        return [_case(256, presets.SG2_BATCH, presets.SG2_BASE, presets.SG2_CMAX, presets.SG2_W_DIM, 8, torch.float32,
                      presets.priority(256, torch.float32))]
    return []

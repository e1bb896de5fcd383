"""Lazy regularisation (StyleGAN2, Karras et al. 2020, appendix B)."""

from __future__ import annotations

import numbers
from typing import Sequence, Tuple

from .. import checks

__all__ = ["LazyRegularization"]


class LazyRegularization:
    """Schedule of a regulariser applied every ``interval`` steps, in its own optimiser step.

    Step ``t`` (counted from 0) regularises when ``t % interval == 0``; the
    penalty is then multiplied by :attr:`gain` ``= interval`` so that its average
    strength is unchanged. Because the regularised steps are separate optimiser
    steps (``interval + 1`` steps per ``interval`` minibatches), Adam's learning
    rate and betas are adjusted with ``r = interval / (interval + 1)``:
    ``lr * r`` and ``beta ** r`` (:meth:`adam`), exactly as StyleGAN2 does.
    Do not apply the adjustment when the penalty is added to the main loss
    every step instead of taking a separate step.

    Example::

        lazy = LazyRegularization(16)
        opt = torch.optim.Adam(D.parameters(), **lazy.adam(lr=0.002, betas=(0, 0.99)))
        ...
        if lazy.is_due(step):
            ((gamma / 2) * r1_penalty(D(x), x) * lazy.gain).backward(); opt.step()

    Args:
        interval: k >= 1, regularise every k-th step.
    """

    def __init__(self, interval: int) -> None:
        self.interval = checks.positive_int("interval", interval)

    def __repr__(self) -> str:
        return f"LazyRegularization(interval={self.interval})"

    @property
    def gain(self) -> float:
        """Factor on the penalty when it is applied: ``interval``."""
        return float(self.interval)

    @property
    def ratio(self) -> float:
        """``r = interval / (interval + 1)``, the fraction of optimiser steps that are main steps."""
        return self.interval / (self.interval + 1)

    def is_due(self, step: int) -> bool:
        """Whether step ``step`` (>= 0, counted from 0) applies the regulariser."""
        return checks.positive_int("step", step, minimum=0) % self.interval == 0

    def __call__(self, step: int) -> Tuple[bool, float]:
        """``(is_due(step), gain)``: whether to regularise now, and the factor on the penalty."""
        return self.is_due(step), self.gain

    def adam(self, lr: float, betas: Sequence[float] = (0.9, 0.999)) -> dict:
        """Adjusted Adam hyperparameters ``{'lr': lr * r, 'betas': (b1 ** r, b2 ** r)}``."""
        lr = checks.number("lr", lr, minimum=0)
        betas = tuple(betas)
        if len(betas) != 2 or not all(isinstance(b, numbers.Real) and not isinstance(b, bool) and 0 <= b < 1
                                      for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        r = self.ratio
        return {"lr": lr * r, "betas": (betas[0] ** r, betas[1] ** r)}

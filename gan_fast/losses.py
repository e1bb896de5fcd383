"""GAN losses: the discriminator and generator objectives of the GAN family.

Every loss takes raw discriminator outputs (logits / critic values ``v``, any
shape ``[N, ...]``, usually ``[N]`` or ``[N, 1]``) and returns a scalar: the mean
over the batch (over every element). Each kind is written in a numerically
stable closed form (``softplus``, ``expm1``, with the f-GAN term
``f*(g_f(v))`` simplified analytically), so values and gradients stay finite in
float32 for logits of any magnitude wherever the true value is finite.
Half-precision logits are promoted to float32 (the result is float32).

Kinds (``r`` = real logits, ``f`` = fake logits; D and G both *minimise*):

==================== ========================================= ==========================
kind                 discriminator                              generator
==================== ========================================= ==========================
saturating           softplus(-r) + softplus(f)                 -softplus(f) = log(1 - sigmoid(f))
nonsaturating        softplus(-r) + softplus(f)                 softplus(-f)
wasserstein          f - r                                      -f
hinge                relu(1 - r) + relu(1 + f)                  -f
least_squares        ((r - 1)^2 + f^2) / 2                      (f - 1)^2 / 2
relativistic         softplus(-(r - f))  (paired)               softplus(-(f - r))  (paired)
kl                   -r + exp(f - 1)                            -f
reverse_kl           exp(-r) + f - 1                            exp(-f)
pearson              -r + f^2/4 + f                             -f
squared_hellinger    expm1(-r) + expm1(f)                       expm1(-f)
jensen_shannon       softplus(-r) + softplus(f) - 2 log 2       softplus(-f) - log 2
==================== ========================================= ==========================

The f-GAN rows (Nowozin et al. 2016, Table 2) are D minimising
``-(E_real[g_f(v)] - E_fake[f*(g_f(v))])`` and G minimising ``-E_fake[g_f(v)]``
with output activations / conjugates: kl ``g=v, f*(t)=exp(t-1)``; reverse_kl
``g=-exp(-v), f*(t)=-1-log(-t)``; pearson ``g=v, f*(t)=t^2/4+t``;
squared_hellinger ``g=1-exp(-v), f*(t)=t/(1-t)``; jensen_shannon
``g=log 2-log(1+exp(-v)), f*(t)=-log(2-exp(t))``.

Where the true value is infinite in float32 (e.g. ``kl`` with fake logits of
1e4, whose ``exp(f - 1)`` overflows) the loss is ``inf``, as it should be.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from . import checks

__all__ = ["KINDS", "F_DIVERGENCES", "d_loss", "g_loss"]

F_DIVERGENCES: Tuple[str, ...] = ("kl", "reverse_kl", "pearson", "squared_hellinger", "jensen_shannon")
KINDS: Tuple[str, ...] = (
    "saturating",
    "nonsaturating",
    "wasserstein",
    "hinge",
    "least_squares",
    "relativistic",
) + F_DIVERGENCES

_LOG2 = math.log(2.0)

# Per kind: (D term on real logits, D term on fake logits, G term on fake logits);
# the D loss is mean(real_term(r)) + mean(fake_term(f)), the G loss mean(g_term(f)).
# ``relativistic`` is paired and handled separately.
_Term = Callable[[torch.Tensor], torch.Tensor]
_TERMS: Dict[str, Tuple[_Term, _Term, _Term]] = {
    "saturating": (lambda r: F.softplus(-r), F.softplus, lambda f: -F.softplus(f)),
    "nonsaturating": (lambda r: F.softplus(-r), F.softplus, lambda f: F.softplus(-f)),
    "wasserstein": (lambda r: -r, lambda f: f, lambda f: -f),
    "hinge": (lambda r: F.relu(1 - r), lambda f: F.relu(1 + f), lambda f: -f),
    "least_squares": (lambda r: 0.5 * (r - 1).square(), lambda f: 0.5 * f.square(), lambda f: 0.5 * (f - 1).square()),
    # f-GAN: real term -g_f(r), fake term f*(g_f(f)), generator term -g_f(f).
    "kl": (lambda r: -r, lambda f: torch.exp(f - 1), lambda f: -f),
    "reverse_kl": (lambda r: torch.exp(-r), lambda f: f - 1, lambda f: torch.exp(-f)),
    "pearson": (lambda r: -r, lambda f: 0.25 * f.square() + f, lambda f: -f),
    "squared_hellinger": (lambda r: torch.expm1(-r), torch.expm1, lambda f: torch.expm1(-f)),
    "jensen_shannon": (
        lambda r: F.softplus(-r) - _LOG2,
        lambda f: F.softplus(f) - _LOG2,
        lambda f: F.softplus(-f) - _LOG2,
    ),
}


def _kind(kind) -> str:
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    return kind


def _logits(name: str, value) -> torch.Tensor:
    checks.tensor(name, value, shape_hint="[N, ...]")
    if value.ndim == 0 or value.numel() == 0:
        raise ValueError(f"{name} must be [N, ...] with N >= 1 and no empty dims, got shape {tuple(value.shape)}")
    if value.dtype in (torch.float16, torch.bfloat16):
        value = value.float()
    return value


def _paired(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> None:
    if real_logits.shape != fake_logits.shape:
        raise ValueError(
            "kind='relativistic' pairs real and fake samples one to one: real_logits and fake_logits must have "
            f"the same shape, got {tuple(real_logits.shape)} and {tuple(fake_logits.shape)}")


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Discriminator loss (to minimise), averaged over the batch.

    Args:
        real_logits: D outputs on real samples, [N, ...] (usually [N] or [N, 1]).
        fake_logits: D outputs on generated samples, [M, ...]. For
            ``kind='relativistic'`` the pairs are sample by sample, so the shape
            must equal ``real_logits.shape``; otherwise N and M may differ.
        kind: one of :data:`KINDS` (see the module docstring for the formulas).

    Returns:
        A scalar tensor: ``mean(real_term(r)) + mean(fake_term(f))``, or
        ``mean(softplus(f - r))`` for ``relativistic``. Float32 for half inputs.

    Raises:
        ValueError: unknown ``kind`` (the message lists the valid kinds), empty
            logits, mismatched shapes for ``relativistic``, tensors on two devices.
        TypeError: logits that are not floating-point tensors.
    """
    kind = _kind(kind)
    real_logits = _logits("real_logits", real_logits)
    fake_logits = _logits("fake_logits", fake_logits)
    checks.same_device(real_logits=real_logits, fake_logits=fake_logits)
    if kind == "relativistic":
        _paired(real_logits, fake_logits)
        return F.softplus(fake_logits - real_logits).mean()
    real_term, fake_term, _ = _TERMS[kind]
    return real_term(real_logits).mean() + fake_term(fake_logits).mean()


def g_loss(fake_logits: torch.Tensor, real_logits: Optional[torch.Tensor] = None,
           kind: Optional[str] = None) -> torch.Tensor:
    """Generator loss (to minimise), averaged over the batch.

    Args:
        fake_logits: D outputs on generated samples, [N, ...].
        real_logits: D outputs on real samples, same shape as ``fake_logits``;
            required by ``kind='relativistic'`` (paired sample by sample) and
            ignored by every other kind, so a training loop may always pass it.
        kind: one of :data:`KINDS` (required; pass it by keyword when
            ``real_logits`` is omitted: ``g_loss(fake_logits, kind='hinge')``).

    Returns:
        A scalar tensor: ``mean(g_term(f))``, or ``mean(softplus(r - f))`` for
        ``relativistic``. Float32 for half inputs.

    Raises:
        ValueError: unknown or missing ``kind`` (the message lists the valid
            kinds), empty logits, missing or mismatched ``real_logits`` for
            ``relativistic``.
        TypeError: non-tensor or non-floating logits; a string passed as
            ``real_logits`` (a kind given positionally in the wrong place).
    """
    if isinstance(real_logits, str):
        raise TypeError(f"real_logits must be a tensor or None, got the string {real_logits!r}; pass the kind by "
                        f"keyword: g_loss(fake_logits, kind={real_logits!r})")
    kind = _kind(kind)
    fake_logits = _logits("fake_logits", fake_logits)
    if kind == "relativistic":
        if real_logits is None:
            raise ValueError("kind='relativistic' needs real_logits (paired with fake_logits), got None")
        real_logits = _logits("real_logits", real_logits)
        checks.same_device(fake_logits=fake_logits, real_logits=real_logits)
        _paired(real_logits, fake_logits)
        return F.softplus(real_logits - fake_logits).mean()
    if real_logits is not None:
        _logits("real_logits", real_logits)
    return _TERMS[kind][2](fake_logits).mean()

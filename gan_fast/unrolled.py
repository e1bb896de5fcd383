"""Unrolled GAN (Metz et al., 2017): the discriminator's logits after ``k`` look-ahead steps.

The generator of an unrolled GAN is trained against the discriminator as it
would be after ``k`` more of its own gradient steps, which counters mode
collapse: a generator that jumps to the mode D currently likes is punished by
the D that would react to the jump. :func:`unrolled_logits` computes those
look-ahead logits without touching D::

    D.requires_grad_(False)                      # optional: the look-ahead never writes D's .grad
    fake = G(z)
    logits = gan_fast.unrolled.unrolled_logits(D, fake, real, steps=5, lr=1e-2)
    g_loss = gan_fast.losses.g_loss(logits, kind="nonsaturating")
    g_loss.backward()                            # gradients reach G through the k steps
"""

from __future__ import annotations

import contextlib
from typing import Dict, Iterator, List

import torch
from torch import nn
from torch.nn.utils import parametrize

from . import checks, losses

__all__ = ["unrolled_logits"]


def unrolled_logits(D: nn.Module, fake: torch.Tensor, real: torch.Tensor, steps: int = 5, lr: float = 1e-2,
                    kind: str = "nonsaturating", differentiable: bool = True) -> torch.Tensor:
    """``D_{theta_k}(fake)``: D's logits on ``fake`` after ``steps`` SGD steps on its loss.

    With ``theta_0`` detached copies of D's parameters (all of them, including those with
    ``requires_grad=False``, so a D frozen with ``D.requires_grad_(False)`` for the generator step
    works), for ``i < steps``::

        theta_{i+1} = theta_i - lr * grad_theta losses.d_loss(D_theta_i(real), D_theta_i(fake), kind)

    with D called separately on ``real`` and on ``fake`` (in that order, as a plain training step
    does), and returns ``D_theta_k(fake)``.

    * ``differentiable=True`` (the paper's gradient): the steps stay in the graph, so
      ``g_loss(unrolled_logits(...)).backward()`` differentiates through them: gradients reach
      ``fake`` (and G) both directly and through how ``fake`` moved ``theta``.
    * ``differentiable=False`` (the cheap first-order variant): ``fake`` enters the steps
      detached and ``theta_k`` is a constant; only the final ``D_theta_k(fake)`` is differentiated.

    The paper unrolls D's own optimizer (Adam in its experiments) and its own update; plain SGD
    with learning rate ``lr`` is this helper's simplification. Since SGD's step scales with the
    gradient while Adam's does not, ``lr`` is not D's Adam learning rate: tune it separately.

    D is left untouched: the calls go through ``torch.func.functional_call`` with the parameter
    copies and clones of every buffer, so D's parameters, buffers (BatchNorm statistics, the
    ``u``/``v`` of :func:`gan_fast.nn.spectral_norm` that a training-mode forward updates; the
    look-ahead updates only the clones) and ``.grad`` are the same after the call and after a
    ``.backward()`` through its result. D's mode is respected (training mode: the clones of the
    spectral-norm vectors advance by one power iteration per call, as they would in real steps).
    Inside :func:`gan_fast.nn.spectral_norm_step`, whose precomputed weights would shadow the
    look-ahead parameters, the precomputed weights are set aside during the call (each layer
    computes ``W / sigma`` from the look-ahead weight) and restored after it. Inside
    ``torch.nn.utils.parametrize.cached()`` the call raises: the cache would shadow them too.

    Cost, as a function of ``steps`` = k: time about ``k`` training steps of D (2 forwards and a
    backward each) plus one forward; with ``differentiable=True`` the backward of the result
    costs about ``k`` more double-backward passes through D, since every step's graph is kept.
    Memory with ``differentiable=True`` grows linearly in k: k copies of D's parameters and the
    activations of 2k forward passes on ``real`` and ``fake`` (with their double-backward graph)
    stay alive until the backward; with ``differentiable=False`` it is that of one D step plus two
    copies of the parameters, whatever k.

    Under DistributedDataParallel, call it on ``D.module`` (a DDP wrapper raises): the look-ahead
    then uses each rank's local batch, with no all-reduce inside (ranks' look-ahead D differ).

    Args:
        D: the discriminator, an ``nn.Module`` mapping a batch to logits.
        fake: generated samples [M, ...] (usually attached to G's graph).
        real: real samples [N, ...].
        steps: number of look-ahead SGD steps k >= 0 (0 gives ``D(fake)`` through the copies).
        lr: SGD learning rate, finite and > 0.
        kind: the D loss of the look-ahead steps, one of :data:`gan_fast.losses.KINDS`.
        differentiable: keep the steps in the graph (True) or treat theta_k as constant (False).

    Returns:
        D's output on ``fake`` under theta_k, e.g. [M] or [M, 1].
    """
    if not isinstance(D, nn.Module):
        raise TypeError(f"D must be an nn.Module, got {type(D).__name__}")
    if isinstance(D, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        raise TypeError(f"D is wrapped in {type(D).__name__}: call unrolled_logits on D.module (the look-ahead "
                        "runs on each rank's local batch, with no all-reduce)")
    checks.tensor("fake", fake, shape_hint="[M, ...]")
    checks.tensor("real", real, shape_hint="[N, ...]")
    steps = checks.positive_int("steps", steps, minimum=0)
    lr = checks.number("lr", lr, minimum=0, strict_min=True)
    kind = losses._kind(kind)
    checks.boolean("differentiable", differentiable)
    if getattr(parametrize, "_cache_enabled", 0):
        raise RuntimeError("unrolled_logits cannot run inside torch.nn.utils.parametrize.cached(): the cached "
                           "parametrized weights would shadow the look-ahead parameters")

    names = [n for n, _ in D.named_parameters()]
    keep_graph = differentiable and torch.is_grad_enabled()
    theta: List[torch.Tensor] = [p.detach().clone().requires_grad_() for p in D.parameters()]
    # Buffers are cloned so the look-ahead's in-place updates (spectral norm's u/v, BatchNorm's statistics)
    # land in the clones; they evolve over the look-ahead calls as they would over real steps.
    buffers: Dict[str, torch.Tensor] = {n: b.clone() for n, b in D.named_buffers()}
    step_fake = fake if keep_graph else fake.detach()

    def call(params: List[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(D, {**dict(zip(names, params)), **buffers}, (x,))

    with _without_precomputed_weights(D):
        with torch.enable_grad():
            for _ in range(steps):
                loss = losses.d_loss(call(theta, real), call(theta, step_fake), kind)
                grads = torch.autograd.grad(loss, theta, create_graph=keep_graph, allow_unused=True)
                theta = [t if g is None else t - lr * g for t, g in zip(theta, grads)]
                if not keep_graph:
                    theta = [t.detach().requires_grad_() for t in theta]
        if not keep_graph:
            theta = [t.detach() for t in theta]
        return call(theta, fake)


@contextlib.contextmanager
def _without_precomputed_weights(D: nn.Module) -> Iterator[None]:
    """Sets aside the ``precomputed`` weights that :func:`gan_fast.nn.spectral_norm_step` puts on D's
    spectral-norm parametrizations (they belong to D's own weights) and restores them after."""
    from .nn.spectral_norm import SpectralNorm  # noqa: PLC0415 - nn imports ops; keep the import lazy

    held = [(m, m.precomputed) for m in D.modules() if isinstance(m, SpectralNorm) and m.precomputed is not None]
    for m, _ in held:
        m.precomputed = None
    try:
        yield
    finally:
        for m, w in held:
            m.precomputed = w

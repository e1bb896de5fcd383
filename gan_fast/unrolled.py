"""Unrolled GAN (Metz et al., 2017): the discriminator's logits after ``k`` look-ahead steps.

The generator of an unrolled GAN is trained against the discriminator as it
would be after ``k`` more of its own optimizer steps, which counters mode
collapse: a generator that jumps to the mode D currently likes is punished by
the D that would react to the jump. :func:`unrolled_logits` computes those
look-ahead logits without touching D or its optimizer::

    D.requires_grad_(False)                      # optional: the look-ahead never writes D's .grad
    fake = G(z)
    logits = gan_fast.unrolled.unrolled_logits(D, fake, real, steps=5, optimizer=opt_d)  # D's own Adam
    g_loss = gan_fast.losses.g_loss(logits, kind="nonsaturating")
    g_loss.backward()                            # gradients reach G through the k steps

With ``optimizer=opt_d`` (a ``torch.optim.Adam``, ``AdamW`` or ``SGD``) each look-ahead step is
that optimizer's own update, as the paper unrolls it: the same formulas as ``opt_d.step()``
(torch's single-tensor code path), with the hyperparameters of each parameter's group and
starting from the optimizer's current state (Adam's step count and moments, SGD's momentum
buffer), computed functionally and differentiably. Without it, the steps are plain SGD steps of
learning rate ``lr``.
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn.utils import parametrize

from . import checks, losses

__all__ = ["unrolled_logits"]

_DEFAULT_LR = 1e-2
_SUPPORTED = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD)
_SUPPORTED_NAMES = "torch.optim.Adam, torch.optim.AdamW or torch.optim.SGD"


def unrolled_logits(D: nn.Module, fake: torch.Tensor, real: torch.Tensor, steps: int = 5, lr: float = _DEFAULT_LR,
                    kind: str = "nonsaturating", differentiable: bool = True, *,
                    optimizer: Optional[torch.optim.Optimizer] = None) -> torch.Tensor:
    """``D_{theta_k}(fake)``: D's logits on ``fake`` after ``steps`` look-ahead optimizer steps on its loss.

    For ``i < steps``, with ``g_i = grad_theta losses.d_loss(D_theta_i(real), D_theta_i(fake), kind)``
    (D called separately on ``real`` and on ``fake``, in that order, as a plain training step does)::

        theta_{i+1}, state_{i+1} = update(theta_i, g_i, state_i)

    and the result is ``D_theta_k(fake)``. The update is

    * ``optimizer=None``: plain SGD, ``theta_{i+1} = theta_i - lr * g_i``, on every parameter of D
      (including those with ``requires_grad=False``, so a D frozen with ``D.requires_grad_(False)``
      for the generator step works); there is no state.
    * ``optimizer=opt`` (``type(opt)`` exactly ``torch.optim.Adam``, ``AdamW`` or ``SGD``): ``opt``'s own
      update, as Metz et al. unroll it, with torch's formulas (those of ``opt.step()``'s single-tensor
      path, as of torch 2.13: Adam's bias corrections and eps outside the square root, ``amsgrad``'s running maximum,
      ``maximize``, L2 ``weight_decay`` added to the gradient, or decoupled for ``AdamW`` and for
      ``Adam(decoupled_weight_decay=True)``; SGD's ``momentum``, ``dampening`` and ``nesterov``).
      Hyperparameters are read from each parameter's group at call time (a tensor ``lr`` by value;
      keys missing in this torch version take torch's defaults; ``foreach``, ``fused``,
      ``capturable`` and ``differentiable`` do not change the math and are ignored). ``state_0`` is
      ``opt``'s current state for the parameter (read with ``opt.state.get``, never inserted); a
      parameter without state starts as ``step()`` would start it (step 0 and zero moments; SGD's
      momentum buffer is the first look-ahead gradient, kept in the graph). What moves: exactly D's
      parameters that are in ``opt``, whatever their ``requires_grad``; D's other parameters stay
      constant and ``opt``'s other parameters are ignored. A parameter whose look-ahead gradient is
      ``None`` (it does not reach the loss) is skipped, parameter and state, as ``step()`` skips it.
      Adam's ``sqrt`` of the second moment is taken with a derivative of 0 where the moment is
      exactly 0 (a dead unit: its gradient, hence the moment, stays 0), so G's gradient stays finite
      there instead of ``0 * inf = nan``. The look-ahead's learning rates are the optimizer's: there
      is no separate ``lr`` to tune (passing a non-default ``lr`` with ``optimizer`` raises
      ``ValueError``, and so does an optimizer that holds none of D's parameters).

    Metz et al. unroll D's own optimizer (Adam in their experiments) and its state; SGD with
    ``lr`` (``optimizer=None``) is this helper's simplification, kept for optimizers it does not
    cover. Since an SGD step scales with the gradient while Adam's does not, that ``lr`` is not D's
    Adam learning rate: tune it separately, or pass ``optimizer=``.

    * ``differentiable=True`` (the paper's gradient): the steps stay in the graph, so
      ``g_loss(unrolled_logits(...)).backward()`` differentiates through them (through the
      optimizer's moments and normalisation too): gradients reach ``fake`` (and G) both directly and
      through how ``fake`` moved ``theta``.
    * ``differentiable=False`` (the cheap first-order variant): ``fake`` enters the steps
      detached and ``theta_k`` is a constant; only the final ``D_theta_k(fake)`` is differentiated.

    D and the optimizer are left untouched: the calls go through ``torch.func.functional_call``
    with copies of the parameters and clones of every buffer, and the optimizer's state is copied
    before use, so D's parameters, buffers (BatchNorm statistics, the ``u``/``v`` of
    :func:`gan_fast.nn.spectral_norm` that a training-mode forward updates; the look-ahead updates
    only the clones), ``.grad``, and the optimizer's ``state`` and ``param_groups`` are the same after
    the call and after a ``.backward()`` through its result. D's mode is respected (training mode:
    the clones of the spectral-norm vectors advance by one power iteration per call, as they would
    in real steps). Inside :func:`gan_fast.nn.spectral_norm_step`, whose precomputed weights would
    shadow the look-ahead parameters, the precomputed weights are set aside during the call (each
    layer computes ``W / sigma`` from the look-ahead weight) and restored after it. Inside
    ``torch.nn.utils.parametrize.cached()`` the call raises: the cache would shadow them too.

    Cost, as a function of ``steps`` = k: time about ``k`` training steps of D (2 forwards and a
    backward each, plus the optimizer's elementwise update: a handful of parameter-sized operations
    for Adam) plus one forward; with ``differentiable=True`` the backward of the result costs about
    ``k`` more double-backward passes through D, since every step's graph is kept. Memory with
    ``differentiable=True`` grows linearly in k: per step, a copy of D's parameters (plus Adam's two
    moments and its normaliser, or SGD's momentum buffer) and the activations of 2 forward passes on
    ``real`` and ``fake`` (with their double-backward graph) stay alive until the backward; with
    ``differentiable=False`` it is that of one D step plus two copies of the parameters (and of the
    optimizer's state), whatever k.

    Under DistributedDataParallel, call it on ``D.module`` (a DDP wrapper raises): the look-ahead
    then uses each rank's local batch, with no all-reduce inside (ranks' look-ahead D differ).

    Args:
        D: the discriminator, an ``nn.Module`` mapping a batch to logits.
        fake: generated samples [M, ...] (usually attached to G's graph).
        real: real samples [N, ...].
        steps: number of look-ahead steps k >= 0 (0 gives ``D(fake)`` through the copies).
        lr: SGD learning rate of the look-ahead when ``optimizer`` is None, finite and > 0.
        kind: the D loss of the look-ahead steps, one of :data:`gan_fast.losses.KINDS`.
        differentiable: keep the steps in the graph (True) or treat theta_k as constant (False).
        optimizer: keyword-only. D's optimizer (``torch.optim.Adam``, ``AdamW`` or ``SGD``, not a
            subclass: ``TypeError``), whose update the look-ahead takes; None: SGD with ``lr``.

    Returns:
        D's output on ``fake`` under theta_k, e.g. [M] or [M, 1].
    """
    outputs, _, _ = _lookahead(D, fake, real, steps, lr, kind, differentiable, optimizer, (fake,))
    return outputs[0]


def _lookahead(D: nn.Module, fake: torch.Tensor, real: torch.Tensor, steps: int, lr: float, kind: str,
               differentiable: bool, optimizer: Optional[torch.optim.Optimizer], inputs: Sequence[torch.Tensor]
               ) -> Tuple[List[torch.Tensor], Dict[str, torch.Tensor], Dict[str, Dict[str, Any]]]:
    """The look-ahead of :func:`unrolled_logits` (same arguments, same checks), returning
    ``(outputs, params, state)``: ``D_theta_k(x)`` for each ``x`` of ``inputs``, in order (after the
    steps, with the buffers as the steps left them); ``theta_k`` by D's parameter names (every
    parameter, constants included); and, with an optimizer, the look-ahead state by the names of the
    parameters that move (Adam: ``step`` as a float, ``exp_avg``, ``exp_avg_sq``, with amsgrad
    ``max_exp_avg_sq``; SGD with momentum: ``momentum_buffer``, None until a step has run; SGD
    without momentum: nothing); ``{}`` without one."""
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
    if optimizer is not None:
        if type(optimizer) not in _SUPPORTED:
            raise TypeError(f"optimizer must be a {_SUPPORTED_NAMES} (exactly: a subclass may override step()), "
                            f"got {type(optimizer).__name__}")
        if lr != _DEFAULT_LR:
            raise ValueError(f"pass either optimizer (the look-ahead takes its update, with its learning rates) or "
                             f"lr (the SGD look-ahead), not both; got lr={lr}")
    if getattr(parametrize, "_cache_enabled", 0):
        raise RuntimeError("unrolled_logits cannot run inside torch.nn.utils.parametrize.cached(): the cached "
                           "parametrized weights would shadow the look-ahead parameters")

    named = list(D.named_parameters())
    names = [n for n, _ in named]
    if optimizer is None:
        rules: List[Optional[Dict[str, Any]]] = [{"rule": "plain_sgd", "lr": lr}] * len(named)
    else:
        rules = _rules(optimizer, [p for _, p in named])
        if all(r is None for r in rules):
            raise ValueError("none of D's parameters is in optimizer: pass D's own optimizer")
    moving = [i for i, r in enumerate(rules) if r is not None]
    keep_graph = differentiable and torch.is_grad_enabled()
    # Moving parameters start as fresh leaves; the others are constants (never written, never differentiated).
    theta: List[torch.Tensor] = [p.detach().clone().requires_grad_() if rules[i] is not None else p.detach()
                                 for i, (_, p) in enumerate(named)]
    state: Dict[int, Dict[str, Any]] = {i: _initial_state(optimizer, named[i][1], rules[i]) for i in moving
                                        if optimizer is not None}
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
                grads = torch.autograd.grad(loss, [theta[i] for i in moving], create_graph=keep_graph,
                                            allow_unused=True)
                theta = list(theta)
                for i, g in zip(moving, grads):
                    if g is None:  # as step() skips a parameter without .grad: neither it nor its state moves
                        continue
                    if optimizer is None:
                        theta[i] = theta[i] - lr * g
                    else:
                        theta[i], state[i] = _update(rules[i], theta[i], g, state[i])
                if not keep_graph:
                    for i in moving:
                        theta[i] = theta[i].detach().requires_grad_()
                    for i, st in state.items():
                        state[i] = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in st.items()}
        if not keep_graph:
            theta = [t.detach() for t in theta]
        outputs = [call(theta, x) for x in inputs]
    return outputs, dict(zip(names, theta)), {names[i]: s for i, s in state.items()}


def _value(x: Any) -> Any:
    """A hyperparameter or step count by value (a tensor's item, as torch's single-tensor path reads it)."""
    return x.item() if isinstance(x, torch.Tensor) else x


def _rules(optimizer: torch.optim.Optimizer, params: List[torch.Tensor]) -> List[Optional[Dict[str, Any]]]:
    """Per parameter of ``params``: the update rule and hyperparameters of its group in ``optimizer`` (None when
    it is in no group), read now; missing keys take torch's defaults."""
    group_of: Dict[torch.Tensor, Dict[str, Any]] = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            group_of[p] = group
    adamw = type(optimizer) is torch.optim.AdamW
    rules: List[Optional[Dict[str, Any]]] = []
    for p in params:
        group = group_of.get(p)
        if group is None:
            rules.append(None)
        elif type(optimizer) is torch.optim.SGD:
            rules.append({"rule": "sgd", "lr": _value(group.get("lr", 1e-3)),
                          "momentum": _value(group.get("momentum", 0.0)),
                          "dampening": _value(group.get("dampening", 0.0)),
                          "weight_decay": _value(group.get("weight_decay", 0.0)),
                          "nesterov": bool(group.get("nesterov", False)),
                          "maximize": bool(group.get("maximize", False))})
        else:
            beta1, beta2 = group.get("betas", (0.9, 0.999))
            rules.append({"rule": "adam", "lr": _value(group.get("lr", 1e-3)),
                          "beta1": _value(beta1), "beta2": _value(beta2),
                          "eps": _value(group.get("eps", 1e-8)),
                          "weight_decay": _value(group.get("weight_decay", 1e-2 if adamw else 0.0)),
                          "decoupled": adamw or bool(group.get("decoupled_weight_decay", False)),
                          "amsgrad": bool(group.get("amsgrad", False)),
                          "maximize": bool(group.get("maximize", False))})
    return rules


def _initial_state(optimizer: torch.optim.Optimizer, p: torch.Tensor, rule: Dict[str, Any]) -> Dict[str, Any]:
    """Copies of ``optimizer``'s state for ``p`` (read with ``state.get``: nothing is inserted), or the state
    ``step()`` starts a parameter with."""
    st = optimizer.state.get(p) or {}
    copy = lambda t: t.detach().clone()  # noqa: E731 - the optimizer's own tensors are never saved for backward
    if rule["rule"] == "sgd":
        if rule["momentum"] == 0:
            return {}
        buf = st.get("momentum_buffer")
        return {"momentum_buffer": None if buf is None else copy(buf)}
    zeros = lambda: torch.zeros_like(p, memory_format=torch.preserve_format).detach()  # noqa: E731
    if len(st) == 0:
        out = {"step": 0.0, "exp_avg": zeros(), "exp_avg_sq": zeros()}
    else:
        out = {"step": float(_value(st["step"])), "exp_avg": copy(st["exp_avg"]), "exp_avg_sq": copy(st["exp_avg_sq"])}
    if rule["amsgrad"]:
        vmax = st.get("max_exp_avg_sq")
        out["max_exp_avg_sq"] = zeros() if vmax is None else copy(vmax)
    return out


def _sqrt0(v: torch.Tensor) -> torch.Tensor:
    """``sqrt(v)`` for ``v >= 0`` whose derivative at ``v == 0`` is 0 instead of ``inf`` (to every order): the
    second moment is exactly 0 only where every gradient so far was 0, and there ``0 * inf`` would put
    NaN into G's gradient. The value is ``sqrt``'s."""
    positive = v > 0
    return torch.where(positive, torch.where(positive, v, torch.ones_like(v)).sqrt(), torch.zeros_like(v))


def _update(rule: Dict[str, Any], theta: torch.Tensor, grad: torch.Tensor, state: Dict[str, Any]
            ) -> Tuple[torch.Tensor, Dict[str, Any]]:
    """One step of ``rule`` (torch.optim's single-tensor formulas), out of place and differentiable."""
    lr = rule["lr"]
    if rule["maximize"]:
        grad = -grad
    if rule["rule"] == "sgd":
        if rule["weight_decay"] != 0:
            grad = grad.add(theta, alpha=rule["weight_decay"])
        state = dict(state)
        if rule["momentum"] != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = grad  # step() stores a detached copy; the look-ahead keeps the first gradient in the graph
            else:
                buf = buf.mul(rule["momentum"]).add(grad, alpha=1 - rule["dampening"])
            state["momentum_buffer"] = buf
            grad = grad.add(buf, alpha=rule["momentum"]) if rule["nesterov"] else buf
        return theta.add(grad, alpha=-lr), state
    beta1, beta2, eps, wd = rule["beta1"], rule["beta2"], rule["eps"], rule["weight_decay"]
    step = state["step"] + 1
    if wd != 0:
        if rule["decoupled"]:
            theta = theta.mul(1 - lr * wd)
        else:
            grad = grad.add(theta, alpha=wd)
    exp_avg = torch.lerp(state["exp_avg"], grad, 1 - beta1)
    exp_avg_sq = state["exp_avg_sq"].mul(beta2).addcmul(grad, grad, value=1 - beta2)
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2 ** 0.5
    new_state = {"step": step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    if rule["amsgrad"]:
        max_exp_avg_sq = torch.maximum(state["max_exp_avg_sq"], exp_avg_sq)
        new_state["max_exp_avg_sq"] = max_exp_avg_sq
        denom = (_sqrt0(max_exp_avg_sq) / bias_correction2_sqrt).add(eps)
    else:
        denom = (_sqrt0(exp_avg_sq) / bias_correction2_sqrt).add(eps)
    return torch.addcdiv(theta, exp_avg, denom, value=-step_size), new_state


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

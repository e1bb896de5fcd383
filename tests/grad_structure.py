"""Issue 24, "gradients that are None on one backend and zeros on another": the *structure* of an op's first-
and second-order gradients on a fast backend against ``ref``'s.

For each differentiable input (first order, plain and under ``create_graph``) and for each input and output
cotangent (second order, through the ``create_graph`` gradient), a gradient is None, all zeros, or a value.
``assert_same_structure`` requires: the same outputs require grad; a gradient is None on the backend exactly
where it is None on ref; where ref gives zeros the backend gives zeros. (The values themselves are the parity
tests' business.)
"""

from typing import Callable, Dict, Sequence

import torch


def _kind(g) -> str:
    if g is None:
        return "none"
    return "zero" if torch.count_nonzero(g.detach()) == 0 else "value"


def structure(fn: Callable[..., object], inputs: Sequence[torch.Tensor], seed: int = 0) -> Dict[str, object]:
    """{what: 'none' | 'zero' | 'value' (or a bool)} of ``fn(*inputs)``'s gradients; the inputs that require grad
    are the differentiable ones (fresh leaves of the same values are used)."""
    leaves = [t.detach().clone().requires_grad_(t.requires_grad) for t in inputs]
    outs = fn(*leaves)
    outs = tuple(outs) if isinstance(outs, (tuple, list)) else (outs,)
    info: Dict[str, object] = {f"output {k} requires grad": o.requires_grad for k, o in enumerate(outs)}
    diff = [t for t in leaves if t.requires_grad]
    pairs = [o for o in outs if o.requires_grad]
    if not diff or not pairs:
        return info
    gen = torch.Generator().manual_seed(seed)
    cots = [torch.randn(o.shape, generator=gen, dtype=torch.float64).to(o).requires_grad_() for o in pairs]
    idx = [k for k, t in enumerate(leaves) if t.requires_grad]
    plain = torch.autograd.grad(pairs, diff, cots, retain_graph=True, allow_unused=True)
    first = torch.autograd.grad(pairs, diff, cots, create_graph=True, allow_unused=True)
    for k, a, b in zip(idx, plain, first):
        info[f"d input {k}"] = _kind(a)
        info[f"d input {k} (create_graph)"] = _kind(b)
        info[f"d input {k} (create_graph) requires grad"] = b is not None and b.requires_grad
    second = [(g * torch.randn(g.shape, generator=gen, dtype=torch.float64).to(g)).sum()
              for g in first if g is not None and g.requires_grad]
    if second:
        wrt = diff + cots
        names = [f"input {k}" for k in idx] + [f"cotangent {k}" for k in range(len(cots))]
        for name, g in zip(names, torch.autograd.grad(sum(second), wrt, allow_unused=True)):
            info[f"second order d {name}"] = _kind(g)
    return info


def assert_same_structure(got: Dict[str, object], want: Dict[str, object], what: str = "") -> None:
    """``got`` (a fast backend's :func:`structure`) against ``want`` (ref's): None where ref has None, zeros where
    ref has zeros, the same outputs requiring grad."""
    assert got.keys() == want.keys(), f"{what}: {sorted(set(got) ^ set(want))} on one side only\n{got}\n{want}"
    for key, w in want.items():
        g = got[key]
        if isinstance(w, bool):
            assert g == w, f"{what}: {key}: {g} (ref: {w})"
        elif w == "none" or g == "none":
            assert g == w, f"{what}: {key} is {g} (ref: {w})"
        elif w == "zero":
            assert g == "zero", f"{what}: {key} is {g} (ref: zeros)"

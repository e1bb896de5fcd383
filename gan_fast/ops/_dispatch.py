"""What an op decides after ``backend.resolve``: float64 and complex inputs a fast backend cannot compute
exactly, and empty inputs, which never reach a kernel.

The mixed-dtype rule (DESIGN.md): secondary tensors are cast to the main tensor's dtype (:func:`cast_to`).

The float64 rule (DESIGN.md): a backend whose kernels compute in float32 never serves float64 input
automatically (``impl=None`` or ``GAN_FAST_IMPL``: the op runs ``ref``), and an explicit request for it
raises ``TypeError`` naming the dtype, before any kernel runs.
"""

from __future__ import annotations

from typing import Collection, List, Optional

import torch

from .. import backend


def cast_to(x: torch.Tensor, *tensors: Optional[torch.Tensor]) -> List[Optional[torch.Tensor]]:
    """``tensors`` in x's dtype (None stays None): the mixed-dtype rule of every op (secondary tensors take the
    main tensor's dtype, as ``bias_act`` does with its bias), applied before dispatch so every backend agrees."""
    return [t if t is None or t.dtype == x.dtype else t.to(x.dtype) for t in tensors]


def exact_impl(op: str, impl: Optional[str], chosen: str, dtype: torch.dtype, float32_only: Collection[str] = (),
               real_only: Collection[str] = (), name: str = "x") -> str:
    """``chosen``, or ``'ref'`` when ``chosen`` cannot compute ``dtype`` exactly and the choice was automatic;
    ``TypeError`` (naming the dtype) when it was explicit.

    Args:
        op: the op's name, for the message.
        impl: the caller's ``impl`` argument (None: automatic).
        chosen: what ``backend.resolve`` returned.
        dtype: the dtype of the op's main tensor, called ``name`` in the message.
        float32_only: the backends whose kernels compute in float32 (float64 would lose precision).
        real_only: the backends without complex kernels.
    """
    if chosen == "ref":
        return chosen
    if dtype.is_complex and (chosen in real_only or chosen in float32_only):
        kind, why = "complex", "has no complex kernels"
    elif dtype is torch.float64 and chosen in float32_only:
        kind, why = "float64", "computes in float32"
    else:
        return chosen
    if backend.normalize_impl(impl) is None:
        return "ref"  # the automatic choice (impl=None or GAN_FAST_IMPL) stays exact
    raise TypeError(f"{op}: impl={chosen!r} {why} and does not take {kind} {name} (got {dtype}); "
                    f"use impl='ref' (impl=None sends {kind} {name} there)")

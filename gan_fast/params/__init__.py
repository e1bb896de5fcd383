"""Validated parameter records, one module per op.

Each module defines the op's record (a ``NamedTuple``: typed, named, immutable, hashable) and
``validate(...)``, which checks every argument of a public call (a named ``TypeError``/``ValueError``, before
any kernel runs), applies the defaults and returns the record. Optional scalars are ``None`` when absent
(no clamp is ``clamp=None``), everywhere above the kernels. The records carry no tensors: the tensors travel
beside them, cast by :func:`cast_to` (the mixed-dtype rule).

These modules import only ``checks``, ``shapes`` and ``activations``: the self-test's cases build records
with them without importing the public ops.
"""

from typing import List, Optional

import torch

__all__ = ["cast_to"]


def cast_to(x: torch.Tensor, *tensors: Optional[torch.Tensor]) -> List[Optional[torch.Tensor]]:
    """``tensors`` in x's dtype (None stays None): the mixed-dtype rule of every op (secondary tensors take the
    main tensor's dtype, as ``bias_act`` does with its bias), applied before dispatch so every backend agrees."""
    return [t if t is None or t.dtype == x.dtype else t.to(x.dtype) for t in tensors]

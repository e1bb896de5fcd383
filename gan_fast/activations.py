"""The activation table of ``bias_act``, kept as data.

Each entry gives the reference function, default ``alpha`` and ``gain``, and
the integer code by which the Triton and C++ kernels know it (``kernels/`` and
``csrc/`` switch on these codes; keep them in sync).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Activation:
    name: str
    code: int
    func: Callable[[torch.Tensor, float], torch.Tensor]  # (x, alpha) -> y, plain differentiable PyTorch
    def_alpha: float
    def_gain: float


def _lrelu(x, alpha):
    return F.leaky_relu(x, alpha)


def _elu(x, alpha):
    return F.elu(x, alpha)


ACTIVATIONS: Dict[str, Activation] = {
    a.name: a
    for a in [
        Activation("linear", 0, lambda x, alpha: x, 0.0, 1.0),
        Activation("relu", 1, lambda x, alpha: torch.relu(x), 0.0, math.sqrt(2)),
        Activation("lrelu", 2, _lrelu, 0.2, math.sqrt(2)),
        Activation("tanh", 3, lambda x, alpha: torch.tanh(x), 0.0, 1.0),
        Activation("sigmoid", 4, lambda x, alpha: torch.sigmoid(x), 0.0, 1.0),
        Activation("elu", 5, _elu, 1.0, 1.0),
        Activation("selu", 6, lambda x, alpha: F.selu(x), 0.0, 1.0),
        Activation("softplus", 7, lambda x, alpha: F.softplus(x), 0.0, 1.0),
        Activation("swish", 8, lambda x, alpha: torch.sigmoid(x) * x, 0.0, math.sqrt(2)),
    ]
}


def get(act: str) -> Activation:
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise ValueError(f"act must be one of {sorted(ACTIVATIONS)}, got {act!r}")
    return ACTIVATIONS[act]

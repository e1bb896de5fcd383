"""``torch_utils.ops.conv2d_gradfix`` of StyleGAN2-ADA / StyleGAN3: conv2d, conv_transpose2d,
no_weight_gradients, enabled, weight_gradients_disabled.

* ``weight_gradients_disabled`` is a bool that reads the live flag (True inside
  ``no_weight_gradients()``); assigning it sets the flag, as assigning the originals' global does.
* ``enabled``: when True (the default here), :func:`conv2d` / :func:`conv_transpose2d` are
  :mod:`gan_fast.conv2d_gradfix`'s, which honour ``no_weight_gradients`` on every device and are exact
  to second order; set it to False and they are plain ``torch.nn.functional`` convolutions that always
  compute weight gradients (as the originals' with ``enabled = False``), also inside
  ``conv2d_resample``. The originals default to False and their training loops set True; here it
  starts True, because the gan_fast convolution works on every device and PyTorch version.
* ``no_weight_gradients()`` skips the gradients of weights that are parameters or casts / views of one
  (:func:`gan_fast.conv2d_gradfix.is_leaf_derived`, decided at forward time; the flag is read at
  backward time), and keeps those of weights computed from other tensors: the path-length step with
  ``fused_modconv=True`` (weights ``weight * styles``) gets its gradient w.r.t. ``ws``, as with the
  originals on current PyTorch, where their gradfix is a no-op.
"""

from __future__ import annotations

import sys
import types
from typing import Optional

import torch
import torch.nn.functional as F

from .. import conv2d_gradfix as _core
from ..conv2d_gradfix import no_weight_gradients

__all__ = ["conv2d", "conv_transpose2d", "no_weight_gradients", "enabled", "weight_gradients_disabled"]

enabled = True


class _LiveFlagModule(types.ModuleType):
    """A module whose ``weight_gradients_disabled`` attribute is gan_fast's process-wide flag."""

    @property
    def weight_gradients_disabled(self) -> bool:
        return _core.weight_gradients_disabled()

    @weight_gradients_disabled.setter
    def weight_gradients_disabled(self, value) -> None:
        _core._weight_gradients_disabled = bool(value)  # the flag no_weight_gradients() sets

    def __dir__(self):
        return sorted(set(super().__dir__()) | {"weight_gradients_disabled"})


def _install(module_globals: dict):
    """Makes the module of ``module_globals`` a conv2d_gradfix: serves its live ``weight_gradients_disabled``
    and returns (conv2d, conv_transpose2d) that consult its ``enabled`` on every call."""
    sys.modules[module_globals["__name__"]].__class__ = _LiveFlagModule

    def conv2d(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, stride=1,
               padding=0, dilation=1, groups: int = 1) -> torch.Tensor:
        """``F.conv2d`` that honours ``no_weight_gradients()`` (when ``enabled``); exact to second order."""
        if not module_globals["enabled"]:
            return F.conv2d(input, weight, bias, stride, padding, dilation, groups)
        return _core.conv2d(input, weight, bias, stride, padding, dilation, groups)

    def conv_transpose2d(input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, stride=1,
                         padding=0, output_padding=0, groups: int = 1, dilation=1) -> torch.Tensor:
        """``F.conv_transpose2d`` that honours ``no_weight_gradients()`` (when ``enabled``)."""
        if not module_globals["enabled"]:
            return F.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)
        return _core.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)

    conv2d.__module__ = conv_transpose2d.__module__ = module_globals["__name__"]
    return conv2d, conv_transpose2d


conv2d, conv_transpose2d = _install(globals())

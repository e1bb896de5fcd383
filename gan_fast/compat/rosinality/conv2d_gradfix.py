"""rosinality's ``op.conv2d_gradfix``: conv2d, conv_transpose2d, no_weight_gradients, enabled,
weight_gradients_disabled.

As :mod:`gan_fast.compat.conv2d_gradfix` (same semantics, own ``enabled``, default True as in the
original): the convolutions honour ``no_weight_gradients()`` on every device and PyTorch version
(the original falls back to plain convolutions, with a warning, on PyTorch other than 1.7/1.8 and
on CPU tensors), and are exact to second order. Inside ``no_weight_gradients()`` only the gradients
of leaf-derived weights (parameters, their casts and views) are skipped; ``ModulatedConv2d``'s
computed weights (``weight * style``) keep theirs, so a path-length gradient reaches the styles.
``weight_gradients_disabled`` reads (and assigning it sets) gan_fast's process-wide flag.
"""

from ...conv2d_gradfix import no_weight_gradients
from ..conv2d_gradfix import _install

__all__ = ["conv2d", "conv_transpose2d", "no_weight_gradients", "enabled", "weight_gradients_disabled"]

enabled = True

conv2d, conv_transpose2d = _install(globals())

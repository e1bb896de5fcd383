"""``torch_utils.ops.conv2d_gradfix`` call sites: conv2d, conv_transpose2d, no_weight_gradients.

``enabled`` is accepted for compatibility; gan_fast's convolutions need no switch.
"""

from ..conv2d_gradfix import conv2d, conv_transpose2d, no_weight_gradients

enabled = True

__all__ = ["conv2d", "conv_transpose2d", "no_weight_gradients", "enabled"]

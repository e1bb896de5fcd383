"""The functional ops of gan_fast. Each validates its arguments, picks a backend
(``impl=None|'ref'|'triton'|'cpp'``), and runs it."""

from ..conv2d_gradfix import conv2d, conv_transpose2d, no_weight_gradients
from .bias_act import bias_act
from .filtered_lrelu import filtered_lrelu
from .gradient_norm_penalty import gradient_norm_penalty
from .minibatch_discrimination import minibatch_discrimination
from .modulated_conv2d import modulated_conv2d
from .modulated_conv2d_bias_act import modulated_conv2d_bias_act
from .power_iteration import power_iteration
from .spectral_normalize import spectral_normalize, spectral_normalize_many
from .upfirdn2d import downsample2d, filter2d, setup_filter, upfirdn2d, upsample2d

__all__ = [
    "bias_act",
    "upfirdn2d",
    "setup_filter",
    "upsample2d",
    "downsample2d",
    "filter2d",
    "modulated_conv2d",
    "modulated_conv2d_bias_act",
    "filtered_lrelu",
    "minibatch_discrimination",
    "power_iteration",
    "spectral_normalize",
    "spectral_normalize_many",
    "gradient_norm_penalty",
    "conv2d",
    "conv_transpose2d",
    "no_weight_gradients",
]

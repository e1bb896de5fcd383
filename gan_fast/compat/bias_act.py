"""``torch_utils.ops.bias_act`` call sites: ``bias_act.bias_act(x, b, dim, act, alpha, gain, clamp, impl)``."""

from ..activations import ACTIVATIONS as activation_funcs  # noqa: F401 - same role as StyleGAN2's table
from ..ops import bias_act

__all__ = ["bias_act", "activation_funcs"]

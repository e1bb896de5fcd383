"""StyleGAN2-ADA / StyleGAN3 call-site compatibility: swap the import, keep the calls.

``from torch_utils.ops import bias_act, upfirdn2d, conv2d_gradfix, conv2d_resample``
becomes ``from gan_fast.compat import bias_act, upfirdn2d, conv2d_gradfix, conv2d_resample``;
``bias_act.bias_act(x, b, act='lrelu', impl='cuda')``, ``upfirdn2d.setup_filter(...)``,
``with conv2d_gradfix.no_weight_gradients(): ...`` and the rest keep working,
running gan_fast's ops (``impl='cuda'`` is the cpp backend, as there).
"""

from . import bias_act, conv2d_gradfix, conv2d_resample, upfirdn2d

__all__ = ["bias_act", "conv2d_gradfix", "conv2d_resample", "upfirdn2d"]

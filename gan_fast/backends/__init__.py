"""The backends of every op: one module per op holding its ``ref``, ``triton`` and ``cpp`` entry points, the
``torch.library`` custom ops that launch its kernels, and the ``autograd.Function`` glue that differentiates
them (to second order, exactly).

An op module's entry point is ``run(impl, params, *tensors)``: ``params`` is the op's validated parameter
record (``gan_fast.params``) and ``impl`` the backend ``gan_fast.backend.choose`` picked. An entry point runs
or raises; it never chooses another backend. Each module also declares its ``SPEC``
(:class:`~gan_fast.backends.common.OpSpec`): which backends it has, which the automatic choice prefers per
device, and what each backend refuses.

Importing a backend module defines its custom ops (cheap: no triton, no extension); the kernels
(``gan_fast.kernels``) are imported by the custom ops' bodies, on the first call.
"""

from . import (bias_act, filtered_lrelu, gradient_norm_penalty, minibatch_discrimination, modulated_conv2d,
               modulated_conv2d_bias_act, power_iteration, spectral_norm_multi, spectral_normalize, upfirdn2d)

__all__ = ["SPECS"]

# Every op's spec (one per algorithm where an op has several).
SPECS = (bias_act.SPECS + upfirdn2d.SPECS + filtered_lrelu.SPECS + power_iteration.SPECS + spectral_normalize.SPECS
         + spectral_norm_multi.SPECS + gradient_norm_penalty.SPECS + minibatch_discrimination.SPECS
         + modulated_conv2d.SPECS + modulated_conv2d_bias_act.SPECS)

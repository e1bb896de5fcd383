"""The self-test's cases, one module per op. Each case builds its op's parameter record
(``gan_fast.params``) and calls the op's backend entry point (``gan_fast.backends``) directly, the
function the public op calls once it has chosen a backend, never the public op itself.

A module defines ``CASES`` (functions ``case(device, generator) -> (run, leaves)``, see
:mod:`gan_fast.self_test.judge`), ``BACKENDS`` (the fast backends they check) and, where its fast path may
compute float32 products in TF32, ``TF32 = True``.
"""

from ..judge import Entry
from . import (bias_act, filtered_lrelu, gradient_norm_penalty, minibatch_discrimination, modulated_conv2d,
               modulated_conv2d_bias_act, power_iteration, spectral_norm_multi, spectral_normalize, upfirdn2d)

__all__ = ["REGISTRY"]

REGISTRY = {
    "bias_act": Entry(bias_act.CASES, bias_act.BACKENDS),
    "upfirdn2d": Entry(upfirdn2d.CASES, upfirdn2d.BACKENDS),
    "filtered_lrelu": Entry(filtered_lrelu.CASES, filtered_lrelu.BACKENDS),
    "power_iteration": Entry(power_iteration.CASES, power_iteration.BACKENDS),
    "spectral_normalize": Entry(spectral_normalize.CASES, spectral_normalize.BACKENDS),
    "spectral_normalize:many": Entry(spectral_norm_multi.CASES, spectral_norm_multi.BACKENDS),
    "gradient_norm_penalty": Entry(gradient_norm_penalty.CASES, gradient_norm_penalty.BACKENDS),
    "minibatch_discrimination": Entry(minibatch_discrimination.CASES, minibatch_discrimination.BACKENDS),
    "modulated_conv2d": Entry(modulated_conv2d.CASES, modulated_conv2d.BACKENDS, tf32=modulated_conv2d.TF32),
    "modulated_conv2d_bias_act": Entry(modulated_conv2d_bias_act.CASES, modulated_conv2d_bias_act.BACKENDS,
                                       tf32=modulated_conv2d_bias_act.TF32),
    "modulated_conv2d_bias_act:implicit_gemm": Entry(modulated_conv2d_bias_act.IMPLICIT_GEMM_CASES,
                                                     modulated_conv2d_bias_act.BACKENDS,
                                                     tf32=modulated_conv2d_bias_act.TF32),
}

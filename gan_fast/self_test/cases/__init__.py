"""The self-test's cases, one module per op. Each case builds its op's parameter record
(``gan_fast.params``) and calls the op's backend entry point (``gan_fast.backends``) directly, the
function the public op calls once it has chosen a backend, never the public op itself.

A module defines ``CASES`` (functions ``case(device, generator) -> (run, leaves)``, see
:mod:`gan_fast.self_test.judge`), ``BACKENDS`` (the fast backends they check) and, where its fast path may
compute float32 products in TF32, ``TF32 = True``.
"""

from ..judge import Entry
from . import bias_act, filtered_lrelu, upfirdn2d

__all__ = ["REGISTRY"]

REGISTRY = {
    "bias_act": Entry(bias_act.CASES, bias_act.BACKENDS),
    "upfirdn2d": Entry(upfirdn2d.CASES, upfirdn2d.BACKENDS),
    "filtered_lrelu": Entry(filtered_lrelu.CASES, filtered_lrelu.BACKENDS),
}

"""Host overhead: each public op at a tiny shape, where the kernels cost nothing, against the plain PyTorch chain
it replaces.

On a GPU the small layers of every G and D (4x4 to 32x32) launch kernels of a few microseconds, so host time
decides them. Each case times, forward and forward + backward:

* ``eager``: the plain chain, i.e. the op's reference implementation (``gan_fast.reference``) called directly
  with arguments already in canonical form: no validation, no backend choice;
* ``gan_fast``: the public op with ``impl=None``, what a user calls (validation, the cached backend choice, the
  fast backend of the device if it has one for such a tensor: the Triton kernels on CUDA; on CPU the C++
  ``bias_act`` from 16K elements, so ``gan_fast:cpp`` times its glue at this size too).

``gan_fast``'s "× eager" is chain / gan_fast; the goal (issue 18) is >= 0.8 for every op. On CPU only ops with a
C++ kernel run a fast path; for the others the figure measures the validation and dispatch cost, which is the
same on a GPU. Cases: ``overhead/<op>`` in the ``ci`` and ``stylegan2`` presets (so in ``decisive`` too) (fixed 200 timed samples each).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List

import torch

from gan_fast import ops
from gan_fast.ops.filtered_lrelu import validate as filtered_lrelu_args
from gan_fast.reference import bias_act as r_bias_act
from gan_fast.reference import filtered_lrelu as r_filtered_lrelu
from gan_fast.reference import gradient_norm_penalty as r_gnp
from gan_fast.reference import minibatch_discrimination as r_mbd
from gan_fast.reference import modulated_conv2d as r_modconv
from gan_fast.reference import power_iteration as r_power
from gan_fast.reference import spectral_normalize as r_sn
from gan_fast.reference import upfirdn2d as r_upfirdn2d

from .harness import Case

OP = "overhead"
REPS = 200
SQRT2 = math.sqrt(2)


def _public(fn: Callable) -> Callable:
    return lambda tensors: ((lambda t: fn(t, None)), tensors)


def _case(name: str, shape: str, make: Callable, diff, chain: Callable, public: Callable, explicit=()) -> Case:
    """``chain(t)``: the plain chain; ``public(t, impl)``: the public op; ``explicit``: backends also timed when
    asked for by name (``gan_fast:cpp``: the C++ glue, which the automatic choice skips for tiny CPU tensors)."""
    def run(t, impl):
        return chain(t) if impl == "ref" else public(t, impl)

    extra = {"gan_fast": _public(public)}
    for impl in explicit:
        extra[f"gan_fast:{impl}"] = (lambda i: lambda tensors: ((lambda t: public(t, i)), tensors))(impl)
    return Case(op=OP, name=name, shape=shape, dtype=torch.float32, make=make, run=run, diff=diff,
                passes=("fwd", "fwdbwd"), extra_baselines=extra, compile=False,
                compile_note="host overhead: compile is not what is compared", reps=REPS, priority=90,
                note="eager = the plain PyTorch chain (gan_fast.reference, canonical arguments); gan_fast = the "
                     "public op with impl=None; its x eager is chain / gan_fast")


def cases(preset: str, device: torch.device) -> List[Case]:
    if preset not in ("ci", "stylegan2"):
        return []
    def rand(*shape):
        return torch.randn(*shape, device=device)

    def unit(n):
        return torch.nn.functional.normalize(rand(n), dim=0)

    def t_x(*shape, **extra):  # the filter "f" is a case tensor too: built on the device when the case runs
        return lambda device, dtype, batch: dict({"x": rand(*shape), "f": ops.setup_filter([1, 3, 3, 1],
                                                                                          device=device)},
                                                 **{k: v() for k, v in extra.items()})

    out = [
        _case("bias_act", "x [2, 32, 4, 4] lrelu", t_x(2, 32, 4, 4, b=lambda: rand(32)), ("x", "b"),
              lambda t: r_bias_act.bias_act(t["x"], t["b"], 1, "lrelu", 0.2, SQRT2, None),
              lambda t, impl: ops.bias_act(t["x"], t["b"], act="lrelu", impl=impl),
              explicit=("cpp",) if device.type == "cpu" else ()),
        _case("upsample2d", "x [2, 32, 4, 4], 4-tap filter", t_x(2, 32, 4, 4), ("x",),
              lambda t: r_upfirdn2d.upfirdn2d(t["x"], t["f"], (2, 2), (1, 1), (2, 1, 2, 1), False, 4.0),
              lambda t, impl: ops.upsample2d(t["x"], t["f"], impl=impl)),
        _case("downsample2d", "x [2, 32, 8, 8], 4-tap filter", t_x(2, 32, 8, 8), ("x",),
              lambda t: r_upfirdn2d.upfirdn2d(t["x"], t["f"], (1, 1), (2, 2), (1, 1, 1, 1), False, 1.0),
              lambda t, impl: ops.downsample2d(t["x"], t["f"], impl=impl)),
        _case("modulated_conv2d", "x [2, 32, 4, 4], w [32, 32, 3, 3]",
              t_x(2, 32, 4, 4, w=lambda: rand(32, 32, 3, 3) / 17, s=lambda: rand(2, 32) + 1), ("x", "w", "s"),
              lambda t: r_modconv.modulated_conv2d(t["x"], t["w"], t["s"], None, 1, 1, (1, 1, 1, 1), None, True,
                                                   True, False),
              lambda t, impl: ops.modulated_conv2d(t["x"], t["w"], t["s"], padding=1, fused_modconv=False,
                                                   impl=impl)),
        _case("modulated_conv2d_bias_act", "x [2, 32, 4, 4], w [32, 32, 3, 3], lrelu",
              t_x(2, 32, 4, 4, w=lambda: rand(32, 32, 3, 3) / 17, s=lambda: rand(2, 32) + 1, b=lambda: rand(32)),
              ("x", "w", "s", "b"),
              lambda t: r_bias_act.bias_act(
                  r_modconv.modulated_conv2d(t["x"], t["w"], t["s"], None, 1, 1, (1, 1, 1, 1), None, True, True,
                                             False), t["b"], 1, "lrelu", 0.2, SQRT2, None),
              lambda t, impl: ops.modulated_conv2d_bias_act(t["x"], t["w"], t["s"], t["b"], padding=1, act="lrelu",
                                                            impl=impl)),
        _case("power_iteration", "W [32, 288]", lambda d, dt, b: {"w": rand(32, 288), "u": unit(32), "v": unit(288)},
              ("w",), lambda t: r_power.power_iteration(t["w"], t["u"], t["v"], 1, 1e-12)[0],
              lambda t, impl: ops.power_iteration(t["w"], t["u"], t["v"], impl=impl)[0]),
        _case("spectral_normalize", "W [32, 32, 3, 3]",
              lambda d, dt, b: {"w": rand(32, 32, 3, 3), "u": unit(32), "v": unit(288)}, ("w",),
              lambda t: r_sn.spectral_normalize(t["w"], t["u"], t["v"], 0, 1, 1e-12)[0],
              lambda t, impl: ops.spectral_normalize(t["w"], t["u"], t["v"], impl=impl)[0]),
        _case("gradient_norm_penalty", "g [4, 3, 4, 4]", t_x(4, 3, 4, 4), ("x",),
              lambda t: r_gnp.gradient_norm_penalty(t["x"], 0.0, False, "mean"),
              lambda t, impl: ops.gradient_norm_penalty(t["x"], impl=impl)),
        # separable filters, as StyleGAN3-T's: the fused kernels' path (2-D filters take the composition)
        _case("filtered_lrelu", "x [2, 32, 8, 8], up 2, down 2, 4-tap separable filters",
              t_x(2, 32, 8, 8, b=lambda: rand(32), fs=lambda: ops.setup_filter([1, 3, 3, 1], separable=True,
                                                                                device=device)),
              ("x", "b"),
              lambda t: r_filtered_lrelu.filtered_lrelu(
                  t["x"], *filtered_lrelu_args(t["x"], t["fs"], t["fs"], t["b"], 2, 2, 3, SQRT2, 0.2, None, False)),
              lambda t, impl: ops.filtered_lrelu(t["x"], t["fs"], t["fs"], t["b"], up=2, down=2, padding=3,
                                                 impl=impl)),
        _case("minibatch_discrimination", "M [8, 16, 5]", lambda d, dt, b: {"m": rand(8, 16, 5)}, ("m",),
              lambda t: r_mbd.minibatch_discrimination(t["m"]),
              lambda t, impl: ops.minibatch_discrimination(t["m"], impl=impl)),
    ]
    return out

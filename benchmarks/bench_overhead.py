"""Host overhead: each public op at a tiny shape, where the kernels cost nothing, against the plain PyTorch it
replaces.

On a GPU the small layers of every G and D (4x4 to 32x32) launch kernels of a few microseconds, so host time
decides them. Each case times, forward and forward + backward, interleaved:

* ``eager``: the op's reference implementation (``gan_fast.reference``) called directly with arguments already
  in canonical form: no validation, no backend choice (it carries the reference's own generality);
* ``chain`` (bias_act, upsample2d): the chain a user writes by hand instead of the op (issue 22):
  ``F.leaky_relu(x + b.view(1, -1, 1, 1), 0.2) * math.sqrt(2)``; zero insertion + pad + a grouped ``conv2d`` with
  a precomputed weight (the same result as ``ops.upsample2d(x, setup_filter([1, 3, 3, 1]))``);
* ``gan_fast``: the public op with ``impl=None``, what a user calls (validation, the cached backend choice, the
  fast backend of the device if it has one for such a tensor: the Triton kernels on CUDA; on CPU the C++
  ``bias_act`` from 16K elements, so ``gan_fast:cpp`` times its glue at this size too).

A row's ``vs chain`` is chain / this row (same run, interleaved): the goal (issue 22) is chain / gan_fast >= 0.8,
forward + backward, on one CPU thread (the runner's default on CPU). The two cases with a hand-written chain use
the issue's protocol: the median of 5 samples of 1,000 calls each, the rows interleaved; the others 200 samples of
one call. On CPU only ops with a C++ kernel run a fast path; for the others the figure measures the validation
and dispatch cost, which is the same on a GPU. CPU timings are noisy on shared cores: quote the ratios of one run.
Cases: ``overhead/<op>`` in the ``ci`` and ``stylegan2`` presets (so in ``decisive`` too).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

from gan_fast import ops
from gan_fast.params import filtered_lrelu as filtered_lrelu_params
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
REPS = 200              # one call per sample
CHAIN_REPS = 5          # the hand-written chains' protocol: >= 5 samples ...
CHAIN_CALLS = 1000      # ... of >= 1,000 calls each
SQRT2 = math.sqrt(2)
FIR = [1, 3, 3, 1]


def bias_act_chain(x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """What a user writes instead of ``ops.bias_act(x, b, act='lrelu')``."""
    return F.leaky_relu(x + b.view(1, -1, 1, 1), 0.2) * SQRT2


def upsample_weight(f: torch.Tensor, channels: int) -> torch.Tensor:
    """The grouped conv2d weight of 2x FIR upsampling with the 2-D filter ``f`` (gain 4 = up**2), made once."""
    return (f.flip([0, 1])[None, None] * 4).repeat(channels, 1, 1, 1)


def upsample_chain(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """What a user writes instead of ``ops.upsample2d(x, setup_filter([1, 3, 3, 1]))``: zero insertion, pad, a
    grouped convolution with a precomputed weight (:func:`upsample_weight`)."""
    n, c, h, w = x.shape
    z = F.pad(x.reshape(n, c, h, 1, w, 1), [0, 1, 0, 0, 0, 1]).reshape(n, c, h * 2, w * 2)
    return F.conv2d(F.pad(z, [2, 1, 2, 1]), weight, groups=c)


def _case(name: str, shape: str, make: Callable, diff, eager: Callable, public: Callable, explicit=(),
          chain: Optional[Callable] = None) -> Case:
    """``eager(t)``: the reference with canonical arguments; ``public(t, impl)``: the public op; ``chain(t)``: a
    hand-written chain; ``explicit``: backends also timed when asked for by name (``gan_fast:cpp``: the C++ glue,
    which the automatic choice skips for tiny CPU tensors)."""
    def run(t, impl):
        return eager(t) if impl == "ref" else public(t, impl)

    extra: Dict[str, Callable] = {}
    if chain is not None:
        extra["chain"] = lambda tensors: (chain, tensors)
    extra["gan_fast"] = lambda tensors: ((lambda t: public(t, None)), tensors)
    for impl in explicit:
        extra[f"gan_fast:{impl}"] = (lambda i: lambda tensors: ((lambda t: public(t, i)), tensors))(impl)
    note = ("eager = the reference (gan_fast.reference, canonical arguments); gan_fast = the public op with "
            "impl=None")
    if chain is not None:
        note += ("; chain = the hand-written PyTorch a user would write instead: vs chain = chain / this row "
                 f"(median of {CHAIN_REPS} samples of {CHAIN_CALLS} calls, interleaved)")
    return Case(op=OP, name=name, shape=shape, dtype=torch.float32, make=make, run=run, diff=diff,
                passes=("fwd", "fwdbwd"), extra_baselines=extra, compile=False,
                compile_note="host overhead: compile is not what is compared",
                reps=CHAIN_REPS if chain is not None else REPS,
                sample_calls=CHAIN_CALLS if chain is not None else None, priority=90, note=note, traffic=False)


def cases(preset: str, device: torch.device) -> List[Case]:
    if preset not in ("ci", "stylegan2"):
        return []

    def rand(*shape):
        return torch.randn(*shape, device=device)

    def unit(n):
        return F.normalize(rand(n), dim=0)

    def t_x(*shape, **extra):  # the filter "f" is a case tensor too: built on the device when the case runs
        def make(device, dtype, batch):
            t = {"x": rand(*shape), "f": ops.setup_filter(FIR, device=device)}
            t.update({k: v(t) for k, v in extra.items()})
            return t
        return make

    flrelu: Dict[str, object] = {}

    def flrelu_eager(t):
        # the validated record (canonical arguments) is made once, as the other chains' constants
        p = flrelu.get("p") or flrelu.setdefault("p", filtered_lrelu_params.validate(
            t["x"], t["fs"], t["fs"], t["b"], 2, 2, 3, SQRT2, 0.2, None, False))
        return r_filtered_lrelu.filtered_lrelu(t["x"], t["fs"], t["fs"], t["b"], *p)

    out = [
        _case("bias_act", "x [2, 32, 4, 4] lrelu", t_x(2, 32, 4, 4, b=lambda t: rand(32)), ("x", "b"),
              lambda t: r_bias_act.bias_act(t["x"], t["b"], 1, "lrelu", 0.2, SQRT2, None),
              lambda t, impl: ops.bias_act(t["x"], t["b"], act="lrelu", impl=impl),
              explicit=("cpp",) if device.type == "cpu" else (),
              chain=lambda t: bias_act_chain(t["x"], t["b"])),
        _case("upsample2d", "x [2, 32, 4, 4], 4-tap filter", t_x(2, 32, 4, 4, w=lambda t: upsample_weight(t["f"], 32)),
              ("x",),
              lambda t: r_upfirdn2d.upfirdn2d(t["x"], t["f"], (2, 2), (1, 1), (2, 1, 2, 1), False, 4.0),
              lambda t, impl: ops.upsample2d(t["x"], t["f"], impl=impl),
              chain=lambda t: upsample_chain(t["x"], t["w"])),
        _case("downsample2d", "x [2, 32, 8, 8], 4-tap filter", t_x(2, 32, 8, 8), ("x",),
              lambda t: r_upfirdn2d.upfirdn2d(t["x"], t["f"], (1, 1), (2, 2), (1, 1, 1, 1), False, 1.0),
              lambda t, impl: ops.downsample2d(t["x"], t["f"], impl=impl)),
        _case("modulated_conv2d", "x [2, 32, 4, 4], w [32, 32, 3, 3]",
              t_x(2, 32, 4, 4, w=lambda t: rand(32, 32, 3, 3) / 17, s=lambda t: rand(2, 32) + 1), ("x", "w", "s"),
              lambda t: r_modconv.modulated_conv2d(t["x"], t["w"], t["s"], None, 1, 1, (1, 1, 1, 1), None, True,
                                                   True, False),
              lambda t, impl: ops.modulated_conv2d(t["x"], t["w"], t["s"], padding=1, fused_modconv=False,
                                                   impl=impl)),
        _case("modulated_conv2d_bias_act", "x [2, 32, 4, 4], w [32, 32, 3, 3], lrelu",
              t_x(2, 32, 4, 4, w=lambda t: rand(32, 32, 3, 3) / 17, s=lambda t: rand(2, 32) + 1,
                  b=lambda t: rand(32)),
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
              t_x(2, 32, 8, 8, b=lambda t: rand(32), fs=lambda t: ops.setup_filter(FIR, separable=True,
                                                                                  device=device)),
              ("x", "b"), flrelu_eager,
              lambda t, impl: ops.filtered_lrelu(t["x"], t["fs"], t["fs"], t["b"], up=2, down=2, padding=3,
                                                 impl=impl)),
        _case("minibatch_discrimination", "M [8, 16, 5]", lambda d, dt, b: {"m": rand(8, 16, 5)}, ("m",),
              lambda t: r_mbd.minibatch_discrimination(t["m"]),
              lambda t, impl: ops.minibatch_discrimination(t["m"], impl=impl)),
    ]
    return out

"""Public ``bias_act``: validation, backend choice, dispatch."""

from __future__ import annotations

import numbers
from typing import Dict, Optional, Sequence

import torch

from .. import activations, backend, checks, self_test
from ..reference import bias_act as reference

# Fast backends by device type, in order of preference (filled as kernels land).
FAST_BACKENDS: Dict[str, Sequence[str]] = {"cuda": ("triton", "cpp"), "cpu": ("cpp",)}
# On CPU the C++ kernel overtakes the plain PyTorch chain (forward + backward, one thread) from about 16K
# elements (equal at 16K, 1.3x at 64K, 2.7x at 1M; 0.87x at 1K, where Function.apply's cost dominates): below,
# the automatic choice runs the reference. An explicit impl='cpp' or GAN_FAST_IMPL=cpp still runs the kernel.
# Measured in float32; float16/bfloat16 keep the kernel, which computes in float32 (the chain rounds every step).
MIN_NUMEL: Dict[str, int] = {"cpu": 16384}
_FULL_PRECISION = (torch.float32, torch.float64)


def bias_act(x: torch.Tensor, b: Optional[torch.Tensor] = None, dim: int = 1, act: str = "linear",
             alpha: Optional[float] = None, gain: Optional[float] = None, clamp: Optional[float] = None,
             impl: Optional[str] = None) -> torch.Tensor:
    """Adds a bias along ``dim``, applies an activation, scales by ``gain``, clamps.

    ``y = clamp(act(x + b[dim], alpha) * gain, -clamp, clamp)``

    Args:
        x: any shape, floating dtype.
        b: None or a 1-D tensor of ``x.shape[dim]`` entries (cast to ``x.dtype``).
        dim: the dimension of ``x`` that ``b`` indexes (default 1, channels).
        act: one of linear, relu, lrelu, tanh, sigmoid, elu, selu, softplus, swish.
        alpha: the activation's shape parameter (lrelu slope, default 0.2;
            elu alpha, default 1); ignored by the others.
        gain: output scale; default sqrt(2) for relu, lrelu and swish, else 1.
        clamp: None, or a bound >= 0: the output is clamped to [-clamp, clamp].
        impl: None (automatic), 'ref', 'triton', 'cpp' or 'cuda' (alias of 'cpp').

    Returns:
        A tensor of ``x``'s shape and dtype. Differentiable to second order in
        every backend.
    """
    x = checks.tensor("x", x)
    spec = activations.get(act)
    if type(dim) is not int:  # numpy integers too; never a bool
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"dim must be an int, got {type(dim).__name__}")
        dim = int(dim)
    if x.ndim == 0:
        raise ValueError("x must have at least one dimension")
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"dim must be in [{-x.ndim}, {x.ndim - 1}] for x of shape {tuple(x.shape)}, got {dim}")
    dim = dim % x.ndim
    # b: the common valid case costs four attribute reads; the checks that name what is wrong run otherwise
    if b is not None and not (isinstance(b, torch.Tensor) and b.ndim == 1 and b.shape[0] == x.shape[dim]
                              and b.is_floating_point() and b.device == x.device):
        checks.tensor("b", b, ndim=1, shape_hint=f"[{x.shape[dim]}] (x.shape[dim])")
        if b.shape[0] != x.shape[dim]:
            raise ValueError(f"b must have shape [{x.shape[dim]}] (x.shape[{dim}]), got {tuple(b.shape)}")
        checks.same_device(x=x, b=b)
    alpha, gain, clamp = activation_args(spec, alpha, gain, clamp)

    impl = backend.resolve("bias_act", impl, x.device, FAST_BACKENDS, x.dtype, x.numel(),
                           MIN_NUMEL if x.dtype in _FULL_PRECISION else None)
    if impl == "ref":
        return reference.bias_act(x, b, dim, act, alpha, gain, clamp)
    from ..fused import bias_act as fused  # noqa: PLC0415 - fast paths load lazily

    return fused.bias_act(x, b, dim, spec.code, alpha, gain, clamp, impl)


def activation_args(spec: activations.Activation, alpha, gain, clamp):
    """(alpha, gain, clamp) checked, with the activation's defaults for None alpha and gain."""
    alpha = spec.def_alpha if alpha is None else checks.optional_number("alpha", alpha)
    gain = spec.def_gain if gain is None else checks.optional_number("gain", gain)
    clamp = checks.optional_number("clamp", clamp, minimum=0)
    return alpha, gain, clamp


def _self_test_cases():
    """Every kernel (forward, gradient with the bias gradient, second derivative) over several GPU blocks (7k
    elements), activations with zero and non-zero second derivatives, clamp, a channels_last and a sliced input,
    bias along dim 1 and along the last dim (fully connected layers), and channel runs of >= 512 elements."""
    def layer(device, gen):
        x = torch.randn(3, 37, 7, 9, generator=gen, device=device).requires_grad_()
        b = torch.randn(37, generator=gen, device=device).requires_grad_()

        def run(impl, t):
            x, b = t
            return (bias_act(x, b, act="lrelu", clamp=1.0, impl=impl), bias_act(x, b, act="swish", impl=impl),
                    bias_act(x[:, :, :, 1:], b, act="tanh", impl=impl))
        return run, [x, b]

    def channels_last(device, gen):
        x = torch.randn(2, 67, 5, 6, generator=gen, device=device).to(memory_format=torch.channels_last)
        b = torch.randn(67, generator=gen, device=device).requires_grad_()
        fc = torch.randn(50, 67, generator=gen, device=device).requires_grad_()

        def run(impl, t):
            x, b, fc = t
            return (bias_act(x, b, act="elu", clamp=2.0, impl=impl),
                    bias_act(fc, b, act="softplus", impl=impl))
        return run, [x.requires_grad_(), b, fc]

    def long_runs(device, gen):  # the bias-gradient kernel's runs mode (a channel stride >= 512 elements)
        x = torch.randn(2, 5, 16, 40, generator=gen, device=device).requires_grad_()
        b = torch.randn(5, generator=gen, device=device).requires_grad_()
        return (lambda impl, t: (bias_act(t[0], t[1], act="swish", clamp=3.0, impl=impl),)), [x, b]
    return [layer, channels_last, long_runs]


self_test.register("bias_act", _self_test_cases(), FAST_BACKENDS)

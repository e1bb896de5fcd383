"""Public ``modulated_conv2d_bias_act``: a whole StyleGAN2 synthesis layer (stride 1) as one op."""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch

from .. import activations, backend, checks, self_test
from ..reference import bias_act as bias_act_reference
from ..reference import modulated_conv2d as modconv_reference
from .bias_act import activation_args
from .modulated_conv2d import check_modulation_args

# The one-kernel layer (gan_fast.kernels.modulated_conv2d_bias_act). gan_fast.nn.SynthesisLayer keeps the
# composed path (cuDNN conv + Triton epilogues) until a GPU benchmark shows this kernel winning (DESIGN.md).
FAST_BACKENDS: Dict[str, Sequence[str]] = {"cuda": ("triton",)}


def modulated_conv2d_bias_act(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor,
                              bias: Optional[torch.Tensor] = None, noise: Optional[torch.Tensor] = None,
                              padding=0, demodulate: bool = True, act: str = "linear", alpha: Optional[float] = None,
                              gain: Optional[float] = None, clamp: Optional[float] = None,
                              impl: Optional[str] = None) -> torch.Tensor:
    """A StyleGAN2 synthesis layer without resampling: modulated conv, noise, then bias_act.

    Exactly ``bias_act(modulated_conv2d(x, weight, styles, noise, padding=padding,
    demodulate=demodulate), bias, act=act, alpha=alpha, gain=gain, clamp=clamp)``
    (stride 1, correlation as StyleGAN2's ``flip_weight=True``); the ``triton``
    backend computes it in one kernel (implicit-GEMM convolution with the style
    scaling on load and everything after the convolution in its epilogue).

    Args:
        x: [N, I, H, W] (contiguous or channels_last).
        weight: [O, I, kh, kw].
        styles: [N, I].
        bias: None or [O].
        noise: None or a 4-D tensor broadcastable to the output [N, O, H', W'].
        padding: int or [pad_x, pad_y], symmetric zero padding (kh // 2 keeps the size).
        demodulate: normalise each output channel's modulated weight.
        act, alpha, gain, clamp: as in ``bias_act`` (e.g. 'lrelu' with gain sqrt(2), clamp 256).
        impl: None (automatic), 'ref' or 'triton'.

    Returns:
        [N, O, H + 2 pad_y - kh + 1, W + 2 pad_x - kw + 1] in x's dtype; differentiable
        to second order (path length through G).
    """
    check_modulation_args(x, weight, styles, noise)
    if bias is not None:
        checks.tensor("bias", bias, ndim=1, shape_hint=f"[{weight.shape[0]}] (O = weight.shape[0])")
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(f"bias must have shape [{weight.shape[0]}] (O = weight.shape[0]), got {tuple(bias.shape)}")
    checks.same_device(x=x, weight=weight, styles=styles, bias=bias, noise=noise)
    pad_x, pad_y = checks.int_pair("padding", padding, minimum=0)
    kh, kw = weight.shape[2:]
    oh, ow = x.shape[2] + 2 * pad_y - kh + 1, x.shape[3] + 2 * pad_x - kw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"modulated_conv2d_bias_act: kernel {kh}x{kw} with padding {padding} leaves no output "
                         f"for x of shape {tuple(x.shape)}")
    spec = activations.get(act)
    alpha, gain, clamp = activation_args(spec, alpha, gain, clamp)

    impl = backend.resolve("modulated_conv2d_bias_act", impl, x.device, FAST_BACKENDS)
    if impl == "ref":
        y = modconv_reference.modulated_conv2d(x, weight, styles, noise, 1, 1, (pad_x, pad_x, pad_y, pad_y), None,
                                               bool(demodulate), True, False)
        return bias_act_reference.bias_act(y, bias, 1, act, alpha, gain, clamp)
    from ..fused import modulated_conv2d_bias_act as fused  # noqa: PLC0415

    return fused.modulated_conv2d_bias_act(x, weight, styles, bias, noise, (pad_y, pad_x), bool(demodulate),
                                           spec.code, alpha, gain, clamp, impl)


def _self_test_case(device, gen):
    x = torch.randn(2, 3, 6, 5, generator=gen, device=device).requires_grad_()
    w = torch.randn(4, 3, 3, 3, generator=gen, device=device).requires_grad_()
    s = (torch.rand(2, 3, generator=gen, device=device) + 0.5).requires_grad_()
    b = torch.randn(4, generator=gen, device=device).requires_grad_()
    return (lambda impl: modulated_conv2d_bias_act(x, w, s, b, padding=1, act="lrelu", clamp=1.0, impl=impl),
            [x, w, s, b])


self_test.register("modulated_conv2d_bias_act", _self_test_case)

"""``modulated_conv2d_bias_act``'s self-test cases, one set per algorithm (``CASES``: 'cudnn', the op
``modulated_conv2d_bias_act``; ``IMPLICIT_GEMM_CASES``: ``modulated_conv2d_bias_act:implicit_gemm``).

The layers StyleGAN2 trains: lrelu + clamp + per-pixel noise with gradient, and a linear ToRGB-like layer
without demodulation, first small (17 output channels; for 'cudnn' also the up-2 layer), then over several
GPU tiles (264 pixels x 67 output channels: BLOCK_M and BLOCK_N up to 128 / 64) with a channels_last input.
TF32: cuDNN's convolution, the implicit GEMM's dots."""

import torch

from ...backends import modulated_conv2d_bias_act as B
from ...fir import setup_filter
from ...params import cast_to
from ...params import modulated_conv2d as P

BACKENDS = tuple(b for b in B.SPEC.backends if b != "ref")
TF32 = True


def _layer(impl, algorithm, x, w, s, b, noise=None, up=1, f=None, flip_weight=True, demodulate=True,
           act="linear", clamp=None):
    w, s, b, noise, f = cast_to(x, w, s, b, noise, f)  # as the public op: the filter takes x's dtype
    p = P.validate_bias_act(x, w, s, b, noise, up, 1, 1, f, demodulate, flip_weight, act, None, None, clamp,
                            algorithm)
    return B.run(impl, p, x, w, s, b, noise, f)


def _small(algorithm):
    def small(device, gen):
        def rand(*shape):
            return torch.randn(*shape, generator=gen, device=device).requires_grad_()

        x, w, b, nz = rand(2, 3, 6, 5), rand(17, 3, 3, 3), rand(17), rand(2, 1, 6, 5)
        s = (torch.rand(2, 3, generator=gen, device=device) + 0.5).requires_grad_()
        x_up, nz_up = rand(2, 3, 3, 3), rand(2, 1, 6, 6)
        f = setup_filter([1, 3, 3, 1], device=device)

        def run(impl, t):
            x, w, s, b, nz, x_up, nz_up = t
            out = [_layer(impl, algorithm, x, w, s, b, nz, act="lrelu", clamp=1.0),
                   _layer(impl, algorithm, x, w, s, b, demodulate=False)]
            if algorithm == "cudnn":
                out.append(_layer(impl, algorithm, x_up, w, s, b, nz_up, up=2, f=f, flip_weight=False, act="lrelu"))
            return tuple(out)
        return run, [x, w, s, b, nz, x_up, nz_up]
    return small


def _wide(algorithm):
    def wide(device, gen):
        x = torch.randn(2, 5, 12, 11, generator=gen, device=device).to(memory_format=torch.channels_last)
        w = (torch.randn(67, 5, 3, 3, generator=gen, device=device) / 4).requires_grad_()
        s = (torch.rand(2, 5, generator=gen, device=device) + 0.5).requires_grad_()
        b = torch.randn(67, generator=gen, device=device).requires_grad_()
        nz = torch.randn(2, 1, 12, 11, generator=gen, device=device).requires_grad_()

        def run(impl, t):
            x, w, s, b, nz = t
            return (_layer(impl, algorithm, x, w, s, b, nz, act="lrelu", clamp=1.5),
                    _layer(impl, algorithm, x, w, s, b, demodulate=False, act="swish"))
        return run, [x.requires_grad_(), w, s, b, nz]
    return wide


CASES = (_small("cudnn"), _wide("cudnn"))
IMPLICIT_GEMM_CASES = (_small("implicit_gemm"), _wide("implicit_gemm"))

"""``modulated_conv2d``'s self-test cases: the up-2 layer both ways (fused_modconv True / False), and a stride-1
layer with noise over several GPU tiles (67 input and 37 output channels, 90 pixels) with a channels_last input,
demodulated or not. TF32: the convolution runs on cuDNN."""

import torch

from ...backends import modulated_conv2d as B
from ...fir import setup_filter
from ...params import cast_to
from ...params import modulated_conv2d as P

BACKENDS = tuple(b for b in B.SPEC.backends if b != "ref")
TF32 = True


def _modconv(impl, x, w, s, noise=None, up=1, padding=0, f=None, demodulate=True, fused_modconv=True):
    w, s, noise, f = cast_to(x, w, s, noise, f)  # as the public op: the filter takes x's dtype
    p = P.validate(x, w, s, noise, up, 1, padding, f, demodulate, True, fused_modconv)
    return B.run(impl, p, x, w, s, noise, f)


def up2(device, gen):
    x = torch.randn(2, 3, 6, 6, generator=gen, device=device).requires_grad_()
    w = torch.randn(4, 3, 3, 3, generator=gen, device=device).requires_grad_()
    s = (torch.rand(2, 3, generator=gen, device=device) + 0.5).requires_grad_()
    f = setup_filter([1, 3, 3, 1], device=device)

    def run(impl, t):
        return tuple(_modconv(impl, *t, up=2, padding=1, f=f, fused_modconv=fused) for fused in (True, False))
    return run, [x, w, s]


def wide(device, gen):
    x = torch.randn(2, 67, 9, 10, generator=gen, device=device).to(memory_format=torch.channels_last)
    w = (torch.randn(37, 67, 3, 3, generator=gen, device=device) / 25).requires_grad_()
    s = (torch.rand(2, 67, generator=gen, device=device) + 0.5).requires_grad_()
    noise = torch.randn(2, 1, 9, 10, generator=gen, device=device).requires_grad_()

    def run(impl, t):
        x, w, s, noise = t
        return tuple(_modconv(impl, x, w, s, noise, padding=1, demodulate=demod, fused_modconv=fused)
                     for fused, demod in ((True, True), (False, True), (False, False)))
    return run, [x.requires_grad_(), w, s, noise]


CASES = (up2, wide)

"""``filtered_lrelu``'s self-test cases: every kernel (forward with and without the activation, backward) over two
or more tiles per axis (the tiles do not depend on the device): up 2 / down 2 with 12-tap filters, bias and clamp
(StyleGAN3-T's common layer); up 4 / down 2 with 24- and 12-tap filters on a channels_last input (flipped
filters, no bias, negative padding); on a sliced input, a 2-D down filter at up 4 / down 4 (the split path) and
absent filters."""

import math

import torch

from ...backends import filtered_lrelu as B
from ...params import cast_to
from ...params import filtered_lrelu as P

BACKENDS = tuple(b for b in B.SPEC.backends if b != "ref")


def _run(impl, x, fu, fd, b=None, up=1, down=1, padding=0, gain=math.sqrt(2), slope=0.2, clamp=None,
         flip_filter=False):
    fu, fd, b = cast_to(x, fu, fd, b)  # the public op's mixed-dtype rule (the case's filters are float32)
    return B.run(impl, P.validate(x, fu, fd, b, up, down, padding, gain, slope, clamp, flip_filter), x, fu, fd, b)


def _taps(n, gen, device):
    return (torch.rand(n, generator=gen, device=device) + 0.1).div_(n / 2)


def up2(device, gen):
    x = torch.randn(2, 2, 24, 26, generator=gen, device=device).requires_grad_()
    b = torch.randn(2, generator=gen, device=device).requires_grad_()
    fu, fd = _taps(12, gen, device), _taps(12, gen, device)

    def run(impl, t):
        x, b = t
        return (_run(impl, x, fu, fd, b, up=2, down=2, padding=[11, 10, 9, 12], clamp=1.5),)
    return run, [x, b]


def up4(device, gen):
    x = torch.randn(1, 3, 19, 17, generator=gen, device=device).to(memory_format=torch.channels_last)
    z = torch.randn(2, 2, 13, 14, generator=gen, device=device)
    b = torch.randn(2, generator=gen, device=device).requires_grad_()
    fu, fd = _taps(24, gen, device), _taps(12, gen, device)
    f2 = _taps(4, gen, device).outer(_taps(3, gen, device))

    def run(impl, t):
        x, z, b = t
        zs = z[:, :, 1:, 2:]
        return (_run(impl, x, fu, fd, up=4, down=2, padding=[14, 13, -1, 15], slope=0.3, flip_filter=True),
                _run(impl, zs, fu, f2, b, up=4, down=4, padding=[12, 11, 10, 13], gain=1.0, clamp=2.0),
                _run(impl, zs, None, None, b, padding=[1, -1, 0, 2]))
    return run, [x.requires_grad_(), z.requires_grad_(), b]


CASES = (up2, up4)

"""``upfirdn2d``'s self-test cases: up and down 2 with a 4x4 filter over several GPU blocks (1840 outputs per
plane); channels_last with 67 channels (two GPU channel blocks) and a 12-tap separable filter (the two-pass
path); a sliced input with an 8-tap separable filter (one pass with the outer product) at up 2, down 2 and
uneven padding."""

import torch

from ...backends import upfirdn2d as B
from ...fir import setup_filter
from ...params import upfirdn2d as P

BACKENDS = tuple(b for b in B.SPEC.backends if b != "ref")


def _run(impl, x, f, up=1, down=1, padding=(0, 0, 0, 0), gain=1.0):
    return B.run(impl, P.validate(x, f, up, down, padding, False, gain), x, f)


def _up(impl, x, f):
    fw, fh = P.filter_size(f)
    return _run(impl, x, f, up=2, padding=P.upsample2d_padding(fw, fh, 2, 2, (0, 0, 0, 0)), gain=4.0)


def _down(impl, x, f):
    fw, fh = P.filter_size(f)
    return _run(impl, x, f, down=2, padding=P.downsample2d_padding(fw, fh, 2, 2, (0, 0, 0, 0)))


def small_filter(device, gen):
    x = torch.randn(2, 3, 20, 23, generator=gen, device=device).requires_grad_()
    f = setup_filter([1, 3, 3, 1], device=device)
    return lambda impl, t: (_up(impl, t[0], f), _down(impl, t[0], f)), [x]


def large_filters(device, gen):
    x = torch.randn(2, 67, 4, 5, generator=gen, device=device).to(memory_format=torch.channels_last)
    z = torch.randn(2, 5, 17, 19, generator=gen, device=device).requires_grad_()
    f12 = setup_filter(torch.rand(12, generator=gen, device=device).add(0.1), device=device)
    f8 = setup_filter(torch.rand(8, generator=gen, device=device).add(0.1), device=device)

    def run(impl, t):
        x, z = t
        return _up(impl, x, f12), _run(impl, z[:, :, 1:, 2:], f8, up=2, down=2, padding=(3, -1, 2, 4))
    return run, [x.requires_grad_(), z]


CASES = (small_filter, large_filters)

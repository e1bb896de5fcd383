"""``bias_act``'s self-test cases: every kernel (forward, gradient with the bias gradient, second derivative)
over several GPU blocks (7k elements), activations with zero and non-zero second derivatives, clamp, a
channels_last and a sliced input, bias along dim 1 and along the last dim (fully connected layers), and
channel runs of >= 512 elements (the bias-gradient kernel's runs mode)."""

import torch

from ...backends import bias_act as B
from ...params import bias_act as P

BACKENDS = tuple(b for b in B.SPEC.backends if b != "ref")


def _bias_act(impl, x, b, act, clamp=None, dim=1):
    return B.run(impl, P.validate(x, b, dim, act, None, None, clamp), x, b)


def layer(device, gen):
    x = torch.randn(3, 37, 7, 9, generator=gen, device=device).requires_grad_()
    b = torch.randn(37, generator=gen, device=device).requires_grad_()

    def run(impl, t):
        x, b = t
        return (_bias_act(impl, x, b, "lrelu", clamp=1.0), _bias_act(impl, x, b, "swish"),
                _bias_act(impl, x[:, :, :, 1:], b, "tanh"))
    return run, [x, b]


def channels_last(device, gen):
    x = torch.randn(2, 67, 5, 6, generator=gen, device=device).to(memory_format=torch.channels_last)
    b = torch.randn(67, generator=gen, device=device).requires_grad_()
    fc = torch.randn(50, 67, generator=gen, device=device).requires_grad_()

    def run(impl, t):
        x, b, fc = t
        return _bias_act(impl, x, b, "elu", clamp=2.0), _bias_act(impl, fc, b, "softplus")
    return run, [x.requires_grad_(), b, fc]


def long_runs(device, gen):
    x = torch.randn(2, 5, 16, 40, generator=gen, device=device).requires_grad_()
    b = torch.randn(5, generator=gen, device=device).requires_grad_()
    return (lambda impl, t: (_bias_act(impl, t[0], t[1], "swish", clamp=3.0),)), [x, b]


CASES = (layer, channels_last, long_runs)

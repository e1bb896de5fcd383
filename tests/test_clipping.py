"""gan_fast.regularizers.clipping.clip_weights_: WGAN weight clipping."""

import math

import pytest
import torch
from torch import nn

from gan_fast.nn.equalized import FullyConnectedLayer
from gan_fast.nn.spectral_norm import spectral_norm
from gan_fast.regularizers.clipping import clip_weights_


class _Net(nn.Sequential):
    def __init__(self, *layers):
        super().__init__(*layers)
        self.shared = layers[0]  # a second reference to the first layer: its parameters count once

    def forward(self, x):
        for layer in list(self)[:-1]:
            x = layer(x)
        return x


def _critic():
    torch.manual_seed(0)
    net = _Net(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.LeakyReLU(0.2), spectral_norm(nn.Linear(8, 8)),
               FullyConnectedLayer(8, 4), nn.Linear(4, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(10)
    return net


def test_clamps_every_parameter_in_place():
    net = _critic()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    ids = {n: id(p) for n, p in net.named_parameters()}
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    assert clip_weights_(net, 0.05) is net
    for n, p in net.named_parameters():
        assert id(p) == ids[n]  # the same Parameter objects (an optimiser keeps working)
        torch.testing.assert_close(p.detach(), before[n].clamp(-0.05, 0.05), rtol=0, atol=0)
        assert p.abs().max() <= 0.05
    assert "3.parametrizations.weight.original" in before  # the parametrized weight's original is clipped too
    for n, b in net.named_buffers():
        assert torch.equal(b, buffers[n])  # BatchNorm statistics and spectral-norm u/v untouched


def test_outside_autograd_and_grad_untouched():
    net = _critic()
    x = torch.randn(5, 4)
    net(x).sum().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    clip_weights_(net, 0.01)
    for p, g in zip(net.parameters(), grads):
        assert p.is_leaf and p.grad_fn is None and p.requires_grad
        assert torch.equal(p.grad, g)
        assert p._version > 0  # changed in place
    out = net(x)  # still trains: a fresh forward/backward works after the in-place clamp
    out.sum().backward()
    # Inside a no-grad or inference context too.
    with torch.inference_mode():
        clip_weights_(net, 0.01)


def test_equalized_lr_bound_is_on_stored_weights():
    layer = FullyConnectedLayer(16, 3)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    clip_weights_(layer, 0.5)
    assert layer.weight.max().item() == 0.5
    # The runtime weight is the stored one times weight_gain (1/sqrt(16)).
    assert layer.weight_gain * 0.5 == pytest.approx(0.125)


def test_nan_stays_and_empty_module():
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight[0, 0] = float("nan")
        lin.weight[1, 1] = 3.0
    clip_weights_(lin, 1.0)
    assert math.isnan(lin.weight[0, 0].item()) and lin.weight[1, 1].item() == 1.0
    assert isinstance(clip_weights_(nn.ReLU(), 1.0), nn.ReLU)


@pytest.mark.parametrize("c,exc,match", [
    (0, ValueError, "c must be > 0"), (-0.01, ValueError, "c must be > 0"),
    (float("nan"), ValueError, "c must be finite"), (float("inf"), ValueError, "c must be finite"),
    ("0.01", TypeError, "c must be a number"), (True, TypeError, "c must be a number"),
    (None, TypeError, "c must be a number"),
])
def test_bad_c(c, exc, match):
    with pytest.raises(exc, match=match):
        clip_weights_(nn.Linear(2, 2), c)


def test_bad_module():
    with pytest.raises(TypeError, match="module must be an nn.Module"):
        clip_weights_([torch.zeros(2)], 0.1)

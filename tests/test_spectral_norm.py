"""gan_fast.nn.spectral_norm as a drop-in for torch.nn.utils.parametrizations.spectral_norm:
same initialisation, updates, eval behaviour, state_dict keys; checkpoints load both ways."""

import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as torch_sn

from gan_fast import nn as gnn
from gan_fast import ops

TOL = dict(rtol=1e-6, atol=1e-7)  # exact on the reference path; fused kernels may round differently


class OneD(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(7))

    def forward(self, x):
        return x * self.weight


LAYERS = {
    "linear": (lambda: nn.Linear(6, 5), (3, 6)),
    "conv2d": (lambda: nn.Conv2d(3, 4, 3), (2, 3, 6, 6)),
    "conv_transpose2d": (lambda: nn.ConvTranspose2d(3, 4, 3, stride=2), (2, 3, 4, 4)),
    "conv1d_n3": (lambda: nn.Conv1d(2, 3, 2), (2, 2, 5)),
    "one_d": (OneD, (2, 7)),
    # PyTorch accepts complex weights and empty ones; so does the drop-in (complex and empty run ref)
    "complex_linear": (lambda: nn.Linear(6, 5, dtype=torch.complex64), (3, 6)),
    "complex_conv2d": (lambda: nn.Conv2d(2, 3, 3, dtype=torch.complex128), (2, 2, 5, 5)),
    "empty_out": (lambda: nn.Linear(6, 0), (3, 6)),
    "empty_in": (lambda: nn.Linear(0, 5), (3, 0)),
}


def _clone(module):
    buf = io.BytesIO()
    torch.save(module, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


def _seeded(make_sn, base, seed):
    torch.manual_seed(seed)
    return make_sn(_clone(base))


def _grads(module):
    return {k: p.grad.clone() for k, p in module.named_parameters()}


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors is a no-op")
@pytest.mark.parametrize("kind", list(LAYERS))
def test_same_init_updates_outputs_and_grads_as_torch(kind):
    make, shape = LAYERS[kind]
    torch.manual_seed(0)
    base = make()
    n_iter = 3 if kind == "conv1d_n3" else 1
    theirs = _seeded(lambda m: torch_sn(m, n_power_iterations=n_iter), base, 1)
    ours = _seeded(lambda m: gnn.spectral_norm(m, n_power_iterations=n_iter), base, 1)
    # same structure and keys; same random u, v + 15 initial iterations
    assert list(theirs.state_dict()) == list(ours.state_dict())
    for (k, a), b in zip(theirs.state_dict().items(), ours.state_dict().values()):
        torch.testing.assert_close(b, a, **TOL, msg=k)
    assert isinstance(ours.parametrizations.weight[0], gnn.SpectralNorm)
    if kind == "conv_transpose2d":
        assert ours.parametrizations.weight[0].dim == 1 == theirs.parametrizations.weight[0].dim
    if kind == "one_d":
        assert not list(ours.buffers())  # exact normalisation, no u/v
    for step in range(3):  # training mode: each forward iterates and updates u, v in place
        x = torch.randn(shape, dtype=base.weight.dtype)
        ya, yb = theirs(x), ours(x)
        torch.testing.assert_close(yb, ya, **TOL)
        ya.abs().square().sum().backward()
        yb.abs().square().sum().backward()
        for k, g in _grads(theirs).items():
            torch.testing.assert_close(_grads(ours)[k], g, **TOL, msg=k)
        for (k, a), b in zip(theirs.state_dict().items(), ours.state_dict().values()):
            torch.testing.assert_close(b, a, **TOL, msg=k)
    if kind == "one_d":
        torch.testing.assert_close(ours.weight, F.normalize(ours.parametrizations.weight.original, dim=0))


@pytest.mark.parametrize("kind", ["linear", "conv2d", "conv_transpose2d"])
def test_checkpoints_load_both_ways(kind):
    make, shape = LAYERS[kind]
    torch.manual_seed(0)
    theirs = torch_sn(make())
    theirs(torch.randn(shape))  # a training step moves u, v away from their initial values
    torch.manual_seed(5)
    ours = gnn.spectral_norm(make())
    ours.load_state_dict(theirs.state_dict())
    for mode in ("train", "eval"):
        theirs.train(mode == "train")
        ours.train(mode == "train")
        x = torch.randn(shape)
        ya, yb = theirs(x), ours(x)
        torch.testing.assert_close(yb, ya, **TOL)
        ya.sum().backward()
        yb.sum().backward()
        ga, gb = _grads(theirs), _grads(ours)
        for k, g in ga.items():
            torch.testing.assert_close(gb[k], g, **TOL, msg=k)
        theirs.zero_grad()
        ours.zero_grad()
    # and back: ours -> a fresh torch module
    ours.train()
    ours(torch.randn(shape))
    torch.manual_seed(9)
    back = torch_sn(make())
    back.load_state_dict(ours.state_dict())
    x = torch.randn(shape)
    torch.testing.assert_close(back(x), ours(x), **TOL)


def test_eval_mode_does_not_iterate():
    torch.manual_seed(0)
    layer = gnn.spectral_norm(nn.Linear(4, 6)).eval()
    u, v = layer.parametrizations.weight[0]._u.clone(), layer.parametrizations.weight[0]._v.clone()
    y1 = layer(torch.ones(1, 4))
    y2 = layer(torch.ones(1, 4))
    assert torch.equal(y1, y2)
    assert torch.equal(layer.parametrizations.weight[0]._u, u)
    assert torch.equal(layer.parametrizations.weight[0]._v, v)
    sigma = torch.dot(u, layer.parametrizations.weight.original @ v)
    torch.testing.assert_close(layer.weight, layer.parametrizations.weight.original / sigma)
    layer.train()
    layer(torch.ones(1, 4))
    assert not torch.equal(layer.parametrizations.weight[0]._u, u)


def test_forward_goes_through_ops_spectral_normalize(monkeypatch):
    calls = []
    real = ops.spectral_normalize

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(ops, "spectral_normalize", spy)
    layer = gnn.spectral_norm(nn.Conv2d(2, 3, 3))
    one_d = gnn.spectral_norm(OneD())
    calls.clear()  # registration itself runs the parametrization once (as in PyTorch)
    layer(torch.randn(1, 2, 5, 5))
    one_d(torch.randn(1, 7))
    assert calls == [torch.Size([3, 2, 3, 3]), torch.Size([7])]


def test_two_forwards_one_backward_gan_pattern():
    """loss = D(real) - D(fake): the in-place u/v update must not break the first graph."""
    torch.manual_seed(0)
    d = nn.Sequential(gnn.spectral_norm(nn.Linear(4, 8)), nn.ReLU(), gnn.spectral_norm(nn.Linear(8, 1)))
    loss = d(torch.randn(3, 4)).mean() - d(torch.randn(3, 4)).mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in d.parameters())


def test_apply_spectral_norm_to_a_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.ConvTranspose2d(4, 4, 2), nn.Flatten(),
                          nn.Linear(4 * 5 * 5, 2), nn.BatchNorm1d(2), nn.Linear(2, 1))
    gnn.spectral_norm(model[0])  # already normalised: left as it is
    out = gnn.apply_spectral_norm(model, predicate=lambda name, m: name != "6")
    assert out is model
    assert [parametrize.is_parametrized(m) for m in model] == [True, False, True, False, True, False, False]
    assert len(model[0].parametrizations.weight) == 1
    assert model[2].parametrizations.weight[0].dim == 1
    assert model(torch.randn(2, 3, 6, 6)).shape == (2, 1)


def test_errors():
    with pytest.raises(ValueError, match="has no parameter or buffer with name 'kernel'"):
        gnn.spectral_norm(nn.Linear(2, 2), name="kernel")
    with pytest.raises(ValueError, match="n_power_iterations"):
        gnn.spectral_norm(nn.Linear(2, 2), n_power_iterations=0)
    with pytest.raises(IndexError, match="dim must be in"):
        gnn.spectral_norm(nn.Linear(2, 2), dim=2)
    with pytest.raises(ValueError, match="eps must be > 0"):
        gnn.spectral_norm(nn.Linear(2, 2), eps=0.0)

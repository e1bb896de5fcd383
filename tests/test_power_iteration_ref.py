"""Reference power_iteration / spectral_normalize against torch.linalg and torch's parametrization."""

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import parametrizations

from gan_fast import ops


def test_converges_to_largest_singular_value():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(13, 7, dtype=torch.float64, generator=g)
    u = F.normalize(torch.randn(13, dtype=torch.float64, generator=g), dim=0)
    v = F.normalize(torch.randn(7, dtype=torch.float64, generator=g), dim=0)
    sigma, u2, v2 = ops.power_iteration(w, u, v, n_iterations=200, impl="ref")
    torch.testing.assert_close(sigma, torch.linalg.matrix_norm(w, ord=2))
    torch.testing.assert_close(torch.mv(w, v2), sigma * u2)


@pytest.mark.parametrize("module, dim", [
    (torch.nn.Linear(9, 5), 0),
    (torch.nn.Conv2d(3, 6, 3), 0),
    (torch.nn.ConvTranspose2d(4, 3, 3), 1),
])
def test_one_step_matches_torch_parametrization(module, dim):
    torch.manual_seed(0)
    sn = parametrizations.spectral_norm(module)
    p = sn.parametrizations.weight[0]
    u0, v0 = p._u.clone(), p._v.clone()
    w = sn.parametrizations.weight.original.detach()
    normalized = sn.weight  # training mode: one power-iteration step, updates the buffers
    w_mat = (w if dim == 0 else w.transpose(0, 1)).flatten(1)
    sigma, u, v = ops.power_iteration(w_mat, u0, v0, n_iterations=1, impl="ref")
    torch.testing.assert_close(u, p._u, rtol=0, atol=0)
    torch.testing.assert_close(v, p._v, rtol=0, atol=0)
    torch.testing.assert_close(w / sigma, normalized.detach())
    got, u_s, v_s = ops.spectral_normalize(w, u0, v0, dim=dim, n_iterations=1, impl="ref")
    torch.testing.assert_close(got, normalized.detach())
    torch.testing.assert_close(u_s, u)


def test_zero_iterations_only_evaluates_sigma_and_inputs_are_untouched():
    w = torch.randn(4, 6)
    u, v = F.normalize(torch.randn(4), dim=0), F.normalize(torch.randn(6), dim=0)
    u_before, v_before = u.clone(), v.clone()
    sigma, u2, v2 = ops.power_iteration(w, u, v, n_iterations=0)
    torch.testing.assert_close(sigma, u @ w @ v)
    assert torch.equal(u2, u_before) and torch.equal(v2, v_before)
    ops.power_iteration(w, u, v, n_iterations=3)
    assert torch.equal(u, u_before) and torch.equal(v, v_before)
    assert u2.data_ptr() != u.data_ptr()


def test_sigma_gradient_treats_u_v_as_constants():
    w = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    u, v = F.normalize(torch.randn(5, dtype=torch.float64), dim=0), F.normalize(torch.randn(4, dtype=torch.float64), dim=0)
    sigma, u2, v2 = ops.power_iteration(w, u, v, n_iterations=2)
    (grad,) = torch.autograd.grad(sigma, w)
    torch.testing.assert_close(grad, torch.outer(u2, v2))
    # Finite differences also move u and v when iterating, so check the derivative at fixed u, v.
    assert torch.autograd.gradcheck(lambda w: ops.power_iteration(w, u2, v2, 0)[0], (w,))
    assert torch.autograd.gradgradcheck(lambda w: ops.spectral_normalize(w, u2, v2, 0, 0)[0], (w,))


def test_one_dimensional_weight_is_normalised():
    w = torch.randn(7, dtype=torch.float64)
    got, _, _ = ops.spectral_normalize(w, torch.ones(7, dtype=torch.float64), torch.ones(1, dtype=torch.float64))
    torch.testing.assert_close(got, w / w.norm())


@pytest.mark.parametrize("args, kwargs, exc, words", [
    ((torch.ones(3), torch.ones(3), torch.ones(3)), {}, ValueError, "weight_mat must be 2-D"),
    ((torch.ones(3, 4), torch.ones(4), torch.ones(4)), {}, ValueError, "u must have shape [3]"),
    ((torch.ones(3, 4), torch.ones(3), torch.ones(3)), {}, ValueError, "v must have shape [4]"),
    ((torch.ones(3, 4), torch.ones(3), torch.ones(4)), dict(n_iterations=-1), ValueError, "n_iterations must be >= 0"),
    ((torch.ones(3, 4), torch.ones(3), torch.ones(4)), dict(eps=0.0), ValueError, "eps must be > 0"),
    ((torch.ones(3, 4, dtype=torch.int64), torch.ones(3), torch.ones(4)), {}, TypeError, "weight_mat must have a"),
    ((torch.ones(3, 4), torch.ones(3, device="meta"), torch.ones(4)), {}, ValueError, "u is on meta"),
])
def test_errors(args, kwargs, exc, words):
    with pytest.raises(exc) as info:
        ops.power_iteration(*args, **kwargs)
    assert words in str(info.value)


def test_spectral_normalize_errors():
    with pytest.raises(ValueError, match="u and v must have shapes"):
        ops.spectral_normalize(torch.ones(3, 2, 2), torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match="dim must be an int"):
        ops.spectral_normalize(torch.ones(3, 2), torch.ones(3), torch.ones(2), dim=2)

"""gan_fast.compat.grid_sample_gradfix: bilinear grid_sample, exact to second order, against a definition
written here (a dense tent-weight matrix, not the four-neighbour gather of the module's own fallback)."""

import pytest
import torch
import torch.nn.functional as F

from gan_fast.compat import conv2d_gradfix, grid_sample_gradfix
from gan_fast.compat.grid_sample_gradfix import grid_sample

F64 = torch.float64


def def_grid_sample(x, grid):
    """out[n, c, p] = sum_ij x[n, c, i, j] * max(0, 1 - |ix_p - j|) * max(0, 1 - |iy_p - i|), with pixel
    coordinates ix = ((gx + 1) * W - 1) / 2 (align_corners=False); pixels outside the image are zeros."""
    n, c, h, w = x.shape
    ix = ((grid[..., 0] + 1) * w - 1) / 2  # [N, Ho, Wo]
    iy = ((grid[..., 1] + 1) * h - 1) / 2
    wx = (1 - (ix[..., None] - torch.arange(w, dtype=x.dtype, device=x.device)).abs()).clamp(min=0)  # [N,Ho,Wo,W]
    wy = (1 - (iy[..., None] - torch.arange(h, dtype=x.dtype, device=x.device)).abs()).clamp(min=0)  # [N,Ho,Wo,H]
    return torch.einsum("ncij,npqi,npqj->ncpq", x, wy, wx)


def _data(seed=0, n=2, c=3, h=5, w=6, ho=4, wo=7):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, dtype=F64, generator=g)
    grid = torch.rand(n, ho, wo, 2, dtype=F64, generator=g) * 2.4 - 1.2  # some points outside the image
    return x, grid


def test_forward_matches_definition_and_torch():
    x, grid = _data()
    y = grid_sample(x, grid)
    torch.testing.assert_close(y, def_grid_sample(x, grid))
    torch.testing.assert_close(y, F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False))
    with torch.no_grad():
        torch.testing.assert_close(grid_sample(x, grid), y)


def test_gradcheck_and_gradgradcheck():
    x, grid = _data(1, c=2, h=4, w=4, ho=3, wo=3)
    x.requires_grad_()
    assert torch.autograd.gradgradcheck(lambda x: grid_sample(x, grid), (x,))  # the augment pipe's case
    grid.requires_grad_()
    assert torch.autograd.gradcheck(grid_sample, (x, grid))
    assert torch.autograd.gradgradcheck(grid_sample, (x, grid))


@pytest.mark.parametrize("grid_requires_grad", [False, True])
def test_second_order_matches_definition(grid_requires_grad, device):
    """On the GPU machine this runs on CUDA, where torch < 2.12 has no double backward of its own."""
    x, grid = (t.to(device) for t in _data(2))

    def second(fn):
        xx = x.clone().requires_grad_()
        gg = grid.clone().requires_grad_(grid_requires_grad)
        y = fn(xx, gg)
        wrt = [xx, gg] if grid_requires_grad else [xx]
        first = torch.autograd.grad((y.square() * y.detach().cos()).sum(), wrt, create_graph=True)
        loss = sum((f * torch.linspace(-1, 2, f.numel(), dtype=F64, device=device).reshape(f.shape)).square().sum()
                   for f in first)
        return first, torch.autograd.grad(loss, wrt)

    (f1, s1), (f2, s2) = second(grid_sample), second(def_grid_sample)
    for a, b in zip(f1 + s1, f2 + s2):
        torch.testing.assert_close(a, b)


def test_r1_through_augmentation(device):
    """StyleGAN2-ADA's R1 step: reals resampled by a fixed (random, gradient-free) affine grid, a small
    discriminator, the input gradient inside no_weight_gradients, the penalty's gradients."""
    g = torch.Generator().manual_seed(3)
    reals = torch.randn(2, 3, 8, 8, dtype=F64, generator=g).to(device)
    theta = torch.tensor([[[0.9, 0.2, 0.1], [-0.15, 1.1, -0.05]], [[1.0, 0.0, 0.3], [0.1, 0.8, 0.0]]], dtype=F64)
    grid = F.affine_grid(theta, [2, 3, 8, 8], align_corners=False).to(device)
    w1 = torch.randn(4, 3, 3, 3, dtype=F64, generator=g).to(device).requires_grad_()
    w2 = torch.randn(1, 4, 8, 8, dtype=F64, generator=g).to(device).requires_grad_()

    def penalty(sample, conv):
        x = reals.clone().requires_grad_()
        logits = conv(torch.tanh(conv(sample(x, grid), w1, padding=1)), w2)
        with conv2d_gradfix.no_weight_gradients():
            (gx,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
        return torch.autograd.grad(gx.square().sum(), [w1, w2, x])

    for a, b in zip(penalty(grid_sample, conv2d_gradfix.conv2d), penalty(def_grid_sample, F.conv2d)):
        torch.testing.assert_close(a, b)


def test_autocast_runs_in_float32_like_torch():
    x, grid = (t.float().bfloat16() for t in _data(4))
    x.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = grid_sample(x, grid)
        want = F.grid_sample(x, grid, align_corners=False)
    assert y.dtype == want.dtype == torch.float32
    torch.testing.assert_close(y, want)
    (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    assert gx.dtype == torch.bfloat16 and torch.isfinite(gx.float()).all()


def test_enabled_and_errors():
    assert grid_sample_gradfix.enabled is False  # the original's default; assigning it is accepted
    x, grid = _data()
    with pytest.raises(ValueError, match=r"grid must have shape \[2, Ho, Wo, 2\]"):
        grid_sample(x, grid[..., :1])
    with pytest.raises(ValueError, match="input must be 4-D"):
        grid_sample(x[0], grid)

"""``torch_utils.ops.grid_sample_gradfix`` of StyleGAN2-ADA / StyleGAN3: ``grid_sample(input, grid)``
that can be differentiated twice.

StyleGAN2-ADA's augment pipe resamples the reals with ``grid_sample`` inside the R1 step, which
differentiates the discriminator's input gradient again: that needs the derivative of
``grid_sampler_2d_backward``, which PyTorch gained only in 2026 (pytorch/pytorch#177487, for #34704;
older releases raise "derivative for grid_sampler_2d_backward is not implemented"). This module gives
exact derivatives of every order on every supported PyTorch, with public APIs only:

* the forward and the first-order backward are PyTorch's kernels (``F.grid_sample`` and
  ``aten.grid_sampler_2d_backward``);
* under ``create_graph`` with a grid that does not need gradients (the augment pipe's case), the
  input gradient ``A(grid)^T g`` is linear in ``g`` and independent of ``input``, so its own
  derivative is ``grid_sample(., grid)`` again: native kernels at every order;
* under ``create_graph`` with a grid that needs gradients, the gradients are those of a
  differentiable plain-PyTorch bilinear sampler (slower, exact to every order).

The original has a second derivative only for a grid that needs no gradient; here the grid may
need one too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import checks
from ..backends.common import cache_signatures

__all__ = ["grid_sample", "enabled"]

# The original's switch (False there by default, training loops set True), kept so that assigning it
# works. It changes nothing here: the results are F.grid_sample's either way, and this module's
# double backward is always available.
enabled = False

_BILINEAR, _ZEROS = 0, 0  # aten's interpolation_mode and padding_mode codes


def grid_sample(input: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``F.grid_sample(input, grid, mode='bilinear', padding_mode='zeros', align_corners=False)``,
    differentiable to every order with respect to ``input`` and ``grid``.

    Args:
        input: [N, C, H, W].
        grid: [N, Ho, Wo, 2], sampling positions (x, y) in [-1, 1] (pixel edges, align_corners=False).

    Returns:
        [N, C, Ho, Wo].
    """
    checks.tensor("input", input, ndim=4, shape_hint="[N, C, H, W]")
    checks.tensor("grid", grid, ndim=4, shape_hint="[N, Ho, Wo, 2]")
    if grid.shape[3] != 2 or grid.shape[0] != input.shape[0]:
        raise ValueError(f"grid must have shape [{input.shape[0]}, Ho, Wo, 2] for input of shape "
                         f"{tuple(input.shape)}, got {tuple(grid.shape)}")
    checks.same_device(input=input, grid=grid)
    if torch.compiler.is_compiling() or not torch.is_grad_enabled():
        return _sample(input, grid)
    if torch.is_autocast_enabled(input.device.type):
        # Autocast runs grid_sampler in float32; cast here, where autograd records it, so that the
        # backward gets the float32 tensors the forward used.
        input, grid = (t.float() if t.dtype in (torch.float16, torch.bfloat16) else t for t in (input, grid))
    return _GridSample.apply(input, grid)


def _sample(input, grid):
    return F.grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _native_backward(grad_output, input, grid, need_input: bool, need_grid: bool):
    return torch.ops.aten.grid_sampler_2d_backward(grad_output, input, grid, _BILINEAR, _ZEROS, False,
                                                   [need_input, need_grid])


class _GridSample(torch.autograd.Function):
    """y = grid_sample(input, grid); its backward is made of differentiable pieces."""

    generate_vmap_rule = True

    @staticmethod
    def forward(input, grid):
        return _sample(input, grid)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx, grad_output):
        input, grid = ctx.saved_tensors
        need_input, need_grid = ctx.needs_input_grad
        if not torch.is_grad_enabled():  # plain backward: the native kernel
            gi, gg = _native_backward(grad_output, input, grid, need_input, need_grid)
            return (gi if need_input else None), (gg if need_grid else None)
        if need_grid:  # create_graph and the grid moves: the differentiable sampler's gradients
            return _reference_gradients(grad_output, input, grid, need_input)
        return _InputGradient.apply(grad_output, input, grid), None


class _InputGradient(torch.autograd.Function):
    """gi = A(grid)^T g, for a grid that needs no gradient. Linear in g, independent of input's values
    (``input`` only gives the shape): d gi / d g applied to v is grid_sample(v, grid)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(grad_output, input, grid):
        return _native_backward(grad_output, input, grid, True, False)[0]

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[2])

    @staticmethod
    def backward(ctx, v):
        (grid,) = ctx.saved_tensors
        return _GridSample.apply(v, grid), None, None


cache_signatures(_GridSample, _InputGradient)


def _reference_gradients(grad_output, input, grid, need_input: bool):
    """(d/d input, d/d grid) of <grad_output, sample(input, grid)>, as a graph of differentiable ops."""
    with torch.enable_grad():
        wrt = [input, grid] if need_input else [grid]
        grads = torch.autograd.grad(_reference_sample(input, grid), wrt, grad_output, create_graph=True)
    return (grads[0] if need_input else None), grads[-1]


def _reference_sample(input: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling with zero padding and align_corners=False in plain differentiable PyTorch:
    the four neighbours of each sample point, weighted by (1 - |dx|)(1 - |dy|), outside ones zero."""
    n, c, h, w = input.shape
    ho, wo = grid.shape[1], grid.shape[2]
    ix = ((grid[..., 0] + 1) * w - 1) / 2  # pixel coordinates, [N, Ho, Wo]
    iy = ((grid[..., 1] + 1) * h - 1) / 2
    x0, y0 = ix.detach().floor(), iy.detach().floor()
    tx, ty = ix - x0, iy - y0
    flat = input.reshape(n, c, h * w)
    out = input.new_zeros(n, c, ho, wo)
    for yi, wy in ((y0, 1 - ty), (y0 + 1, ty)):
        for xi, wx in ((x0, 1 - tx), (x0 + 1, tx)):
            inside = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
            index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long().reshape(n, 1, ho * wo)
            values = flat.gather(2, index.expand(n, c, ho * wo)).reshape(n, c, ho, wo)
            out = out + values * (wx * wy * inside)[:, None]
    return out

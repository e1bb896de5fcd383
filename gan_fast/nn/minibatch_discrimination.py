"""Minibatch discrimination (Salimans et al., 2016, "Improved Techniques for Training GANs", section 3.2)."""

from __future__ import annotations

import torch
from torch import nn

from .. import backend, checks
from ..ops.minibatch_discrimination import minibatch_discrimination

__all__ = ["MinibatchDiscrimination"]


class MinibatchDiscrimination(nn.Module):
    """Appends, per sample, how close it is to the other samples of the batch under ``out_features`` kernels.

    ``M = (x @ weight).view(N, out_features, kernel_dims)``;
    ``o[i, b] = sum over j != i of exp(-||M[i, b] - M[j, b]||_1)``;
    output ``torch.cat([x, o], 1)``. The pairwise part is
    :func:`gan_fast.ops.minibatch_discrimination` (a Triton kernel on CUDA that never
    materialises the [N, N, B, C] differences; differentiable to second order, so the layer
    works inside a D under R1). Identical samples (mode collapse) get a finite gradient: the
    gradient of |0| is 0. The paper's equation also counts j = i (adding 1 to every o); the
    authors' code, and this layer, do not.

    Args:
        in_features: A, the features of x.
        out_features: B, the number of kernels (the features appended).
        kernel_dims: C, the dimension of each kernel's projection (the paper uses B = 100, C = 5).
        impl: the backend of the pairwise op (None: automatic; 'ref'; 'triton').

    Parameters:
        weight: [in_features, out_features * kernel_dims], the tensor T of the paper flattened,
            initialised from N(0, 0.05^2), the scale of the authors' code (whose layer also
            weight-normalises T and adds a bias; this one, like the paper's equations, does neither).
            x is multiplied by it in x's dtype.

    Shapes:
        x: [N, in_features] -> [N, in_features + out_features].
    """

    def __init__(self, in_features: int, out_features: int, kernel_dims: int, impl=None):
        super().__init__()
        self.in_features = checks.positive_int("in_features", in_features)
        self.out_features = checks.positive_int("out_features", out_features)
        self.kernel_dims = checks.positive_int("kernel_dims", kernel_dims)
        backend.normalize_impl(impl)  # an unknown name fails here, not at the first forward
        self.impl = impl
        self.weight = nn.Parameter(torch.randn(in_features, out_features * kernel_dims) * 0.05)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checks.tensor("x", x, ndim=2, shape_hint=f"[N, {self.in_features}] ([N, in_features])")
        if x.shape[1] != self.in_features:
            raise ValueError(f"x must have shape [N, {self.in_features}] (in_features), got {tuple(x.shape)}")
        m = (x @ self.weight.to(x.dtype)).view(x.shape[0], self.out_features, self.kernel_dims)
        o = minibatch_discrimination(m, impl=self.impl)
        return torch.cat([x, o.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, kernel_dims={self.kernel_dims}"

"""``spectral_normalize``'s self-test cases: a conv weight over several tiles (on CUDA [37, 3, 10, 10]: a 37 x 300
matrix over 16 x 256 tiles; under the interpreter's 4 x 32 tiles, [37, 3, 6, 6]), dim 1 (transposed conv), and on
CUDA a layer past the fused size (130 x 520 > 64K entries: the separate W / sigma launches)."""

import torch

from ...backends import spectral_normalize as B
from ...params import spectral_normalize as P

BACKENDS = tuple(b for b in B.SPEC.backends if b != "ref")


def unit(n, gen, device):
    return torch.nn.functional.normalize(torch.randn(n, generator=gen, device=device), dim=0)


def _spectral_normalize(impl, w, u, v, dim, n):
    return B.run(impl, P.validate(w, u, v, dim, n, 1e-12), w, u, v)


def conv_weight(device, gen):
    k = 10 if device.type == "cuda" else 6
    w = torch.randn(37, 3, k, k, generator=gen, device=device).requires_grad_()
    u, v = unit(37, gen, device), unit(3 * k * k, gen, device)
    u1, v1 = unit(3, gen, device), unit(37 * k * k, gen, device)
    big = [torch.randn(130, 520, generator=gen, device=device).requires_grad_(), unit(130, gen, device),
           unit(520, gen, device)] if device.type == "cuda" else []

    def run(impl, t):
        w, u, v, u1, v1 = t[:5]
        out = _spectral_normalize(impl, w, u, v, 0, 1) + _spectral_normalize(impl, w, u1, v1, 1, 2)
        if big:
            out += _spectral_normalize(impl, *t[5:], 0, 1)
        return out
    return run, [w, u, v, u1, v1] + big


CASES = (conv_weight,)

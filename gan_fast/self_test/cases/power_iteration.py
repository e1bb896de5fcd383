"""``power_iteration``'s self-test cases: a matrix over several tiles (on CUDA 37 x 300: 16 x 256 tiles; 37 x 100
under the interpreter's 4 x 32), 0, 1 and 3 iterations, and a transposed (non-contiguous) view."""

import torch

from ...backends import power_iteration as B
from ...params import power_iteration as P

BACKENDS = tuple(b for b in B.SPEC.backends if b != "ref")


def unit(n, gen, device):
    """A random unit vector of n entries (the u / v of a case)."""
    return torch.nn.functional.normalize(torch.randn(n, generator=gen, device=device), dim=0)


def _power_iteration(impl, w, u, v, n):
    return B.run(impl, P.validate(w, u, v, n, 1e-12), w, u, v)


def matrix(device, gen):
    cols = 300 if device.type == "cuda" else 100
    w = torch.randn(37, cols, generator=gen, device=device).requires_grad_()
    u, v, ut = unit(37, gen, device), unit(cols, gen, device), unit(cols, gen, device)

    def run(impl, t):
        w, u, v, ut = t
        return (_power_iteration(impl, w, u, v, 1) + _power_iteration(impl, w, u, v, 0)
                + _power_iteration(impl, w.t(), ut, u, 3))
    return run, [w, u, v, ut]


CASES = (matrix,)

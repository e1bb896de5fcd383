"""``spectral_normalize_many``'s self-test cases (``spectral_normalize:many``): one batched call over a conv weight
spanning several tiles (as ``spectral_normalize``'s case), a transposed-conv weight along dim 1 (not a view: the
copy-back path), a small linear layer, and on CUDA a layer past the fused size (130 x 520); one and two
iterations, the u/v update in place (the updated vectors are judged too); the second call leaves one layer's
output out (its backward serves a subset of the layers: the sub-arena path)."""

import torch

from ...backends import spectral_norm_multi as B
from ...params import spectral_normalize as P

BACKENDS = tuple(b for b in B.SPEC.backends if b != "ref")


def unit(n, gen, device):
    return torch.nn.functional.normalize(torch.randn(n, generator=gen, device=device), dim=0)


def layers(device, gen):
    k = 10 if device.type == "cuda" else 6
    shapes = [((37, 3, k, k), 0), ((5, 7, 3, 3), 1), ((9, 13), 0)]
    if device.type == "cuda":
        shapes.append(((130, 520), 0))
    weights, vectors = [], []
    for shape, dim in shapes:
        weights.append(torch.randn(shape, generator=gen, device=device).requires_grad_())
        h = shape[dim]
        vectors += [unit(h, gen, device), unit(weights[-1].numel() // h, gen, device)]
    n = len(shapes)
    dims = [d for _, d in shapes]

    def run(impl, t):
        ws, uv = t[:n], t[n:]
        out = []
        for iterations in (1, 2):
            us, vs = [x.detach().clone() for x in uv[0::2]], [x.detach().clone() for x in uv[1::2]]
            ys = B.run(impl, P.validate_many(list(ws), us, vs, dims, iterations, 1e-12, True), list(ws), us, vs)
            out += (ys if iterations == 1 else ys[:1] + ys[2:]) + us + vs
        return out
    return run, weights + vectors


CASES = (layers,)

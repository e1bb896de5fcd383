"""torch.autocast on the StyleGAN2 G and D and the SN discriminator.

Stated tolerance: under autocast, outputs, R1 penalties and parameter gradients are finite;
outputs and R1 are within a relative L2 error of 5e-2 of float32, and the gradients of all G
and D parameters, taken together, within 1.5e-1. bfloat16 keeps 8 significant bits (relative
rounding 2^-9), so ~10 layers give ~1e-2 (measured on CPU: G image 1.2e-2, D 2e-3, SN D 8e-3;
all gradients together 8e-2). Single small tensors (e.g. the scalar noise strengths, whose
gradient is a sum with heavy cancellation) can be off by far more in bfloat16, so they are
only checked for finiteness. CPU runs bfloat16; a GPU runs float16 and bfloat16 (``gpu`` marker).
"""

import pytest
import torch

from gan_fast import regularizers
from gan_fast.models import Discriminator, Generator, SNDiscriminator

OUT_TOL, GRAD_TOL = 5e-2, 1.5e-1


def rel_err(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12)).item()


def _models(device):
    torch.manual_seed(0)
    G = Generator(16, 0, 16, 16, 3, mapping_kwargs=dict(num_layers=2), channel_base=256, channel_max=16)
    D = Discriminator(0, 16, 3, channel_base=256, channel_max=16)
    S = SNDiscriminator(16, 3, channels=8, channel_multipliers=(1, 2))
    return G.to(device), D.to(device), S.eval().to(device)


def _check(device, dtype):
    G, D, S = _models(device)
    z = torch.randn(4, 16, device=device)

    params = list(G.parameters()) + list(D.parameters())

    def forward_backward():
        for p in params:
            p.grad = None
        img = G(z, noise_mode="const")
        logits = D(img)
        logits.float().sum().backward()
        return img.detach(), logits.detach(), [p.grad.clone() for p in params]

    img32, logits32, grads32 = forward_backward()
    with torch.autocast(device.type, dtype=dtype):
        img, logits, grads = forward_backward()
    assert img.dtype == dtype and logits.dtype == dtype  # the convolutions really ran in low precision
    for name, got, want in (("G image", img, img32), ("D logits", logits, logits32)):
        assert torch.isfinite(got).all(), name
        assert rel_err(got, want) < OUT_TOL, (name, rel_err(got, want))
    assert all(torch.isfinite(g).all() for g in grads)
    err = rel_err(torch.cat([g.flatten() for g in grads]), torch.cat([g.flatten() for g in grads32]))
    assert err < GRAD_TOL, err

    with torch.autocast(device.type, dtype=dtype):
        sn = S(img32)
    assert torch.isfinite(sn).all() and rel_err(sn, S(img32)) < OUT_TOL

    # R1 with the double backward under autocast
    x = img32.clone().requires_grad_(True)
    with torch.autocast(device.type, dtype=dtype):
        r1 = regularizers.r1_penalty(D(x), x)
    x32 = img32.clone().requires_grad_(True)
    r1_32 = regularizers.r1_penalty(D(x32), x32)
    assert torch.isfinite(r1) and rel_err(r1, r1_32) < OUT_TOL, (r1, r1_32)
    D.zero_grad(set_to_none=True)
    r1.backward()
    assert all(torch.isfinite(p.grad).all() for p in D.parameters() if p.grad is not None)


def test_autocast_bfloat16_cpu():
    _check(torch.device("cpu"), torch.bfloat16)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_cuda(dtype):
    _check(torch.device("cuda"), dtype)

"""torch.compile: a StyleGAN2 synthesis block (modulated conv, bias_act, FIR upsampling) traces
with ``fullgraph=True`` on CPU and matches eager forward and backward; and the supported pattern
for double-backward penalties (R1) with a compiled discriminator is checked against eager.

Double backward through a compiled region is not supported by PyTorch's compiler (aot_eager
and inductor raise "does not currently support double backward"; open upstream, e.g.
pytorch/pytorch#183603). The supported pattern, checked in
``test_compiled_main_loss_with_eager_r1_matches_eager``:

    D_c = torch.compile(D)                       # same parameters as D
    loss = d_loss(D_c(real), D_c(fake), kind)    # main loss: compiled forward and backward
    x = real.detach().requires_grad_(True)
    loss = loss + gamma / 2 * r1_penalty(D(x), x)  # penalty: the *uncompiled* module, eager
    loss.backward()

(the lazy R1 / path-length step of StyleGAN2 runs every 4-16 steps, so running it eagerly
costs little; our ops make that eager double backward fast).
"""

import pytest
import torch

from gan_fast import losses, regularizers
from gan_fast.models import Discriminator
from gan_fast.models.stylegan2 import SynthesisBlock

pytestmark = pytest.mark.skipif(not hasattr(torch, "compile"), reason="needs torch.compile")


def _grads(tensors):
    return [t.grad.clone() for t in tensors]


def test_synthesis_block_fullgraph_matches_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    block = SynthesisBlock(4, 4, w_dim=8, resolution=8, img_channels=3, is_last=False)
    with torch.no_grad():
        for name, p in block.named_parameters():
            if name.endswith("bias") or name.endswith("noise_strength"):
                p.normal_(0, 0.2)  # non-trivial biases and noise
    x = torch.randn(2, 4, 4, 4, requires_grad=True)
    img = torch.randn(2, 3, 4, 4, requires_grad=True)
    ws = torch.randn(2, 3, 8, requires_grad=True)
    leaves = [x, img, ws] + list(block.parameters())

    def run(fn):
        for t in leaves:
            t.grad = None
        out_x, out_img = fn(x, img, ws, noise_mode="const")
        (out_x.square().sum() + (out_img * torch.linspace(-1, 1, 8)).sum()).backward()
        return out_x.detach(), out_img.detach(), _grads(leaves)

    want = run(block)
    compiled = torch.compile(block, fullgraph=True)  # inductor; any graph break raises
    got = run(compiled)
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got[1], want[1], rtol=1e-5, atol=1e-5)
    for g, w in zip(got[2], want[2]):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
    assert (tuple(got[0].shape), tuple(got[1].shape)) == ((2, 4, 8, 8), (2, 3, 8, 8))


def test_compiled_main_loss_with_eager_r1_matches_eager():
    torch._dynamo.reset()
    torch.manual_seed(0)
    D = Discriminator(0, 8, 3, channel_base=32, channel_max=4)
    real, fake = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    gamma = 10.0

    def d_step(main_module):
        D.zero_grad(set_to_none=True)
        loss = losses.d_loss(main_module(real), main_module(fake), "nonsaturating")
        x = real.detach().requires_grad_(True)
        logits = D(x)  # eager: the penalty needs a double backward
        loss = loss + regularizers.r1_penalty(logits, x) * (gamma / 2) + logits.sum() * 0
        loss.backward()
        return loss.detach(), {k: p.grad.clone() for k, p in D.named_parameters()}

    want_loss, want = d_step(D)
    # aot_eager keeps this test quick on 2 CPU cores; the pattern is backend-independent
    D_c = torch.compile(D, fullgraph=True, backend="aot_eager")
    got_loss, got = d_step(D_c)
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-5, atol=1e-6)
    for k, w in want.items():
        torch.testing.assert_close(got[k], w, rtol=1e-4, atol=1e-6, msg=k)

    # What the pattern avoids: the input gradient taken through the compiled module.
    x = real.detach().requires_grad_(True)
    try:
        penalty = regularizers.r1_penalty(D_c(x), x)
        penalty.backward()
    except RuntimeError as exc:  # PyTorch 2.13: compiled double backward is unsupported
        assert "double backward" in str(exc)
    else:  # should a later PyTorch support it, it must at least be right
        D.zero_grad(set_to_none=True)
        got_grads = {k: p.grad.clone() for k, p in D.named_parameters() if p.grad is not None}
        D.zero_grad(set_to_none=True)
        x2 = real.detach().requires_grad_(True)
        regularizers.r1_penalty(D(x2), x2).backward()
        for k, p in D.named_parameters():
            if p.grad is not None:
                torch.testing.assert_close(got_grads[k], p.grad, rtol=1e-4, atol=1e-6)


def test_whole_models_trace_fullgraph():
    """G (mapping with truncation, w_avg update and style mixing) and the SN discriminator
    (in-place u/v updates) trace without graph breaks (D is traced above); aot_eager keeps it quick."""
    import copy

    from gan_fast.models import Generator, SNDiscriminator

    torch._dynamo.reset()
    torch.manual_seed(0)
    G = Generator(8, 2, 8, 16, 3, mapping_kwargs=dict(num_layers=2), channel_base=64, channel_max=4)
    S = SNDiscriminator(16, 3, channels=4, channel_multipliers=(1, 2), c_dim=2)
    z, c = torch.randn(4, 8), torch.eye(2)[[0, 1, 0, 1]]
    img = torch.randn(4, 3, 16, 16)
    calls = {
        "G": (G, lambda m: m(z, c, noise_mode="const", truncation_psi=0.7, update_emas=True)),
        "S": (S, lambda m: m(img, c)),
    }
    for name, (model, call) in calls.items():
        eager = copy.deepcopy(model)
        want = call(eager)
        want.square().sum().backward()
        got = call(torch.compile(model, fullgraph=True, backend="aot_eager"))
        got.square().sum().backward()
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=name)
        for (k, a), b in zip(eager.named_parameters(), model.parameters()):
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5, msg=f"{name} {k}")
        for (k, a), b in zip(eager.named_buffers(), model.buffers()):  # w_avg, spectral-norm u/v
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=f"{name} {k}")
    torch.manual_seed(1)  # style mixing draws its cutoff with torch ops: no graph break
    assert torch.compile(G, fullgraph=True, backend="aot_eager")(z, c, style_mixing_prob=0.9).shape == (4, 3, 16, 16)

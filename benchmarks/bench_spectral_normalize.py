"""spectral_normalize cases: ``spectral_normalize`` over every layer of a BigGAN-128 D (one training forward's
worth: one power iteration + W / sigma per layer), against PyTorch's own
``torch.nn.utils.parametrizations.spectral_norm`` and ``gan_fast.nn.spectral_norm`` modules (on a fast backend,
every layer from one batched launch: ``spectral_normalize_many`` through ``spectral_norm_step``)."""

from __future__ import annotations

import contextlib
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F

from gan_fast import ops
from gan_fast.backends import spectral_norm_multi as many_backends
from gan_fast.backends import spectral_normalize as backends

from .harness import Case, fast_backends, forced

N_CLASSES = 1000


def biggan128_d_shapes(ch: int = 96) -> List[Tuple[str, Tuple[int, ...]]]:
    """Weight shapes of every spectrally normalised layer of BigGAN-PyTorch's D_arch[128] (ch=96).

    Blocks 3->ch, ch->2ch, 2ch->4ch, 4ch->8ch, 8ch->16ch (downsampling) and 16ch->16ch, each with
    two 3x3 convs and a learnable 1x1 shortcut where channels change or it downsamples; the
    self-attention layer at 64x64 (theta, phi: ch/8, g: ch/2, o); the final linear and the class
    embedding (projection discriminator).
    """
    ins = [3, ch, 2 * ch, 4 * ch, 8 * ch, 16 * ch]
    outs = [ch, 2 * ch, 4 * ch, 8 * ch, 16 * ch, 16 * ch]
    downs = [True] * 5 + [False]
    shapes: List[Tuple[str, Tuple[int, ...]]] = []
    for i, (cin, cout, down) in enumerate(zip(ins, outs, downs)):
        shapes.append((f"block{i}.conv1", (cout, cin, 3, 3)))
        shapes.append((f"block{i}.conv2", (cout, cout, 3, 3)))
        if cin != cout or down:
            shapes.append((f"block{i}.conv_sc", (cout, cin, 1, 1)))
        if i == 0:  # attention at resolution 64, after the first block
            shapes += [("attn.theta", (ch // 8, ch, 1, 1)), ("attn.phi", (ch // 8, ch, 1, 1)),
                       ("attn.g", (ch // 2, ch, 1, 1)), ("attn.o", (ch, ch // 2, 1, 1))]
    shapes += [("linear", (1, 16 * ch)), ("embed", (N_CLASSES, 16 * ch))]
    return shapes


def _sn_case(ch: int, dtype, name: str, device: torch.device) -> Case:
    shapes = biggan128_d_shapes(ch)
    nparams = sum(torch.Size(s).numel() for _, s in shapes)

    def make(device, dtype, batch):
        t: Dict[str, torch.Tensor] = {}
        for i, (_, s) in enumerate(shapes):
            t[f"w{i}"] = (torch.randn(*s, device=device) / (torch.Size(s[1:]).numel() ** 0.5)).to(dtype)
            t[f"u{i}"] = F.normalize(torch.randn(s[0], device=device), dim=0).to(dtype)
            t[f"v{i}"] = F.normalize(torch.randn(torch.Size(s[1:]).numel(), device=device), dim=0).to(dtype)
        return t

    def run(t, impl):
        outs = []
        for i in range(len(shapes)):
            w, u, v = ops.spectral_normalize(t[f"w{i}"], t[f"u{i}"], t[f"v{i}"], impl=impl)
            outs += [w, u, v]
        return outs

    def torch_sn(t):
        """PyTorch's parametrization on modules holding the same weights, u and v."""
        mods = []
        for i, (_, s) in enumerate(shapes):
            m = torch.nn.Module()
            m.weight = torch.nn.Parameter(t[f"w{i}"].detach().clone())
            torch.nn.utils.parametrizations.spectral_norm(m)
            with torch.no_grad():
                m.parametrizations.weight[0]._u.copy_(t[f"u{i}"])
                m.parametrizations.weight[0]._v.copy_(t[f"v{i}"])
            m.train()
            mods.append(m)
        tens = dict(t)
        for i, m in enumerate(mods):
            tens[f"w{i}"] = m.parametrizations.weight.original

        def forward(_t):
            outs = []
            for m in mods:
                p = m.parametrizations.weight[0]
                outs += [m.weight, p._u, p._v]
            return outs
        return forward, tens

    def nn_sn(impl):
        """gan_fast.nn.spectral_norm modules holding the same weights, u and v, with ``impl`` forced;
        a fast impl also serves every layer from one batched launch (``spectral_norm_step``)."""
        def build(t):
            from gan_fast import nn as gnn

            container = torch.nn.Module()
            mods = []
            for i, (_, s) in enumerate(shapes):
                m = torch.nn.Module()
                m.weight = torch.nn.Parameter(t[f"w{i}"].detach().clone())
                gnn.spectral_norm(m)
                with torch.no_grad():
                    m.parametrizations.weight[0]._u.copy_(t[f"u{i}"])
                    m.parametrizations.weight[0]._v.copy_(t[f"v{i}"])
                container.add_module(f"layer{i}", m)
                mods.append(m)
            container.train()
            tens = dict(t)
            for i, m in enumerate(mods):
                tens[f"w{i}"] = m.parametrizations.weight.original

            def forward(_t):
                step = contextlib.nullcontext()
                if impl == "triton":
                    step = gnn.spectral_norm_step(container, impl)
                outs = []
                with forced(impl), step:
                    for m in mods:
                        p = m.parametrizations.weight[0]
                        outs += [m.weight, p._u, p._v]
                return outs
            return forward, tens
        return build

    extra = {"torch_sn": torch_sn, "nn_sn:ref": nn_sn("ref")}
    for impl in fast_backends((backends.SPEC, many_backends.SPEC), device)[0]:
        extra[f"nn_sn:{impl}"] = nn_sn(impl)

    return Case(op="spectral_normalize", name=name,
                shape=f"BigGAN-128 D ch={ch}: {len(shapes)} layers, {nparams / 1e6:.1f}M weights", dtype=dtype,
                make=make, run=run, diff=tuple(f"w{i}" for i in range(len(shapes))), specs=(backends.SPEC,),
                passes=("fwd", "fwdbwd"), extra_baselines=extra,
                note="all layers, 1 power iteration each (a training forward's weights); torch_sn = "
                     "torch.nn.utils.parametrizations.spectral_norm; nn_sn:IMPL = gan_fast.nn.spectral_norm "
                     "modules with IMPL forced (triton: all layers in one batched launch, spectral_norm_step)")


def cases(preset: str, device: torch.device) -> List[Case]:
    if preset == "ci":
        return [_sn_case(8, torch.float32, "biggan128_D_ch8", device)]
    if preset == "biggan":
        return [_sn_case(96, torch.float32, "biggan128_D", device)]
    return []

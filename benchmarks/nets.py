"""StyleGAN2-shaped networks written as plain functions over a dict of tensors, built only from
``gan_fast.ops``, for the R1 and path-length step benchmarks.

They are not the library's models (``gan_fast.models``, timed end to end in
``bench_stylegan2_iteration``): they exist so that the two double-backward steps can be timed
on config-F shapes with a backend forced on every op that has it (each op gets an explicit ``impl``,
:func:`benchmarks.harness.impl_for`: the requested backend where the op has it, else ``ref``, as
``gan_fast.config.use_backend`` behaves; an explicit argument, unlike a ``use_backend`` block, reaches inside a
``torch.compile`` trace), and compared against a float64 run of the same function. Shapes follow StyleGAN2
config F: channels ``min(channel_base // res, channel_max)``; the D is the
resnet architecture with a minibatch-stddev epilogue, the G synthesis network
the skip architecture with constant noise (``noise_mode='const'``).
"""

from __future__ import annotations

import math
from typing import Dict, List

import torch
import torch.nn.functional as F

from gan_fast import ops
from gan_fast.backends import bias_act as _bias_act
from gan_fast.backends import gradient_norm_penalty as _gnp
from gan_fast.backends import modulated_conv2d as _modconv
from gan_fast.backends import upfirdn2d as _upfirdn2d

from .harness import impl_for

D_SPECS = (_bias_act.SPEC, _upfirdn2d.SPEC, _gnp.SPEC)
G_SPECS = (_modconv.SPEC, _bias_act.SPEC, _upfirdn2d.SPEC)
FIR = [1, 3, 3, 1]


def channels(res: int, base: int, cmax: int) -> int:
    return min(base // res, cmax)


def _resolutions(img_res: int) -> List[int]:
    """img_res, img_res/2, ..., 8 (the D blocks)."""
    out, r = [], img_res
    while r >= 8:
        out.append(r)
        r //= 2
    return out


# ------------------------------------------------------------------------------ D


def d_params(img_res: int, base: int, cmax: int, device, dtype) -> Dict[str, torch.Tensor]:
    def w(*shape):
        return torch.randn(*shape, device=device).to(dtype)

    def b(n):
        return (0.1 * torch.randn(n, device=device)).to(dtype)

    ch = lambda r: channels(r, base, cmax)  # noqa: E731
    p = {"fir": ops.setup_filter(FIR, device=device),  # a constant, made once (no host-to-device copy per call)
         "fromrgb.w": w(ch(img_res), 3, 1, 1), "fromrgb.b": b(ch(img_res))}
    for r in _resolutions(img_res):
        p[f"b{r}.conv0.w"], p[f"b{r}.conv0.b"] = w(ch(r), ch(r), 3, 3), b(ch(r))
        p[f"b{r}.conv1.w"], p[f"b{r}.conv1.b"] = w(ch(r // 2), ch(r), 3, 3), b(ch(r // 2))
        p[f"b{r}.skip.w"] = w(ch(r // 2), ch(r), 1, 1)
    c4 = ch(4)
    p["ep.conv.w"], p["ep.conv.b"] = w(c4, c4 + 1, 3, 3), b(c4)
    p["ep.fc.w"], p["ep.fc.b"] = w(c4, c4 * 16), b(c4)
    p["ep.out.w"], p["ep.out.b"] = w(1, c4), b(1)
    return p


def _conv_act(x, w, b, impl, down=1, f=None, act="lrelu", clamp=None):
    w = w * (1 / math.sqrt(w[0].numel()))
    k = w.shape[-1]
    if down == 2:
        fw = f.shape[-1]
        p = k // 2
        pad = [p + (fw - 1) // 2, p + (fw - 2) // 2] * 2  # conv2d_resample's filter-then-stride padding
        x = ops.upfirdn2d(x, f, padding=pad, impl=impl_for(_upfirdn2d.SPEC, impl))
        x = ops.conv2d(x, w, stride=2)
    else:
        x = ops.conv2d(x, w, padding=k // 2)
    if b is None:
        return x
    return ops.bias_act(x, b, act=act, clamp=clamp, impl=impl_for(_bias_act.SPEC, impl))


def _mbstd(x, group_size=4):
    n, c, h, w = x.shape
    g = min(group_size, n)
    y = x.reshape(g, -1, 1, c, h, w).float()
    y = y - y.mean(dim=0)
    y = y.square().mean(dim=0)
    y = (y + 1e-8).sqrt()
    y = y.mean(dim=[2, 3, 4])
    y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w).to(x.dtype)
    return torch.cat([x, y], dim=1)


def d_forward(p: Dict[str, torch.Tensor], img: torch.Tensor, img_res: int, impl: str) -> torch.Tensor:
    """StyleGAN2 resnet D: logits [N, 1]."""
    clamp = 256.0 if img.dtype == torch.float16 else None
    f = p["fir"]
    x = _conv_act(img, p["fromrgb.w"], p["fromrgb.b"], impl, clamp=clamp)
    for r in _resolutions(img_res):
        y = _conv_act(x, p[f"b{r}.skip.w"], None, impl, down=2, f=f)
        x = _conv_act(x, p[f"b{r}.conv0.w"], p[f"b{r}.conv0.b"], impl, clamp=clamp)
        x = _conv_act(x, p[f"b{r}.conv1.w"], p[f"b{r}.conv1.b"], impl, down=2, f=f, clamp=clamp)
        x = (y + x) * math.sqrt(0.5)
    x = _mbstd(x)
    x = _conv_act(x, p["ep.conv.w"], p["ep.conv.b"], impl, clamp=clamp)
    x = x.flatten(1)
    x = ops.bias_act(F.linear(x, p["ep.fc.w"] * (1 / math.sqrt(x.shape[1]))), p["ep.fc.b"], act="lrelu",
                     impl=impl_for(_bias_act.SPEC, impl))
    return F.linear(x, p["ep.out.w"] * (1 / math.sqrt(x.shape[1]))) + p["ep.out.b"]


def r1_step(forward, tensors, cot, impl, gamma: float = 10.0):
    """StyleGAN2's lazy R1 step: D(real), input gradient with create_graph, penalty, backward to D."""
    real = tensors["img"]
    logits = forward(tensors)
    (g,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    penalty = ops.gradient_norm_penalty(g, impl=impl_for(_gnp.SPEC, impl)) * (gamma / 2)
    params = [t for k, t in tensors.items() if k != "img" and t.requires_grad]
    grads = torch.autograd.grad(penalty, params, allow_unused=True)
    return (penalty.detach(),) + tuple(grads)


# ------------------------------------------------------------------------------ G


def g_params(img_res: int, base: int, cmax: int, w_dim: int, device, dtype) -> Dict[str, torch.Tensor]:
    def w(*shape):
        return torch.randn(*shape, device=device).to(dtype)

    ch = lambda r: channels(r, base, cmax)  # noqa: E731
    p = {"fir": ops.setup_filter(FIR, device=device), "const": w(ch(4), 4, 4)}
    r = 4
    while r <= img_res:
        convs = [("conv1", ch(r), ch(r))] if r == 4 else [("conv0", ch(r // 2), ch(r)), ("conv1", ch(r), ch(r))]
        for name, cin, cout in convs:
            k = f"s{r}.{name}"
            p[f"{k}.w"], p[f"{k}.b"] = w(cout, cin, 3, 3), (0.1 * torch.randn(cout, device=device)).to(dtype)
            p[f"{k}.aff.w"], p[f"{k}.aff.b"] = w(cin, w_dim), torch.ones(cin, device=device).to(dtype)
            p[f"{k}.noise"] = (0.1 * torch.ones(1, device=device)).to(dtype)
            p[f"{k}.noise_const"] = w(1, 1, r, r)
        k = f"s{r}.torgb"
        p[f"{k}.w"], p[f"{k}.b"] = w(3, ch(r), 1, 1), torch.zeros(3, device=device).to(dtype)
        p[f"{k}.aff.w"], p[f"{k}.aff.b"] = w(ch(r), w_dim), torch.ones(ch(r), device=device).to(dtype)
        r *= 2
    return p


def num_ws(img_res: int) -> int:
    return 2 * int(math.log2(img_res)) - 2


def g_forward(p: Dict[str, torch.Tensor], ws: torch.Tensor, img_res: int, impl: str,
              fused_modconv: bool = False) -> torch.Tensor:
    """StyleGAN2 skip-architecture synthesis network: images [N, 3, R, R] from ws [N, num_ws, w_dim]."""
    dtype = ws.dtype
    mc_impl = impl_for(_modconv.SPEC, impl)
    ba_impl = impl_for(_bias_act.SPEC, impl)
    clamp = 256.0 if dtype == torch.float16 else None
    f = p["fir"]
    n = ws.shape[0]
    x = p["const"].unsqueeze(0).repeat(n, 1, 1, 1)
    img = None
    wi = 0
    r = 4
    while r <= img_res:
        for name in (["conv1"] if r == 4 else ["conv0", "conv1"]):
            k = f"s{r}.{name}"
            styles = F.linear(ws[:, wi], p[f"{k}.aff.w"] * (1 / math.sqrt(ws.shape[2])), p[f"{k}.aff.b"])
            noise = p[f"{k}.noise_const"] * p[f"{k}.noise"]
            up = 2 if name == "conv0" else 1
            x = ops.modulated_conv2d(x, p[f"{k}.w"], styles, noise=noise, up=up, padding=1,
                                     resample_filter=f if up > 1 else None, fused_modconv=fused_modconv,
                                     impl=mc_impl)
            x = ops.bias_act(x, p[f"{k}.b"], act="lrelu", clamp=clamp, impl=ba_impl)
            wi += 1
        k = f"s{r}.torgb"
        styles = F.linear(ws[:, wi], p[f"{k}.aff.w"] * (1 / math.sqrt(ws.shape[2])), p[f"{k}.aff.b"])
        styles = styles * (1 / math.sqrt(p[f"{k}.w"][0].numel()))
        y = ops.modulated_conv2d(x, p[f"{k}.w"], styles, demodulate=False, fused_modconv=fused_modconv,
                                 impl=mc_impl)
        y = ops.bias_act(y, p[f"{k}.b"], clamp=clamp, impl=ba_impl)
        img = y if img is None else ops.upsample2d(img, f, impl=impl_for(_upfirdn2d.SPEC, impl)) + y
        r *= 2
    return img


def pl_step(forward, tensors, cot, impl, pl_mean: float = 0.5):
    """StyleGAN2's lazy path-length step: |J_w^T y| per sample, (length - a)^2, backward to G."""
    ws = tensors["ws"]
    img = forward(tensors)
    y = cot.get("pl_noise", img.shape, img.dtype) / math.sqrt(img.shape[2] * img.shape[3])
    (g,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)
    lengths = g.float().square().sum(2).mean(1).sqrt()
    penalty = (lengths - pl_mean).square().mean()
    params = [t for k, t in tensors.items() if k != "ws" and t.requires_grad]
    grads = torch.autograd.grad(penalty, params, allow_unused=True)
    return (penalty.detach(),) + tuple(grads)

"""gan_fast.nn.alias_free: StyleGAN3's synthesis layer against an independent composition written here
(StyleGAN3's modulated convolution per sample with F.conv2d, and the filtered leaky ReLU as explicit zero
insertion, padding, 2-D convolutions and strides), shapes at StyleGAN3-T layer configurations, the state dict,
gradients and second order."""

import math

import pytest
import torch
import torch.nn.functional as F

from gan_fast import backend
from gan_fast.filter_design import design_lowpass_filter
from gan_fast.nn.alias_free import AliasFreeSynthesisLayer, stylegan3_layer_configs

W_DIM = 6


def _layer(cfg, in_ch=3, out_ch=4, seed=0, **over):
    torch.manual_seed(seed)
    cfg = dict(cfg, w_dim=W_DIM, **over)
    if not cfg["is_torgb"]:
        cfg.update(in_channels=in_ch, out_channels=out_ch)
    else:
        cfg.update(in_channels=in_ch)
    layer = AliasFreeSynthesisLayer(**cfg)
    with torch.no_grad():  # a bias and a style spread that exercise every part
        layer.bias.normal_(0, 0.3)
        layer.affine.bias.add_(0.2 * torch.randn_like(layer.affine.bias))
    return layer


T16 = stylegan3_layer_configs(16)          # 36 px layers at rate 16, the critically sampled 36 -> 16, ToRGB
T32 = stylegan3_layer_configs(32)          # adds the up-4 layer (rate 16 -> 32, 36 -> 52 px)
R16 = stylegan3_layer_configs(16, conv_kernel=1, use_radial_filters=True)
CONFIGS = {
    "T_36to36_up2": T16[1],
    "T_36to52_up4": T32[5],
    "T_critical_36to16": T16[13],
    "T_torgb": T16[14],
    "R_36to36_radial": R16[1],
}


def _inputs(layer, n=2, dtype=torch.float64, device="cpu", seed=1):
    gen = torch.Generator().manual_seed(seed)
    w_, h_ = layer.in_size
    x = torch.randn(n, layer.in_channels, h_, w_, generator=gen, dtype=torch.float64)
    w = torch.randn(n, layer.w_dim, generator=gen, dtype=torch.float64)
    return x.to(device=device, dtype=dtype), w.to(device=device, dtype=dtype)


# ---------------------------------------------------------------- the independent definition


def _modconv_explicit(x, weight, styles, demodulate, input_gain, padding, prenormalize=False):
    """StyleGAN3's modulated convolution written out: modulate, demodulate, scale by the input gain, one
    correlation per sample. ``prenormalize``: StyleGAN3 first scales the weight (per output channel) and
    the styles (one scalar) to unit mean square; exact under demodulation but for where the 1e-8 epsilon
    sits, which gan_fast (as DESIGN.md's modulated_conv2d) does not do in float32."""
    if demodulate and prenormalize:
        weight = weight * weight.square().mean([1, 2, 3], keepdim=True).rsqrt()
        styles = styles * styles.square().mean().rsqrt()
    out = []
    for n in range(x.shape[0]):
        wn = weight * styles[n].reshape(1, -1, 1, 1)
        if demodulate:
            wn = wn * (wn.square().sum([1, 2, 3], keepdim=True) + 1e-8).rsqrt()
        out.append(F.conv2d(x[n:n + 1], wn * input_gain, padding=padding))
    return torch.cat(out)


def _fir(x, f, gain):
    """True 2-D convolution of every channel with f (1-D: its outer product), no padding."""
    f = torch.ones(1, 1, dtype=x.dtype) if f is None else f.to(x.dtype)
    if f.ndim == 1:
        f = f.outer(f)
    n, c, h, w = x.shape
    y = F.conv2d(x.reshape(n * c, 1, h, w), (f * gain).flip([0, 1])[None, None])
    return y.reshape(n, c, *y.shape[2:])


def _filtered_lrelu_explicit(x, fu, fd, b, up, down, padding, gain, slope, clamp):
    x = x + b.reshape(1, -1, 1, 1)
    n, c, h, w = x.shape
    z = x.new_zeros(n, c, h * up, w * up)
    z[:, :, ::up, ::up] = x                     # zero insertion
    z = F.pad(z, list(padding))                 # [x0, x1, y0, y1]; negative pads crop
    z = _fir(z, fu, up ** 2)
    z = F.leaky_relu(z, slope) * gain
    if clamp is not None:
        z = z.clamp(-clamp, clamp)
    return _fir(z, fd, 1)[:, :, ::down, ::down]


def _layer_explicit(layer, x, w, clamp="layer", prenormalize=False):
    styles = F.linear(w, layer.affine.weight.to(w.dtype) / math.sqrt(layer.w_dim), layer.affine.bias.to(w.dtype))
    if layer.is_torgb:
        styles = styles / math.sqrt(layer.in_channels * layer.conv_kernel ** 2)
    gain = layer.magnitude_ema.to(x.dtype).rsqrt()  # (StyleGAN3: in float32; the layer does so below float64)
    y = _modconv_explicit(x, layer.weight.to(x.dtype), styles, not layer.is_torgb, gain, layer.conv_kernel - 1,
                          prenormalize)
    act_gain, slope = (1.0, 1.0) if layer.is_torgb else (math.sqrt(2), 0.2)
    return _filtered_lrelu_explicit(y, layer.up_filter, layer.down_filter, layer.bias.to(x.dtype), layer.up_factor,
                                    layer.down_factor, layer.padding, act_gain, slope,
                                    layer.conv_clamp if clamp == "layer" else clamp)


# ---------------------------------------------------------------------------- tests


def test_configs_are_stylegan3_t():
    """StyleGAN3-T at 256 px: the paper's sizes (sampling rate + 2 * margin 10), channels, factors."""
    cfgs = stylegan3_layer_configs(256)
    assert len(cfgs) == 15
    assert [c["out_size"] for c in cfgs] == [36, 36, 36, 52, 52, 84, 84, 148, 148, 148, 276, 276, 276, 256, 256]
    assert [c["out_channels"] for c in cfgs] == [512] * 9 + [362, 256, 181, 128, 128, 3]
    assert [c["out_sampling_rate"] for c in cfgs] == [16, 16, 16, 32, 32, 64, 64, 128, 128, 128, 256, 256, 256,
                                                      256, 256]
    assert cfgs[-1]["is_torgb"] and sum(c["is_critically_sampled"] for c in cfgs) == 3
    assert cfgs[0]["in_cutoff"] == 2 and cfgs[-1]["out_cutoff"] == 128
    assert [c["use_fp16"] for c in cfgs] == [False] * 3 + [True] * 12
    for prev, cur in zip(cfgs, cfgs[1:]):
        assert cur["in_size"] == prev["out_size"] and cur["in_channels"] == prev["out_channels"]
    layer = AliasFreeSynthesisLayer(**dict(cfgs[10], in_channels=2, out_channels=2))
    assert (layer.up_factor, layer.down_factor, layer.up_taps, layer.down_taps) == (4, 2, 24, 12)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_shapes_filters_and_padding(name):
    layer = _layer(CONFIGS[name])
    x, w = _inputs(layer, dtype=torch.float32)
    y = layer(x, w)
    out_w, out_h = layer.out_size
    assert y.shape == (2, layer.out_channels, out_h, out_w) and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    if layer.is_torgb:
        assert layer.up_filter is None and layer.down_filter is None and layer.padding == (0, 0, 0, 0)
        return
    cfg = CONFIGS[name]
    tmp = max(cfg["in_sampling_rate"], cfg["out_sampling_rate"]) * 2
    want_up = design_lowpass_filter(6 * layer.up_factor, cfg["in_cutoff"], 2 * cfg["in_half_width"], tmp)
    radial = cfg.get("use_radial_filters", False) and not cfg["is_critically_sampled"]
    want_down = design_lowpass_filter(6 * layer.down_factor, cfg["out_cutoff"], 2 * cfg["out_half_width"], tmp,
                                      radial=radial)
    assert torch.equal(layer.up_filter, want_up) and torch.equal(layer.down_filter, want_down)
    assert layer.down_filter.ndim == (2 if radial else 1)
    # The padding gives exactly out_size, with the low side ahead by up // 2 (the symmetric interpretation).
    for axis, (n_in, n_out) in enumerate(zip(layer.in_size, layer.out_size)):
        p0, p1 = layer.padding[2 * axis: 2 * axis + 2]
        full = (n_in + layer.conv_kernel - 1) * layer.up_factor + p0 + p1 - (layer.up_taps - 1)
        assert (full - (layer.down_taps - 1) + layer.down_factor - 1) // layer.down_factor == n_out
        assert p0 - p1 in (layer.up_factor // 2, layer.up_factor // 2 + 1)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_independent_composition(name):
    layer = _layer(CONFIGS[name], conv_clamp=1.0)  # a clamp that bites
    layer.magnitude_ema.fill_(0.64)                 # input gain 1.25
    x, w = _inputs(layer)
    want = _layer_explicit(layer, x, w)
    assert (want - _layer_explicit(layer, x, w, clamp=None)).abs().max() > 0.05
    for fused in (True, False):
        got = layer(x, w, fused_modconv=fused)
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    # StyleGAN3's pre-normalised form: the same up to the epsilon's placement (1e-8 against sums of ~I k^2).
    torch.testing.assert_close(got, _layer_explicit(layer, x, w, prenormalize=True), rtol=1e-7, atol=1e-7)
    got32 = layer(x.float(), w.float())
    torch.testing.assert_close(got32, want.float(), rtol=1e-4, atol=1e-4)


def test_state_dict_matches_stylegan3_keys_and_round_trips():
    cfg = CONFIGS["R_36to36_radial"]
    layer = _layer(cfg)
    sd = layer.state_dict()
    assert set(sd) == {"affine.weight", "affine.bias", "weight", "bias", "magnitude_ema", "up_filter", "down_filter"}
    assert sd["affine.weight"].shape == (3, W_DIM) and sd["weight"].shape == (4, 3, 1, 1)
    assert sd["magnitude_ema"].shape == () and sd["up_filter"].shape == (12,) and sd["down_filter"].shape == (12, 12)
    torgb = _layer(CONFIGS["T_torgb"])
    assert set(torgb.state_dict()) == {"affine.weight", "affine.bias", "weight", "bias", "magnitude_ema"}

    # A StyleGAN3 layer's state dict, built by hand with its shapes, loads strictly and is used.
    torch.manual_seed(5)
    foreign = {"affine.weight": torch.randn(3, W_DIM), "affine.bias": torch.ones(3) + 0.1 * torch.randn(3),
               "weight": torch.randn(4, 3, 1, 1), "bias": 0.1 * torch.randn(4), "magnitude_ema": torch.tensor(0.5),
               "up_filter": sd["up_filter"].clone(), "down_filter": sd["down_filter"].clone()}
    other = _layer(cfg, seed=1)
    other.load_state_dict(foreign, strict=True)
    x, w = _inputs(other)
    torch.testing.assert_close(other(x, w), _layer_explicit(other, x, w), rtol=1e-10, atol=1e-10)

    # Round trip: a fresh layer given this one's state dict computes the same thing.
    layer.magnitude_ema.fill_(2.0)
    fresh = _layer(cfg, seed=7)
    fresh.load_state_dict(layer.state_dict())
    torch.testing.assert_close(fresh(x, w), layer(x, w), rtol=0, atol=0)


def test_magnitude_ema_update():
    layer = _layer(CONFIGS["T_36to36_up2"]).train()
    x, w = _inputs(layer, dtype=torch.float32)
    x = x * 3
    y0 = layer(x, w)
    assert layer.magnitude_ema.item() == 1.0
    layer(x, w, update_emas=True)
    m = x.square().mean().item()
    assert layer.magnitude_ema.item() == pytest.approx(m + 0.999 * (1 - m), rel=1e-6)
    assert not torch.allclose(layer(x, w), y0)


@pytest.mark.parametrize("name", ["T_36to36_up2", "T_torgb"])
def test_gradients_reach_everything(name):
    layer = _layer(CONFIGS[name]).train()
    x, w = _inputs(layer, dtype=torch.float32)
    x.requires_grad_()
    w.requires_grad_()
    y = layer(x, w)
    y.backward(torch.randn_like(y))
    for t in (x, w, layer.weight, layer.bias, layer.affine.weight, layer.affine.bias):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_gradcheck_float64():
    layer = AliasFreeSynthesisLayer(w_dim=3, is_torgb=False, is_critically_sampled=False, use_fp16=False,
                                    in_channels=2, out_channels=2, in_size=6, out_size=6, in_sampling_rate=4,
                                    out_sampling_rate=4, in_cutoff=1.0, out_cutoff=1.2, in_half_width=1.0,
                                    out_half_width=0.8, conv_clamp=None)
    torch.manual_seed(0)
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: layer(x, w, impl="ref"), (x, w))


def _path_length_grads(layer, x, w, y, impl):
    """The path-length step's second order: g = d sum(out * y) / dw with a graph, then backward of |g|^2."""
    layer.zero_grad()
    x = x.detach().requires_grad_()
    w = w.detach().requires_grad_()
    out = layer(x, w, impl=impl)
    (g,) = torch.autograd.grad((out * y).sum(), w, create_graph=True)
    g.square().sum().backward()
    leaves = (x, w, layer.weight, layer.bias, layer.affine.weight, layer.affine.bias)
    # The bias reaches g only through the activation's piecewise-constant slope: its gradient may be None.
    return [out.detach(), g.detach()] + [t.grad if t.grad is not None else torch.zeros_like(t) for t in leaves]


def _other_impls(device):
    """The automatic choice, and on CPU under the Triton interpreter also an explicit 'triton' (tiny shapes)."""
    out = [None]
    if device.type == "cpu" and backend.interpreter_enabled() and backend.available_backends(device)["triton"][0]:
        out.append("triton")
    return out


@pytest.mark.parametrize("name", ["T_36to36_up2", "T_torgb"])
def test_second_order_matches_ref(name, device):
    small = dict(CONFIGS[name])
    if not small["is_torgb"]:  # a smaller image of the same layer (interpreter time)
        small.update(in_size=10, out_size=10)
    layer = _layer(small, in_ch=2, out_ch=3).to(device).train()
    x, w = _inputs(layer, n=2, dtype=torch.float32, device=device)
    y = torch.randn(layer(x, w).shape, device=device)
    want = _path_length_grads(layer, x, w, y, "ref")
    # On CUDA both paths run cuDNN convolutions, which may use TF32 (PyTorch's default for convolutions).
    tol = 1e-4 if device.type == "cpu" else 5e-3
    for impl in _other_impls(device):
        got = _path_length_grads(layer, x, w, y, impl)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=tol, atol=tol * max(1.0, b.abs().max().item()))


def test_bad_arguments():
    cfg = CONFIGS["T_36to36_up2"]
    layer = _layer(cfg)
    x, w = _inputs(layer, dtype=torch.float32)
    with pytest.raises(ValueError, match="x must be"):
        layer(x[:, :, :-1], w)
    with pytest.raises(ValueError, match="channels"):
        layer(x[:, :2], w)
    with pytest.raises(ValueError, match="w must have shape"):
        layer(x, w[:1])
    with pytest.raises(ValueError, match="noise_mode"):
        layer(x, w, noise_mode="loud")
    with pytest.raises(ValueError, match="integer ratio"):
        _layer(cfg, out_sampling_rate=12)
    with pytest.raises(ValueError, match="conv_clamp"):
        _layer(cfg, conv_clamp=-1)
    with pytest.raises(ValueError, match="in_cutoff"):
        _layer(cfg, in_cutoff=float("nan"))
    with pytest.raises(ValueError, match="in_size"):
        _layer(cfg, in_size=[36, 36, 36])


def test_size_pairs_and_numpy_like_scalars():
    """Sizes as [width, height] (StyleGAN3 broadcasts to [2]); a non-square layer pads each axis on its own."""
    cfg = dict(CONFIGS["T_36to36_up2"], in_size=[12, 10], out_size=[12, 10])
    layer = _layer(cfg)
    assert layer.padding == (9, 8, 9, 8)
    x = torch.randn(1, 3, 10, 12)
    assert layer(x, torch.randn(1, W_DIM)).shape == (1, 4, 10, 12)


@pytest.mark.gpu
def test_fp16_layer_on_gpu(device):
    """use_fp16 on CUDA: float16 output near the float32 one (force_fp32), StyleGAN3-T 256's up-4 layer."""
    cfg = stylegan3_layer_configs(256)[10]
    layer = AliasFreeSynthesisLayer(**cfg).to(device)
    x = torch.randn(2, cfg["in_channels"], cfg["in_size"], cfg["in_size"], device=device)
    w = torch.randn(2, cfg["w_dim"], device=device)
    y16 = layer(x, w)
    y32 = layer(x, w, force_fp32=True)
    assert y16.dtype == torch.float16 and y32.dtype == torch.float32
    torch.testing.assert_close(y16.float(), y32, rtol=2e-2, atol=2e-2 * y32.abs().max().item())
    y_ref = layer(x, w, force_fp32=True, impl="ref")
    torch.testing.assert_close(y32, y_ref, rtol=1e-3, atol=1e-3 * y_ref.abs().max().item())

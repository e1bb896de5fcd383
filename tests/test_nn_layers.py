"""gan_fast.nn layers against formulas written here: equalized-lr layers, mapping, modulated
convolution, synthesis layer, ToRGB, minibatch std, AdaIN; second-order gradients; errors."""

import math

import pytest
import torch
import torch.nn.functional as F

from gan_fast import config
from gan_fast import nn as gnn
from gan_fast import ops
from gan_fast.reference.conv2d_resample import conv2d_resample as ref_conv2d_resample


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI machine has 2 shared cores; oversubscription is far slower
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("k, up, down", [(3, 1, 1), (3, 2, 1), (3, 1, 2), (1, 1, 2), (1, 2, 1), (2, 1, 1)])
@pytest.mark.parametrize("groups", [1, 2])
def test_conv2d_resample_matches_reference(k, up, down, groups):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64, generator=g)
    w = torch.randn(6, 4 // groups, k, k, dtype=torch.float64, generator=g)
    f = ops.setup_filter([1, 3, 3, 1]).double()
    for flip in (True, False):
        got = gnn.conv2d_resample(x, w, f, up=up, down=down, padding=k // 2, groups=groups, flip_weight=flip)
        want = ref_conv2d_resample(x, w, f, up, down, (k // 2,) * 4, groups=groups, flip_weight=flip)
        torch.testing.assert_close(got, want)


def test_fully_connected_layer_formula():
    torch.manual_seed(0)
    for act, lr_mul, bias_init in [("linear", 1.0, 0.0), ("lrelu", 0.01, 0.5), ("linear", 0.1, 1.0)]:
        layer = gnn.FullyConnectedLayer(5, 3, activation=act, lr_multiplier=lr_mul, bias_init=bias_init)
        layer.bias.data.add_(torch.randn(3) * 0.1)
        assert torch.allclose(layer.weight.std() * lr_mul, torch.tensor(1.0), atol=0.5)
        x = torch.randn(4, 5)
        y = x @ (layer.weight * lr_mul / math.sqrt(5)).t() + layer.bias * lr_mul
        if act == "lrelu":
            y = F.leaky_relu(y, 0.2) * math.sqrt(2)
        torch.testing.assert_close(layer(x), y)
        torch.testing.assert_close(layer(x[None]), y[None])  # [..., in] inputs
    nb = gnn.FullyConnectedLayer(5, 3, bias=False)
    assert nb.bias is None
    torch.testing.assert_close(nb(x), x @ (nb.weight / math.sqrt(5)).t())


def test_conv2d_layer_formula_and_resampling():
    torch.manual_seed(0)
    layer = gnn.Conv2dLayer(3, 5, 3, activation="lrelu", conv_clamp=0.5)
    layer.bias.data.normal_()
    x = torch.randn(2, 3, 8, 8)
    want = F.leaky_relu(F.conv2d(x, layer.weight / math.sqrt(27), layer.bias, padding=1), 0.2) * math.sqrt(2)
    torch.testing.assert_close(layer(x), want.clamp(-0.5, 0.5))
    torch.testing.assert_close(layer(x, gain=0.5), (want * 0.5).clamp(-0.25, 0.25))
    for up, down, size in [(2, 1, 16), (1, 2, 4)]:
        layer = gnn.Conv2dLayer(3, 5, 3, up=up, down=down, bias=False)
        y = layer(x)
        assert y.shape == (2, 5, size, size)
        want = ref_conv2d_resample(x, layer.weight / math.sqrt(27), layer.resample_filter, up, down, (1, 1, 1, 1),
                                   flip_weight=(up == 1))
        torch.testing.assert_close(y, want)
    cl = gnn.Conv2dLayer(3, 4, 3, channels_last=True)
    assert cl.weight.is_contiguous(memory_format=torch.channels_last)
    assert cl(x.to(memory_format=torch.channels_last)).shape == (2, 4, 8, 8)


def test_mapping_network_normalization_ema_and_truncation():
    torch.manual_seed(0)
    m = gnn.MappingNetwork(z_dim=6, c_dim=3, w_dim=4, num_ws=5, num_layers=2, w_avg_beta=0.5)
    z, c = torch.randn(7, 6), torch.randn(7, 3)
    ws = m(z, c)
    assert ws.shape == (7, 5, 4)
    assert torch.equal(ws[:, 0], ws[:, 4])
    # z is normalised to its second moment: scaling z changes nothing
    torch.testing.assert_close(m(z * 10, c), ws)
    assert torch.equal(m.w_avg, torch.zeros(4))
    m(z, c, update_emas=True)
    torch.testing.assert_close(m.w_avg, ws[:, 0].mean(0) * 0.5)
    torch.testing.assert_close(m(z, c, truncation_psi=0)[:, 2], m.w_avg.expand(7, 4))
    cut = m(z, c, truncation_psi=0.5, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, :2], m.w_avg.lerp(ws[:, :2], 0.5))
    torch.testing.assert_close(cut[:, 2:], ws[:, 2:])
    # c-only mapping (conditional discriminator): [N, w_dim]
    cm = gnn.MappingNetwork(z_dim=0, c_dim=3, w_dim=4, num_ws=None, w_avg_beta=None)
    assert cm(None, c).shape == (7, 4)
    assert "w_avg" not in dict(cm.named_buffers())


def _modconv_formula(x, weight, styles, demodulate, up=1, f=None):
    w = weight[None] * styles[:, None, :, None, None]
    if demodulate:
        w = w / (w.square().sum(dim=[2, 3, 4], keepdim=True) + 1e-8).sqrt()
    out = []
    for n in range(x.shape[0]):
        out.append(ref_conv2d_resample(x[n:n + 1], w[n], f, up, 1, (weight.shape[-1] // 2,) * 4,
                                       flip_weight=(up == 1)))
    return torch.cat(out)


@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv_and_synthesis_layer(up):
    torch.manual_seed(0)
    layer = gnn.SynthesisLayer(4, 3, w_dim=6, resolution=8 * up, up=up, conv_clamp=0.7)
    layer.bias.data.normal_()
    layer.noise_strength.data.fill_(0.3)
    x, w = torch.randn(2, 4, 8, 8), torch.randn(2, 6)
    styles = layer.affine(w)
    base = _modconv_formula(x, layer.weight, styles, True, up, layer.resample_filter)
    for mode, noise in [("none", 0), ("const", layer.noise_const * 0.3)]:
        want = (F.leaky_relu(base + noise + layer.bias[None, :, None, None], 0.2) * math.sqrt(2)).clamp(-0.7, 0.7)
        for fused in (True, False):
            torch.testing.assert_close(layer(x, w, noise_mode=mode, fused_modconv=fused), want,
                                       rtol=1e-5, atol=1e-5)
    torch.manual_seed(1)
    a = layer(x, w, noise_mode="random")
    torch.manual_seed(1)
    assert torch.equal(a, layer(x, w, noise_mode="random"))
    assert not torch.allclose(a, layer(x, w, noise_mode="random"))
    # the affine starts with bias 1: initial styles are near 1
    assert torch.equal(layer.affine.bias.data, torch.ones(4))
    mod = gnn.ModulatedConv2d(4, 3, 6, kernel_size=3)
    torch.testing.assert_close(mod(x, w), _modconv_formula(x, mod.weight, mod.affine(w), True), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("layer_kind", ["conv", "up2", "torgb"])
def test_layers_on_the_fused_backend_match_ref(layer_kind):
    """Training-mode SynthesisLayer / ToRGB (one modulated_conv2d_bias_act call each) with every op forced to
    its Triton backend (the interpreter on CPU) against every op on ref: output and all parameter gradients."""
    torch.manual_seed(0)
    if layer_kind == "torgb":
        layer, res_in = gnn.ToRGB(4, 3, w_dim=6, conv_clamp=0.9), 6
        run = lambda x, w: layer(x, w, fused_modconv=False)  # noqa: E731
    else:
        up = 2 if layer_kind == "up2" else 1
        layer, res_in = gnn.SynthesisLayer(4, 3, w_dim=6, resolution=6 * up, up=up, conv_clamp=0.7), 6
        layer.noise_strength.data.fill_(0.3)
        run = lambda x, w: layer(x, w, noise_mode="const", fused_modconv=False)  # noqa: E731
    layer.bias.data.normal_()
    x, w = torch.randn(2, 4, res_in, res_in, requires_grad=True), torch.randn(2, 6)
    results = {}
    for impl in ("ref", "triton"):
        layer.zero_grad()
        with config.use_backend(impl):
            y = run(x, w)
            gx, = torch.autograd.grad(y.square().sum(), [x], retain_graph=True)
            y.square().sum().backward()
        results[impl] = [y, gx] + [p.grad.clone() for p in layer.parameters()]
    for a, b in zip(results["triton"], results["ref"]):
        torch.testing.assert_close(a, b, rtol=2e-4, atol=2e-5)


def test_torgb_is_not_demodulated_and_keys_follow_stylegan2():
    torch.manual_seed(0)
    rgb = gnn.ToRGB(4, 3, w_dim=6)
    rgb.bias.data.normal_()
    x, w = torch.randn(2, 4, 5, 5), torch.randn(2, 6)
    want = _modconv_formula(x, rgb.weight, rgb.affine(w) / math.sqrt(4), False) + rgb.bias[None, :, None, None]
    torch.testing.assert_close(rgb(x, w), want)
    assert set(rgb.state_dict()) == {"affine.weight", "affine.bias", "weight", "bias"}
    sl = gnn.SynthesisLayer(4, 4, 6, resolution=8)
    assert set(sl.state_dict()) == {"affine.weight", "affine.bias", "weight", "resample_filter", "noise_const",
                                    "noise_strength", "bias"}


def test_minibatch_std_matches_loop():
    torch.manual_seed(0)
    x = torch.randn(8, 6, 3, 3, dtype=torch.float64)
    for group_size, num_channels in [(4, 1), (2, 2), (None, 3), (16, 1)]:
        y = gnn.MinibatchStdLayer(group_size, num_channels)(x)
        g = min(group_size or 8, 8)
        m = 8 // g
        assert y.shape == (8, 6 + num_channels, 3, 3)
        assert torch.equal(y[:, :6], x)
        c = 6 // num_channels
        for i in range(8):
            members = x[[j for j in range(8) if j % m == i % m]]
            for fi in range(num_channels):
                part = members[:, fi * c:(fi + 1) * c]
                std = ((part - part.mean(0)).square().mean(0) + 1e-8).sqrt().mean()
                torch.testing.assert_close(y[i, 6 + fi], std.expand(3, 3))


def test_adain_statistics():
    torch.manual_seed(0)
    ada = gnn.AdaIN(3, w_dim=5)
    x, w = torch.randn(2, 3, 6, 6) * 4 + 2, torch.randn(2, 5)
    y = ada(x, w)
    style = ada.affine(w)
    torch.testing.assert_close(y.mean(dim=[2, 3]), style[:, 3:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y.var(dim=[2, 3], unbiased=False).sqrt(), (style[:, :3] + 1).abs(),
                               atol=1e-4, rtol=1e-4)


def test_second_order_gradients_float64():
    """R1 and path length differentiate the layers twice: gradgradcheck the composites."""
    torch.manual_seed(0)
    conv = gnn.Conv2dLayer(2, 2, 3, activation="lrelu", down=2).double()
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x: conv(x), (x,))
    syn = gnn.SynthesisLayer(2, 2, w_dim=3, resolution=4, up=2, activation="softplus").double()
    xs = torch.randn(2, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    ws = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    for fused in (True, False):
        assert torch.autograd.gradgradcheck(lambda x, w: syn(x, w, noise_mode="none", fused_modconv=fused),
                                            (xs, ws))


def test_errors_name_the_argument():
    fc = gnn.FullyConnectedLayer(5, 3)
    with pytest.raises(ValueError, match=r"x must have shape \[\.\.\., 5\]"):
        fc(torch.randn(2, 4))
    conv = gnn.Conv2dLayer(3, 4, 3)
    with pytest.raises(ValueError, match="x must be 4-D"):
        conv(torch.randn(3, 8, 8))
    with pytest.raises(ValueError, match="x must have 3 channels"):
        conv(torch.randn(1, 2, 8, 8))
    with pytest.raises(TypeError, match="x must have a floating-point dtype"):
        conv(torch.ones(1, 3, 8, 8, dtype=torch.long))
    syn = gnn.SynthesisLayer(4, 4, w_dim=6, resolution=8)
    with pytest.raises(ValueError, match=r"w must have shape \[2, 6\]"):
        syn(torch.randn(2, 4, 8, 8), torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"x must be \[N, 4, 8, 8\]"):
        syn(torch.randn(2, 4, 4, 4), torch.randn(2, 6))
    with pytest.raises(ValueError, match="noise_mode"):
        syn(torch.randn(2, 4, 8, 8), torch.randn(2, 6), noise_mode="fixed")
    m = gnn.MappingNetwork(4, 0, 4, 2)
    with pytest.raises(ValueError, match=r"z must have shape \[N, 4\]"):
        m(torch.randn(2, 3))
    with pytest.raises(ValueError, match="batch size 6 must be divisible by the group size 4"):
        gnn.MinibatchStdLayer(4)(torch.randn(6, 2, 2, 2))
    with pytest.raises(ValueError, match="x must have 3 channels"):
        gnn.AdaIN(3, 5)(torch.randn(2, 4, 3, 3), torch.randn(2, 5))
    with pytest.raises(ValueError, match="resample_filter is required"):
        gnn.ModulatedConv2d(2, 2, 2, up=2, resample_filter=None)
    with pytest.raises(ValueError, match="in_channels must be >= 1"):
        gnn.Conv2dLayer(0, 2, 3)

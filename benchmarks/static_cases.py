"""The Triton launches of the ``decisive`` benchmark preset at its full shapes, made by the launchers on meta
tensors (no GPU, no data): what ``benchmarks/static_report.py`` compiles and reports.

The public ops are not called: their backend glue is being reorganised, and on meta tensors a custom op runs its
fake implementation, not the launcher. Instead each decisive case (:data:`CASES`, one per label of
``presets.DECISIVE``) calls the launchers of ``gan_fast.kernels`` in the order and at the shapes the op's triton
backend launches them in the case's passes (forward with autograd recording; the plain backward; the
``create_graph`` backward and the second order where the case times ``dbl``), its Triton baselines included
(``triton:implicit_gemm``, ``composed:triton``, ``nn_sn:triton``). Shapes come from ``presets`` (batch, channel
base and maximum) and from the StyleGAN3-T layer table below; ``tests/test_static_report.py`` keeps the labels
and shapes in sync with ``presets.DECISIVE`` and the benchmark modules.

A launcher plans its launch for the device ``static_report`` assumes (``gan_fast.kernels._device``), so the
grids, splits, block sizes and autotune configs are those a GPU of that description gets.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from . import presets
from .bench_spectral_normalize import biggan128_d_shapes  # the case's own layer list

SQRT2 = math.sqrt(2.0)
LRELU = (2, 0.2, SQRT2)    # (act code, alpha, gain)
LINEAR = (0, 0.0, 1.0)
FIR4 = 4                   # [1, 3, 3, 1] expanded to 4 x 4 (setup_filter keeps filters under 8 taps 2-D)
SG3_RES, SG3_BATCH = 256, 8
# filtered_lrelu's float32 dot precision for the launches (None: the kernels' default; the static report's
# --flrelu-fp32 sets it, e.g. 'ieee' to report the opt-in exact path)
FLRELU_FP32: Optional[str] = None

# StyleGAN3-T 256 px layers the decisive cases use (stylegan3_layer_configs(256), margin 10), as
# gan_fast.nn.AliasFreeSynthesisLayer builds them: index -> (in channels, out channels, in size, up, up taps,
# down, down taps, padding [x0, x1, y0, y1], conv kernel). The filtered_lrelu input is the conv output
# (in size + kernel - 1). tests/test_static_report.py checks these against the layer when it imports.
SG3_LAYERS: Dict[int, Tuple[int, int, int, int, int, int, int, Tuple[int, int, int, int], int]] = {
    10: (362, 256, 148, 4, 24, 2, 12, (-6, -9, -6, -9), 3),
    11: (256, 181, 276, 2, 12, 2, 12, (9, 8, 9, 8), 3),
}
BIGGAN_CH = 96
MBD_B, MBD_C = 100, 5


def _k(name: str):
    import importlib  # noqa: PLC0415

    return importlib.import_module(f"gan_fast.kernels.{name}")


def T(*shape: int, dtype: torch.dtype, channels_last: bool = False) -> torch.Tensor:
    """An empty meta tensor (a launcher sees its shape, strides and dtype; data_ptr 0: 16-byte aligned)."""
    t = torch.empty(shape, dtype=dtype, device="meta")
    return t.to(memory_format=torch.channels_last) if channels_last else t


def channels(res: int) -> int:
    return presets.sg2_channels(res)


# ------------------------------------------------------------------------------------------------- op pieces


def bias_act(shape: Sequence[int], dtype, act=LRELU, clamp: Optional[float] = None, dim: int = 1,
             passes=("fwd", "fwdbwd", "dbl"), need_b: bool = True) -> None:
    """``ops.bias_act`` on the triton backend: forward; plain backward (dx and db in one pass); the create_graph
    backward (dx) and its backward (d dy; the second derivative only for activations that have one)."""
    K = _k("bias_act")
    code, alpha, gain = act
    x, b = T(*shape, dtype=dtype), T(shape[dim], dtype=dtype)
    C, inner = K.channel_geometry(tuple(shape), dim)
    args = (code, alpha, gain, clamp, C, inner)
    if "fwd" in passes:
        K.bias_act_fwd(x, b, *args)
    if "fwdbwd" in passes:
        (K.bias_act_grad_db if need_b else K.bias_act_grad)(torch.empty_like(x), x, b, *args)
    if "dbl" in passes:
        K.bias_act_grad(torch.empty_like(x), x, b, *args)          # first gradient, create_graph
        K.bias_act_grad(torch.empty_like(x), x, b, *args)          # its backward w.r.t. dy
        if code not in (0, 1, 2):                                  # act'' != 0: w.r.t. x and b
            K.bias_act_grad2_db(torch.empty_like(x), torch.empty_like(x), x, b, *args)


def upfirdn2d(shape: Sequence[int], dtype, up: int, down: int, pad: Tuple[int, int, int, int], taps: int = FIR4,
              gain: float = 1.0, passes=("fwd", "fwdbwd", "dbl"), channels_last: bool = False) -> Tuple[int, int]:
    """``ops.upfirdn2d`` (a 2-D filter, x and y factors equal) on the triton backend and its adjoint (the
    backward: down/up swapped, padding adjusted, filter flipped), which the second order repeats; returns
    (OH, OW)."""
    K = _k("upfirdn2d")
    n, c, h, w = shape
    f = T(taps, taps, dtype=torch.float32)
    px0, px1, py0, py1 = pad
    x = T(n, c, h, w, dtype=dtype, channels_last=channels_last)
    y = K.upfirdn2d_fwd(x, f, up, up, down, down, px0, px1, py0, py1, False, gain) if "fwd" in passes else None
    oh = (h * up + py0 + py1 - taps) // down + 1
    ow = (w * up + px0 + px1 - taps) // down + 1
    adj = (taps - px0 - 1, w * up - ow * down + px0 - up + 1, taps - py0 - 1, h * up - oh * down + py0 - up + 1)
    if "fwdbwd" in passes or "dbl" in passes:
        dy = T(n, c, oh, ow, dtype=dtype, channels_last=channels_last)
        K.upfirdn2d_fwd(dy, f, down, down, up, up, *adj, True, gain)
    if "dbl" in passes and y is not None:
        K.upfirdn2d_fwd(x, f, up, up, down, down, px0, px1, py0, py1, False, gain)
    return oh, ow


def conv_up2(n: int, c: int, h: int, w: int, dtype, passes) -> None:
    """The FIR step of conv2d_resample's up-2 path (3x3 kernel, padding 1): the transposed convolution's
    [2h + 1, 2w + 1] output filtered with padding 1 and gain 4."""
    upfirdn2d((n, c, 2 * h + 1, 2 * w + 1), dtype, 1, 1, (1, 1, 1, 1), gain=4.0, passes=passes)


def modconv_pieces(n: int, cin: int, cout: int, h: int, w: int, dtype, up: int, noise: Optional[Tuple[int, ...]],
                   demodulate: bool, passes, out_scale: bool = True) -> None:
    """``ops.modulated_conv2d(fused_modconv=False)`` on the triton backend: demodulation coefficients, x * s,
    the cuDNN convolution (its FIR step for up 2), y * d + noise; the backward's grad * s / grad * d and the
    style / demodulation gradients (channel_dot), and in the second order the same again with the
    channel_dot's backward (two more scalings)."""
    K = _k("modulated_conv2d")
    oh, ow = h * up, w * up
    x, s, wt = T(n, cin, h, w, dtype=dtype), T(n, cin, dtype=dtype), T(cout, cin, 3, 3, dtype=dtype)
    y = T(n, cout, oh, ow, dtype=dtype)
    nz = None if noise is None else T(*noise, dtype=dtype)
    d = K.demod_coefs(s, wt) if demodulate else None
    K.scale_channels(x, s, None)
    if up == 2:
        conv_up2(n, cout, h, w, dtype, passes)
    if out_scale and (d is not None or nz is not None):
        K.scale_channels(y, d, nz)
    rounds = ("fwdbwd" in passes) + 2 * ("dbl" in passes)
    for _ in range(rounds):
        g = torch.empty_like(y)
        if out_scale and d is not None:
            K.scale_channels(g, d, None)
            K.channel_dot(g, y)
        gx = torch.empty_like(x)
        K.scale_channels(gx, s, None)
        K.channel_dot(gx, x)
    if "dbl" in passes:  # the channel_dot's backward: a * g and b * g
        gs = T(n, cin, dtype=torch.float32)
        K.scale_channels(x, gs.to(dtype), None)
        K.scale_channels(torch.empty_like(x), gs.to(dtype), None)


def synthesis_layer(n: int, cin: int, cout: int, res: int, up: int, dtype, passes, noise_batch: Optional[int],
                    clamp: Optional[float], algorithm: str = "cudnn") -> None:
    """``ops.modulated_conv2d_bias_act`` (lrelu, bias, noise [noise_batch, 1, res, res]) on the triton backend:
    'cudnn' (cuDNN convolution + the fused epilogue kernel and its one-pass backward) or 'implicit_gemm' (one
    kernel, every autotune config); under create_graph the epilogue's backward is the differentiable
    bias_act vjp (the bias_act kernels)."""
    K, MK = _k("modulated_conv2d_bias_act"), _k("modulated_conv2d")
    h = res // up
    x, s, wt = T(n, cin, h, h, dtype=dtype), T(n, cin, dtype=dtype), T(cout, cin, 3, 3, dtype=dtype)
    b = T(cout, dtype=dtype)
    nz = None if noise_batch is None else T(noise_batch, 1, res, res, dtype=dtype)
    code, alpha, gain = LRELU
    d = MK.demod_coefs(s, wt)
    c = T(n, cout, res, res, dtype=dtype)
    if "fwd" in passes:
        if algorithm == "implicit_gemm":
            K.modconv_bias_act_fwd(x, wt, s, d, nz, b, (1, 1), code, alpha, gain, clamp, True)
        else:
            MK.scale_channels(x, s, None)
            if up == 2:
                conv_up2(n, cout, h, h, dtype, ("fwd",))
            K.demod_bias_act_fwd(c, d, nz, b, code, alpha, gain, clamp)
    if "fwdbwd" in passes:
        K.demod_bias_act_bwd(torch.empty_like(c), c, d, nz, b, code, alpha, gain, clamp, True, True, False, True)
        if up == 2:
            conv_up2(n, cout, h, h, dtype, ("fwdbwd",))
        if algorithm != "implicit_gemm":
            gx = torch.empty_like(x)
            MK.scale_channels(gx, s, None)
            MK.channel_dot(gx, x)
    if "dbl" in passes:
        bias_act((n, cout, res, res), dtype, LRELU, clamp, passes=("dbl",))
        if up == 2:
            conv_up2(n, cout, h, h, dtype, ("dbl",))
        for _ in range(2):
            gx = torch.empty_like(x)
            MK.scale_channels(gx, s, None)
            MK.channel_dot(gx, x)


def filtered_lrelu(n: int, index: int, dtype, passes, channels_last: bool = False) -> None:
    """``ops.filtered_lrelu`` of StyleGAN3-T layer ``index`` on the triton backend: the forward with the mask, the
    backward with the bias gradient, and in the second order the forward linearised at the mask (JVP) and the
    backward again."""
    K = _k("filtered_lrelu")
    _, c, size, up, fu, down, fd, pad, k = SG3_LAYERS[index]
    h = size + k - 1
    x = T(n, c, h, h, dtype=dtype, channels_last=channels_last)
    b, fu_t, fd_t = T(c, dtype=dtype), T(fu, dtype=torch.float32), T(fd, dtype=torch.float32)
    px0, px1, py0, py1 = pad
    args = (up, down, px0, px1, py0, py1, SQRT2, 0.2)
    prec = {} if FLRELU_FP32 is None else {"fp32_precision": FLRELU_FP32}
    y, mask = K.filtered_lrelu_fwd(x, fu_t, fd_t, b, *args, 256.0, False, K.MODE_ACT_MASK, **prec)
    if "fwdbwd" in passes or "dbl" in passes:
        K.filtered_lrelu_bwd(torch.empty_like(y), mask, fu_t, fd_t, up, down, px0, py0, h, h, SQRT2, 0.2, False,
                             channels_last, True, **prec)
    if "dbl" in passes:
        K.filtered_lrelu_fwd(torch.empty_like(x), fu_t, fd_t, b, *args, None, False, K.MODE_JVP, mask, **prec)
        K.filtered_lrelu_bwd(torch.empty_like(y), mask, fu_t, fd_t, up, down, px0, py0, h, h, SQRT2, 0.2, False,
                             channels_last, True, **prec)


# ---------------------------------------------------------------------------------------------- networks


def _d_resolutions(img_res: int) -> List[int]:
    out, r = [], img_res
    while r >= 8:
        out.append(r)
        r //= 2
    return out


def r1_d(n: int, img_res: int, dtype, passes=("fwd", "fwdbwd", "dbl")) -> None:
    """``benchmarks.nets.d_forward`` (StyleGAN2 resnet D) and the lazy R1 step: bias_act after every conv, the
    down-2 FIR before every strided conv, the gradient-norm penalty of the image gradient."""
    clamp = 256.0 if dtype == torch.float16 else None
    bias_act((n, channels(img_res), img_res, img_res), dtype, LRELU, clamp, passes=passes)
    for r in _d_resolutions(img_res):
        c = channels(r)
        upfirdn2d((n, c, r, r), dtype, 1, 1, (1, 1, 1, 1), passes=passes)       # skip: 1x1 conv, stride 2
        bias_act((n, c, r, r), dtype, LRELU, clamp, passes=passes)               # conv0
        upfirdn2d((n, c, r, r), dtype, 1, 1, (2, 2, 2, 2), passes=passes)       # conv1: 3x3 conv, stride 2
        bias_act((n, channels(r // 2), r // 2, r // 2), dtype, LRELU, clamp, passes=passes)
    c4 = channels(4)
    bias_act((n, c4, 4, 4), dtype, LRELU, clamp, passes=passes)                  # epilogue conv
    bias_act((n, c4), dtype, LRELU, None, passes=passes)                         # fc
    if "dbl" in passes:
        K = _k("gradient_norm_penalty")
        g = T(n, 3, img_res, img_res, dtype=dtype)
        _, sq = K.gnp_forward(g, 0.0, False, "mean")
        K.gnp_backward(g, sq, T(dtype=torch.float32), 0.0, False, "mean")


def pl_g(n: int, img_res: int, dtype, passes=("fwd", "fwdbwd", "dbl")) -> None:
    """``benchmarks.nets.g_forward`` (StyleGAN2 skip G, fused_modconv=False, constant noise) and the lazy
    path-length step: per layer modulated_conv2d + bias_act, per resolution ToRGB (no demodulation, linear
    bias_act) and the image's up-2 FIR."""
    clamp = 256.0 if dtype == torch.float16 else None
    r = 4
    while r <= img_res:
        for name in (["conv1"] if r == 4 else ["conv0", "conv1"]):
            up = 2 if name == "conv0" else 1
            cin = channels(r // 2) if name == "conv0" else channels(r)
            modconv_pieces(n, cin, channels(r), r // up, r // up, dtype, up, (1, 1, r, r), True, passes)
            bias_act((n, channels(r), r, r), dtype, LRELU, clamp, passes=passes)
        modconv_pieces(n, channels(r), 3, r, r, dtype, 1, None, False, passes, out_scale=False)
        bias_act((n, 3, r, r), dtype, LINEAR, clamp, passes=passes)
        if r > 4:
            upfirdn2d((n, 3, r // 2, r // 2), dtype, 2, 1, (2, 1, 2, 1), gain=4.0, passes=passes)
        r *= 2


# ------------------------------------------------------------------------------------------------ the cases


def _conv1_256(dtype) -> None:
    n, c, passes = presets.SG2_BATCH, channels(256), ("fwd", "fwdbwd", "dbl")
    clamp = 256.0
    synthesis_layer(n, c, c, 256, 1, dtype, passes, n, clamp)                      # triton (cudnn algorithm)
    synthesis_layer(n, c, c, 256, 1, dtype, passes, n, clamp, "implicit_gemm")     # triton:implicit_gemm
    modconv_pieces(n, c, c, 256, 256, dtype, 1, (n, 1, 256, 256), True, passes)    # composed:triton
    bias_act((n, c, 256, 256), dtype, LRELU, clamp, passes=passes)


def _conv0_up_256(dtype) -> None:
    n, c, passes = presets.SG2_BATCH, channels(256), ("fwd", "fwdbwd", "dbl")
    synthesis_layer(n, c, c, 256, 2, dtype, passes, n, 256.0)
    modconv_pieces(n, c, c, 128, 128, dtype, 2, (n, 1, 256, 256), True, passes)
    bias_act((n, c, 256, 256), dtype, LRELU, 256.0, passes=passes)


def _spectral_norm(dtype) -> None:
    """spectral_normalize over every layer of the BigGAN-128 D (one launch per layer, and gan_fast.nn's batched
    step: every layer in one launch), forward and backward."""
    K = _k("spectral_norm")
    mats = []
    for _, shape in biggan128_d_shapes(BIGGAN_CH):
        h, w = shape[0], math.prod(shape[1:])
        mats.append(T(h, w, dtype=dtype))
    cdt = K.compute_dtype(dtype)
    for m in mats:  # ops.spectral_normalize per layer
        h, w = m.shape
        layer = K.SNLayer(mat=m, u=T(h, dtype=dtype), v=T(w, dtype=dtype), y_mat=torch.empty_like(m))
        plan, _ = K.power_launch([layer], 1, 1e-12)
        K.backward_launch([m], [torch.empty_like(m)], [torch.empty_like(m)], plan)
    layers = [K.SNLayer(mat=m, u=T(m.shape[0], dtype=dtype), v=T(m.shape[1], dtype=dtype),
                        y_mat=torch.empty_like(m), u_buf=T(m.shape[0], dtype=dtype),
                        v_buf=T(m.shape[1], dtype=dtype)) for m in mats]
    plan, _ = K.power_launch(layers, 1, 1e-12, arena=True)
    K.backward_launch(mats, [torch.empty_like(m) for m in mats], [torch.empty_like(m) for m in mats], plan)
    del cdt


def _mbd(n: int):
    def run(dtype) -> None:
        K = _k("minibatch_discrimination")
        m = T(n, MBD_B, MBD_C, dtype=dtype)
        K.mbd_forward(m)
        K.mbd_backward(m, T(n, MBD_B, dtype=dtype))                              # fwdbwd, and the dbl's first
        K.mbd_backward(m, T(n, MBD_B, dtype=dtype), T(n, MBD_B, MBD_C, dtype=dtype))  # second order
    return run


def _iteration(dtype) -> None:
    """One StyleGAN2 iteration at 256 px (gan_fast.models, batch SG2_BATCH): the synthesis layers of every
    resolution (cudnn algorithm, with noise), the ToRGB layers and image up-sampling, the D with R1, the
    path-length step (as pl_g at half the batch)."""
    n, passes = presets.SG2_BATCH, ("fwd", "fwdbwd", "dbl")
    clamp = 256.0 if dtype == torch.float16 else None
    r = 4
    while r <= 256:
        for name in (["conv1"] if r == 4 else ["conv0", "conv1"]):
            up = 2 if name == "conv0" else 1
            cin = channels(r // 2) if name == "conv0" else channels(r)
            synthesis_layer(n, cin, channels(r), r, up, dtype, passes, n, clamp)
        modconv_pieces(n, channels(r), 3, r, r, dtype, 1, None, False, passes, out_scale=False)
        bias_act((n, 3, r, r), dtype, LINEAR, clamp, passes=passes)
        if r > 4:
            upfirdn2d((n, 3, r // 2, r // 2), dtype, 2, 1, (2, 1, 2, 1), gain=4.0, passes=passes)
        r *= 2
    r1_d(n, 256, dtype)
    pl_g(presets.SG2_PL_BATCH, 256, dtype)


def _alias_free(index: int):
    def run(dtype) -> None:
        cin, cout, size, up, fu, down, fd, pad, k = SG3_LAYERS[index]
        passes = ("fwd", "fwdbwd", "dbl")
        modconv_pieces(SG3_BATCH, cin, cout, size, size, dtype, 1, None, True, passes)
        filtered_lrelu(SG3_BATCH, index, dtype, passes)
    return run


def _overhead(op: str):
    """The overhead cases' tiny shapes (benchmarks/bench_overhead.py), forward and backward."""
    def run(dtype) -> None:
        passes = ("fwd", "fwdbwd")
        if op == "bias_act":
            bias_act((2, 32, 4, 4), dtype, LRELU, None, passes=passes)
        elif op == "upsample2d":
            upfirdn2d((2, 32, 4, 4), dtype, 2, 1, (2, 1, 2, 1), gain=4.0, passes=passes)
        elif op == "downsample2d":
            upfirdn2d((2, 32, 8, 8), dtype, 1, 2, (1, 1, 1, 1), passes=passes)
        elif op == "modulated_conv2d":
            modconv_pieces(2, 32, 32, 4, 4, dtype, 1, None, True, passes)
        elif op == "modulated_conv2d_bias_act":
            synthesis_layer(2, 32, 32, 4, 1, dtype, passes, None, None)
        elif op in ("power_iteration", "spectral_normalize"):
            K = _k("spectral_norm")
            m = T(32, 288, dtype=dtype)
            y = torch.empty_like(m) if op == "spectral_normalize" else None
            plan, _ = K.power_launch([K.SNLayer(mat=m, u=T(32, dtype=dtype), v=T(288, dtype=dtype), y_mat=y)], 1,
                                     1e-12)
            if y is not None:
                K.backward_launch([m], [torch.empty_like(m)], [torch.empty_like(m)], plan)
        elif op == "gradient_norm_penalty":
            K = _k("gradient_norm_penalty")
            g = T(4, 3, 4, 4, dtype=dtype)
            _, sq = K.gnp_forward(g, 0.0, False, "mean")
            K.gnp_backward(g, sq, T(dtype=torch.float32), 0.0, False, "mean")
        elif op == "filtered_lrelu":
            K = _k("filtered_lrelu")
            x, b, f = T(2, 32, 8, 8, dtype=dtype), T(32, dtype=dtype), T(4, dtype=torch.float32)
            y, mask = K.filtered_lrelu_fwd(x, f, f, b, 2, 2, 3, 3, 3, 3, SQRT2, 0.2, None, False, K.MODE_ACT_MASK)
            K.filtered_lrelu_bwd(torch.empty_like(y), mask, f, f, 2, 2, 3, 3, 8, 8, SQRT2, 0.2, False, False, True)
        elif op == "minibatch_discrimination":
            K = _k("minibatch_discrimination")
            m = T(8, 16, 5, dtype=dtype)
            K.mbd_forward(m)
            K.mbd_backward(m, T(8, 16, dtype=dtype))
        else:
            raise KeyError(op)
    return run


OVERHEAD_OPS = ("bias_act", "upsample2d", "downsample2d", "modulated_conv2d", "modulated_conv2d_bias_act",
                "power_iteration", "spectral_normalize", "gradient_norm_penalty", "filtered_lrelu",
                "minibatch_discrimination")

# label of presets.DECISIVE -> run(dtype): the case's launches
CASES: Dict[str, Callable[[torch.dtype], None]] = {
    "modulated_conv2d_bias_act/conv1_256px": _conv1_256,
    "r1_step/D256": lambda dt: r1_d(presets.SG2_BATCH, 256, dt),
    "path_length_step/G256": lambda dt: pl_g(presets.SG2_PL_BATCH, 256, dt),
    "spectral_normalize/biggan128_D": _spectral_norm,
    "bias_act/synth256": lambda dt: bias_act((presets.SG2_BATCH, channels(256), 256, 256), dt, LRELU, 256.0),
    "upfirdn2d/up2_128to256": lambda dt: upfirdn2d((presets.SG2_BATCH, channels(256), 128, 128), dt, 2, 1,
                                                   (2, 1, 2, 1), gain=4.0),
    "filtered_lrelu/L11_278to276px_up2": lambda dt: filtered_lrelu(SG3_BATCH, 11, dt, ("fwd", "fwdbwd")),
    "minibatch_discrimination/N256": _mbd(256),
    "modulated_conv2d_bias_act/conv0_up_256px": _conv0_up_256,
    "stylegan2_iteration/256px": _iteration,
    "filtered_lrelu/L10_150to276px_up4": lambda dt: filtered_lrelu(SG3_BATCH, 10, dt, ("fwd", "fwdbwd")),
    "alias_free_layer/L11_276to276px_up2": _alias_free(11),
}
CASES.update({f"overhead/{op}": _overhead(op) for op in OVERHEAD_OPS})


def labels() -> List[str]:
    """The distinct case labels of ``presets.DECISIVE``, in its order."""
    out: List[str] = []
    for label, _ in presets.DECISIVE:
        if label not in out:
            out.append(label)
    return out

"""Preset definitions shared by the per-op case modules.

* ``ci``: tiny shapes, finishes in under 3 minutes on 2 CPU cores (fresh
  inductor cache included); the README's main job.
* ``stylegan2``: StyleGAN2 config-F shapes (synthesis layers 8..256 px with
  512/256/128 channels, batch 32; R1 on a 256x256 D at batch 32; path length on
  a 256x256 G at batch 16 = 32 / pl_batch_shrink); float32 and, on GPU,
  float16 (bfloat16 at the 256 px layer).
* ``biggan``: the spectral norm of every layer of a BigGAN-128 D (ch = 96).
* ``stylegan3``: StyleGAN3-T 256 px: ``filtered_lrelu`` and the alias-free synthesis layer.
* ``decisive``: the cases of the full-size presets that settle an open question on a GPU
  (:data:`DECISIVE`, in that order); what ``benchmarks/gpu.sh`` measures first.

Cases carry a priority (lower runs first) so that a run cut short by its time
budget has measured the shapes the performance targets name.
"""

from __future__ import annotations

from typing import List

import torch

PRESETS = ("ci", "stylegan2", "biggan", "stylegan3", "decisive")

# (case label, dtype), most decisive first: the synthesis layer's algorithm (cudnn + fused epilogue vs implicit
# GEMM vs the composition), the second-order steps (R1, path length), spectral norm over every layer, the
# elementwise and resampling kernels, this round's new kernels, the whole iteration, float16, then the host overhead
# of every op at a tiny shape (where the GPU's small layers are decided).
DECISIVE = [
    ("modulated_conv2d_bias_act/conv1_256px", "float32"),
    ("modulated_conv2d_bias_act/conv1_256px", "float16"),
    ("r1_step/D256", "float32"),
    ("path_length_step/G256", "float32"),
    ("spectral_normalize/biggan128_D", "float32"),
    ("bias_act/synth256", "float32"),
    ("upfirdn2d/up2_128to256", "float32"),
    ("filtered_lrelu/L11_278to276px_up2", "float32"),
    ("minibatch_discrimination/N256", "float32"),
    ("modulated_conv2d_bias_act/conv0_up_256px", "float32"),
    ("stylegan2_iteration/256px", "float32"),
    ("filtered_lrelu/L10_150to276px_up4", "float32"),
    ("alias_free_layer/L11_276to276px_up2", "float32"),
    ("r1_step/D256", "float16"),
    ("path_length_step/G256", "float16"),
    ("bias_act/synth256", "float16"),
    ("upfirdn2d/up2_128to256", "float16"),
    ("filtered_lrelu/L11_278to276px_up2", "float16"),
    ("modulated_conv2d_bias_act/conv0_up_256px", "float16"),
    ("bias_act/synth256", "bfloat16"),
] + [(f"overhead/{op}", "float32") for op in (
    "bias_act", "upsample2d", "downsample2d", "modulated_conv2d", "modulated_conv2d_bias_act", "power_iteration",
    "spectral_normalize", "gradient_norm_penalty", "filtered_lrelu", "minibatch_discrimination")]
DECISIVE_SOURCES = ("stylegan2", "stylegan3", "biggan")

# StyleGAN2 config F
SG2_BATCH = 32
SG2_PL_BATCH = 16
SG2_BASE = 32768
SG2_CMAX = 512
SG2_RES = (256, 128, 64, 32, 16, 8)  # largest first: the targets are stated there
SG2_W_DIM = 512

# The ci preset: the same ops and networks, scaled down for 2 shared CPU cores.
CI_BATCH = 4
CI_CONV_RES, CI_CONV_CH = 32, 32         # modulated_conv2d synthesis layer
CI_NET_RES, CI_NET_BASE, CI_NET_CMAX = 16, 512, 32  # the R1 D and the path-length G
CI_W_DIM = 64
CI_E2E_RES, CI_E2E_BASE, CI_E2E_CMAX = 64, 1024, 32  # the end-to-end iteration (64x64, as the issue asks)
# Whole networks (R1 D, path-length G) compile in the default mode: max-autotune would autotune every
# convolution of the network, minutes of the GPU run's 8-minute budget.
NET_COMPILE_MODE = None
CI_NO_COMPILE_NOTE = ("ci preset: torch.compile of a whole network is not timed (compile time on 2 cores); "
                      "the op cases show compile, and that its double backward fails (pytorch#183603)")


def sg2_channels(res: int) -> int:
    return min(SG2_BASE // res, SG2_CMAX)


def dtypes(preset: str, device: torch.device) -> List[torch.dtype]:
    """The dtypes a preset times on a device (half precision only on GPU)."""
    if device.type != "cuda" or preset == "biggan":
        return [torch.float32]
    return [torch.float32, torch.float16]


def half_extra(device: torch.device) -> List[torch.dtype]:
    """bfloat16, timed at the largest layer only (GPU)."""
    return [torch.bfloat16] if device.type == "cuda" else []


def priority(res: int, dtype: torch.dtype, top: int = 256, primary: bool = True) -> int:
    """Run order of a stylegan2-preset case (lower first).

    Tiers: the shapes the performance targets name (top layer, float32, the primary case of
    each op: bias_act, upfirdn2d up-2, the conv1 synthesis layer, R1, path length, the
    iteration), then their float16 versions with the secondary cases (down-2, conv0,
    gradient_norm_penalty), then bfloat16, then the smaller layers.
    """
    if res == top:
        tier = {torch.float32: 0, torch.float16: 10}.get(dtype, 20)
        return tier + (0 if primary else 5)
    return 30 + 2 * (top // max(res, 1)).bit_length() + (0 if dtype == torch.float32 else 1)

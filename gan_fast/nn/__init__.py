"""Modules built on :mod:`gan_fast.ops`.

Equalized-learning-rate layers as StyleGAN2 defines them
(:class:`FullyConnectedLayer`, :class:`Conv2dLayer`), the StyleGAN2 mapping and
synthesis layers (:class:`MappingNetwork`, :class:`ModulatedConv2d`,
:class:`SynthesisLayer`, :class:`ToRGB`), :class:`MinibatchStdLayer`,
StyleGAN1's :class:`AdaIN`, StyleGAN3's :class:`AliasFreeSynthesisLayer` (with
:func:`stylegan3_layer_configs`), :class:`MinibatchDiscrimination` (Salimans et al.),
and :func:`spectral_norm` (a drop-in for
``torch.nn.utils.parametrizations.spectral_norm``) with
:func:`apply_spectral_norm` for whole models and :func:`spectral_norm_step` to
normalise all of a model's layers in one fused launch per step.
"""

from ._resample import conv2d_resample
from .adain import AdaIN, adaptive_instance_norm
from .alias_free import AliasFreeSynthesisLayer, stylegan3_layer_configs
from .equalized import Conv2dLayer, FullyConnectedLayer
from .mapping import MappingNetwork, normalize_2nd_moment
from .minibatch_discrimination import MinibatchDiscrimination
from .minibatch_std import MinibatchStdLayer
from .spectral_norm import DEFAULT_SN_TYPES, SpectralNorm, apply_spectral_norm, spectral_norm, spectral_norm_step
from .synthesis import ModulatedConv2d, SynthesisLayer, ToRGB

__all__ = [
    "FullyConnectedLayer",
    "Conv2dLayer",
    "MappingNetwork",
    "normalize_2nd_moment",
    "ModulatedConv2d",
    "SynthesisLayer",
    "ToRGB",
    "MinibatchStdLayer",
    "MinibatchDiscrimination",
    "AliasFreeSynthesisLayer",
    "stylegan3_layer_configs",
    "AdaIN",
    "adaptive_instance_norm",
    "SpectralNorm",
    "spectral_norm",
    "apply_spectral_norm",
    "spectral_norm_step",
    "DEFAULT_SN_TYPES",
    "conv2d_resample",
]

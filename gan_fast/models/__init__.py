"""Small GAN models built only from :mod:`gan_fast.nn`: what the benchmarks time end
to end and what the examples train.

* :class:`Generator`, :class:`Discriminator`: StyleGAN2 (skip G, resnet D, config-F channel table).
* :class:`SNDiscriminator`: SNGAN / BigGAN-style residual discriminator with spectral norm.
* :class:`StyleGAN2Trainer`: D step with lazy R1, G step with lazy path length,
  the R3GAN variant (relativistic + R1 + R2), optional EMA of G.
"""

from .sngan import SNDiscriminator, SNDiscriminatorBlock
from .stylegan2 import (Discriminator, DiscriminatorBlock, DiscriminatorEpilogue, Generator, SynthesisBlock,
                        SynthesisNetwork, channel_table)
from .training import StyleGAN2Trainer, make_adam, unwrap

__all__ = [
    "Generator",
    "Discriminator",
    "SynthesisNetwork",
    "SynthesisBlock",
    "DiscriminatorBlock",
    "DiscriminatorEpilogue",
    "channel_table",
    "SNDiscriminator",
    "SNDiscriminatorBlock",
    "StyleGAN2Trainer",
    "make_adam",
    "unwrap",
]

"""gan_fast: fast, exact GAN building blocks for PyTorch.

Submodules: :mod:`gan_fast.ops` (functional ops), :mod:`gan_fast.nn` (modules),
:mod:`gan_fast.losses`, :mod:`gan_fast.regularizers` (incl. WGAN weight clipping), :mod:`gan_fast.unrolled`
(Unrolled GAN), :mod:`gan_fast.filter_design` (StyleGAN3's filters), :mod:`gan_fast.backend`.
"""

from . import _checkout

_checkout.install()  # gan_fast.kernels in a checkout used in place (an install maps it itself)

from . import backend, filter_design, losses, nn, ops, regularizers, unrolled  # noqa: E402
from .version import __version__

__all__ = ["__version__", "backend", "filter_design", "losses", "nn", "ops", "regularizers", "unrolled"]

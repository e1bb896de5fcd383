"""gan_fast: fast, exact GAN building blocks for PyTorch.

Submodules: :mod:`gan_fast.ops` (functional ops), :mod:`gan_fast.nn` (modules),
:mod:`gan_fast.losses`, :mod:`gan_fast.regularizers`, :mod:`gan_fast.backend`.
"""

from . import _checkout

_checkout.install()  # gan_fast.kernels in a checkout used in place (an install maps it itself)

from . import backend, losses, nn, ops, regularizers  # noqa: E402
from .version import __version__

__all__ = ["__version__", "backend", "losses", "nn", "ops", "regularizers"]

"""gan_fast: fast, exact GAN building blocks for PyTorch.

Submodules: :mod:`gan_fast.ops` (functional ops), :mod:`gan_fast.nn` (modules), :mod:`gan_fast.losses`,
:mod:`gan_fast.regularizers` (incl. WGAN weight clipping), :mod:`gan_fast.unrolled` (Unrolled GAN),
:mod:`gan_fast.filter_design` (StyleGAN3's filters), :mod:`gan_fast.config` (backend choice and settings),
:mod:`gan_fast.backend` (what can run here), :mod:`gan_fast.self_test`.

Importing gan_fast is light: it defines the ops (their ``torch.library`` custom ops included) but imports
neither triton nor ``torch._dynamo`` nor any kernel, and loads no compiled extension; each of those loads on
the first call that needs it. The design: docs/DESIGN.md.
"""

import torch as _torch

from .version import __version__, torch_problem as _torch_problem

if _torch_problem(_torch.__version__):
    raise ImportError(_torch_problem(_torch.__version__))

from . import backend, config, filter_design, losses, nn, ops, regularizers, unrolled  # noqa: E402

__all__ = ["__version__", "backend", "config", "filter_design", "losses", "nn", "ops", "regularizers", "unrolled"]

"""rosinality's ``op`` package (stylegan2-pytorch, and the copies vendored by basicsr, GFPGAN,
CodeFormer, e4e, pSp, StyleCLIP, HyperStyle ...) on gan_fast's ops: no CUDA toolkit, compiler or
ninja needed, fast backends where available, exact to second order (R1 and path length) on every
device.

``from op import FusedLeakyReLU, fused_leaky_relu, upfirdn2d, conv2d_gradfix`` becomes
``from gan_fast.compat.rosinality import FusedLeakyReLU, fused_leaky_relu, upfirdn2d, conv2d_gradfix``;
the submodules ``fused_act``, ``upfirdn2d`` and ``conv2d_gradfix`` exist as there
(``from gan_fast.compat.rosinality.fused_act import FusedLeakyReLU``).

Differences from the original: ``fused_leaky_relu`` honours ``negative_slope`` on every device (the
original's CPU path always uses 0.2); a bias of another floating dtype is cast to the input's;
``upfirdn2d`` validates its arguments (``kernel`` must be 2-D, ``pad`` 2 or 4 ints) with named errors.
"""

from . import conv2d_gradfix, fused_act  # noqa: F401 - submodules, as in the original package
from .fused_act import FusedLeakyReLU, fused_leaky_relu
from .upfirdn2d import upfirdn2d

__all__ = ["FusedLeakyReLU", "fused_leaky_relu", "upfirdn2d", "conv2d_gradfix"]

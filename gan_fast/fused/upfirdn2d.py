"""Autograd glue for the fast ``upfirdn2d`` backends (C++/CUDA extension and Triton).

``impl`` only picks the kernel (:func:`kernel`), one launch with one signature::

    fwd(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain) -> y

``cpp`` calls ``torch.ops.gan_fast.upfirdn2d_fwd`` (csrc/); ``triton`` wraps
``gan_fast.kernels.upfirdn2d.upfirdn2d_fwd`` as a ``torch.library.custom_op``.
Both have a ``register_fake``. ``f`` is passed as given: a 2-D ``[fh, fw]``
filter, or a separable 1-D ``[ft]`` filter meaning ``outer(f, f)`` with the
gain applied once overall (as the reference); each kernel set decides whether
to run a separable filter as one pass with the outer product or as two 1-D
passes. The output is channels_last when x is (and not also contiguous), else
contiguous.

upfirdn2d is linear in x, and its adjoint is the same op with up and down
swapped, the filter flipped (``flip_filter`` negated) and the padding
adjusted, so ``_UpFirDn2d.backward`` calls ``_UpFirDn2d`` again and every
order of derivative is exact.

The fast path treats ``f`` as a constant. When ``f`` requires grad (a learned
filter) :func:`upfirdn2d` runs the reference implementation instead, so that
df is exact; the resampling filters of StyleGAN-style models are buffers.
"""

from __future__ import annotations

import importlib
from typing import Callable, Dict, Sequence

import torch

from . import cache_signatures

__all__ = ["upfirdn2d", "kernel", "output_size"]


def output_size(h: int, w: int, fh: int, fw: int, upx: int, upy: int, downx: int, downy: int, px0: int, px1: int,
                py0: int, py1: int):
    """(OH, OW), as in the reference."""
    return (h * upy + py0 + py1 - fh) // downy + 1, (w * upx + px0 + px1 - fw) // downx + 1


def _filter_hw(f: torch.Tensor):
    return (f.shape[0], f.shape[0]) if f.ndim == 1 else (f.shape[0], f.shape[1])


def _fake_fwd(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain):
    n, c, h, w = x.shape
    fh, fw = _filter_hw(f)
    oh, ow = output_size(h, w, fh, fw, upx, upy, downx, downy, px0, px1, py0, py1)
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.new_empty((n, c, oh, ow)).contiguous(memory_format=fmt)


@torch.library.custom_op("gan_fast::triton_upfirdn2d_fwd", mutates_args=())
def _triton_fwd(x: torch.Tensor, f: torch.Tensor, upx: int, upy: int, downx: int, downy: int, px0: int, px1: int,
                py0: int, py1: int, flip_filter: bool, gain: float) -> torch.Tensor:
    module = importlib.import_module("gan_fast.kernels.upfirdn2d")
    return module.upfirdn2d_fwd(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain)


_triton_fwd.register_fake(_fake_fwd)

_kernels: Dict[str, Callable[..., torch.Tensor]] = {}


def _make_cpp() -> Callable[..., torch.Tensor]:
    from .. import extension

    ok, why = extension.status()
    if not ok:
        from ..backend import BackendUnavailableError

        raise BackendUnavailableError(f"upfirdn2d: the cpp backend is unavailable: {why}")
    torch.library.register_fake("gan_fast::upfirdn2d_fwd")(_fake_fwd)
    return torch.ops.gan_fast.upfirdn2d_fwd


def kernel(impl: str) -> Callable[..., torch.Tensor]:
    """The forward launch of backend ``impl`` ('cpp' or 'triton'); loads the extension for 'cpp' once.

    No lock: making it twice (two threads racing on the first call) is harmless.
    """
    k = _kernels.get(impl)
    if k is None:
        if impl == "cpp":
            k = _make_cpp()
        elif impl == "triton":
            k = _triton_fwd
        else:
            raise ValueError(f"upfirdn2d: no fused kernels for impl={impl!r}")
        _kernels[impl] = k
    return k


class _UpFirDn2d(torch.autograd.Function):
    """p = (impl, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain), packed in one argument
    because Function.apply binds its arguments to forward's signature on every call."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, f, p):
        if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
            x = x.contiguous()  # e.g. an expanded incoming gradient
        return _kernels[p[0]](x, f, *p[1:])

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, f, p = inputs
        ctx.save_for_backward(f)
        ctx.p, ctx.in_hw = p, (x.shape[2], x.shape[3])

    @staticmethod
    def backward(ctx, dy):
        if not ctx.needs_input_grad[0]:
            return None, None, None
        (f,) = ctx.saved_tensors
        impl, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain = ctx.p
        ih, iw = ctx.in_hw
        oh, ow = dy.shape[2], dy.shape[3]
        fh, fw = _filter_hw(f)
        pad = (fw - px0 - 1, iw * upx - ow * downx + px0 - upx + 1,
               fh - py0 - 1, ih * upy - oh * downy + py0 - upy + 1)
        dx = _UpFirDn2d.apply(dy, f, (impl, downx, downy, upx, upy) + pad + (not flip_filter, gain))
        return dx, None, None


cache_signatures(_UpFirDn2d)


def upfirdn2d(x: torch.Tensor, f: torch.Tensor, up: Sequence[int], down: Sequence[int], padding: Sequence[int],
              flip_filter: bool, gain: float, impl: str) -> torch.Tensor:
    """The fused op; arguments already validated by ``gan_fast.ops.upfirdn2d`` (up/down (x, y), padding (x0, x1, y0, y1))."""
    if f.requires_grad and torch.is_grad_enabled():
        from ..reference import upfirdn2d as reference  # exact df; see the module docstring

        return reference.upfirdn2d(x, f, tuple(up), tuple(down), tuple(padding), bool(flip_filter), float(gain))
    kernel(impl)
    if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
        x = x.contiguous()
    upx, upy = (int(v) for v in up)
    downx, downy = (int(v) for v in down)
    px0, px1, py0, py1 = (int(v) for v in padding)
    return _UpFirDn2d.apply(x, f, (impl, upx, upy, downx, downy, px0, px1, py0, py1, bool(flip_filter), float(gain)))

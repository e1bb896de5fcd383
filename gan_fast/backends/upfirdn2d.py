"""The ``upfirdn2d`` backends: ``ref``, ``triton`` (``gan_fast.kernels.upfirdn2d``) and ``cpp`` (``csrc/``).

Both fast backends are one launch with one signature::

    fwd(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain) -> y

``cpp`` calls ``torch.ops.gan_fast.upfirdn2d_fwd`` (defined here, implemented in csrc/); ``triton``
wraps ``gan_fast.kernels.upfirdn2d.upfirdn2d_fwd`` as a ``torch.library.custom_op``. Both have a
``register_fake``. ``f`` is passed as given: a 2-D ``[fh, fw]`` filter, or a separable 1-D ``[ft]`` filter
meaning ``outer(f, f)`` with the gain applied once overall (as the reference); each kernel decides whether to
run a separable filter as one pass with the outer product or as two 1-D passes. The output is channels_last
when x is (and not also contiguous), else contiguous.

upfirdn2d is linear in x, and its adjoint is the same op with up and down swapped, the filter flipped
(``flip_filter`` negated) and the padding adjusted, so ``_UpFirDn2d.backward`` calls ``_UpFirDn2d`` again and
every order of derivative is exact.

The fast backends treat ``f`` as a constant: a call whose filter requires grad (a learned filter) is refused
(``SPEC.cannot``), and the automatic choice runs ``ref`` for it, whose gradient for ``f`` is exact; the
resampling filters of StyleGAN-style models are buffers.
"""

from typing import Callable, NamedTuple

import torch

from ..errors import BackendUnavailableError
from ..params.upfirdn2d import UpFirDn2dParams
from ..reference import upfirdn2d as reference
from ..shapes import filter_wh, output_format, upfirdn2d_size
from .common import OpSpec, cache_signatures

__all__ = ["SPEC", "SPECS", "run", "kernel"]

_LEARNED = "its kernels treat the filter as a constant, so a filter that requires grad gets no gradient"
# The C++ CPU kernel is slower than the conv2d-based reference on CPU (benchmarks/results, ci preset): it
# runs when asked for (impl='cpp') but is not an automatic choice there.
SPEC = OpSpec("upfirdn2d", "upfirdn2d", fast={"cuda": ("triton", "cpp")}, explicit=("cpp",),
              cannot={"triton": {"float64": "its kernels compute in float32", "learned filter": _LEARNED},
                      "cpp": {"learned filter": _LEARNED}})
SPECS = (SPEC,)


def _fake_fwd(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain):
    n, c, h, w = x.shape
    fw, fh = filter_wh(f)
    oh, ow = upfirdn2d_size(h, w, fh, fw, upx, upy, downx, downy, px0, px1, py0, py1)
    return x.new_empty((n, c, oh, ow)).contiguous(memory_format=output_format(x))


@torch.library.custom_op("gan_fast::triton_upfirdn2d_fwd", mutates_args=())
def _triton_fwd(x: torch.Tensor, f: torch.Tensor, upx: int, upy: int, downx: int, downy: int, px0: int, px1: int,
                py0: int, py1: int, flip_filter: bool, gain: float) -> torch.Tensor:
    from ..kernels import upfirdn2d as K  # noqa: PLC0415 - triton loads on the first launch

    return K.upfirdn2d_fwd(x, f, upx, upy, downx, downy, px0, px1, py0, py1, flip_filter, gain)


_triton_fwd.register_fake(_fake_fwd)

# The extension's op, defined here with its fake; csrc/ registers its CPU and CUDA implementations.
torch.library.define("gan_fast::upfirdn2d_fwd", "(Tensor x, Tensor f, int upx, int upy, int downx, int downy, "
                     "int px0, int px1, int py0, int py1, bool flip_filter, float gain) -> Tensor")
torch.library.register_fake("gan_fast::upfirdn2d_fwd")(_fake_fwd)
_CPP = torch.ops.gan_fast.upfirdn2d_fwd.default


def kernel(impl: str) -> Callable[..., torch.Tensor]:
    """The forward launch of backend ``impl`` ('triton' or 'cpp'); 'cpp' needs the extension loaded (its first
    eager call loads it; inside a ``torch.compile`` trace only the op's fake runs)."""
    if impl == "triton":
        return _triton_fwd
    if impl != "cpp":
        raise ValueError(f"upfirdn2d: no fused kernels for impl={impl!r}")
    if not torch.compiler.is_compiling():
        from .. import extension  # noqa: PLC0415

        ok, why = extension.status()
        if not ok:
            raise BackendUnavailableError(f"upfirdn2d: impl='cpp' cannot run: {why}; impl='ref' runs it")
    return _CPP


class Launch(NamedTuple):
    """The non-tensor arguments of one launch (packed in one argument: ``Function.apply`` binds its arguments
    to forward's signature on every call)."""
    impl: str
    upx: int
    upy: int
    downx: int
    downy: int
    px0: int
    px1: int
    py0: int
    py1: int
    flip_filter: bool
    gain: float


class _UpFirDn2d(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, f, q):
        if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
            x = x.contiguous()  # e.g. an expanded incoming gradient
        return (_triton_fwd if q.impl == "triton" else _CPP)(x, f, *q[1:])  # run() checked the extension

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, f, q = inputs
        ctx.save_for_backward(f)
        ctx.q, ctx.in_hw = q, (x.shape[2], x.shape[3])

    @staticmethod
    def backward(ctx, dy):
        if not ctx.needs_input_grad[0]:
            return None, None, None
        (f,) = ctx.saved_tensors
        q = ctx.q
        ih, iw = ctx.in_hw
        oh, ow = dy.shape[2], dy.shape[3]
        fw, fh = filter_wh(f)
        adjoint = Launch(q.impl, q.downx, q.downy, q.upx, q.upy,
                         fw - q.px0 - 1, iw * q.upx - ow * q.downx + q.px0 - q.upx + 1,
                         fh - q.py0 - 1, ih * q.upy - oh * q.downy + q.py0 - q.upy + 1, not q.flip_filter, q.gain)
        return _UpFirDn2d.apply(dy, f, adjoint), None, None


cache_signatures(_UpFirDn2d)


def run(impl: str, p: UpFirDn2dParams, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """``upfirdn2d`` on backend ``impl`` ('ref', 'triton' or 'cpp'); ``p`` from ``gan_fast.params.upfirdn2d``,
    ``f`` already in x's dtype. The fast backends take ``f`` as a constant (``SPEC.cannot``)."""
    if impl == "ref":
        return reference.upfirdn2d(x, f, p.up, p.down, p.padding, p.flip_filter, p.gain)
    kernel(impl)
    if not (x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)):
        x = x.contiguous()
    return _UpFirDn2d.apply(x, f, Launch(impl, *p.up, *p.down, *p.padding, p.flip_filter, p.gain))

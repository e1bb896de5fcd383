"""rosinality's ``op.fused_act``: ``fused_leaky_relu`` and ``FusedLeakyReLU`` on :func:`gan_fast.ops.bias_act`."""

from __future__ import annotations

import numbers
from typing import Optional, Tuple

import torch
from torch import nn

from ... import checks, ops

__all__ = ["FusedLeakyReLU", "fused_leaky_relu"]


def fused_leaky_relu(input: torch.Tensor, bias: Optional[torch.Tensor] = None, negative_slope: float = 0.2,
                     scale: float = 2 ** 0.5) -> torch.Tensor:
    """``leaky_relu(input + bias, negative_slope) * scale``, the bias along dim 1.

    Args:
        input: [N, C, ...] (any rank >= 2: [N, C] after a linear layer, [N, C, H, W] after a conv).
        bias: None or [C] (cast to ``input``'s dtype).
        negative_slope: the slope for negative inputs, honoured on every device (the original's CPU
            path ignores it and always uses 0.2).
        scale: output gain.

    Returns:
        A tensor of ``input``'s shape and dtype, differentiable to second order (gan_fast's fused
        bias_act kernels where available, else the reference).
    """
    checks.tensor("input", input, shape_hint="[N, C, ...]")
    if input.ndim < 2:
        raise ValueError(f"input must be [N, C, ...] with at least 2 dimensions, got shape {tuple(input.shape)}")
    if bias is not None:
        checks.tensor("bias", bias, ndim=1, shape_hint=f"[{input.shape[1]}] (input.shape[1])")
        if bias.shape[0] != input.shape[1]:
            raise ValueError(f"bias must have shape [{input.shape[1]}] (input.shape[1]), got {tuple(bias.shape)}")
    negative_slope = checks.number("negative_slope", negative_slope)  # named here, not as bias_act's alpha/gain
    scale = checks.number("scale", scale)
    return ops.bias_act(input, bias, dim=1, act="lrelu", alpha=negative_slope, gain=scale)


_UNSET = object()  # a keyword argument that was not passed

_SIGNATURES = ("FusedLeakyReLU(channel, bias=True, negative_slope=0.2, scale=2 ** 0.5) (rosinality's current "
               "signature) or FusedLeakyReLU(channel, negative_slope=0.2, scale=2 ** 0.5) (the older one vendored "
               "in BasicSR, GFPGAN, e4e and pSp, which always has a bias)")


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _parse_args(args: tuple, bias, negative_slope, scale) -> Tuple[bool, float, float]:
    """(bias, negative_slope, scale) from either signature; see :class:`FusedLeakyReLU`."""
    keywords = {"bias": bias, "negative_slope": negative_slope, "scale": scale}
    if not args:
        names = ()
    elif isinstance(args[0], bool):
        names = ("bias", "negative_slope", "scale")  # the current signature
    elif _is_number(args[0]):
        names = ("negative_slope", "scale")  # the older signature: it has no bias argument
        if bias is not _UNSET:
            raise TypeError(f"FusedLeakyReLU got a number ({args[0]!r}) as its second positional argument, which "
                            f"is negative_slope in the older signature, and also the keyword bias, which only the "
                            f"current signature has; call {_SIGNATURES}")
    else:
        raise TypeError(f"FusedLeakyReLU's second positional argument must be a bool (bias) or a number "
                        f"(negative_slope), got {type(args[0]).__name__}; call {_SIGNATURES}")
    if len(args) > len(names):
        raise TypeError(f"FusedLeakyReLU takes at most {len(names) + 1} positional arguments in the signature "
                        f"{'with bias' if len(names) == 3 else 'without bias'}, got {len(args) + 1}; "
                        f"call {_SIGNATURES}")
    for name, value in zip(names, args):
        if keywords[name] is not _UNSET:
            raise TypeError(f"FusedLeakyReLU got {name} both positionally ({value!r}) and by keyword "
                            f"({keywords[name]!r}); call {_SIGNATURES}")
        keywords[name] = value
    defaults = {"bias": True, "negative_slope": 0.2, "scale": 2 ** 0.5}
    return tuple(defaults[k] if v is _UNSET else v for k, v in keywords.items())  # type: ignore[return-value]


class FusedLeakyReLU(nn.Module):
    """Bias + leaky ReLU + scale; its only state is the parameter ``bias`` ([channel], zeros), none when
    ``bias=False``, so checkpoints of the original load as they are.

    Takes both of rosinality's signatures:

    * ``FusedLeakyReLU(channel, bias=True, negative_slope=0.2, scale=2 ** 0.5)``, the current one;
    * ``FusedLeakyReLU(channel, negative_slope=0.2, scale=2 ** 0.5)``, the older one vendored in
      BasicSR, GFPGAN, e4e and pSp (always with a bias parameter).

    The second positional argument decides: a ``bool`` is ``bias`` (the current signature), an int
    or float (not a bool) is ``negative_slope``, with ``scale`` third (the older signature), so
    ``FusedLeakyReLU(4, 0.1)`` has slope 0.1 and a bias, as in those projects. Anything else, an
    argument given both positionally and by keyword (``FusedLeakyReLU(4, 0.1, negative_slope=0.3)``),
    or ``bias=`` with the older form raise ``TypeError``. Keyword calls mean the same in both.

    ``forward(input [N, channel, ...]) -> [N, channel, ...]``.
    """

    def __init__(self, channel: int, *args, bias=_UNSET, negative_slope=_UNSET, scale=_UNSET):
        super().__init__()
        bias, negative_slope, scale = _parse_args(args, bias, negative_slope, scale)
        checks.number("negative_slope", negative_slope)
        checks.number("scale", scale)
        if bias:
            self.bias = nn.Parameter(torch.zeros(channel))
        else:
            self.bias = None
        self.negative_slope = negative_slope
        self.scale = scale

    def extra_repr(self) -> str:
        return f"bias={self.bias is not None}, negative_slope={self.negative_slope}, scale={self.scale}"

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(input, self.bias, self.negative_slope, self.scale)

"""What every backend module shares: :class:`OpSpec` and the cached signatures of the autograd Functions.
Imports nothing of gan_fast."""

import threading
from typing import Callable, Mapping, Optional, Tuple

__all__ = ["OpSpec", "DTYPE_NEEDS", "cache_signatures"]

# Needs whose refusal is about the dtype (raised as UnsupportedDtypeError, also a TypeError).
DTYPE_NEEDS = frozenset({"float64", "complex"})


class OpSpec:
    """What ``gan_fast.backend.choose`` needs to know about an op's backends (immutable).

    Attributes:
        name: the op's name as the self-test knows it (one per algorithm where an op has several:
            ``modulated_conv2d_bias_act:implicit_gemm``).
        op: the public op's name, as ``gan_fast.config.use_backend(<op>=...)`` names it.
        fast: device type -> the fast backends the automatic choice tries, best first.
        explicit: fast backends that run only when asked for (``impl=``), e.g. a CPU kernel slower than ``ref``.
        min_numel: device type -> below this many elements the automatic choice runs ``ref`` (measured faster).
        cannot: backend -> {need: why}: what a backend refuses. A call lists its needs (``'float64'``,
            ``'learned filter'`` ...); an explicit request for a backend that cannot serve one raises
            ``BackendUnavailableError`` with the reason, the automatic choice runs ``ref`` instead.
        backends: every backend the op has, ``ref`` first.
    """

    __slots__ = ("name", "op", "fast", "explicit", "min_numel", "cannot", "backends")

    def __init__(self, name: str, op: str, fast: Mapping[str, Tuple[str, ...]], explicit: Tuple[str, ...] = (),
                 min_numel: Optional[Mapping[str, int]] = None,
                 cannot: Optional[Mapping[str, Mapping[str, str]]] = None):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "fast", {k: tuple(v) for k, v in fast.items()})
        object.__setattr__(self, "explicit", tuple(explicit))
        object.__setattr__(self, "min_numel", dict(min_numel or {}))
        object.__setattr__(self, "cannot", {k: dict(v) for k, v in (cannot or {}).items()})
        others = sorted({b for order in self.fast.values() for b in order} | set(self.explicit))
        object.__setattr__(self, "backends", ("ref",) + tuple(others))

    def __setattr__(self, name, value):
        raise AttributeError("OpSpec is immutable")

    def __repr__(self) -> str:
        return f"OpSpec({self.name!r}, fast={self.fast}, explicit={self.explicit})"


def cache_signatures(*functions) -> None:
    """Sets ``forward.__signature__`` on each ``autograd.Function`` with a separate ``setup_context``:
    ``Function.apply`` binds its arguments to forward's signature on every call (public API, no private
    hook), and a cached signature spares it an ``inspect`` pass per call (host time)."""
    import inspect  # noqa: PLC0415

    for fn in functions:
        fn.forward.__signature__ = inspect.signature(fn.forward)

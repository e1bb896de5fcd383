"""Autograd glue and torch.library registration for the fast (Triton / C++) backends."""

import inspect


def cache_signatures(*functions) -> None:
    """Sets ``forward.__signature__`` on each ``autograd.Function`` with a separate ``setup_context``:
    ``Function.apply`` binds its arguments to forward's signature on every call (public API, no private
    hook), and a cached signature spares it an ``inspect`` pass per call (host time)."""
    for fn in functions:
        fn.forward.__signature__ = inspect.signature(fn.forward)

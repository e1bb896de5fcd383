"""Helpers shared by the Triton launchers: layout checks, float64 scalars, ticket counters, autotuning.

Ticket counters are self-resetting int32 counters for "the last program finishes the reduction" kernels.

A kernel whose programs each write a partial result takes a ticket with
``tl.atomic_add(counter, 1, sem='acq_rel')``; the program that draws the last
ticket reduces the partials in a fixed order (deterministic, no float atomics)
and stores 0 back into the counter. So a counter is all zeros between launches
and needs no memset per call. Counters are kept per (device, stream): launches
on one stream are ordered, so they never share a counter concurrently.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import struct
import threading
from collections import OrderedDict
from typing import Dict, Iterator, List, Optional, Tuple

import torch

from ..shapes import is_channels_last, is_dense  # noqa: F401 - the one gan_fast module kernels import
from ._device import DeviceInfo, device_info, interpreting  # noqa: F401


def to_float32(value: float) -> float:
    """``value`` rounded to the nearest float32 (inf beyond its range), as a Python float; no tensor."""
    try:
        return struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)



def split_f64(value: float, f64: bool) -> Tuple[float, float]:
    """``value`` as float32 hi + lo (lo = 0 unless ``f64``): Triton passes Python floats as float32, so
    float64 kernels rebuild about 48 bits of the value as ``(zero_f64 + hi) + lo``. Host arithmetic only:
    it runs on every launch."""
    hi = to_float32(value)
    return hi, (to_float32(value - hi) if f64 and math.isfinite(hi) else 0.0)


class nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def device_guard(t: torch.Tensor):
    """torch.cuda.device(t.device) for CUDA tensors (Triton launches on the current device), else a no-op."""
    return torch.cuda.device(t.device) if t.is_cuda else nullcontext()

_lock = threading.Lock()
# (device type, index, stream) -> counters, least recently used first. Bounded: a program that makes streams
# on the fly (one per request, say) must not keep a buffer alive for every stream it ever used.
_counters: "OrderedDict[Tuple[str, int, int], torch.Tensor]" = OrderedDict()
MAX_COUNTER_STREAMS = 16


def _stream_key(device: torch.device) -> Tuple[str, int, int]:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return ("cuda", index, torch.cuda.current_stream(index).cuda_stream)
    return (device.type, device.index or 0, 0)


def counters(device: torch.device, n: int) -> torch.Tensor:
    """At least ``n`` zeroed int32 counters on ``device`` for the current stream (the kernel must re-zero them).

    A buffer evicted from the bounded cache is freed by the caching allocator in its stream's order, after the
    kernels queued on that stream, so eviction never races a running kernel.
    """
    key = _stream_key(torch.device(device))
    with _lock:
        buf = _counters.get(key)
        if buf is None or buf.numel() < n:
            size = max(n, 64, 0 if buf is None else 2 * buf.numel())
            buf = torch.zeros(size, dtype=torch.int32, device=device)
            _counters[key] = buf
        _counters.move_to_end(key)
        while len(_counters) > MAX_COUNTER_STREAMS:
            _counters.popitem(last=False)
        return buf


# ----------------------------------------------------------------------------------------------------- autotuning

AUTOTUNE_MODES = ("full", "first")


def _autotune_from_env() -> str:
    raw = os.environ.get("GAN_FAST_AUTOTUNE", "").strip().lower()
    if raw and raw not in AUTOTUNE_MODES:
        raise ValueError(f"environment variable GAN_FAST_AUTOTUNE={raw!r} is invalid: valid values are "
                         f"{AUTOTUNE_MODES}")
    return raw or "full"


# "full": tune per shape; "first": the first config only (tests). GAN_FAST_AUTOTUNE is its default, read once.
_autotune_mode = _autotune_from_env()
_forced_config: Optional[int] = None


def autotune_mode() -> str:
    return _autotune_mode


def set_autotune_mode(mode: str) -> None:
    """'full' or 'first' (``gan_fast.config.set_autotune`` is the public switch)."""
    global _autotune_mode
    if mode not in AUTOTUNE_MODES:
        raise ValueError(f"autotune mode must be one of {AUTOTUNE_MODES}, got {mode!r}")
    _autotune_mode = mode


class Tuned:
    """An autotuned kernel: ``tuned[grid](*args, **constexprs)`` as ``triton.autotune``'s, with two switches.

    Autotune mode 'first' (``gan_fast.config.set_autotune``, default from ``GAN_FAST_AUTOTUNE``) launches the
    first config without tuning (the test suite: tuning every test shape would cost more than the tests), and
    :func:`force_config` launches one given config (so a test can run each config once). ``cache_results``
    (Triton's on-disk cache of tuning results) is used where the installed Triton has it.
    """

    def __init__(self, fn, configs: List, key: List[str]):
        import triton  # noqa: PLC0415

        self.fn, self.configs, self.key = fn, list(configs), list(key)
        options = {"cache_results": True} if "cache_results" in inspect.signature(triton.autotune).parameters else {}
        self.tuner = triton.autotune(configs=self.configs, key=key, **options)(fn)

    def __getitem__(self, grid):
        index = _forced_config
        if index is None and _autotune_mode == "first":
            index = 0
        if index is None:
            return self.tuner[grid]
        cfg = self.configs[index]
        options = {"maxnreg": cfg.maxnreg} if getattr(cfg, "maxnreg", None) else {}

        def launch(*args, **kwargs):
            return self.fn[grid](*args, **kwargs, **cfg.kwargs, num_warps=cfg.num_warps, num_stages=cfg.num_stages,
                                 **options)
        return launch


@contextlib.contextmanager
def force_config(index: int) -> Iterator[None]:
    """Every :class:`Tuned` kernel launched inside runs its config ``index`` (tests)."""
    global _forced_config
    old, _forced_config = _forced_config, index
    try:
        yield
    finally:
        _forced_config = old

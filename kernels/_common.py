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
from typing import Dict, Iterator, List, Optional, Tuple

import torch

from ..backend import interpreter_enabled as interpreting  # noqa: F401 - one definition, re-exported for kernels


def on_gpu(t: torch.Tensor) -> bool:
    """A CUDA tensor that real GPU kernels will process (not the interpreter)."""
    return t.device.type == "cuda" and not interpreting()


def is_dense(t: torch.Tensor) -> bool:
    """Non-overlapping and dense: the elements fill numel consecutive storage slots in some order."""
    if t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last) or (
            t.ndim == 5 and t.is_contiguous(memory_format=torch.channels_last_3d)):
        return True
    dims = sorted(((s, st) for s, st in zip(t.shape, t.stride()) if s != 1), key=lambda p: p[1])
    expected = 1
    for size, stride in dims:
        if stride != expected:
            return False
        expected *= size
    return True


def to_float32(value: float) -> float:
    """``value`` rounded to the nearest float32 (inf beyond its range), as a Python float; no tensor."""
    try:
        return struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


def is_channels_last(t: torch.Tensor) -> bool:
    """channels_last and not also contiguous (a [N, C, 1, 1] tensor is both): the launchers keep this layout."""
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


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
_counters: Dict[Tuple[str, int, int], torch.Tensor] = {}


def _stream_key(device: torch.device) -> Tuple[str, int, int]:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return ("cuda", index, torch.cuda.current_stream(index).cuda_stream)
    return (device.type, device.index or 0, 0)


def counters(device: torch.device, n: int) -> torch.Tensor:
    """At least ``n`` zeroed int32 counters on ``device`` for the current stream (the kernel must re-zero them)."""
    key = _stream_key(torch.device(device))
    with _lock:
        buf = _counters.get(key)
        if buf is None or buf.numel() < n:
            size = max(n, 64, 0 if buf is None else 2 * buf.numel())
            buf = torch.zeros(size, dtype=torch.int32, device=device)
            _counters[key] = buf
        return buf


# ----------------------------------------------------------------------------------------------------- autotuning

AUTOTUNE_ENV = "GAN_FAST_AUTOTUNE"  # "full" (default): tune per shape; "first": the first config only (tests)
_forced_config: Optional[int] = None


class Tuned:
    """An autotuned kernel: ``tuned[grid](*args, **constexprs)`` as ``triton.autotune``'s, with two switches.

    ``GAN_FAST_AUTOTUNE=first`` launches the first config without tuning (the test suite: tuning every
    test shape would cost more than the tests), and :func:`force_config` launches one given config (so a
    test can run each config once). ``cache_results`` (Triton's on-disk cache of tuning results) is used
    where the installed Triton has it.
    """

    def __init__(self, fn, configs: List, key: List[str]):
        import triton  # noqa: PLC0415

        self.fn, self.configs = fn, list(configs)
        options = {"cache_results": True} if "cache_results" in inspect.signature(triton.autotune).parameters else {}
        self.tuner = triton.autotune(configs=self.configs, key=key, **options)(fn)

    def __getitem__(self, grid):
        index = _forced_config
        if index is None and os.environ.get(AUTOTUNE_ENV, "full") == "first":
            index = 0
        if index is None:
            return self.tuner[grid]
        cfg = self.configs[index]

        def launch(*args, **kwargs):
            return self.fn[grid](*args, **kwargs, **cfg.kwargs, num_warps=cfg.num_warps, num_stages=cfg.num_stages)
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

"""The device a launch is planned for: a small description, and the one place that reads it from torch.

Every launch decision of the launchers (grid, split, block sizes, autotune configs, fuse thresholds, dot
precision) is a pure function of shapes, dtypes and a :class:`DeviceInfo`; the launchers pass the description
of the tensor's device (:func:`device_info`, read once per device and cached), and a tool that evaluates a
launch without a GPU passes a description of its own (:data:`SM90`, :data:`SM80`), or forces one for the
launchers with :func:`assume_device` (``benchmarks/static_report.py`` records the launches of meta tensors so).

The interpreter (``TRITON_INTERPRET=1``, CPU tensors) is a test mode with its own cost model (per program and
per operation, not per element): it has its own description, :data:`INTERPRETER`, whose ``interpreter`` flag
selects the larger tiles the launchers use there. No launcher tests ``device.type`` or calls ``torch.cuda``
for a launch decision.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Tuple

import torch

__all__ = ["DeviceInfo", "SM90", "SM80", "INTERPRETER", "KNOWN", "device_info", "assume_device", "interpreting",
           "occupancy"]


def interpreting() -> bool:
    """True when Triton kernels run on CPU tensors through Triton's interpreter (``TRITON_INTERPRET``,
    Triton's own switch, read by triton at import)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@dataclass(frozen=True)
class DeviceInfo:
    """What the launch decisions need to know of a device.

    ``smem_per_sm``: shared memory per SM usable by blocks (bytes); ``smem_per_block``: the most one block may
    take; ``smem_reserved_per_block``: what the driver keeps per resident block (1 KB from sm_80);
    ``interpreter``: Triton's interpreter, not a GPU (its own tile sizes).
    """
    name: str
    sm_count: int
    capability: Tuple[int, int]
    smem_per_sm: int
    smem_per_block: int
    regs_per_sm: int = 65536
    max_regs_per_thread: int = 255
    max_warps_per_sm: int = 64
    max_blocks_per_sm: int = 32
    reg_alloc_unit: int = 256  # registers are allocated per warp in units of this many
    smem_reserved_per_block: int = 1024
    interpreter: bool = False

    @property
    def arch(self) -> int:
        """Compute capability as Triton's ``GPUTarget`` arch (90 for sm_90)."""
        return self.capability[0] * 10 + self.capability[1]


# H100 SXM (sm_90): 132 SMs, 228 KB shared memory per SM (227 KB per block), 64 warps and 32 blocks per SM.
SM90 = DeviceInfo("sm_90 (H100 SXM)", 132, (9, 0), 228 * 1024, 227 * 1024)
# A100 (sm_80): 108 SMs, 164 KB shared memory per SM (163 KB per block), 64 warps and 32 blocks per SM.
SM80 = DeviceInfo("sm_80 (A100)", 108, (8, 0), 164 * 1024, 163 * 1024)
# Triton's interpreter: one "SM", large tiles (its cost is per program and per operation).
INTERPRETER = DeviceInfo("interpreter", 1, (0, 0), 1 << 30, 1 << 30, interpreter=True)
KNOWN: Dict[int, DeviceInfo] = {90: SM90, 80: SM80}

_cache: Dict[Tuple[str, int], DeviceInfo] = {}
_lock = threading.Lock()
_assumed: contextvars.ContextVar[Optional[DeviceInfo]] = contextvars.ContextVar("gan_fast_assumed_device",
                                                                               default=None)


def _read_cuda(index: int) -> DeviceInfo:
    """The description of CUDA device ``index``, from torch (the only place that reads it)."""
    props = torch.cuda.get_device_properties(index)
    cap = (props.major, props.minor)
    known = KNOWN.get(cap[0] * 10 + cap[1])
    smem_sm = getattr(props, "shared_memory_per_multiprocessor", 0) or (known.smem_per_sm if known else 0)
    smem_block = getattr(props, "shared_memory_per_block_optin", 0) or (known.smem_per_block if known else 0)
    regs = getattr(props, "regs_per_multiprocessor", 0) or 65536
    warps = (getattr(props, "max_threads_per_multi_processor", 0) or 2048) // 32
    return DeviceInfo(props.name, props.multi_processor_count, cap, smem_sm, smem_block, regs_per_sm=regs,
                      max_warps_per_sm=warps)


def device_info(device: torch.device) -> DeviceInfo:
    """The description the launchers plan a launch on ``device`` with: the one :func:`assume_device` set,
    else :data:`INTERPRETER` under the interpreter or for a non-CUDA device, else the CUDA device's own
    (read once per device)."""
    assumed = _assumed.get()
    if assumed is not None:
        return assumed
    if interpreting() or device.type != "cuda":
        return INTERPRETER
    index = device.index if device.index is not None else torch.cuda.current_device()
    key = (device.type, index)
    info = _cache.get(key)
    if info is None:
        with _lock:
            info = _cache.get(key)
            if info is None:
                info = _cache[key] = _read_cuda(index)
    return info


@contextlib.contextmanager
def assume_device(info: DeviceInfo) -> Iterator[DeviceInfo]:
    """Inside, every launcher plans its launches for ``info`` whatever its tensors' device (a tool recording
    the launches of meta tensors as a GPU would make them)."""
    token = _assumed.set(info)
    try:
        yield info
    finally:
        _assumed.reset(token)


def occupancy(dev: DeviceInfo, regs_per_thread: int, smem_per_block: int, num_warps: int) -> Tuple[float, int, str]:
    """Theoretical occupancy of a kernel on ``dev``: (resident warps / max warps per SM, resident blocks per SM,
    the limiting resource).

    blocks = min(max_blocks_per_sm,
                 max_warps_per_sm // num_warps,
                 (regs_per_sm // (ceil(regs_per_thread * 32 / reg_alloc_unit) * reg_alloc_unit)) // num_warps,
                 smem_per_sm // (smem_per_block + smem_reserved_per_block)   [only when smem_per_block > 0])
    occupancy = blocks * num_warps / max_warps_per_sm
    (registers are allocated per warp in units of 256; the driver reserves 1 KB of shared memory per block).
    """
    unit = dev.reg_alloc_unit
    regs_warp = -(-max(regs_per_thread, 1) * 32 // unit) * unit
    limits = {"blocks": dev.max_blocks_per_sm, "warps": dev.max_warps_per_sm // num_warps,
              "registers": (dev.regs_per_sm // regs_warp) // num_warps}
    if smem_per_block > 0:
        limits["shared memory"] = (dev.smem_per_sm // (smem_per_block + dev.smem_reserved_per_block)
                                   if smem_per_block <= dev.smem_per_block else 0)
    blocks = min(limits.values())
    limiter = min(limits, key=lambda k: (limits[k], k != "registers"))
    return blocks * num_warps / dev.max_warps_per_sm, blocks, limiter

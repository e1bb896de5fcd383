"""Peak memory bandwidth by device name (standard library only: the report reads it too)."""

from __future__ import annotations

from typing import Optional, Tuple

__all__ = ["PEAK_GBPS", "peak_gbps"]

# Peak DRAM bandwidth in GB/s by device name: (fragments that must all appear in the name, GB/s), first match.
# "NVIDIA H100 80GB HBM3" is the SXM part; an H100 NVL or any other device is not listed (it reports GB/s only).
PEAK_GBPS: Tuple[Tuple[Tuple[str, ...], float], ...] = (
    (("H200",), 4800.0),
    (("H100", "PCIe"), 2000.0),
    (("H100", "HBM3"), 3350.0),
    (("H100", "SXM"), 3350.0),
    (("A100", "40GB"), 1555.0),
    (("A100", "80GB"), 2039.0),
)


def peak_gbps(device: Optional[str]) -> Optional[float]:
    """The peak memory bandwidth (GB/s) of a device by its name, or None when it is not in :data:`PEAK_GBPS`."""
    if not device:
        return None
    for fragments, gbps in PEAK_GBPS:
        if all(f.lower() in device.lower() for f in fragments):
            return gbps
    return None

"""``gan-fast-self-test``: every op's self-test on each of its fast backends, one line per (op, backend, dtype)."""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Optional, Sequence

import torch

from . import cache, check, clear_cache, dtypes, registered


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Prints ok / FAILED (with the reason) / unavailable (with why) per (op, backend, dtype); exits 1 when a
    backend that can run here fails, 2 on a usage error (no CUDA for ``--device cuda``, an ``--op`` pattern
    that matches no op). The checks run afresh: the verdict cache is neither read nor written."""
    from .. import backend  # noqa: PLC0415 - the choice imports this package

    ap = argparse.ArgumentParser(prog="gan-fast-self-test", description=(main.__doc__ or "").splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--op", default=None, metavar="REGEX", help="only ops whose name matches this regex")
    ap.add_argument("--clear-cache", action="store_true",
                    help=f"remove the stored verdicts ({cache.directory()}) and exit")
    args = ap.parse_args(argv)
    if args.clear_cache:
        print(f"gan_fast: removed the stored self-test verdicts in {clear_cache()}")
        return 0
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        print(f"gan-fast-self-test: bad --device {args.device!r}: {exc}", file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gan-fast-self-test: CUDA is not available here (torch.cuda.is_available() is False); "
              "use --device cpu", file=sys.stderr)
        return 2
    registry = registered()
    names = sorted(n for n in registry if args.op is None or re.search(args.op, n))
    if not names:
        print(f"gan-fast-self-test: --op {args.op!r} matches no op; the ops are: {', '.join(sorted(registry))}",
              file=sys.stderr)
        return 2
    status = backend.available_backends(device)
    failed = False
    dts = dtypes(device)
    print(f"gan_fast self-test on {device} (torch {torch.__version__}; dtypes "
          f"{', '.join(str(d).replace('torch.', '') for d in dts)})", flush=True)
    for name in names:
        for impl in registry[name].backends:
            usable, why = status[impl]
            if not usable:
                print(f"  {name:40s} {impl:7s} unavailable: {why}", flush=True)
                continue
            for dt in dts:  # one line per dtype as it finishes: a run cut short keeps what it checked
                t0 = time.perf_counter()
                ok, reason = check(name, impl, device, (dt,))
                failed |= not ok
                took = f"{str(dt).replace('torch.', '')} ({time.perf_counter() - t0:.1f} s)"
                print(f"  {name:40s} {impl:7s} {'ok ' + took if ok else 'FAILED ' + took + ': ' + reason}",
                      flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""What touching memory again costs on this machine, after it was freed and left idle.

    python experiments/bench_memory_reuse.py [--gb 2] [--pauses 0,0,1,3,6,0] [--json OUT]

Allocates and fills a numpy array of ``--gb`` GB, frees it, waits each pause in turn and does
it again, and prints the wall and system seconds of each fill. On a machine whose memory
stays with the guest every fill after the first costs about the same (zeroing fresh pages:
about 0.1-0.2 s per GB). On a VM whose balloon device reports free pages to the host
(virtio ``REPORTING``), memory left idle for a few seconds goes back to the host and the
next fill pays the host's faults again: docs/decisions.md "perf7" (2 GB: 0.2-0.6 s right after
a free, 3.4-6.0 s after 1-6 s idle; after 1 s it was cheap in one of two runs), which is where
the 1M feature build's system time goes.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def _system_s() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def fills(gb: float, pauses: list[float]) -> list[dict[str, float]]:
    """One fill of ``gb`` GB after each pause (seconds idle since the previous fill freed)."""
    n = int(gb * 2**30) // 8
    out = []
    for pause in pauses:
        time.sleep(pause)
        s0, t0 = _system_s(), time.perf_counter()
        a = np.ones(n)
        out.append(
            {
                "idle_s": pause,
                "wall_s": round(time.perf_counter() - t0, 3),
                "system_s": round(_system_s() - s0, 3),
            }
        )
        del a
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gb", type=float, default=2.0, help="size of each fill (default 2)")
    p.add_argument(
        "--pauses",
        default="0,0,1,3,6,0",
        help="seconds idle before each fill, comma-separated (default 0,0,1,3,6,0)",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = p.parse_args(argv)
    try:
        pauses = [float(x) for x in args.pauses.split(",")]
    except ValueError:
        p.error(f"--pauses: not a comma-separated list of seconds: {args.pauses!r}")
    result = {"gb": args.gb, "fills": fills(args.gb, pauses)}
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""How long one core goes without running us: a pinned busy loop and its gaps.

Spins on one core (`--cpu N`) for `--seconds S` reading time.perf_counter() and counts
the gaps between two readings longer than 0.5, 2 and 5 ms: time in which the loop did
not run (another task, an interrupt, or the hypervisor running another guest on this
vCPU). Prints the counts, the longest gap and the time lost in gaps over 0.5 ms, with the
core's steal % from /proc/stat over the same span; the last line is one JSON object.

A server pinned to that core cannot send a 20 ms RTP frame on time across a gap longer
than its slack, whatever its own code does: on a quiet machine these gaps are the floor
under its pacing p99. Run it on a quiet machine, on the core the server gets
(`switchboard bench` pins the server to core 0):

    python scripts/sched_gaps.py --cpu 0 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from switchboard.benchnodes import proc_stat  # noqa: E402
from switchboard.benchreport import steal_pct  # noqa: E402

THRESHOLDS_MS = (0.5, 2.0, 5.0)
MAX_SECONDS = 600.0


def spin(seconds: float) -> dict[str, float | int]:
    """Busy-loops for `seconds`; the gaps between consecutive clock readings."""
    counts = [0] * len(THRESHOLDS_MS)
    lost = longest = 0.0
    loops = 0
    first = 0.5 / 1000.0
    limits = [t / 1000.0 for t in THRESHOLDS_MS]
    clock = time.perf_counter
    start = last = clock()
    end = start + seconds
    while last < end:
        now = clock()
        gap = now - last
        last = now
        loops += 1
        if gap > first:
            lost += gap
            longest = max(longest, gap)
            for i, limit in enumerate(limits):
                if gap > limit:
                    counts[i] += 1
    out: dict[str, float | int] = {f"gaps_over_{t:g}ms": n for t, n in zip(THRESHOLDS_MS, counts,
                                                                           strict=True)}
    out.update({"max_gap_ms": round(longest * 1000.0, 3),
                "lost_ms": round(lost * 1000.0, 1),
                "lost_pct": round(100.0 * lost / (last - start), 2),
                "loops": loops,
                "elapsed_s": round(last - start, 3)})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu", type=int, default=0, help="core to spin on (default 0)")
    p.add_argument("--seconds", type=float, default=10.0,
                   help=f"how long to spin (default 10, at most {MAX_SECONDS:g})")
    args = p.parse_args(argv)
    if not 0 < args.seconds <= MAX_SECONDS:
        p.error(f"--seconds must be in (0, {MAX_SECONDS:g}]")
    try:
        os.sched_setaffinity(0, {args.cpu})
    except (OSError, ValueError) as exc:
        p.error(f"--cpu {args.cpu}: {exc}")
    before = proc_stat()
    result: dict[str, object] = {"cpu": args.cpu, **spin(args.seconds)}
    result["cpu_steal_pct"] = steal_pct(before, proc_stat(), [args.cpu])
    load = os.getloadavg()
    result["loadavg_1m"] = round(load[0], 2)
    print(f"core {args.cpu}, {result['elapsed_s']} s: gaps > 0.5 ms {result['gaps_over_0.5ms']}, "
          f"> 2 ms {result['gaps_over_2ms']}, > 5 ms {result['gaps_over_5ms']}; "
          f"longest {result['max_gap_ms']} ms; lost {result['lost_ms']} ms "
          f"({result['lost_pct']} %); steal {result['cpu_steal_pct']} % "
          f"(load average {result['loadavg_1m']})")
    print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

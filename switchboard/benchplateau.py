"""The server's CPU on the plateau: while the load held at its peak.

A run's total CPU covers the ramp, the IVR phase of every call, set-up and tear-down as
well as the load it was meant to measure. "CPU at 200 bridged calls" is a rate at that
load, so the bench also samples each server thread's CPU seconds with every health poll
and reports them over the longest stretch in which the level (bridged calls when the run
has agents, else calls up) stayed within `TOLERANCE` of its peak. No call starts or
ends there only if the run places no more calls than its concurrency; with more, the
plateau includes the churn of calls replacing each other at that load.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MIN_S", "TOLERANCE", "Plateau", "Sample", "plateau_figures", "plateau_line"]

TOLERANCE = 0.02  # of the peak: 200 calls up means 196 to 200
MIN_S = 5.0  # a shorter stretch is no plateau


@dataclass(frozen=True)
class Sample:
    t: float  # monotonic seconds
    level: int
    cpu: dict[str, float]  # CPU seconds used so far, by thread name


class Plateau:
    """Samples taken during a run; `figures()` reads the plateau off them."""

    def __init__(self, of: str) -> None:
        self.of = of  # "bridged" or "calls"
        self.samples: list[Sample] = []

    def add(self, t: float, level: int, *cpus: dict[str, float]) -> None:
        """One poll: the level and each node's CPU seconds by thread (added up by name).
        A poll with a node unread (its /proc gone) is left out rather than undercounted."""
        if not all(cpus):
            return
        total: dict[str, float] = {}
        for cpu in cpus:
            for name, used in cpu.items():
                total[name] = total.get(name, 0.0) + used
        self.samples.append(Sample(t, level, total))

    def figures(self) -> dict[str, Any]:
        return plateau_figures(self.of, self.samples)


def _longest(samples: Sequence[Sample], floor: int) -> tuple[int, int] | None:
    """Indexes (first, last) of the longest run of consecutive samples at `floor` or more."""
    best: tuple[int, int] | None = None
    start: int | None = None
    for i, sample in enumerate(samples):
        if sample.level < floor:
            start = None
            continue
        if start is None:
            start = i
        if best is None or sample.t - samples[start].t > samples[best[1]].t - samples[best[0]].t:
            best = (start, i)
    return best


def plateau_figures(of: str, samples: Sequence[Sample], tolerance: float = TOLERANCE,
                    min_s: float = MIN_S) -> dict[str, Any]:
    """``plateau_of``, ``plateau_calls_min``/``_max`` (the level's range there),
    ``plateau_s``, ``plateau_cpu_pct_of_core`` and ``plateau_cpu_pct_by_thread``; all but
    the first are None when the level never held for `min_s`."""
    out: dict[str, Any] = {"plateau_of": of, "plateau_calls_min": None, "plateau_calls_max": None,
                           "plateau_s": None, "plateau_cpu_pct_of_core": None,
                           "plateau_cpu_pct_by_thread": None}
    peak = max((s.level for s in samples), default=0)
    if peak <= 0:
        return out
    span = _longest(samples, peak - math.floor(peak * tolerance))
    if span is None:
        return out
    first, last = samples[span[0]], samples[span[1]]
    seconds = last.t - first.t
    if seconds < min_s:
        return out
    # a thread that started on the plateau counts from zero; one that ended is not there
    used = {name: max(cpu - first.cpu.get(name, 0.0), 0.0) for name, cpu in last.cpu.items()}
    levels = [s.level for s in samples[span[0]:span[1] + 1]]
    out.update({
        "plateau_calls_min": min(levels),
        "plateau_calls_max": max(levels),
        "plateau_s": round(seconds, 1),
        "plateau_cpu_pct_of_core": round(100.0 * sum(used.values()) / seconds, 2),
        "plateau_cpu_pct_by_thread": {
            name: round(100.0 * cpu / seconds, 2)
            for name, cpu in sorted(used.items(), key=lambda x: -x[1])
            if cpu > 0 or name == "main" or name.startswith("sb-")},
    })
    return out


def plateau_line(result: dict[str, Any]) -> str:
    """The markdown report's sentence about the plateau."""
    what = "bridged calls" if result.get("plateau_of") == "bridged" else "calls up"
    if result.get("plateau_s") is None:
        return f"Plateau: the number of {what} never held near its peak for {MIN_S:g} s."
    threads = ", ".join(f"{name} {pct:g} %"
                        for name, pct in (result.get("plateau_cpu_pct_by_thread") or {}).items())
    return (f"Plateau: {result['plateau_calls_min']}-{result['plateau_calls_max']} {what} "
            f"for {result['plateau_s']:g} s, server CPU {result['plateau_cpu_pct_of_core']:g} % "
            f"of a core ({threads}).")

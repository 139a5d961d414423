"""One timer heap for every ACD deadline (ring timeouts, wrap-up, max wait, relaxation,
announcements). Sans-IO: the owner reads `next_deadline()` and calls `fire(now)`.

The same small heap as `signaling/timers.py`, kept apart on purpose: `acd` imports no
other project package (DESIGN.md, "Layers"), so it can run on any process or store."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

TimerCallback = Callable[[float], None]


class TimerHeap:
    """(deadline, handle) heap with lazy cancellation; ties fire in scheduling order."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, TimerCallback] = {}
        self._ids = itertools.count(1)

    def schedule(self, when: float, callback: TimerCallback) -> int:
        handle = next(self._ids)
        self._live[handle] = callback
        heapq.heappush(self._heap, (when, handle))
        return handle

    def cancel(self, handle: int | None) -> None:
        if handle is not None:
            self._live.pop(handle, None)
        # Dead entries are dropped lazily; compact when they dominate so the heap stays bounded.
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._live):
            self._heap = [e for e in self._heap if e[1] in self._live]
            heapq.heapify(self._heap)

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0][1] not in self._live:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def fire(self, now: float) -> int:
        """Run every timer due at `now`, including ones scheduled while firing."""
        ran = 0
        while self._heap and self._heap[0][0] <= now:
            _, handle = heapq.heappop(self._heap)
            callback = self._live.pop(handle, None)
            if callback is not None:
                callback(now)
                ran += 1
        return ran

    def __len__(self) -> int:
        return len(self._live)

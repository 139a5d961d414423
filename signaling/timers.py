"""One timer heap for every SIP transaction and dialog timer (DESIGN.md, "Hot paths").

Sans-IO: nothing here reads a clock. The owner asks `next_deadline()`, arms a single
asyncio timer for it, and calls `fire(now)` when it goes off.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

TimerCallback = Callable[[float], None]


class TimerHeap:
    """A binary heap of (deadline, id) with lazy cancellation."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, TimerCallback] = {}
        self._ids = itertools.count(1)

    def schedule(self, when: float, callback: TimerCallback) -> int:
        """Run `callback(now)` at `when`; returns a handle for `cancel`."""
        handle = next(self._ids)
        self._live[handle] = callback
        heapq.heappush(self._heap, (when, handle))
        return handle

    def cancel(self, handle: int | None) -> None:
        if handle is not None:
            self._live.pop(handle, None)

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0][1] not in self._live:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def fire(self, now: float) -> int:
        """Run every timer due at `now`; returns how many ran."""
        ran = 0
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, handle = heapq.heappop(heap)
            callback = self._live.pop(handle, None)
            if callback is not None:
                callback(now)
                ran += 1
        return ran

    def __len__(self) -> int:
        return len(self._live)

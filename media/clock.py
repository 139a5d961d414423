"""One 20 ms media clock per process (DESIGN.md, "Hot paths").

Every tick sends the next frame of every active outbound stream in one pass; there
is no timer per call. The clock keeps an absolute schedule (tick n is due at
start + n * 20 ms), so a late tick does not push the following ones, and it keeps a
histogram of its own lateness for the pacing figures. Once a second it also runs the
slow housekeeping (RTP inactivity) of every session.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

TICK = 0.020
HOUSEKEEPING_TICKS = 50  # once a second
MAX_CATCH_UP = 5  # ticks sent in a burst after a stall (100 ms: within a jitter buffer)


class Stream(Protocol):
    def tick(self) -> None:
        """Send one frame (or nothing). Must be cheap: it runs for every stream every 20 ms."""
        ...

    def housekeeping(self, now: float) -> None: ...


class LatenessHistogram:
    """Tick lateness in 0.1 ms buckets up to 100 ms."""

    def __init__(self) -> None:
        self.buckets = [0] * 1001
        self.count = 0

    def add(self, late_s: float) -> None:
        idx = int(late_s * 10_000)
        self.buckets[min(max(idx, 0), 1000)] += 1
        self.count += 1

    def percentile(self, p: float) -> float:
        """Lateness in milliseconds at percentile p (0-100)."""
        if not self.count:
            return 0.0
        target = self.count * p / 100.0
        seen = 0
        for idx, n in enumerate(self.buckets):
            seen += n
            if seen >= target:
                return idx / 10.0
        return 100.0


class MediaClock:
    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.get_running_loop()
        # a dict, not a set: insertion order is stable, so a stream keeps its slot in the
        # tick and its packets keep their spacing while other calls come and go
        self.streams: dict[Stream, None] = {}
        self.lateness = LatenessHistogram()
        self.work = LatenessHistogram()  # time spent inside a tick
        self.ticks = 0
        self.skipped = 0
        self.after_tick: list[Callable[[], None]] = []
        self._start = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._start = self.loop.time()
        self.ticks = 0
        self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def add(self, stream: Stream) -> None:
        self.streams[stream] = None

    def discard(self, stream: Stream) -> None:
        self.streams.pop(stream, None)

    def _schedule(self) -> None:
        self._handle = self.loop.call_at(self._start + (self.ticks + 1) * TICK, self._tick)

    def _tick(self) -> None:
        started = time.perf_counter()
        now = self.loop.time()
        self.ticks += 1
        due = self._start + self.ticks * TICK
        self.lateness.add(now - due)
        behind = int((now - due) / TICK)
        if behind > MAX_CATCH_UP:
            # a long stall: drop what a jitter buffer could not use any more
            self.skipped += behind - MAX_CATCH_UP
            self.ticks += behind - MAX_CATCH_UP
            behind = MAX_CATCH_UP
        streams = list(self.streams)
        for _ in range(behind + 1):  # catch up a short stall with a burst
            for stream in streams:
                stream.tick()
        self.ticks += behind
        if self.ticks % HOUSEKEEPING_TICKS <= behind:
            for stream in list(self.streams):
                stream.housekeeping(now)
        callbacks, self.after_tick = self.after_tick, []
        for cb in callbacks:
            cb()
        self.work.add(time.perf_counter() - started)
        self._schedule()

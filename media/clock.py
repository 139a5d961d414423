"""One media clock per process (DESIGN.md, "Hot paths").

Every stream sends one frame per 20 ms, and all streams are ticked from this one
clock: no timer per call. The 20 ms frame period is split into `PHASES` sub-ticks of
5 ms and each stream belongs to one phase (new streams join the emptiest), so the
sends of 500 calls leave as four bursts of ~125 packets instead of one of 500: the
loop stays responsive to inbound RTP between bursts and each stream keeps an exact
20 ms spacing.

The schedule is absolute (sub-tick n is due at start + n * 5 ms): a late sub-tick
does not push the following ones. A short stall is caught up with a burst (a jitter
buffer absorbs it); a long one drops the frames no receiver could use any more. The
clock keeps histograms of its own lateness and of the time spent in a sub-tick, and
runs each stream's slow housekeeping (RTP inactivity) once a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

TICK = 0.020  # frame period
PHASES = 4
SUBTICK = TICK / PHASES
HOUSEKEEPING_FRAMES = 50  # once a second
MAX_CATCH_UP = 5  # frames sent in a burst after a stall (100 ms: within a jitter buffer)


class Stream(Protocol):
    def tick(self) -> None:
        """Send one frame (or nothing). Must be cheap: it runs for every stream every 20 ms."""
        ...

    def housekeeping(self, now: float) -> None: ...


class LatenessHistogram:
    """Durations in 0.1 ms buckets up to 100 ms."""

    def __init__(self) -> None:
        self.buckets = [0] * 1001
        self.count = 0

    def add(self, seconds: float) -> None:
        idx = int(seconds * 10_000)
        self.buckets[min(max(idx, 0), 1000)] += 1
        self.count += 1

    def percentile(self, p: float) -> float:
        """Milliseconds at percentile p (0-100)."""
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
        # dicts, not sets: insertion order is stable, so a stream keeps its slot in its
        # burst and its packets keep their spacing while other calls come and go
        self.phases: list[dict[Stream, None]] = [{} for _ in range(PHASES)]
        self._phase_of: dict[Stream, int] = {}
        self.lateness = LatenessHistogram()
        self.work = LatenessHistogram()
        self.subticks = 0
        self.skipped = 0  # frames dropped after long stalls, per phase
        self.late_subticks = 0
        self.after_tick: list[Callable[[], None]] = []
        # Work that must not delay a send (recording placement, disk hand-off): run right
        # after a sub-tick's sends with the sub-tick number, in slices that fit well
        # inside the 5 ms before the next one.
        self.background: list[Callable[[int], None]] = []
        self.background_errors = 0
        self._start = 0.0
        self._handle: asyncio.TimerHandle | None = None

    @property
    def ticks(self) -> int:
        """Whole 20 ms frame periods elapsed."""
        return self.subticks // PHASES

    @property
    def streams(self) -> dict[Stream, int]:
        return self._phase_of

    def start(self) -> None:
        self._start = self.loop.time()
        self.subticks = 0
        self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def add(self, stream: Stream) -> None:
        if stream in self._phase_of:
            return
        phase = min(range(PHASES), key=lambda p: len(self.phases[p]))
        self.phases[phase][stream] = None
        self._phase_of[stream] = phase

    def discard(self, stream: Stream) -> None:
        phase = self._phase_of.pop(stream, None)
        if phase is not None:
            self.phases[phase].pop(stream, None)

    def _schedule(self) -> None:
        self._handle = self.loop.call_at(self._start + (self.subticks + 1) * SUBTICK, self._tick)

    def _tick(self) -> None:
        started = time.perf_counter()
        now = self.loop.time()
        self.subticks += 1
        due = self._start + self.subticks * SUBTICK
        self.lateness.add(now - due)
        if now - due > SUBTICK:
            self.late_subticks += 1  # its frames left more than 5 ms after their slot
        behind = int((now - due) / SUBTICK)  # sub-ticks missed entirely
        if behind > MAX_CATCH_UP * PHASES:
            dropped = behind - MAX_CATCH_UP * PHASES
            self.skipped += dropped // PHASES
            self.subticks += dropped
            behind -= dropped
        for missed in range(behind, -1, -1):  # the due sub-tick, then each missed one
            self._run_phase(self.subticks % PHASES, now)
            if missed:
                self.subticks += 1
        callbacks, self.after_tick = self.after_tick, []
        for cb in callbacks:
            cb()
        self.work.add(time.perf_counter() - started)
        self._schedule()
        for work in self.background:
            try:
                work(self.subticks)
            except Exception:  # the clock must keep ticking whatever a slice does
                self.background_errors += 1

    def _run_phase(self, phase: int, now: float) -> None:
        streams = list(self.phases[phase])
        for stream in streams:
            stream.tick()
        if (self.subticks // PHASES) % HOUSEKEEPING_FRAMES == 0:
            for stream in streams:
                stream.housekeeping(now)

"""The shared media clock with a fake loop: catch-up bursts, stall skips, stable order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from media.clock import MAX_CATCH_UP, TICK, MediaClock


class FakeLoop:
    def __init__(self) -> None:
        self.now = 1000.0
        self.pending: tuple[float, Callable[[], None]] | None = None

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, cb: Callable[[], None]) -> Any:
        self.pending = (when, cb)
        return self

    def cancel(self) -> None:
        self.pending = None

    def run_next(self, late: float = 0.0) -> None:
        assert self.pending is not None
        when, cb = self.pending
        self.now = when + late
        cb()


class Recorder:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log, self.kept = name, log, 0

    def tick(self) -> None:
        self.log.append(self.name)

    def housekeeping(self, now: float) -> None:
        self.kept += 1


def make() -> tuple[FakeLoop, MediaClock, list[str]]:
    loop = FakeLoop()
    clock = MediaClock(loop)  # type: ignore[arg-type]
    clock.start()
    return loop, clock, []


def test_every_stream_once_per_tick_in_a_stable_order() -> None:
    loop, clock, log = make()
    a, b, c = (Recorder(n, log) for n in "abc")
    for s in (a, b, c):
        clock.add(s)
    loop.run_next()
    clock.discard(b)
    clock.add(Recorder("d", log))
    loop.run_next()
    assert log == ["a", "b", "c", "a", "c", "d"]


def test_short_stall_is_caught_up_with_a_burst() -> None:
    loop, clock, log = make()
    clock.add(Recorder("a", log))
    loop.run_next(late=3 * TICK + 0.001)
    assert log == ["a"] * 4 and clock.skipped == 0
    when, _ = loop.pending  # type: ignore[misc]
    assert when == 1000.0 + 5 * TICK


def test_long_stall_skips_what_no_jitter_buffer_could_use() -> None:
    loop, clock, log = make()
    clock.add(Recorder("a", log))
    loop.run_next(late=20 * TICK + 0.001)
    assert len(log) == MAX_CATCH_UP + 1
    assert clock.skipped == 20 - MAX_CATCH_UP


def test_housekeeping_once_a_second_even_across_a_burst() -> None:
    loop, clock, log = make()
    rec = Recorder("a", log)
    clock.add(rec)
    for _ in range(48):
        loop.run_next()
    loop.run_next(late=3 * TICK)  # jumps over tick 50
    assert rec.kept == 1
    assert clock.lateness.count == 49

"""The shared media clock with a fake loop: phases, catch-up bursts, stall skips, order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from media.clock import MAX_CATCH_UP, PHASES, SUBTICK, MediaClock


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

    def run(self, n: int) -> None:
        for _ in range(n):
            self.run_next()


class Recorder:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log, self.kept = name, log, 0

    def tick(self) -> None:
        self.log.append(self.name)

    def housekeeping(self, now: float) -> None:
        self.kept += 1


def make(names: str = "") -> tuple[FakeLoop, MediaClock, list[str], list[Recorder]]:
    loop = FakeLoop()
    clock = MediaClock(loop)  # type: ignore[arg-type]
    clock.start()
    log: list[str] = []
    recs = [Recorder(n, log) for n in names]
    for r in recs:
        clock.add(r)
    return loop, clock, log, recs


def test_each_stream_once_per_frame_spread_over_phases_in_stable_order() -> None:
    loop, clock, log, recs = make("abcde")  # phases 0,1,2,3,0
    loop.run(PHASES)  # sub-ticks 1..4 run phases 1,2,3,0
    assert log == ["b", "c", "d", "a", "e"]
    clock.discard(recs[1])
    clock.add(Recorder("f", log))  # joins the emptiest phase: b's
    log.clear()
    loop.run(PHASES)
    assert log == ["f", "c", "d", "a", "e"]


def test_short_stall_is_caught_up_with_a_burst() -> None:
    loop, clock, log, _ = make("a")  # phase 0: due at sub-ticks 4, 8, 12, ...
    loop.run_next(late=12 * SUBTICK + 0.0001)  # sub-ticks 1..13 all due at once
    assert log == ["a"] * 3 and clock.skipped == 0
    when, _ = loop.pending  # type: ignore[misc]
    assert when == 1000.0 + 14 * SUBTICK


def test_long_stall_drops_what_no_jitter_buffer_could_use() -> None:
    loop, clock, log, _ = make("a")
    loop.run_next(late=40 * SUBTICK + 0.0001)
    assert len(log) == MAX_CATCH_UP
    assert clock.skipped == (40 - MAX_CATCH_UP * PHASES) // PHASES


def test_housekeeping_once_a_second_per_stream() -> None:
    loop, clock, log, (rec,) = make("a")
    loop.run(50 * PHASES)
    assert rec.kept == 1 and len(log) == 50
    assert clock.ticks == 50 and clock.lateness.count == 50 * PHASES

"""Per-queue counters and the figures supervisors read (docs/acd.md, "Stats").

Counters are cumulative since the engine started (or the queue was added by a
reload). Only the last `RECENT` talk times are kept, for the EWT estimate.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

RECENT = 100
DEFAULT_AHT = 180.0


@dataclass(frozen=True)
class QueueStats:
    waiting: int  # calls in the queue, ringing ones included
    longest_wait: float  # seconds, oldest call in the queue
    agents_by_state: dict[str, int]
    offered: int  # calls that entered the queue (overflow arrivals included)
    answered: int
    abandoned: int
    service_level_pct: float | None  # None until a call is answered or abandoned after SL
    asa: float | None  # average speed of answer (hold time of answered calls)
    aht: float | None  # average talk time of completed calls


@dataclass
class QueueCounters:
    offered: int = 0
    answered: int = 0
    answered_in_sl: int = 0
    abandoned: int = 0
    abandoned_after_sl: int = 0
    exited: int = 0
    hold_total: float = 0.0
    completed: int = 0
    talk_total: float = 0.0
    recent_talk: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))

    def on_answer(self, holdtime: float, service_level: float) -> None:
        self.answered += 1
        self.hold_total += holdtime
        if holdtime <= service_level:
            self.answered_in_sl += 1

    def on_abandon(self, waittime: float, service_level: float) -> None:
        self.abandoned += 1
        if waittime > service_level:
            self.abandoned_after_sl += 1

    def on_complete(self, talk: float) -> None:
        self.completed += 1
        self.talk_total += talk
        self.recent_talk.append(talk)

    def recent_aht(self) -> float:
        """Average talk time of the last RECENT calls, DEFAULT_AHT before the first."""
        if not self.recent_talk:
            return DEFAULT_AHT
        return sum(self.recent_talk) / len(self.recent_talk)

    def service_level_pct(self) -> float | None:
        denominator = self.answered + self.abandoned_after_sl
        return None if denominator == 0 else 100.0 * self.answered_in_sl / denominator

    def asa(self) -> float | None:
        return None if self.answered == 0 else self.hold_total / self.answered

    def aht(self) -> float | None:
        return None if self.completed == 0 else self.talk_total / self.completed


def ewt(position: int, aht: float, staffed: int) -> int:
    """Estimated wait: position * AHT / max(1, staffed agents), whole seconds rounded up."""
    value = position * aht / max(1, staffed)
    whole = int(value)
    return whole if whole == value else whole + 1

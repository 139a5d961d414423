"""Queued calls, their offers, and the per-queue line ordered by (priority, enqueue time)."""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


class CallStatus(enum.Enum):
    WAITING = "waiting"
    RINGING = "ringing"
    BRIDGED = "bridged"


@dataclass
class OfferRecord:
    offer_id: str
    call_id: str
    agent_id: str
    queue: str
    started_at: float
    timer: int


@dataclass
class CallEntry:
    call_id: str
    queue: str
    priority: int
    skills: Mapping[str, int]
    data: Mapping[str, Any]
    enqueued_at: float  # first enqueue: ordering and reported wait continue across overflow
    joined_at: float  # entry into the current queue: max_wait and relaxation count from here
    seq: int
    origposition: int = 0
    status: CallStatus = CallStatus.WAITING
    step: int = -1
    attempts: int = 0
    hops: int = 0
    offers: set[str] = field(default_factory=set)
    skip_until: dict[str, float] = field(default_factory=dict)
    timers: dict[str, int] = field(default_factory=dict)
    last_announce: float | None = None
    agent_id: str | None = None
    bridged_at: float = 0.0
    wrapup: float = 0.0

    @property
    def key(self) -> tuple[int, float, int]:
        """Place in the line: higher priority first, then first come first served."""
        return (-self.priority, self.enqueued_at, self.seq)

    @property
    def queued(self) -> bool:
        return self.status is not CallStatus.BRIDGED


class QueueLine:
    """The calls of one queue (waiting and ringing), kept sorted by `CallEntry.key`."""

    def __init__(self) -> None:
        self._keys: list[tuple[int, float, int]] = []
        self._entries: list[CallEntry] = []

    def add(self, entry: CallEntry) -> int:
        """Insert; returns the 1-based position."""
        index = bisect.bisect(self._keys, entry.key)
        self._keys.insert(index, entry.key)
        self._entries.insert(index, entry)
        return index + 1

    def remove(self, entry: CallEntry) -> None:
        index = bisect.bisect_left(self._keys, entry.key)
        if index < len(self._entries) and self._entries[index] is entry:
            del self._keys[index]
            del self._entries[index]

    def position(self, entry: CallEntry) -> int | None:
        index = bisect.bisect_left(self._keys, entry.key)
        if index < len(self._entries) and self._entries[index] is entry:
            return index + 1
        return None

    def oldest(self) -> float | None:
        return min((e.enqueued_at for e in self._entries), default=None)

    def __iter__(self) -> Iterator[CallEntry]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

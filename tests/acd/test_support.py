"""A fake-clock rig for the ACD engine (layering rules: tests/test_layering.py)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from acd.actions import (
    Action,
    AgentChanged,
    Announce,
    Bridge,
    CancelOffer,
    ExitQueue,
    LogEvent,
    Offer,
)
from acd.engine import AcdEngine
from acd.model import AgentConfig, QueueConfig, State, Status

ROOT = Path(__file__).resolve().parents[2]


def queue(name: str = "q", **kw: Any) -> QueueConfig:
    kw.setdefault("announce_frequency", 0)
    return QueueConfig(name, **kw)


def agent(agent_id: str, queues: dict[str, int] | Iterable[str] = ("q",), **skills: int) -> AgentConfig:
    qmap = dict(queues) if isinstance(queues, dict) else dict.fromkeys(queues, 0)
    return AgentConfig(agent_id, agent_id.upper(), f"ext-{agent_id}", skills=skills, queues=qmap)


class Rig:
    """The engine with a fake clock; every action taken is kept in `log`."""

    def __init__(self, queues: Iterable[QueueConfig], agents: Iterable[AgentConfig],
                 choose: Callable[[int], int] | None = None) -> None:
        self.now = 0.0
        counter = itertools.count(1)
        self.engine = AcdEngine({q.name: q for q in queues}, {a.id: a for a in agents},
                                choose=choose or (lambda n: 0), ids=lambda: f"o{next(counter)}")
        self.log: list[Action] = []

    def drain(self) -> list[Action]:
        actions = self.engine.take_actions()
        self.log.extend(actions)
        return actions

    def at(self, when: float) -> list[Action]:
        """Run every timer up to `when`, at its own deadline; returns the actions."""
        out: list[Action] = []
        while (deadline := self.engine.next_deadline()) is not None and deadline <= when:
            self.now = max(self.now, deadline)
            self.engine.on_timer(self.now)
            out += self.drain()
        self.now = max(self.now, when)
        return out

    def login(self, *agent_ids: str, ready: bool = True) -> list[Action]:
        for agent_id in agent_ids:
            self.engine.agent_reachable(agent_id, True, self.now)
            self.engine.agent_set_status(agent_id, Status.READY if ready else Status.NOT_READY,
                                         now=self.now)
        return self.drain()

    def call(self, call_id: str, queue_name: str = "q", **kw: Any) -> list[Action]:
        self.engine.enqueue(call_id, queue_name, now=self.now, **kw)
        return self.drain()

    def answer(self, offer_id: str) -> list[Action]:
        self.engine.offer_answered(offer_id, self.now)
        return self.drain()

    def fail(self, offer_id: str, reason: str = "busy") -> list[Action]:
        self.engine.offer_failed(offer_id, reason, self.now)
        return self.drain()

    def end(self, call_id: str, by: str = "caller") -> list[Action]:
        self.engine.call_ended(call_id, by, self.now)
        return self.drain()

    def state(self, agent_id: str) -> tuple[Status, State, str | None]:
        snap = self.engine.agent_status(agent_id)
        return snap.status, snap.state, snap.reason


def offers(actions: Iterable[Action]) -> list[Offer]:
    return [a for a in actions if isinstance(a, Offer)]


def offered_to(actions: Iterable[Action]) -> list[str]:
    return [o.agent_id for o in offers(actions)]


def events(actions: Iterable[Action]) -> list[str]:
    return [a.event for a in actions if isinstance(a, LogEvent)]


def of(kind: type, actions: Iterable[Action]) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


__all__ = ["AgentChanged", "Announce", "Bridge", "CancelOffer", "ExitQueue", "LogEvent", "Offer"]


def test_rig_runs_timers_at_their_deadlines() -> None:
    rig = Rig([queue(ring_timeout=5)], [agent("a")])
    rig.login("a")
    rig.call("c1")
    acts = rig.at(100)
    assert rig.now == 100
    rona = [a for a in acts if isinstance(a, LogEvent) and a.event == "RINGNOANSWER"]
    assert [e.time for e in rona] == [5]

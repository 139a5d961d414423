"""What the engine asks its driver to do, and the records it keeps for `why`.

Every action is a frozen dataclass; `AcdEngine.take_actions()` returns them in the
order they must be executed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .model import State, Status


@dataclass(frozen=True)
class Offer:
    """Ring `agent_id` with `call_id`; answer with `offer_answered` or `offer_failed`.

    `pop` is the screen-pop payload for the agent desktop (docs/acd.md).
    """

    offer_id: str
    call_id: str
    agent_id: str
    queue: str
    ring_timeout: float
    attempt: int
    pop: dict[str, Any]


@dataclass(frozen=True)
class CancelOffer:
    """Stop ringing the agent. `reason`: timeout, answered_elsewhere, abandoned,
    exit, agent_status, removed."""

    offer_id: str
    call_id: str
    agent_id: str
    reason: str


@dataclass(frozen=True)
class Bridge:
    """Connect the caller to the agent who answered `offer_id`."""

    call_id: str
    agent_id: str
    offer_id: str
    queue: str


@dataclass(frozen=True)
class Announce:
    """Tell the caller their position and/or estimated wait (None: do not say it)."""

    call_id: str
    queue: str
    position: int | None
    ewt_seconds: int | None


@dataclass(frozen=True)
class ExitQueue:
    """The call leaves the ACD: reason timeout, full, empty or key.

    `target` is where the flow continues (`node:<id>` overflow, an exit-key node),
    or None to let the flow's queue step return its outcome.
    """

    call_id: str
    reason: str
    target: str | None = None
    queue: str = ""


@dataclass(frozen=True)
class AgentChanged:
    agent_id: str
    status: Status
    state: State
    reason: str | None


@dataclass(frozen=True)
class LogEvent:
    """One queue_log line (docs/acd.md lists every event and its data)."""

    time: float
    call_id: str
    queue: str
    agent: str
    event: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """Asterisk queue_log style: time|callid|queue|agent|event|k=v|..."""
        parts = [f"{self.time:.3f}", self.call_id or "NONE", self.queue or "NONE",
                 self.agent or "NONE", self.event]
        parts.extend(f"{k}={v}" for k, v in self.data.items())
        return "|".join(parts)


Action = Offer | CancelOffer | Bridge | Announce | ExitQueue | AgentChanged | LogEvent


class Candidate(NamedTuple):
    """One agent who could take the call, with the strategy's score (a tuple: cheap to
    build by the hundred)."""

    agent_id: str
    score: float
    penalty: int = 0


@dataclass(frozen=True)
class Decision:
    """One routing evaluation of a call: who could take it, who was chosen, who not and why."""

    time: float
    call_id: str
    queue: str
    strategy: str
    step: int
    min_levels: Mapping[str, int]
    candidates: tuple[Candidate, ...]
    chosen: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]

    def describe(self) -> str:
        """Human text for `switchboard why CALL_ID`."""
        levels = ", ".join(f"{k}>={v}" for k, v in sorted(self.min_levels.items())) or "none"
        step = f"step {self.step}" if self.step >= 0 else "no relaxation"
        lines = [f"t={self.time:.1f} queue={self.queue} strategy={self.strategy} "
                 f"skills: {levels} ({step})"]
        for cand in self.candidates:
            mark = "*" if cand.agent_id in self.chosen else " "
            lines.append(f"  {mark} {cand.agent_id} score={cand.score:g} penalty={cand.penalty}")
        for agent_id, why in self.skipped:
            lines.append(f"  - {agent_id}: {why}")
        if not self.chosen:
            lines.append("  no agent chosen: the call keeps waiting")
        return "\n".join(lines)

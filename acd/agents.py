"""Agent runtime records and the two transition tables (DESIGN.md, "Style" 2).

Status changes come from the person, state changes from the engine; both go
through a table so an impossible pair raises `AcdUsageError` instead of being
silently ignored.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .errors import AcdUsageError
from .model import AgentConfig, State, Status


class Event(enum.Enum):
    OFFER = "offer"
    ANSWER = "answer"
    RELEASE = "release"  # offer failed, timed out or was cancelled
    END = "end"  # call ended, wrap-up follows
    END_NO_WRAPUP = "end_no_wrapup"  # call ended with wrapup=0 or a pending logout
    WRAPUP_DONE = "wrapup_done"
    LOGOUT = "logout"  # logging out ends wrap-up at once


STATE_TABLE: dict[tuple[State, Event], State] = {
    (State.IDLE, Event.OFFER): State.RESERVED,
    (State.RESERVED, Event.ANSWER): State.ON_CALL,
    (State.RESERVED, Event.RELEASE): State.IDLE,
    (State.ON_CALL, Event.END): State.WRAP_UP,
    (State.ON_CALL, Event.END_NO_WRAPUP): State.IDLE,
    (State.WRAP_UP, Event.WRAPUP_DONE): State.IDLE,
    (State.WRAP_UP, Event.LOGOUT): State.IDLE,
    (State.IDLE, Event.LOGOUT): State.IDLE,
}

# Which statuses may follow which. A logged-out agent can receive no offer, so a
# status change there never meets a busy state; LOGGED_OUT while on a call is
# deferred by the engine (pending_logout), never applied here.
STATUS_TABLE: dict[Status, frozenset[Status]] = {
    Status.LOGGED_OUT: frozenset({Status.LOGGED_OUT, Status.READY, Status.NOT_READY}),
    Status.READY: frozenset({Status.READY, Status.NOT_READY, Status.LOGGED_OUT}),
    Status.NOT_READY: frozenset({Status.READY, Status.NOT_READY, Status.LOGGED_OUT}),
}

LOGOUT_STATES = frozenset({State.IDLE, State.WRAP_UP})


@dataclass
class AgentRuntime:
    config: AgentConfig
    status: Status = Status.LOGGED_OUT
    state: State = State.IDLE
    reason: str | None = None
    reachable: bool = False
    pending_logout: bool = False
    retired: bool = False  # removed by a reload while on a call: dropped at call end
    offer_id: str | None = None
    call_id: str | None = None
    idle_since: float | None = None
    calls: dict[str, int] = field(default_factory=dict)
    talk_time: dict[str, float] = field(default_factory=dict)
    wrapup_timer: int | None = None

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def available(self) -> bool:
        return (self.status is Status.READY and self.state is State.IDLE and self.reachable
                and not self.pending_logout and not self.retired)

    def apply(self, event: Event) -> State:
        """Move the state along STATE_TABLE; raise on an impossible pair."""
        try:
            self.state = STATE_TABLE[(self.state, event)]
        except KeyError:
            raise AcdUsageError(
                f"agent {self.id}: {event.value} not allowed in state {self.state.value}") from None
        return self.state

    def set_status(self, status: Status, reason: str | None) -> None:
        if status not in STATUS_TABLE[self.status]:
            raise AcdUsageError(f"agent {self.id}: {self.status.value} -> {status.value} not allowed")
        if status is Status.LOGGED_OUT and self.state not in LOGOUT_STATES:
            raise AcdUsageError(f"agent {self.id}: cannot log out in state {self.state.value}")
        self.status = status
        self.reason = reason if status is Status.NOT_READY else None

    def skip_reason(self) -> str | None:
        """Why this agent cannot take any call now, None when available (skills aside)."""
        if self.retired:
            return "removed"
        if self.status is Status.LOGGED_OUT:
            return "logged out"
        state = self.state
        if state is not State.IDLE:  # `is`, not a dict lookup: Enum's __hash__ is Python code
            if state is State.ON_CALL:
                return "on call"
            return "wrap-up" if state is State.WRAP_UP else "reserved"
        if not self.reachable:
            return "not registered"
        if self.status is Status.NOT_READY:
            return "not ready"
        if self.pending_logout:
            return "logging out"
        return None

    def bucket(self) -> str:
        """Key in QueueStats.agents_by_state."""
        if self.status is Status.LOGGED_OUT:
            return "logged_out"
        if self.state is not State.IDLE:
            return self.state.value
        if not self.reachable:
            return "not_registered"
        return "available" if self.status is Status.READY else "not_ready"


BUCKETS = ("available", "not_ready", "reserved", "on_call", "wrap_up", "not_registered", "logged_out")

"""Configuration and state vocabulary of the ACD: agents, queues, statuses, states.

Agent *status* is what the person chose (logged out, ready, not ready with a
reason); agent *state* is what the system is doing with them (idle, an offer
ringing, on a call, in wrap-up). An agent is available for an offer only when the
status is READY, the state IDLE and their softphone is registered.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from .errors import AcdConfigError

EMPTY_RULES = ("yes", "no", "loggedin")
LEAVE_RULES = ("no", "yes", "loggedin")
EXIT_KEY_CHARS = frozenset("0123456789*#")
NODE_PREFIX = "node:"


class Status(enum.Enum):
    """Set by the agent."""

    LOGGED_OUT = "logged_out"
    READY = "ready"
    NOT_READY = "not_ready"


class State(enum.Enum):
    """Set by the engine."""

    IDLE = "idle"
    RESERVED = "reserved"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"


class Strategy(enum.Enum):
    LONGEST_IDLE = "longest_idle"
    ROUND_ROBIN = "round_robin"
    FEWEST_CALLS = "fewest_calls"
    LEAST_TALK_TIME = "least_talk_time"
    LINEAR = "linear"
    RANDOM = "random"
    RING_ALL = "ring_all"
    SKILLS = "skills"


def _frozen_map(value: Mapping[str, int] | None, what: str) -> Mapping[str, int]:
    items = dict(value or {})
    for key, level in items.items():
        if not isinstance(key, str) or not key:
            raise AcdConfigError(f"{what}: keys must be non-empty strings, got {key!r}")
        if isinstance(level, bool) or not isinstance(level, int):
            raise AcdConfigError(f"{what}: {key}: expected an integer, got {level!r}")
    return MappingProxyType(items)


@dataclass(frozen=True)
class AgentConfig:
    """One agent. `queues` maps queue name -> penalty (lower is offered first)."""

    id: str
    name: str
    extension: str
    skills: Mapping[str, int] = field(default_factory=dict)
    queues: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:
            raise AcdConfigError("agent: id must not be empty")
        skills = _frozen_map(self.skills, f"agent {self.id}: skills")
        for skill, level in skills.items():
            if not 1 <= level <= 10:
                raise AcdConfigError(f"agent {self.id}: skill {skill}: level {level} not in 1..10")
        object.__setattr__(self, "skills", skills)
        queues = _frozen_map(self.queues, f"agent {self.id}: queues")
        for queue, penalty in queues.items():
            if penalty < 0:
                raise AcdConfigError(f"agent {self.id}: queue {queue}: negative penalty")
        object.__setattr__(self, "queues", queues)

    def level(self, skill: str) -> int:
        """The agent's level in `skill`; 0 when they do not hold it."""
        return self.skills.get(skill, 0)


def _check_positive(name: str, field_name: str, value: float | None, *, zero_ok: bool) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AcdConfigError(f"queue {name}: {field_name}: expected a number, got {value!r}")
    if value < 0 or (value == 0 and not zero_ok):
        raise AcdConfigError(f"queue {name}: {field_name}: must be {'>= 0' if zero_ok else '> 0'}")


@dataclass(frozen=True)
class QueueConfig:
    """One queue. Times are seconds. See docs/acd.md for every field."""

    name: str
    strategy: Strategy = Strategy.LONGEST_IDLE
    ring_timeout: float = 15
    wrapup: float = 10
    max_wait: float | None = None
    max_len: int | None = None
    overflow: str | None = None
    join_empty: str = "yes"
    leave_when_empty: str = "no"
    announce_frequency: float = 30
    announce_position: bool = True
    announce_holdtime: bool = True
    min_announce_gap: float = 15
    service_level: float = 20
    weight: int = 0
    skill_relaxation: Sequence[tuple[float, int]] = ()
    retry: float = 1
    max_offers_per_call: int | None = None
    exit_keys: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        name = self.name
        if not name or name.startswith(NODE_PREFIX):
            raise AcdConfigError(f"queue {name!r}: invalid name")
        try:
            object.__setattr__(self, "strategy", Strategy(self.strategy))
        except ValueError:
            choices = ", ".join(s.value for s in Strategy)
            raise AcdConfigError(f"queue {name}: strategy {self.strategy!r} not one of {choices}") from None
        for fname, zero_ok in (("ring_timeout", False), ("wrapup", True), ("max_wait", True),
                               ("announce_frequency", True), ("min_announce_gap", True),
                               ("service_level", False), ("retry", True)):
            _check_positive(name, fname, getattr(self, fname), zero_ok=zero_ok)
        for fname in ("max_len", "max_offers_per_call"):
            value = getattr(self, fname)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise AcdConfigError(f"queue {name}: {fname}: expected an integer >= 1")
        if isinstance(self.weight, bool) or not isinstance(self.weight, int):
            raise AcdConfigError(f"queue {name}: weight: expected an integer")
        object.__setattr__(self, "join_empty", _rule(name, "join_empty", self.join_empty, EMPTY_RULES))
        leave = _rule(name, "leave_when_empty", self.leave_when_empty, LEAVE_RULES)
        object.__setattr__(self, "leave_when_empty", leave)
        object.__setattr__(self, "skill_relaxation", _steps(name, self.skill_relaxation))
        object.__setattr__(self, "exit_keys", _exit_keys(name, self.exit_keys))
        if self.overflow is not None and (not isinstance(self.overflow, str) or self.overflow in ("", NODE_PREFIX)):
            raise AcdConfigError(f"queue {name}: overflow: expected a queue name or node:<id>")

    def relax_step(self, waited: float) -> int:
        """Index of the relaxation step in force after `waited` seconds (-1: none yet)."""
        index = -1
        for i, (after, _delta) in enumerate(self.skill_relaxation):
            if after <= waited:
                index = i
        return index

    def level_delta(self, step: int) -> int:
        return self.skill_relaxation[step][1] if step >= 0 else 0


def _rule(name: str, field_name: str, value: object, allowed: tuple[str, ...]) -> str:
    if value is True:
        value = "yes"
    elif value is False:
        value = "no"
    if value not in allowed:
        raise AcdConfigError(f"queue {name}: {field_name}: {value!r} not one of {', '.join(allowed)}")
    return str(value)


def _steps(name: str, steps: object) -> tuple[tuple[float, int], ...]:
    out: list[tuple[float, int]] = []
    for step in steps or ():  # type: ignore[attr-defined]
        try:
            after, delta = step
        except (TypeError, ValueError):
            raise AcdConfigError(f"queue {name}: skill_relaxation: {step!r} is not [after, delta]") from None
        if isinstance(after, bool) or not isinstance(after, int | float) or after < 0:
            raise AcdConfigError(f"queue {name}: skill_relaxation: after {after!r} must be >= 0")
        if isinstance(delta, bool) or not isinstance(delta, int) or delta > 0:
            raise AcdConfigError(f"queue {name}: skill_relaxation: delta {delta!r} must be an int <= 0")
        out.append((float(after), delta))
    out.sort()
    if len({after for after, _ in out}) != len(out):
        raise AcdConfigError(f"queue {name}: skill_relaxation: two steps at the same time")
    return tuple(out)


def _exit_keys(name: str, keys: Mapping[str, str] | None) -> Mapping[str, str]:
    items = dict(keys or {})
    for digit, node in items.items():
        if not isinstance(digit, str) or len(digit) != 1 or digit not in EXIT_KEY_CHARS:
            raise AcdConfigError(f"queue {name}: exit_keys: {digit!r} is not one DTMF key")
        if not isinstance(node, str) or not node:
            raise AcdConfigError(f"queue {name}: exit_keys: {digit}: empty flow node")
    return MappingProxyType(items)


def validate(queues: Mapping[str, QueueConfig], agents: Mapping[str, AgentConfig]) -> None:
    """Cross-reference checks a single config object cannot make on its own."""
    for name, queue in queues.items():
        if queue.name != name:
            raise AcdConfigError(f"queue {name}: config name is {queue.name!r}")
        target = queue.overflow
        if target is not None and not target.startswith(NODE_PREFIX):
            if target not in queues or target == name:
                raise AcdConfigError(f"queue {name}: overflow: unknown queue {target!r}")
    for agent_id, agent in agents.items():
        if agent.id != agent_id:
            raise AcdConfigError(f"agent {agent_id}: config id is {agent.id!r}")
        for queue_name in agent.queues:
            if queue_name not in queues:
                raise AcdConfigError(f"agent {agent_id}: unknown queue {queue_name!r}")


def required_levels(skills: Mapping[str, int], delta: int) -> dict[str, int]:
    """The minimum levels a call needs after relaxing by `delta` (<= 0).

    A level that relaxes to 0 or below is met by every agent (missing skill = 0).
    """
    return {skill: level + delta for skill, level in skills.items()}

"""Routing strategies: one pure function each, deterministic given their inputs.

Each receives the agents that may take the call (available, holding the required
skills at the relaxed levels, not skipped) and returns them best first with a
score (shown by `why`). The engine groups candidates by penalty first (lowest
penalty group is ranked before the next), so these functions never see penalty.
Names follow Asterisk app_queue / FreeSWITCH mod_callcenter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from .model import Strategy

Ranked = list[tuple[str, float]]


class AgentView(NamedTuple):
    """What a strategy may know about one candidate agent (a tuple: made by the hundred
    per routing decision, it must be cheap to build)."""

    agent_id: str
    order: int  # position in the queue's member list (config order)
    idle_since: float | None  # end of the last call; None: no call yet
    calls: int  # calls answered from this queue
    talk_time: float  # seconds talked on calls from this queue
    skill_sum: int  # summed levels over the call's required skills


@dataclass(frozen=True)
class Context:
    now: float
    member_count: int
    last_offered_order: int | None  # config position of the agent last offered (rrmemory)
    choose: Callable[[int], int]


def _idle(view: AgentView, now: float) -> float:
    return math.inf if view.idle_since is None else now - view.idle_since


def longest_idle(cands: Sequence[AgentView], ctx: Context) -> Ranked:
    """Longest since their last call ended first; agents without a call yet lead."""
    now = ctx.now
    # (minus idle time, order, id) tuples sort as the rule says (orders are unique), with
    # no key function called per agent
    keyed = sorted([(-math.inf if v.idle_since is None else v.idle_since - now, v.order,
                     v.agent_id) for v in cands])
    return [(agent_id, 0.0 - negative) for negative, _, agent_id in keyed]  # never -0.0


def round_robin(cands: Sequence[AgentView], ctx: Context) -> Ranked:
    """rrmemory: continue after the agent offered last, wrapping around."""
    start = -1 if ctx.last_offered_order is None else ctx.last_offered_order
    span = max(ctx.member_count, 1)

    def distance(v: AgentView) -> int:
        return (v.order - start - 1) % span

    ordered = sorted(cands, key=lambda v: (distance(v), v.order))
    return [(v.agent_id, float(distance(v))) for v in ordered]


def fewest_calls(cands: Sequence[AgentView], ctx: Context) -> Ranked:
    ordered = sorted(cands, key=lambda v: (v.calls, -_idle(v, ctx.now), v.order))
    return [(v.agent_id, float(v.calls)) for v in ordered]


def least_talk_time(cands: Sequence[AgentView], ctx: Context) -> Ranked:
    ordered = sorted(cands, key=lambda v: (v.talk_time, -_idle(v, ctx.now), v.order))
    return [(v.agent_id, v.talk_time) for v in ordered]


def linear(cands: Sequence[AgentView], ctx: Context) -> Ranked:
    ordered = sorted(cands, key=lambda v: v.order)
    return [(v.agent_id, float(v.order)) for v in ordered]


def random_pick(cands: Sequence[AgentView], ctx: Context) -> Ranked:
    """One draw from the injected chooser picks the first; the rest follow in config order."""
    ordered = sorted(cands, key=lambda v: v.order)
    if not ordered:
        return []
    index = ctx.choose(len(ordered))
    if not 0 <= index < len(ordered):
        index %= len(ordered)
    first = ordered.pop(index)
    return [(first.agent_id, 1.0)] + [(v.agent_id, 0.0) for v in ordered]


def ring_all(cands: Sequence[AgentView], ctx: Context) -> Ranked:
    """Every candidate, config order; the engine offers the whole first penalty group."""
    return [(v.agent_id, 0.0) for v in sorted(cands, key=lambda v: v.order)]


def skills(cands: Sequence[AgentView], ctx: Context) -> Ranked:
    """Highest summed level over the required skills, then longest idle."""
    ordered = sorted(cands, key=lambda v: (-v.skill_sum, -_idle(v, ctx.now), v.order))
    return [(v.agent_id, float(v.skill_sum)) for v in ordered]


STRATEGIES: dict[Strategy, Callable[[Sequence[AgentView], Context], Ranked]] = {
    Strategy.LONGEST_IDLE: longest_idle,
    Strategy.ROUND_ROBIN: round_robin,
    Strategy.FEWEST_CALLS: fewest_calls,
    Strategy.LEAST_TALK_TIME: least_talk_time,
    Strategy.LINEAR: linear,
    Strategy.RANDOM: random_pick,
    Strategy.RING_ALL: ring_all,
    Strategy.SKILLS: skills,
}

"""One routing evaluation: which members of the call's queue may take it, ranked.

Filtering is the same for every strategy: an agent is skipped when not available
(the reason is recorded for `why`), when lacking a required skill at the level in
force after relaxation, or when they rejected this call less than `retry` seconds
ago. Survivors are grouped by penalty (lowest first) and ranked by the strategy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from .actions import Candidate, Decision
from .agents import AgentRuntime
from .calls import CallEntry
from .model import QueueConfig, Strategy, required_levels
from .strategies import STRATEGIES, AgentView, Context


def skill_gap(agent: AgentRuntime, levels: Mapping[str, int]) -> str | None:
    for skill, need in sorted(levels.items()):
        have = agent.config.level(skill)
        if have < need:
            return f"lacks skill {skill}>={need} (has {have})"
    return None


def _view(agent: AgentRuntime, order: int, queue: str, skills: Mapping[str, int]) -> AgentView:
    return AgentView(
        agent_id=agent.id,
        order=order,
        idle_since=agent.idle_since,
        calls=agent.calls.get(queue, 0),
        talk_time=agent.talk_time.get(queue, 0.0),
        skill_sum=sum(agent.config.level(s) for s in skills),
    )


def evaluate(
    entry: CallEntry,
    queue: QueueConfig,
    members: Sequence[AgentRuntime],
    *,
    now: float,
    last_offered: str | None,
    choose: Callable[[int], int],
) -> Decision:
    """Rank the members of `queue` for `entry`; `chosen` holds who to offer now."""
    levels = required_levels(entry.skills, queue.level_delta(entry.step))
    views: list[AgentView] = []
    penalties: dict[str, int] = {}
    skipped: list[tuple[str, str]] = []
    order_of = {a.id: i for i, a in enumerate(members)}
    for order, agent in enumerate(members):
        reason = agent.skip_reason() or skill_gap(agent, levels)
        if reason is None and entry.skip_until.get(agent.id, float("-inf")) > now:
            reason = "rejected recently"
        if reason is not None:
            skipped.append((agent.id, reason))
            continue
        views.append(_view(agent, order, queue.name, entry.skills))
        penalties[agent.id] = agent.config.queues.get(queue.name, 0)
    ctx = Context(now=now, member_count=len(members),
                  last_offered_order=order_of.get(last_offered) if last_offered else None,
                  choose=choose)
    rank = STRATEGIES[queue.strategy]
    candidates: list[Candidate] = []
    for penalty in sorted(set(penalties.values())):
        group = [v for v in views if penalties[v.agent_id] == penalty]
        candidates.extend(Candidate(aid, score, penalty) for aid, score in rank(group, ctx))
    chosen: tuple[str, ...] = ()
    if candidates:
        if queue.strategy is Strategy.RING_ALL:
            first = candidates[0].penalty
            chosen = tuple(c.agent_id for c in candidates if c.penalty == first)
        else:
            chosen = (candidates[0].agent_id,)
    return Decision(
        time=now, call_id=entry.call_id, queue=queue.name, strategy=queue.strategy.value,
        step=entry.step, min_levels=levels, candidates=tuple(candidates), chosen=chosen,
        skipped=tuple(skipped),
    )

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


def _gap(held: Mapping[str, int], needs: Sequence[tuple[str, int]]) -> str | None:
    """The first required skill (by name) that `held` falls short of, as a reason."""
    for skill, need in needs:
        have = held.get(skill, 0)
        if have < need:
            return f"lacks skill {skill}>={need} (has {have})"
    return None


def evaluate(
    entry: CallEntry,
    queue: QueueConfig,
    members: Sequence[AgentRuntime],
    *,
    now: float,
    last_offered: str | None,
    choose: Callable[[int], int],
) -> Decision:
    """Rank the members of `queue` for `entry`; `chosen` holds who to offer now.

    Runs for every call routed, over every member of its queue (hundreds): the loop
    reads each agent once and builds a view only for those who may take the call."""
    levels = required_levels(entry.skills, queue.level_delta(entry.step))
    needs = sorted(levels.items())
    wanted = tuple(entry.skills)
    skip_until = entry.skip_until
    name = queue.name
    groups: dict[int, list[AgentView]] = {}
    skipped: list[tuple[str, str]] = []
    last_order: int | None = None
    for order, agent in enumerate(members):
        config = agent.config
        aid = config.id
        if aid == last_offered:
            last_order = order
        reason = agent.skip_reason()
        if reason is None and needs:
            reason = _gap(config.skills, needs)
        if reason is None and skip_until and skip_until.get(aid, float("-inf")) > now:
            reason = "rejected recently"
        if reason is not None:
            skipped.append((aid, reason))
            continue
        held = config.skills
        view = AgentView(aid, order, agent.idle_since, agent.calls.get(name, 0),
                         agent.talk_time.get(name, 0.0),
                         sum([held.get(skill, 0) for skill in wanted]) if wanted else 0)
        penalty = config.queues.get(name, 0)
        group = groups.get(penalty)
        if group is None:
            groups[penalty] = [view]
        else:
            group.append(view)
    ctx = Context(now=now, member_count=len(members), last_offered_order=last_order,
                  choose=choose)
    rank = STRATEGIES[queue.strategy]
    candidates: list[Candidate] = []
    for penalty in sorted(groups):
        candidates.extend([Candidate(aid, score, penalty) for aid, score in rank(groups[penalty], ctx)])
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

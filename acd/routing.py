"""One routing evaluation: which members of the call's queue may take it, ranked.

Filtering is the same for every strategy: an agent is skipped when not available
(the reason is recorded for `why`), when lacking a required skill at the level in
force after relaxation, or when they rejected this call less than `retry` seconds
ago. Survivors are grouped by penalty (lowest first) and ranked by the strategy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from .actions import Candidate, Decision
from .agents import AgentRuntime
from .calls import CallEntry
from .history import KEEP_AGENTS, kept, summed_up
from .model import QueueConfig, Strategy, required_levels
from .roster import Roster
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
    ranked, chosen = _rank(groups, queue, ctx)
    return Decision(
        time=now, call_id=entry.call_id, queue=queue.name, strategy=queue.strategy.value,
        step=entry.step, min_levels=levels, chosen=chosen,
        candidates=tuple([Candidate._make(c) for c in ranked]),
        skipped=tuple(skipped),
    )


def _rank(groups: Mapping[int, list[AgentView]], queue: QueueConfig,
          ctx: Context) -> tuple[list[tuple[str, float, int]], tuple[str, ...]]:
    """(agent id, score, penalty), ranked penalty group by penalty group, and who to
    offer now."""
    rank = STRATEGIES[queue.strategy]
    ranked: list[tuple[str, float, int]] = []
    for penalty in sorted(groups):
        ranked.extend([(aid, score, penalty) for aid, score in rank(groups[penalty], ctx)])
    chosen: tuple[str, ...] = ()
    if ranked:
        if queue.strategy is Strategy.RING_ALL:
            first = ranked[0][2]
            chosen = tuple([aid for aid, _, penalty in ranked if penalty == first])
        else:
            chosen = (ranked[0][0],)
    return ranked, chosen


GAPS_KEPT = 256  # distinct required-level sets remembered per queue


def _gaps(roster: Roster, needs: tuple[tuple[str, int], ...]) -> dict[int, str]:
    """Members (by position) short of a required level, with the reason; skills are
    fixed by the configuration, so this is worked out once per set of levels."""
    found = roster.gaps.get(needs)
    if found is None:
        if len(roster.gaps) >= GAPS_KEPT:
            roster.gaps.clear()
        found = {}
        for index, agent in enumerate(roster.agents):
            reason = _gap(agent.config.skills, needs)
            if reason is not None:
                found[index] = reason
        roster.gaps[needs] = found
    return found


def route(entry: CallEntry, queue: QueueConfig, roster: Roster, *, now: float,
          last_offered: str | None, choose: Callable[[int], int],
          keep: int = KEEP_AGENTS) -> Decision:
    """`evaluate` as the engine runs it, already cut down for `why`: equal to
    `history.trim(evaluate(entry, queue, roster.agents, ...), keep)`.

    Reads only the available members' records; the others' reasons come from the
    roster and skill gaps from its cache, so the cost grows with the agents free now,
    not with the queue's size. For `longest_idle`, the default, the roster keeps the
    available ranked: the first few that may take the call are read, and no more."""
    levels = required_levels(entry.skills, queue.level_delta(entry.step))
    needs = tuple(sorted(levels.items()))
    agents, ids, free, reasons = roster.agents, roster.ids, roster.free, roster.reasons
    own: dict[int, str] = {}  # available, yet skipped for this call
    if needs and free:
        gaps = _gaps(roster, needs)
        if len(gaps) < len(free):
            own = {i: why for i, why in gaps.items() if i in free}
        else:
            own = {i: gaps[i] for i in free if i in gaps}
    for aid, until in entry.skip_until.items():
        index = roster.order.get(aid)
        if until > now and index is not None and index not in own and index in free:
            own[index] = "rejected recently"
    strategy = queue.strategy
    count = len(free) - len(own)  # candidates
    shown: list[tuple[str, float, int]] = []
    if strategy is Strategy.LONGEST_IDLE:
        # the roster keeps the available ranked: read the first few that may take it
        want = min(count, keep + 1)  # all of them, or the chosen and `keep` more
        for penalty, since, index in roster.ready:
            if len(shown) == want:
                break
            if index not in own:  # as strategies.longest_idle scores
                shown.append((ids[index], 0.0 - (since - now), penalty))
        chosen: tuple[str, ...] = (shown[0][0],) if shown else ()
    else:
        penalties, name, wanted = roster.penalties, queue.name, tuple(entry.skills)
        views: dict[int, list[AgentView]] = {}
        for index in roster.available():
            if index not in own:
                agent = agents[index]
                view = AgentView(ids[index], index, agent.idle_since, agent.calls.get(name, 0),
                                 agent.talk_time.get(name, 0.0),
                                 sum([agent.config.skills.get(s, 0) for s in wanted]) if wanted else 0)
                group = views.get(penalties[index])
                if group is None:
                    views[penalties[index]] = [view]
                else:
                    group.append(view)
        last_order = roster.order.get(last_offered) if last_offered is not None else None
        ranked, chosen = _rank(views, queue, Context(
            now=now, member_count=len(agents), last_offered_order=last_order, choose=choose))
        shown = ranked if count <= keep else kept(ranked, chosen, keep)
    skipped = len(reasons) - len(free) + len(own)
    full = count <= keep and skipped <= keep
    # the first skipped in config order: the unavailable merged with `own`
    limit = len(reasons) if full else keep
    mine = sorted(own.items())[:limit]
    head = sorted(mine + [(i, str(reasons[i])) for i in roster.busy[:limit]])[:limit]
    first = tuple([(ids[i], why) for i, why in head])
    decision = Decision(
        time=now, call_id=entry.call_id, queue=queue.name, strategy=strategy.value,
        step=entry.step, min_levels=levels, chosen=chosen, skipped=first,
        candidates=tuple([Candidate._make(c) for c in shown]),
    )
    if full:
        return decision
    counts = Counter(roster.counts)
    counts.update(own.values())
    counts.subtract([why for _, why in head])
    return replace(decision, skipped=summed_up(first, count - len(shown),
                                               skipped - len(head), counts))

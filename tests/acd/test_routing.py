"""`routing.evaluate` against its definition, and the engine's `routing.route` against
`evaluate`, on random queues of agents.

The evaluation runs for every call routed over every member of its queue, so it is
written for speed; this test holds it to the plain reading of the rules: each member in
config order is skipped for its first reason (unavailable, a missing skill at the
relaxed level, rejected recently), the rest grouped by penalty and ranked by the
strategy (`longest_idle` by its definition here; the other strategies have their own
tests in test_strategies.py)."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from acd.actions import Candidate
from acd.agents import AgentRuntime
from acd.calls import CallEntry
from acd.history import KEEP_AGENTS, trim
from acd.model import AgentConfig, QueueConfig, State, Status, Strategy, required_levels
from acd.roster import Roster
from acd.routing import evaluate, route
from acd.strategies import STRATEGIES, AgentView, Context


def reference(entry: CallEntry, queue: QueueConfig, members: list[AgentRuntime], *,
              now: float, last_offered: str | None) -> tuple[object, ...]:
    levels = required_levels(entry.skills, queue.level_delta(entry.step))
    views, penalties, skipped = [], {}, []
    for order, agent in enumerate(members):
        reason = agent.skip_reason()
        if reason is None:
            for skill, need in sorted(levels.items()):
                have = agent.config.level(skill)
                if have < need:
                    reason = f"lacks skill {skill}>={need} (has {have})"
                    break
        if reason is None and entry.skip_until.get(agent.id, float("-inf")) > now:
            reason = "rejected recently"
        if reason is not None:
            skipped.append((agent.id, reason))
            continue
        views.append(AgentView(agent.id, order, agent.idle_since, agent.calls.get(queue.name, 0),
                               agent.talk_time.get(queue.name, 0.0),
                               sum(agent.config.level(s) for s in entry.skills)))
        penalties[agent.id] = agent.config.queues.get(queue.name, 0)
    order_of = {a.id: i for i, a in enumerate(members)}
    ctx = Context(now=now, member_count=len(members),
                  last_offered_order=order_of.get(last_offered) if last_offered else None,
                  choose=lambda n: 1 % n)
    candidates = []
    for penalty in sorted(set(penalties.values())):
        group = [v for v in views if penalties[v.agent_id] == penalty]
        if queue.strategy is Strategy.LONGEST_IDLE:  # its definition (docs/acd.md)
            def idle(v: AgentView) -> float:
                return math.inf if v.idle_since is None else now - v.idle_since
            ranked = [(v.agent_id, idle(v)) for v in sorted(group, key=lambda v: (-idle(v), v.order))]
        else:
            ranked = STRATEGIES[queue.strategy](group, ctx)
        candidates.extend(Candidate(aid, score, penalty) for aid, score in ranked)
    return levels, tuple(candidates), tuple(skipped)


def population(rng: random.Random, size: int) -> list[AgentRuntime]:
    agents = []
    for i in range(size):
        skills = {s: rng.randint(1, 10) for s in ("en", "fr", "billing") if rng.random() < 0.6}
        config = AgentConfig(id=f"a{i}", name=f"A{i}", extension=str(1000 + i), skills=skills,
                             queues={"q": rng.choice([0, 0, 1, 5])})
        agent = AgentRuntime(config)
        agent.status = rng.choice([Status.READY] * 4 + [Status.NOT_READY, Status.LOGGED_OUT])
        agent.state = rng.choice([State.IDLE] * 3 + [State.ON_CALL, State.WRAP_UP, State.RESERVED])
        agent.reachable = rng.random() < 0.9
        agent.pending_logout = rng.random() < 0.05
        agent.retired = rng.random() < 0.02
        # idle since now: a call ended this instant (its score is 0, never -0)
        agent.idle_since = rng.choice([None, 100.0, rng.uniform(0, 100), rng.uniform(0, 100)])
        if rng.random() < 0.8:  # else no call from this queue yet: the defaults
            agent.calls = {"q": rng.randint(0, 9)}
            agent.talk_time = {"q": rng.uniform(0, 900)}
        agents.append(agent)
    return agents


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("seed", range(8))
def test_evaluate_follows_the_rules(strategy: Strategy, seed: int) -> None:
    rng = random.Random(seed)
    members = population(rng, rng.choice([0, 1, 7, 60]))
    queue = QueueConfig(name="q", strategy=strategy,
                        skill_relaxation=((10.0, -1), (30.0, -3)))
    skills = {s: rng.randint(1, 10) for s in ("en", "billing") if rng.random() < 0.5}
    entry = CallEntry("c1", "q", 0, skills, {}, 0.0, 0.0, 1, step=rng.choice([-1, 0, 1]))
    for agent in rng.sample(members, min(3, len(members))):
        entry.skip_until[agent.id] = rng.choice([50.0, 150.0])
    last = rng.choice([None, "a0", "a3", "nobody"])
    decision = evaluate(entry, queue, members, now=100.0, last_offered=last,
                        choose=lambda n: 1 % n)
    levels, candidates, skipped = reference(entry, queue, members, now=100.0, last_offered=last)
    assert decision.min_levels == levels
    assert decision.candidates == candidates
    assert [math.copysign(1.0, c.score) for c in decision.candidates] == \
        [math.copysign(1.0, c.score) for c in candidates]  # `why` would print "-0"
    assert decision.skipped == skipped
    assert "score=-0 " not in decision.describe()
    if candidates:
        first = candidates[0].penalty
        want = tuple(c.agent_id for c in candidates if c.penalty == first) \
            if strategy is Strategy.RING_ALL else (candidates[0].agent_id,)
        assert decision.chosen == want
    else:
        assert decision.chosen == ()


def random_call(rng: random.Random, members: list[AgentRuntime]) -> CallEntry:
    skills = {s: rng.randint(1, 10) for s in ("en", "billing") if rng.random() < 0.5}
    entry = CallEntry("c1", "q", 0, skills, {}, 0.0, 0.0, 1, step=rng.choice([-1, 0, 1]))
    for agent in rng.sample(members, min(rng.choice([0, 3, 40]), len(members))):
        entry.skip_until[agent.id] = rng.choice([50.0, 150.0])
    return entry


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize("seed", range(12))
def test_route_is_evaluate_cut_down_for_why(strategy: Strategy, seed: int) -> None:
    """The engine's path reads only the available members (the others' reasons come from
    the roster) and cuts the decision down as the `why` log does: the same result."""
    rng = random.Random(1000 + seed)
    members = population(rng, rng.choice([0, 3, 9, 11, 60, 400]))
    if seed % 3 == 0:  # a busy center: few available, more skipped than are shown
        for agent in members:
            if rng.random() < 0.9:
                agent.state = State.ON_CALL
    queue = QueueConfig(name="q", strategy=strategy, skill_relaxation=((10.0, -1), (30.0, -3)))
    entry = random_call(rng, members)
    last = rng.choice([None, "a0", "a5", "nobody"])
    full = evaluate(entry, queue, members, now=100.0, last_offered=last, choose=lambda n: n // 2)
    fast = route(entry, queue, Roster("q", members), now=100.0, last_offered=last,
                 choose=lambda n: n // 2)
    assert fast == trim(full)
    assert len(fast.skipped) <= KEEP_AGENTS + 2


def test_roster_follows_each_change() -> None:
    rng = random.Random(7)
    members = population(rng, 30)
    roster = Roster("q", members)
    assert len(roster.free) == sum(a.skip_reason() is None for a in members)
    for _ in range(300):
        index = rng.randrange(len(members))
        agent = members[index]
        agent.state = rng.choice(list(State))
        agent.status = rng.choice(list(Status))
        if agent.skip_reason() is not None:  # a call ends while the agent is busy
            agent.idle_since = rng.choice([None, rng.uniform(0, 100)])
        roster.set(index, agent.skip_reason())
        assert_roster(roster)


def assert_roster(roster: Roster) -> None:
    """The roster's indexes agree with its members' own state."""
    members = roster.agents
    assert roster.reasons == [a.skip_reason() for a in members]
    assert roster.free == {i for i, a in enumerate(members) if a.skip_reason() is None}
    assert roster.busy == [i for i, a in enumerate(members) if a.skip_reason() is not None]
    assert roster.counts == Counter(a.skip_reason() for a in members if a.skip_reason())
    assert roster.ready == sorted(
        (roster.penalties[i], -math.inf if members[i].idle_since is None else members[i].idle_since, i)
        for i in roster.free)
    assert roster.available() == sorted(roster.free)

"""Every routing strategy: pure functions on tables, then through the engine."""

from __future__ import annotations

import math

import pytest

from acd import strategies as st
from acd.model import Strategy

from .test_support import CancelOffer, Rig, agent, events, of, offered_to, offers, queue

V = st.AgentView


def ctx(now: float = 100, last: int | None = None, pick: int = 0, members: int = 4) -> st.Context:
    return st.Context(now=now, member_count=members, last_offered_order=last, choose=lambda n: pick)


VIEWS = [
    #  id   order idle_since calls talk  skill_sum
    V("a", 0, 90.0, 5, 300.0, 6),
    V("b", 1, 20.0, 2, 900.0, 9),
    V("c", 2, None, 2, 100.0, 9),
    V("d", 3, 50.0, 7, 100.0, 2),
]


@pytest.mark.parametrize(
    ("fn", "context", "expected"),
    [
        (st.longest_idle, ctx(), [("c", math.inf), ("b", 80.0), ("d", 50.0), ("a", 10.0)]),
        (st.linear, ctx(), [("a", 0.0), ("b", 1.0), ("c", 2.0), ("d", 3.0)]),
        (st.round_robin, ctx(last=None), [("a", 0.0), ("b", 1.0), ("c", 2.0), ("d", 3.0)]),
        (st.round_robin, ctx(last=1), [("c", 0.0), ("d", 1.0), ("a", 2.0), ("b", 3.0)]),
        (st.round_robin, ctx(last=3), [("a", 0.0), ("b", 1.0), ("c", 2.0), ("d", 3.0)]),
        # fewest calls, ties (b, c) broken by longest idle
        (st.fewest_calls, ctx(), [("c", 2.0), ("b", 2.0), ("a", 5.0), ("d", 7.0)]),
        # least talk time, ties (c, d) broken by longest idle
        (st.least_talk_time, ctx(), [("c", 100.0), ("d", 100.0), ("a", 300.0), ("b", 900.0)]),
        (st.random_pick, ctx(pick=2), [("c", 1.0), ("a", 0.0), ("b", 0.0), ("d", 0.0)]),
        (st.random_pick, ctx(pick=0), [("a", 1.0), ("b", 0.0), ("c", 0.0), ("d", 0.0)]),
        (st.ring_all, ctx(), [("a", 0.0), ("b", 0.0), ("c", 0.0), ("d", 0.0)]),
        # best summed level; b and c tie at 9, c idle longer
        (st.skills, ctx(), [("c", 9.0), ("b", 9.0), ("a", 6.0), ("d", 2.0)]),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_strategy_tables(fn: object, context: st.Context, expected: list[tuple[str, float]]) -> None:
    assert fn(list(reversed(VIEWS)), context) == expected  # type: ignore[operator]


def test_every_strategy_has_a_function() -> None:
    assert set(st.STRATEGIES) == set(Strategy)


def test_round_robin_remembers_and_wraps_around() -> None:
    rig = Rig([queue(strategy="round_robin", wrapup=0)], [agent("a"), agent("b"), agent("c")])
    rig.login("a", "b", "c")
    got = []
    for n in range(5):
        (offer,) = offers(rig.call(f"c{n}"))
        got.append(offer.agent_id)
        rig.answer(offer.offer_id)
        rig.end(f"c{n}")
    assert got == ["a", "b", "c", "a", "b"]


def test_round_robin_skips_busy_agents_and_continues_after_the_last_offered() -> None:
    rig = Rig([queue(strategy="round_robin", wrapup=0)], [agent("a"), agent("b"), agent("c")])
    rig.login("a", "b", "c")
    o1 = offers(rig.call("c1"))[0]  # a
    o2 = offers(rig.call("c2"))[0]  # b
    rig.answer(o1.offer_id)
    rig.answer(o2.offer_id)
    rig.end("c1")  # a free again, c never offered yet
    assert offered_to(rig.call("c3")) == ["c"]


def test_linear_always_starts_from_the_first_agent() -> None:
    rig = Rig([queue(strategy="linear", wrapup=0)], [agent("a"), agent("b")])
    rig.login("b", "a")
    for n in range(3):
        (offer,) = offers(rig.call(f"c{n}"))
        assert offer.agent_id == "a"
        rig.answer(offer.offer_id)
        rig.end(f"c{n}")


def test_longest_idle_prefers_the_agent_whose_last_call_ended_first() -> None:
    rig = Rig([queue(strategy="longest_idle", wrapup=0)], [agent("a"), agent("b")])
    rig.login("a", "b")
    oa = offers(rig.call("c1"))[0]
    ob = offers(rig.call("c2"))[0]
    rig.answer(oa.offer_id)
    rig.answer(ob.offer_id)
    rig.now = 10
    rig.end("c2")  # b idle since 10
    rig.now = 20
    rig.end("c1")  # a idle since 20
    rig.now = 30
    assert offered_to(rig.call("c3")) == ["b"]


def test_fewest_calls_and_least_talk_time_through_the_engine() -> None:
    for strategy, expected in (("fewest_calls", "b"), ("least_talk_time", "a")):
        rig = Rig([queue(strategy=strategy, wrapup=0)], [agent("a"), agent("b")])
        rig.login("a")
        for n, talk in enumerate((5, 5)):  # a: two short calls
            rig.answer(offers(rig.call(f"s{n}"))[0].offer_id)
            rig.now += talk
            rig.end(f"s{n}")
        # then b takes one long call while a is on a break
        rig.engine.agent_set_status("a", "not_ready", "break", now=rig.now)
        rig.login("b")
        rig.answer(offers(rig.call("long"))[0].offer_id)
        rig.now += 100
        rig.end("long")
        rig.engine.agent_set_status("a", "ready", now=rig.now)
        rig.drain()
        assert offered_to(rig.call("next")) == [expected], strategy


def test_random_uses_the_injected_chooser() -> None:
    draws: list[int] = []

    def choose(n: int) -> int:
        draws.append(n)
        return n - 1

    rig = Rig([queue(strategy="random")], [agent("a"), agent("b"), agent("c")], choose=choose)
    rig.login("a", "b", "c")
    assert offered_to(rig.call("c1")) == ["c"]
    assert offered_to(rig.call("c2")) == ["b"]
    assert draws == [3, 2]


def test_ring_all_offers_everyone_and_cancels_the_rest_on_first_answer() -> None:
    rig = Rig([queue(strategy="ring_all")], [agent("a"), agent("b"), agent("c")])
    rig.login("a", "b", "c")
    acts = rig.call("c1")
    ring = offers(acts)
    assert [o.agent_id for o in ring] == ["a", "b", "c"]
    assert {o.attempt for o in ring} == {1}
    rig.now = 3
    acts = rig.answer(ring[1].offer_id)
    assert sorted((c.agent_id, c.reason) for c in of(CancelOffer, acts)) == [
        ("a", "answered_elsewhere"), ("c", "answered_elsewhere")]
    assert events(acts).count("RINGCANCELED") == 2
    assert rig.engine.available_agents() == {"a", "c"}
    # a late answer from a cancelled phone is a usage error for the driver to handle
    with pytest.raises(Exception, match="unknown, answered or finished offer"):
        rig.engine.offer_answered(ring[0].offer_id, 4)


def test_ring_all_call_waits_again_only_when_every_offer_failed() -> None:
    rig = Rig([queue(strategy="ring_all", retry=5)], [agent("a"), agent("b")])
    rig.login("a", "b")
    ring = offers(rig.call("c1"))
    assert offered_to(rig.fail(ring[0].offer_id)) == []
    assert rig.engine.position("c1") == 1
    rig.fail(ring[1].offer_id)
    assert offered_to(rig.at(5)) == ["a", "b"]


def test_ring_all_timeout_is_a_rona_for_each_ringing_agent() -> None:
    rig = Rig([queue(strategy="ring_all", ring_timeout=5)], [agent("a"), agent("b")])
    rig.login("a", "b")
    rig.call("c1")
    acts = rig.at(5)
    assert events(acts).count("RINGNOANSWER") == 2
    assert rig.state("a")[2] == rig.state("b")[2] == "no answer"


def test_ring_all_rings_only_the_lowest_penalty_group() -> None:
    rig = Rig([queue(strategy="ring_all")], [agent("a", {"q": 1}), agent("b", {"q": 0}),
                                             agent("c", {"q": 0})])
    rig.login("a", "b", "c")
    assert offered_to(rig.call("c1")) == ["b", "c"]
    assert offered_to(rig.call("c2")) == ["a"]


def test_penalty_groups_apply_to_every_strategy() -> None:
    rig = Rig([queue(strategy="longest_idle")], [agent("a", {"q": 0}), agent("b", {"q": 5})])
    rig.login("b", "a")
    assert offered_to(rig.call("c1")) == ["a"]
    decision = rig.engine.why("c1")[0]
    assert [(c.agent_id, c.penalty) for c in decision.candidates] == [("a", 0), ("b", 5)]


def test_skills_strategy_picks_the_best_summed_level() -> None:
    agents = [agent("a", billing=5, french=5), agent("b", billing=9, french=6), agent("c", billing=9)]
    rig = Rig([queue(strategy="skills")], agents)
    rig.login("a", "b", "c")
    acts = rig.call("c1", skills={"billing": 4, "french": 3})
    assert offered_to(acts) == ["b"]
    decision = rig.engine.why("c1")[0]
    assert [(c.agent_id, c.score) for c in decision.candidates] == [("b", 15.0), ("a", 10.0)]
    assert decision.skipped == (("c", "lacks skill french>=3 (has 0)"),)


@pytest.mark.parametrize("strategy", [s.value for s in Strategy])
def test_required_skills_filter_candidates_for_every_strategy(strategy: str) -> None:
    rig = Rig([queue(strategy=strategy)], [agent("a", billing=3), agent("b", billing=7), agent("c")])
    rig.login("a", "b", "c")
    assert offered_to(rig.call("c1", skills={"billing": 5})) == ["b"]
    assert offered_to(rig.call("c2", skills={"billing": 5})) == []

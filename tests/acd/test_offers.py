"""Offers: answer, busy/decline, RONA, wrap-up, logout during a call, abandon, usage errors."""

from __future__ import annotations

import pytest

from acd.errors import AcdUsageError
from acd.model import State, Status

from .test_support import (
    AgentChanged,
    Bridge,
    CancelOffer,
    Rig,
    agent,
    events,
    of,
    offered_to,
    offers,
    queue,
)


def rig2(**kw: object) -> Rig:
    rig = Rig([queue(strategy="linear", **kw)], [agent("a"), agent("b")])
    rig.login("a", "b")
    return rig


def test_answer_bridges_and_carries_the_screen_pop() -> None:
    rig = rig2()
    rig.now = 3
    acts = rig.call("c1", data={"account": "1234"}, priority=2, skills={})
    (offer,) = offers(acts)
    assert (offer.agent_id, offer.attempt, offer.ring_timeout) == ("a", 1, 15)
    assert offer.pop == {"call_id": "c1", "queue": "q", "priority": 2, "skills": {},
                         "waited": 0, "attempt": 1, "data": {"account": "1234"}}
    assert rig.state("a") == (Status.READY, State.RESERVED, None)
    rig.now = 7
    acts = rig.answer(offer.offer_id)
    assert of(Bridge, acts) == [Bridge("c1", "a", offer.offer_id, "q")]
    connect = [a for a in acts if getattr(a, "event", "") == "CONNECT"][0]
    assert connect.data == {"holdtime": 4, "ringtime": 4, "origposition": 1}
    assert rig.state("a") == (Status.READY, State.ON_CALL, None)
    assert rig.engine.position("c1") is None


@pytest.mark.parametrize("reason", ["busy", "decline", "error"])
def test_reject_goes_to_next_agent_and_skips_the_rejecter_for_retry_seconds(reason: str) -> None:
    rig = rig2(retry=5)
    (offer,) = offers(rig.call("c1"))
    acts = rig.fail(offer.offer_id, reason)
    assert offered_to(acts) == ["b"]
    assert "OFFERFAILED" in events(acts)
    assert rig.state("a") == (Status.READY, State.IDLE, None)
    assert "a" in rig.engine.available_agents()
    # b rejects too: a is still within its retry window, so nobody is offered
    acts = rig.fail(offers(acts)[0].offer_id, reason)
    assert offered_to(acts) == []
    assert rig.engine.why("c1")[-1].skipped == (("a", "rejected recently"), ("b", "rejected recently"))
    acts = rig.at(5)
    assert offered_to(acts) == ["a"]
    assert offers(acts)[0].attempt == 3


def test_rona_makes_agent_not_ready_and_call_keeps_its_place_at_the_head() -> None:
    rig = Rig([queue(strategy="linear", ring_timeout=10)], [agent("a"), agent("b")])
    rig.login("a")
    offer = offers(rig.call("c1"))[0]
    rig.now = 1
    rig.call("c2")
    assert rig.engine.position("c2") == 2
    acts = rig.at(10)
    assert of(CancelOffer, acts) == [CancelOffer(offer.offer_id, "c1", "a", "timeout")]
    assert events(acts) == ["RINGNOANSWER", "AGENTNOTREADY"]
    assert rig.state("a") == (Status.NOT_READY, State.IDLE, "no answer")
    # no intermediate "ready and idle" flash for the driver
    assert [(c.status, c.state) for c in of(AgentChanged, acts)] == [(Status.NOT_READY, State.IDLE)]
    assert rig.engine.position("c1") == 1
    acts = rig.login("b")
    assert [(o.call_id, o.agent_id, o.attempt) for o in offers(acts)] == [("c1", "b", 2)]


def test_wrapup_then_idle_and_available_again() -> None:
    rig = rig2(wrapup=30)
    rig.answer(offers(rig.call("c1"))[0].offer_id)
    rig.now = 50
    acts = rig.end("c1", by="agent")
    assert events(acts) == ["COMPLETEAGENT", "WRAPUPSTART"]
    assert rig.state("a") == (Status.READY, State.WRAP_UP, None)
    rig.now = 60
    rig.answer(offers(rig.call("c2"))[0].offer_id)
    acts = rig.at(80)
    assert events(acts) == ["WRAPUPEND"]
    assert rig.state("a") == (Status.READY, State.IDLE, None)
    assert "a" in rig.engine.available_agents()


def test_no_wrapup_returns_to_idle_at_once() -> None:
    rig = rig2(wrapup=0)
    rig.answer(offers(rig.call("c1"))[0].offer_id)
    acts = rig.end("c1")
    assert events(acts) == ["COMPLETECALLER"]
    assert rig.state("a") == (Status.READY, State.IDLE, None)


def test_logout_during_call_takes_effect_after_the_call() -> None:
    rig = rig2()
    rig.answer(offers(rig.call("c1"))[0].offer_id)
    acts = rig.engine.agent_set_status("a", Status.LOGGED_OUT, now=rig.now) or rig.drain()
    assert events(acts) == []
    assert rig.state("a") == (Status.READY, State.ON_CALL, None)
    acts = rig.end("c1")
    assert events(acts) == ["COMPLETECALLER", "AGENTLOGOFF"]
    assert rig.state("a") == (Status.LOGGED_OUT, State.IDLE, None)
    assert offered_to(rig.call("c2")) == ["b"]


def test_ready_again_during_the_call_cancels_a_pending_logout() -> None:
    rig = rig2(wrapup=0)
    rig.answer(offers(rig.call("c1"))[0].offer_id)
    rig.engine.agent_set_status("a", "logged_out", now=0)
    rig.engine.agent_set_status("a", "ready", now=0)
    rig.end("c1")
    assert rig.state("a") == (Status.READY, State.IDLE, None)


def test_logout_during_wrapup_ends_it() -> None:
    rig = rig2(wrapup=30)
    rig.answer(offers(rig.call("c1"))[0].offer_id)
    rig.end("c1")
    rig.engine.agent_set_status("a", "logged_out", now=1)
    assert events(rig.drain()) == ["WRAPUPEND", "AGENTLOGOFF"]
    assert rig.engine.next_deadline() is None


def test_not_ready_while_ringing_cancels_the_offer_and_requeues() -> None:
    rig = rig2()
    offer = offers(rig.call("c1"))[0]
    rig.engine.agent_set_status("a", "not_ready", "lunch", now=2)
    acts = rig.drain()
    assert of(CancelOffer, acts) == [CancelOffer(offer.offer_id, "c1", "a", "agent_status")]
    assert offered_to(acts) == ["b"]
    assert rig.state("a") == (Status.NOT_READY, State.IDLE, "lunch")


def test_abandon_while_queued_and_while_ringing() -> None:
    rig = Rig([queue()], [agent("a")])
    rig.login("a")
    offer = offers(rig.call("c1"))[0]
    rig.call("c2")
    rig.now = 12
    rig.engine.call_abandoned("c2", rig.now)
    acts = rig.drain()
    abandon = acts[0]
    assert (abandon.event, abandon.data) == ("ABANDON", {"position": 2, "origposition": 2, "waittime": 12})
    rig.engine.call_abandoned("c1", rig.now)
    acts = rig.drain()
    assert of(CancelOffer, acts) == [CancelOffer(offer.offer_id, "c1", "a", "abandoned")]
    assert events(acts) == ["RINGCANCELED", "ABANDON"]
    assert rig.state("a") == (Status.READY, State.IDLE, None)
    assert rig.engine.stats("q", rig.now).abandoned == 2
    assert rig.engine.gauges()["calls"] == 0


def test_unreachable_agent_is_not_offered_until_registered() -> None:
    rig = Rig([queue()], [agent("a")])
    rig.engine.agent_set_status("a", "ready", now=0)
    assert offered_to(rig.call("c1")) == []
    assert rig.engine.why("c1")[-1].skipped == (("a", "not registered"),)
    rig.engine.agent_reachable("a", True, 1)
    assert offered_to(rig.drain()) == ["a"]


def usage_cases(rig: Rig) -> list[tuple[str, object]]:
    return [
        ("enqueue unknown queue", lambda: rig.engine.enqueue("x", "nope", now=0)),
        ("enqueue twice", lambda: rig.engine.enqueue("c1", "q", now=0)),
        ("abandon unknown", lambda: rig.engine.call_abandoned("zz", 0)),
        ("abandon bridged", lambda: rig.engine.call_abandoned("c1", 0)),
        ("answer twice", lambda: rig.engine.offer_answered("o1", 0)),
        ("fail answered", lambda: rig.engine.offer_failed("o1", "busy", 0)),
        ("bad fail reason", lambda: rig.engine.offer_failed("o1", "nope", 0)),
        ("end unknown", lambda: rig.engine.call_ended("zz", "caller", 0)),
        ("end by whom", lambda: rig.engine.call_ended("c1", "alien", 0)),
        ("end queued", lambda: rig.engine.call_ended("c2", "caller", 0)),
        ("unknown agent", lambda: rig.engine.agent_set_status("zz", "ready", now=0)),
        ("bad status", lambda: rig.engine.agent_set_status("a", "sleepy", now=0)),
        ("reachable unknown", lambda: rig.engine.agent_reachable("zz", True, 0)),
        ("stats unknown", lambda: rig.engine.stats("nope", 0)),
        ("key unknown", lambda: rig.engine.caller_key("zz", "1", 0)),
        ("bad skills", lambda: rig.engine.enqueue("c9", "q", skills={"x": "high"}, now=0)),  # type: ignore[dict-item]
    ]


@pytest.mark.parametrize("index", range(16))
def test_usage_errors(index: int) -> None:
    rig = Rig([queue()], [agent("a")])
    rig.login("a")
    rig.call("c1")
    rig.answer("o1")
    rig.call("c2")
    name, thunk = usage_cases(rig)[index]
    with pytest.raises(AcdUsageError):
        thunk()  # type: ignore[operator]


def test_state_table_refuses_impossible_transitions() -> None:
    from acd.agents import AgentRuntime, Event

    runtime = AgentRuntime(agent("a"))
    with pytest.raises(AcdUsageError, match="answer not allowed in state idle"):
        runtime.apply(Event.ANSWER)
    runtime.apply(Event.OFFER)
    with pytest.raises(AcdUsageError):
        runtime.set_status(Status.LOGGED_OUT, None)

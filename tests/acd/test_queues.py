"""Queue behaviour: order, relaxation, exits, overflow, announcements, several queues, reload."""

from __future__ import annotations

import pytest

from acd.model import Status

from .test_support import (
    Announce,
    CancelOffer,
    ExitQueue,
    Rig,
    agent,
    events,
    of,
    offers,
    queue,
)


def test_higher_priority_first_then_fifo() -> None:
    rig = Rig([queue()], [agent("a")])
    for n, prio in enumerate([0, 5, 0, 5, 9]):
        rig.now = n
        rig.call(f"c{n}", priority=prio)
    assert [rig.engine.position(f"c{n}") for n in range(5)] == [4, 2, 5, 3, 1]
    rig.login("a")
    served = []
    for _ in range(5):
        offer = offers(rig.log)[-1]
        served.append(offer.call_id)
        rig.answer(offer.offer_id)
        rig.end(offer.call_id)
        rig.at(rig.now + 10)  # wrap-up
    assert served == ["c4", "c1", "c3", "c0", "c2"]


def test_skill_relaxation_steps_over_time_without_losing_the_place() -> None:
    steps = [(0, 0), (30, -2), (60, -10)]
    rig = Rig([queue(skill_relaxation=steps)], [agent("lo", billing=3), agent("none")])
    rig.login("lo", "none")
    rig.call("c1", skills={"billing": 5})
    rig.now = 1
    rig.call("c2", skills={"billing": 5})
    assert rig.engine.why("c1")[0].skipped == (("lo", "lacks skill billing>=5 (has 3)"),
                                              ("none", "lacks skill billing>=5 (has 0)"))
    acts = rig.at(30)
    assert [(e.call_id, e.data["step"], e.data["levels"]) for e in of_events(acts, "SKILLRELAX")] == [
        ("c1", 1, {"billing": 3})]
    assert [(o.call_id, o.agent_id) for o in offers(acts)] == [("c1", "lo")]
    assert rig.engine.why("c1")[-1].min_levels == {"billing": 3}
    assert rig.engine.position("c2") == 2
    acts = rig.at(31)  # c2 relaxes too, but lo is busy; c2 keeps position 2
    assert offers(acts) == [] and rig.engine.position("c2") == 2
    rig.answer(offers(rig.log)[-1].offer_id)
    assert rig.engine.position("c2") == 1
    acts = rig.at(61)
    assert [(o.call_id, o.agent_id) for o in offers(acts)] == [("c2", "none")]
    assert rig.engine.why("c2")[-1].step == 2


def of_events(actions: list, name: str) -> list:
    return [a for a in actions if getattr(a, "event", None) == name]


def test_max_len_refuses_with_full() -> None:
    rig = Rig([queue(max_len=2)], [agent("a")])
    rig.call("c1")
    rig.call("c2")
    acts = rig.call("c3")
    assert of(ExitQueue, acts) == [ExitQueue("c3", "full", None, "q")]
    assert events(acts) == ["EXITFULL"]
    assert rig.engine.position("c3") is None
    assert rig.engine.stats("q", 0).offered == 2


@pytest.mark.parametrize(
    ("rule", "logged_in", "reachable", "joins"),
    [
        ("yes", False, False, True),
        ("loggedin", False, False, False),
        ("loggedin", True, False, True),
        ("no", True, False, False),
        ("no", True, True, True),
        ("no", False, True, False),
    ],
)
def test_join_empty(rule: str, logged_in: bool, reachable: bool, joins: bool) -> None:
    rig = Rig([queue(join_empty=rule)], [agent("a")])
    if reachable:
        rig.engine.agent_reachable("a", True, 0)
    if logged_in:
        rig.engine.agent_set_status("a", "not_ready", "meeting", now=0)
    rig.drain()
    acts = rig.call("c1")
    assert (of(ExitQueue, acts) == []) is joins
    if not joins:
        assert of(ExitQueue, acts) == [ExitQueue("c1", "empty", None, "q")]
        assert events(acts) == ["EXITEMPTY"]


@pytest.mark.parametrize(
    ("rule", "event", "leaves"),
    [
        ("no", "logout", False),
        ("loggedin", "unregister", False),
        ("loggedin", "logout", True),
        ("yes", "unregister", True),
        ("yes", "logout", True),
    ],
)
def test_leave_when_empty(rule: str, event: str, leaves: bool) -> None:
    rig = Rig([queue(leave_when_empty=rule)], [agent("a"), agent("b")])
    rig.login("a")
    rig.engine.agent_set_status("a", "not_ready", "x", now=0)
    rig.call("c1")
    rig.call("c2")
    rig.now = 7
    if event == "logout":
        rig.engine.agent_set_status("a", "logged_out", now=rig.now)
    else:
        rig.engine.agent_reachable("a", False, rig.now)
    acts = rig.drain()
    exits = of(ExitQueue, acts)
    assert bool(exits) is leaves
    if leaves:
        assert exits == [ExitQueue("c1", "empty", None, "q"), ExitQueue("c2", "empty", None, "q")]
        assert [e.data for e in of_events(acts, "EXITEMPTY")][0] == {
            "position": 1, "origposition": 1, "waittime": 7}
        assert rig.engine.gauges()["calls"] == 0


def test_exit_by_key() -> None:
    rig = Rig([queue(exit_keys={"0": "operator"})], [agent("a")])
    rig.login("a")
    offer = offers(rig.call("c1"))[0]
    assert rig.engine.caller_key("c1", "5", 1) is False
    assert rig.drain() == []
    assert rig.engine.caller_key("c1", "0", 2) is True
    acts = rig.drain()
    assert of(CancelOffer, acts) == [CancelOffer(offer.offer_id, "c1", "a", "exit")]
    assert of(ExitQueue, acts) == [ExitQueue("c1", "key", "operator", "q")]
    assert of_events(acts, "EXITWITHKEY")[0].data == {
        "key": "0", "position": 1, "origposition": 1, "waittime": 2}


def test_key_during_a_bridged_call_is_ignored() -> None:
    rig = Rig([queue(exit_keys={"0": "operator"})], [agent("a")])
    rig.login("a")
    rig.answer(offers(rig.call("c1"))[0].offer_id)
    assert rig.engine.caller_key("c1", "0", 1) is False


def test_max_wait_overflows_to_a_node() -> None:
    rig = Rig([queue(max_wait=60, overflow="node:voicemail")], [agent("a")])
    rig.call("c1")
    acts = rig.at(60)
    assert of(ExitQueue, acts) == [ExitQueue("c1", "timeout", "node:voicemail", "q")]
    assert events(acts) == ["EXITWITHTIMEOUT", "OVERFLOW"]
    assert acts[0].data == {"position": 1, "origposition": 1, "waittime": 60}


def test_max_wait_without_overflow_just_leaves() -> None:
    rig = Rig([queue(max_wait=10)], [agent("a")])
    rig.login("a")
    offer = offers(rig.call("c1"))[0]  # ringing when the queue timeout hits: the timeout wins
    rig.engine.offer_failed(offer.offer_id, "busy", 2)
    rig.at(10)
    assert of(ExitQueue, rig.log) == [ExitQueue("c1", "timeout", None, "q")]


def test_overflow_to_another_queue_keeps_priority_and_wait_time() -> None:
    rig = Rig([queue("first", max_wait=30, overflow="second"), queue("second")],
              [agent("a", ["first"]), agent("b", ["second"])])
    rig.call("c1", "first", priority=3)
    rig.now = 10
    rig.call("old", "second")  # joined the second queue before c1 gets there, lower priority
    acts = rig.at(30)
    assert events(acts) == ["EXITWITHTIMEOUT", "OVERFLOW", "ENTERQUEUE"]
    assert of_events(acts, "OVERFLOW")[0].data == {"target": "second"}
    assert of(ExitQueue, acts) == []
    assert rig.engine.position("c1") == 1
    assert rig.engine.stats("second", 30).longest_wait == 30  # wait continues
    rig.now = 35
    offer = offers(rig.login("b"))[0]
    assert offer.call_id == "c1" and offer.queue == "second"
    acts = rig.answer(offer.offer_id)
    assert of_events(acts, "CONNECT")[0].data["holdtime"] == 35


def test_overflow_refused_by_a_full_queue_leaves_with_timeout() -> None:
    rig = Rig([queue("first", max_wait=5, overflow="second"), queue("second", max_len=1)], [])
    rig.call("x", "second")
    rig.call("c1", "first")
    acts = rig.at(5)
    assert events(acts) == ["EXITWITHTIMEOUT", "OVERFLOW", "EXITFULL"]
    assert of(ExitQueue, acts) == [ExitQueue("c1", "timeout", None, "first")]


def test_overflow_cycle_stops() -> None:
    rig = Rig([queue("a", max_wait=5, overflow="b"), queue("b", max_wait=5, overflow="a")], [])
    rig.call("c1", "a")
    rig.at(100)
    assert of(ExitQueue, rig.log) == [ExitQueue("c1", "timeout", None, "a")]
    assert events(rig.log).count("OVERFLOW") == 3


def test_max_offers_per_call_then_overflow() -> None:
    rig = Rig([queue(max_offers_per_call=2, retry=0, overflow="node:vm")], [agent("a"), agent("b")])
    rig.login("a", "b")
    first = offers(rig.call("c1"))[0]
    second = offers(rig.fail(first.offer_id))[0]
    acts = rig.fail(second.offer_id)
    assert of(ExitQueue, acts) == [ExitQueue("c1", "timeout", "node:vm", "q")]
    assert of_events(acts, "EXITWITHTIMEOUT")[0].data["offers"] == 2


def test_announcements_timing_and_content() -> None:
    rig = Rig([queue(announce_frequency=30, min_announce_gap=15)], [agent("a"), agent("b")])
    rig.login("a", "b")
    rig.engine.agent_set_status("a", "not_ready", "x", now=0)
    rig.engine.agent_set_status("b", "not_ready", "x", now=0)
    acts = rig.call("c1")
    # on entry: position 1, EWT = 1 * 180 / 2 staffed agents
    assert of(Announce, acts) == [Announce("c1", "q", 1, 90)]
    rig.now = 10
    assert of(Announce, rig.call("c2")) == [Announce("c2", "q", 2, 180)]
    assert of(Announce, rig.at(30)) == [Announce("c1", "q", 1, 90)]
    assert of(Announce, rig.at(40)) == [Announce("c2", "q", 2, 180)]
    # c1's offer rings over its next announcement time: skipped, not queued up
    rig.now = 55
    rig.engine.agent_set_status("a", "ready", now=rig.now)
    offer = offers(rig.drain())[0]
    acts = rig.at(60)
    assert of(Announce, acts) == []
    rig.now = 62
    rig.answer(offer.offer_id)
    acts = rig.at(100)
    assert [(a.call_id, a.position) for a in of(Announce, acts)] == [("c2", 1), ("c2", 1)]


def test_announce_only_what_is_configured_and_respect_the_min_gap() -> None:
    rig = Rig([queue("a", announce_frequency=10, announce_position=False, max_wait=5, overflow="b"),
               queue("b", announce_frequency=10, announce_holdtime=False, min_announce_gap=8)], [])
    acts = rig.call("c1", "a")
    assert of(Announce, acts) == [Announce("c1", "a", None, 180)]
    acts = rig.at(5)  # overflow joins b 5 s after the last announcement: waits for the 8 s gap
    assert of(Announce, acts) == []
    acts = rig.at(8)
    assert of(Announce, acts) == [Announce("c1", "b", 1, None)]
    assert rig.engine.next_deadline() == 18


def test_no_announcements_when_disabled() -> None:
    rig = Rig([queue(announce_frequency=0)], [])
    rig.call("c1")
    assert of(Announce, rig.at(1000)) == []
    assert rig.engine.next_deadline() is None


def test_agent_in_two_queues_serves_the_higher_weight_first() -> None:
    rig = Rig([queue("vip", weight=10), queue("std", weight=0)], [agent("a", ["std", "vip"])])
    rig.call("s1", "std")
    rig.now = 5
    rig.call("v1", "vip")
    assert offers(rig.login("a"))[0].call_id == "v1"


def test_equal_weights_serve_the_oldest_call_across_queues() -> None:
    rig = Rig([queue("x"), queue("y")], [agent("a", ["x", "y"])])
    rig.call("y1", "y")
    rig.now = 1
    rig.call("x1", "x", priority=0)
    assert offers(rig.login("a"))[0].call_id == "y1"


def test_weights_do_not_starve_the_lower_queue() -> None:
    """vip (weight 2) always has a fresh call when the agent frees up; std's caller still gets
    served once their wait has aged std's weight to vip's (1 point per service level)."""
    rig = Rig([queue("vip", weight=2, service_level=20, wrapup=0),
               queue("std", weight=0, service_level=20, wrapup=0)], [agent("a", ["vip", "std"])])
    rig.call("s1", "std")
    rig.call("v0", "vip")
    current = offers(rig.login("a"))[0]
    served = [current.call_id]
    for n in range(1, 10):
        rig.answer(current.offer_id)
        rig.now = 10 * n - 0.5
        rig.call(f"v{n}", "vip")
        rig.now = 10 * n
        current = offers(rig.end(current.call_id))[0]
        served.append(current.call_id)
        if current.call_id == "s1":
            break
    # at t=40 std's effective weight is 0 + 40//20 = 2 = vip's 2 + 0: the older call wins
    assert served == ["v0", "v1", "v2", "v3", "s1"]
    assert rig.now == 40
    assert rig.engine.why("s1")[-1].chosen == ("a",)


def test_reconfigure_keeps_calls_and_agent_states() -> None:
    rig = Rig([queue(max_wait=100), queue("gone")], [agent("a"), agent("b"), agent("old", ["gone"])])
    rig.login("a", "b", "old")
    rig.engine.agent_set_status("b", "not_ready", "lunch", now=0)
    oa = offers(rig.call("c1"))[0]
    rig.answer(oa.offer_id)
    rig.call("c2")
    rig.call("g1", "gone")  # offered to old
    rig.engine.offer_answered(offers(rig.log)[-1].offer_id, 1)
    rig.call("g2", "gone")
    rig.drain()
    rig.now = 10
    rig.engine.reconfigure({"q": queue(max_wait=20, strategy="linear")},
                           {"a": agent("a"), "b": agent("b"), "new": agent("new")}, rig.now)
    acts = rig.drain()
    assert of(ExitQueue, acts) == [ExitQueue("g2", "empty", None, "gone")]
    assert rig.state("a")[1].value == "on_call"
    assert rig.state("b") == (Status.NOT_READY, rig.state("b")[1], "lunch")
    assert rig.state("new")[0] is Status.LOGGED_OUT
    assert rig.engine.position("c2") == 1
    assert rig.engine.agent_status("old").state.value == "on_call"  # keeps its call
    rig.engine.call_ended("g1", "agent", 11)
    with pytest.raises(Exception, match="unknown agent"):
        rig.engine.agent_status("old")
    acts = rig.at(20)  # new max_wait counts from c2's entry at 0
    assert of(ExitQueue, acts) == [ExitQueue("c2", "timeout", None, "q")]

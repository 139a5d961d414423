"""Stats with exact numbers, the `why` record, queue_log lines, config validation."""

from __future__ import annotations

import pytest

from acd.actions import Candidate, LogEvent
from acd.engine import AcdEngine
from acd.errors import AcdConfigError
from acd.model import AgentConfig, QueueConfig
from acd.stats import ewt

from .test_support import Rig, agent, events, offers, queue


def test_stats_exact_numbers() -> None:
    rig = Rig([queue(strategy="linear", ring_timeout=100, service_level=20)],
              [agent("a"), agent("b"), agent("c")])
    rig.login("a", "b")
    o1, o2 = offers(rig.call("c1") + rig.call("c2"))
    rig.call("c3")
    rig.call("c4")
    rig.login("c")
    rig.engine.agent_set_status("c", "not_ready", "x", now=0)
    rig.engine.agent_reachable("c", False, 0)
    rig.now = 5
    rig.engine.call_abandoned("c3", 5)  # within SL: not in the SL denominator
    rig.now = 10
    rig.answer(o1.offer_id)  # hold 10: within SL
    rig.now = 25
    rig.engine.call_abandoned("c4", 25)  # after SL
    rig.now = 30
    rig.answer(o2.offer_id)  # hold 30: missed SL
    mid = rig.engine.stats("q", 30)
    assert mid.agents_by_state == {"available": 0, "not_ready": 0, "reserved": 0, "on_call": 2,
                                   "wrap_up": 0, "not_registered": 1, "logged_out": 0}
    assert mid.aht is None
    rig.now = 70
    rig.end("c1")
    rig.at(150)  # a's wrap-up ends at 80
    rig.end("c2", by="agent")
    stats = rig.engine.stats("q", 150)
    assert (stats.waiting, stats.longest_wait, stats.offered, stats.answered, stats.abandoned) == (
        0, 0.0, 4, 2, 2)
    assert stats.service_level_pct == pytest.approx(100 / 3)
    assert (stats.asa, stats.aht) == (20.0, 90.0)
    assert stats.agents_by_state["wrap_up"] == 1 and stats.agents_by_state["available"] == 1


def test_stats_before_any_call_and_longest_wait() -> None:
    rig = Rig([queue()], [agent("a")])
    empty = rig.engine.stats("q", 0)
    assert (empty.service_level_pct, empty.asa, empty.aht) == (None, None, None)
    assert empty.agents_by_state["logged_out"] == 1
    rig.now = 3
    rig.call("c1")
    assert rig.engine.stats("q", 10).longest_wait == 7


@pytest.mark.parametrize(
    ("position", "aht", "staffed", "expected"),
    [(1, 180.0, 0, 180), (3, 180.0, 2, 270), (1, 100.0, 3, 34), (2, 90.0, 2, 90)],
)
def test_ewt(position: int, aht: float, staffed: int, expected: int) -> None:
    assert ewt(position, aht, staffed) == expected


def test_ewt_uses_recent_talk_time() -> None:
    rig = Rig([queue(announce_frequency=30, wrapup=0)], [agent("a")])
    rig.login("a")
    rig.answer(offers(rig.call("c1"))[0].offer_id)
    rig.now = 60
    rig.end("c1")
    rig.engine.agent_set_status("a", "not_ready", "x", now=60)
    acts = rig.call("c2")
    assert [(a.position, a.ewt_seconds) for a in acts if type(a).__name__ == "Announce"] == [(1, 60)]


def test_why_lists_candidates_chosen_and_skipped_with_reasons() -> None:
    agents = [agent("ready", billing=6), agent("busy", billing=9), agent("nr", billing=9),
              agent("out", billing=9), agent("unreg", billing=9), agent("weak", billing=3),
              agent("wrap", billing=9), agent("rej", billing=8)]
    rig = Rig([queue(strategy="skills", wrapup=60, retry=30)], agents)
    for a in ("busy", "wrap", "rej", "ready", "nr", "weak"):
        rig.login(a)
    rig.engine.agent_set_status("ready", "not_ready", "hold", now=0)
    rig.engine.agent_set_status("weak", "not_ready", "hold", now=0)
    rig.engine.agent_set_status("nr", "not_ready", "lunch", now=0)
    rig.engine.agent_set_status("unreg", "ready", now=0)
    rig.answer(offers(rig.call("x1", skills={"billing": 9}))[0].offer_id)  # busy (first, config order)
    rig.answer(offers(rig.call("x2", skills={"billing": 9}))[0].offer_id)  # wrap
    rig.end("x2")
    for a in ("ready", "weak"):
        rig.engine.agent_set_status(a, "ready", now=0)
    rig.drain()
    rig.now = 5
    first = offers(rig.call("c1", skills={"billing": 5}))[0]
    assert first.agent_id == "rej"
    rig.fail(first.offer_id, "decline")
    history = rig.engine.why("c1")
    assert len(history) == 2
    d = history[-1]
    assert (d.time, d.queue, d.strategy, d.step, dict(d.min_levels)) == (5, "q", "skills", -1, {"billing": 5})
    assert d.candidates == (Candidate("ready", 6.0, 0),)
    assert d.chosen == ("ready",)
    assert dict(d.skipped) == {
        "busy": "on call", "nr": "not ready", "out": "logged out", "unreg": "not registered",
        "weak": "lacks skill billing>=5 (has 3)", "wrap": "wrap-up", "rej": "rejected recently",
    }
    text = d.describe()
    assert "* ready score=6" in text and "- rej: rejected recently" in text
    assert rig.engine.why("nobody") == []


def test_why_history_is_bounded() -> None:
    engine = AcdEngine({"q": queue()}, {}, choose=lambda n: 0, ids=lambda: "x", why_limit=3)
    for n in range(5):
        engine.enqueue(f"c{n}", "q", now=n)
    assert [bool(engine.why(f"c{n}")) for n in range(5)] == [False, False, True, True, True]


def test_queue_log_events_and_lines() -> None:
    rig = Rig([queue(wrapup=5)], [agent("a")])
    rig.login("a")
    rig.now = 1
    offer = offers(rig.call("c1"))[0]
    rig.now = 4
    rig.answer(offer.offer_id)
    rig.now = 64
    rig.end("c1")
    rig.at(69)
    rig.engine.agent_set_status("a", "logged_out", now=70)
    rig.drain()
    assert events(rig.log) == ["AGENTREACHABLE", "AGENTLOGIN", "AGENTREADY", "ENTERQUEUE", "OFFER",
                               "CONNECT", "COMPLETECALLER", "WRAPUPSTART", "WRAPUPEND", "AGENTLOGOFF"]
    connect = [a for a in rig.log if isinstance(a, LogEvent) and a.event == "CONNECT"][0]
    assert connect.line() == "4.000|c1|q|a|CONNECT|holdtime=3|ringtime=3|origposition=1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "fastest"}, "strategy 'fastest' not one of"),
        ({"ring_timeout": 0}, "ring_timeout: must be > 0"),
        ({"wrapup": -1}, "wrapup: must be >= 0"),
        ({"max_len": 0}, "max_len: expected an integer >= 1"),
        ({"join_empty": "maybe"}, "join_empty: 'maybe' not one of"),
        ({"leave_when_empty": "sometimes"}, "leave_when_empty"),
        ({"skill_relaxation": [(10, 2)]}, "delta 2 must be an int <= 0"),
        ({"skill_relaxation": [(10, -1), (10, -2)]}, "two steps at the same time"),
        ({"skill_relaxation": [5]}, "is not [after, delta]"),
        ({"exit_keys": {"12": "x"}}, "is not one DTMF key"),
        ({"exit_keys": {"1": ""}}, "empty flow node"),
        ({"weight": 1.5}, "weight: expected an integer"),
        ({"overflow": ""}, "overflow"),
    ],
)
def test_queue_config_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(AcdConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        QueueConfig("q", **kwargs)


def test_queue_config_normalises() -> None:
    cfg = QueueConfig("q", strategy="ring_all", join_empty=False, leave_when_empty=True,
                      skill_relaxation=[(60, -10), (0, 0), (30, -2)])
    assert cfg.strategy.value == "ring_all"
    assert (cfg.join_empty, cfg.leave_when_empty) == ("no", "yes")
    assert cfg.skill_relaxation == ((0.0, 0), (30.0, -2), (60.0, -10))
    assert [cfg.relax_step(t) for t in (0, 29.9, 30, 100)] == [0, 0, 1, 2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id": ""}, "id must not be empty"),
        ({"skills": {"billing": 11}}, "level 11 not in 1..10"),
        ({"skills": {"billing": "high"}}, "expected an integer"),
        ({"queues": {"q": -1}}, "negative penalty"),
    ],
)
def test_agent_config_errors(kwargs: dict, message: str) -> None:
    base = {"id": "a", "name": "A", "extension": "101"} | kwargs
    with pytest.raises(AcdConfigError, match=message):
        AgentConfig(**base)


@pytest.mark.parametrize(
    ("queues", "agents", "message"),
    [
        ({"q": QueueConfig("other")}, {}, "config name is 'other'"),
        ({"q": QueueConfig("q", overflow="nope")}, {}, "unknown queue 'nope'"),
        ({"q": QueueConfig("q", overflow="q")}, {}, "unknown queue 'q'"),
        ({"q": QueueConfig("q")}, {"a": agent("a", ["x"])}, "unknown queue 'x'"),
        ({"q": QueueConfig("q")}, {"b": agent("a")}, "config id is 'a'"),
    ],
)
def test_engine_cross_checks(queues: dict, agents: dict, message: str) -> None:
    with pytest.raises(AcdConfigError, match=message):
        AcdEngine(queues, agents, choose=lambda n: 0, ids=lambda: "x")

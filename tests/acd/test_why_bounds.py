"""The `why` log stays small in a large center: decisions trimmed, a total bound."""

from __future__ import annotations

from dataclasses import replace

from acd.actions import Candidate, Decision
from acd.history import WhyLog, trim


def decision(call: str, agents: int, chosen: tuple[str, ...] = (), skipped: int = 0,
             t: float = 0.0) -> Decision:
    cands = tuple(Candidate(f"a{i}", float(agents - i)) for i in range(agents))
    skips = tuple((f"s{i}", "not ready" if i % 3 else "busy") for i in range(skipped))
    return Decision(t, call, "q", "leastrecent", -1, {}, cands, chosen, skips)


def test_a_decision_over_hundreds_of_agents_keeps_the_chosen_and_the_best() -> None:
    big = decision("c1", 300, chosen=("a250",), skipped=200)
    small = trim(big)
    kept = [c.agent_id for c in small.candidates]
    assert kept == [f"a{i}" for i in range(10)] + ["a250"]
    assert small.skipped[:10] == big.skipped[:10]
    assert small.skipped[10] == ("+289 more candidates", "scored below the ones shown")
    assert small.skipped[11] == ("+190 more", "not ready: 127, busy: 63")
    assert "a250" in small.describe() and "+190 more" in small.describe()
    tie = decision("c3", 2)
    reasons = ["not ready"] * 10 + ["on call", "not ready", "busy", "busy", "on call", "not ready"]
    tied = trim(replace(tie, skipped=tuple((f"s{i}", why) for i, why in enumerate(reasons))))
    assert tied.skipped[-1] == ("+6 more", "busy: 2, not ready: 2, on call: 2")  # ties: by name
    few = decision("c2", 3, chosen=("a0",), skipped=2)
    assert trim(few) is few


def test_the_log_keeps_a_bounded_number_of_decisions_oldest_calls_first() -> None:
    log = WhyLog(limit=100, per_call=5, decisions=12)
    for n in range(5):
        for step in range(3):  # three different decisions per call
            log.record(decision(f"c{n}", 3 + step))
    assert log.decisions <= 12 and len(log) == 4 and "c0" not in log
    assert len(log.get("c4")) == 3
    for _ in range(3):  # the same no-offer evaluation again: kept once
        log.record(decision("c4", 5))
    assert len(log.get("c4")) == 3
    log.record(decision("c4", 500))
    assert len(log.get("c4")) == 4 and len(log.get("c4")[-1].candidates) == 10

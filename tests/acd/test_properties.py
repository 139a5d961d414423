"""Random event sequences never break the engine's invariants."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acd.actions import Bridge, CancelOffer, ExitQueue, Offer
from acd.model import State

from .test_routing import assert_roster
from .test_support import Rig, agent, queue

OPS = ("login",) * 3 + ("enqueue",) * 3 + ("answer",) * 3 + ("end",) * 2 + (
    "abandon", "fail", "status", "reach", "key", "wait", "wait", "reload")


def build(strategy: str) -> Rig:
    queues = [
        queue("q", strategy=strategy, ring_timeout=10, wrapup=3, max_wait=80, overflow="r",
              max_len=4, skill_relaxation=[(0, 0), (20, -5)], exit_keys={"0": "op"},
              announce_frequency=15, max_offers_per_call=6, retry=2, leave_when_empty="loggedin"),
        queue("r", strategy="ring_all", ring_timeout=7, wrapup=0, weight=1, max_wait=60,
              overflow="node:vm", join_empty="loggedin"),
    ]
    agents = [agent("a", {"q": 0, "r": 1}, billing=7), agent("b", {"q": 1}, billing=3),
              agent("c", {"r": 0, "q": 0})]
    return Rig(queues, agents, choose=lambda n: n // 2)


class Model:
    """What the driver knows from the actions alone."""

    def __init__(self, rig: Rig, ring_all: set[str]) -> None:
        self.rig = rig
        self.ring_all = ring_all  # queues whose calls may ring several agents at once
        self.offers: dict[str, Offer] = {}
        self.queued: set[str] = set()
        self.bridged: dict[str, str] = {}
        self.bridges: dict[str, int] = {}
        self.next_call = 0
        self.cursor = 0

    def absorb(self) -> None:
        self.rig.drain()
        fresh, self.cursor = self.rig.log[self.cursor:], len(self.rig.log)
        for act in fresh:
            if isinstance(act, Offer):
                assert act.call_id in self.queued
                assert all(o.agent_id != act.agent_id for o in self.offers.values())
                self.offers[act.offer_id] = act
            elif isinstance(act, CancelOffer):
                del self.offers[act.offer_id]
            elif isinstance(act, Bridge):
                self.bridges[act.call_id] = self.bridges.get(act.call_id, 0) + 1
                assert self.bridges[act.call_id] == 1
                self.bridged[act.call_id] = act.agent_id
                self.queued.discard(act.call_id)
                self.offers = {k: o for k, o in self.offers.items() if o.call_id != act.call_id}
            elif isinstance(act, ExitQueue):
                self.queued.discard(act.call_id)
                assert not any(o.call_id == act.call_id for o in self.offers.values())
        self.check()

    def check(self) -> None:
        engine = self.rig.engine
        by_call: dict[str, int] = {}
        for offer in self.offers.values():
            by_call[offer.call_id] = by_call.get(offer.call_id, 0) + 1
            assert engine.agent_status(offer.agent_id).state is State.RESERVED
        for call_id, count in by_call.items():
            live = [o for o in self.offers.values() if o.call_id == call_id]
            assert len({o.attempt for o in live}) == 1  # one round at a time
            if count > 1:
                assert {o.queue for o in live} <= self.ring_all
        gauges = engine.gauges()
        assert gauges["offers"] == len(self.offers)
        assert gauges["queued"] == len(self.queued)
        assert gauges["calls"] == len(self.queued) + len(self.bridged)
        assert gauges["on_call"] == len(self.bridged)
        for call_id in self.queued:
            assert engine.position(call_id) is not None
        # each queue's roster matches its members' own state (routing reads only the roster)
        for name, roster in engine._rosters.items():
            assert roster.name == name and roster.ids == [a.id for a in roster.agents]
            assert all(engine._agents[a] is roster.agents[i] for i, a in enumerate(roster.ids))
            assert_roster(roster)
        assert engine.available_agents() == {a.id for a in engine._agents.values() if a.available}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategy=st.sampled_from(["longest_idle", "ring_all", "round_robin", "skills", "random"]),
       script=st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 1000)), min_size=20, max_size=80))
def test_random_event_sequences_keep_invariants(strategy: str, script: list[tuple[str, int]]) -> None:
    rig = build(strategy)
    model = Model(rig, {"r", "q"} if strategy == "ring_all" else {"r"})
    for op, n in script:
        step(rig, model, op, n)
        model.absorb()
    # drain: every caller hangs up or finishes, time passes, nothing is left behind
    for call_id in sorted(model.queued):
        rig.engine.call_abandoned(call_id, rig.now)
        model.queued.discard(call_id)
        model.absorb()
    for call_id in sorted(model.bridged):
        rig.engine.call_ended(call_id, "caller", rig.now)
        del model.bridged[call_id]
        model.absorb()
    rig.at(rig.now + 1000)
    gauges = rig.engine.gauges()
    assert {k: v for k, v in gauges.items() if k != "why_calls"} == dict.fromkeys(
        ("calls", "queued", "offers", "timers", "reserved", "on_call"), 0)
    for queue_name in ("q", "r"):
        stats = rig.engine.stats(queue_name, rig.now)
        assert stats.waiting == 0
        assert stats.agents_by_state["reserved"] == stats.agents_by_state["on_call"] == 0


def step(rig: Rig, model: Model, op: str, n: int) -> None:
    engine, now = rig.engine, rig.now
    agents = ("a", "b", "c")
    if op == "enqueue":
        model.next_call += 1
        call_id = f"c{model.next_call}"
        model.queued.add(call_id)
        skills = {"billing": 5} if n % 3 == 0 else {}
        engine.enqueue(call_id, "qr"[n % 2], priority=n % 3, skills=skills, now=now)
    elif op == "abandon" and model.queued:
        call_id = sorted(model.queued)[n % len(model.queued)]
        engine.call_abandoned(call_id, now)
        model.queued.discard(call_id)
    elif op in ("answer", "fail") and model.offers:
        offer_id = sorted(model.offers)[n % len(model.offers)]
        if op == "answer":
            engine.offer_answered(offer_id, now)
        else:
            engine.offer_failed(offer_id, ("busy", "decline", "error")[n % 3], now)
            del model.offers[offer_id]
    elif op == "end" and model.bridged:
        call_id = sorted(model.bridged)[n % len(model.bridged)]
        engine.call_ended(call_id, ("caller", "agent")[n % 2], now)
        del model.bridged[call_id]
    elif op == "login":
        engine.agent_reachable(agents[n % 3], True, now)
        engine.agent_set_status(agents[n % 3], "ready", now=now)
    elif op == "status":
        status = ("ready", "not_ready", "logged_out", "ready")[n % 4]
        engine.agent_set_status(agents[n % 3], status, "x" if status == "not_ready" else None, now=now)
    elif op == "reach":
        engine.agent_reachable(agents[n % 3], n % 4 != 0, now)
    elif op == "key" and model.queued:
        engine.caller_key(sorted(model.queued)[n % len(model.queued)], "0" if n % 2 else "5", now)
    elif op == "wait":
        rig.at(now + n % 40)
    elif op == "reload" and n % 5 == 0:
        rig.engine.reconfigure({"q": build("linear").engine._queues["q"],
                                "r": build("linear").engine._queues["r"]},
                               {a: agent(a, {"q": 0, "r": 0}, billing=5) for a in agents}, now)

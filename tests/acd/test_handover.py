"""A router taking over in a cluster: calls rejoin with the wait they had, bridged calls
are adopted with their agent (docs/cluster.md)."""

from __future__ import annotations

import pytest

from acd.actions import AgentChanged, Offer
from acd.errors import AcdUsageError
from acd.model import State

from .test_support import Rig, agent, offers, queue


def test_a_call_handed_over_keeps_its_place_and_its_wait() -> None:
    rig = Rig([queue(strategy="linear")], [agent("a")])
    rig.now = 100
    rig.call("fresh")
    rig.call("old", waited=40)  # waited longer: ahead of the fresh call
    assert rig.engine.position("old") == 1 and rig.engine.position("fresh") == 2
    assert rig.engine.stats("q", 100).longest_wait == 40
    (offer,) = offers(rig.login("a"))
    assert offer.call_id == "old" and offer.pop["waited"] == 40
    with pytest.raises(AcdUsageError):
        rig.engine.enqueue("bad", "q", now=100, waited=-1)


def test_an_adopted_call_keeps_the_agent_busy_until_it_ends() -> None:
    rig = Rig([queue(wrapup=5)], [agent("a"), agent("b")])
    rig.login("a", "b")
    rig.now = 50
    rig.engine.adopt_bridged("talking", "q", "a", waited=10, talked=20, now=50)
    changed = [x for x in rig.drain() if isinstance(x, AgentChanged)]
    assert [(x.agent_id, x.state) for x in changed] == [("a", State.ON_CALL)]
    assert rig.engine.agent_call("a") == "talking"
    (offer,) = offers(rig.call("next"))  # only b is free
    assert isinstance(offer, Offer) and offer.agent_id == "b"
    stats = rig.engine.stats("q", 50)
    assert stats.answered == 0 and stats.agents_by_state["on_call"] == 1
    rig.now = 60
    rig.end("talking")
    assert rig.engine.agent_status("a").state is State.WRAP_UP
    assert rig.engine.stats("q", 60).aht == 30.0  # talked 20 before, 10 since
    with pytest.raises(AcdUsageError):  # b is reserved for "next"
        rig.engine.adopt_bridged("other", "q", "b", waited=0, talked=0, now=60)

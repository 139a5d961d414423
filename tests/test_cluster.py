"""Cluster plumbing against a real redis-server: the router lease and its fencing epochs,
messages between nodes, agent claims, replicated registrations and history, and the
owner side of the ACD (`RemoteEngine`) with its stale-order fencing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from acd.actions import LogEvent, Offer
from signaling.registrar import Binding
from switchboard import cluster as cluster_mod
from switchboard.acdconfig import AcdSettings
from switchboard.cluster import Cluster, ClusterError
from switchboard.replicas import ClusterBindingStore, ClusterHistory
from switchboard.router import RemoteEngine, encode
from tests.redis_server import redis_path, redis_server

pytestmark = pytest.mark.skipif(redis_path() is None, reason="redis-server is not installed")


@pytest.fixture
def url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setattr(cluster_mod, "HEARTBEAT", 0.05)
    monkeypatch.setattr(cluster_mod, "NODE_TTL", 0.3)
    monkeypatch.setattr(cluster_mod, "BLOCK_MS", 50)
    with redis_server(tmp_path) as u:
        yield u


async def until(check: Callable[[], Any], timeout: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def crash(node: Cluster) -> None:
    """What kill -9 leaves: no lease release, no goodbye. The loops are also told to stop
    (which releases nothing), so that a cancellation the Redis client turns into an error
    of its own cannot leave one running; a task still up after 5 s fails the test."""
    node._stopping = True
    for task in node._tasks:
        task.cancel()
    _, pending = await asyncio.wait(node._tasks, timeout=5.0)
    assert not pending, f"{node.node}: tasks still running after cancel: {pending}"
    await node.redis.aclose()


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())


def test_one_router_at_a_time_and_a_new_epoch_when_it_dies(url: str) -> None:
    async def main() -> None:
        a, b = Cluster(url, "a"), Cluster(url, "b")
        elected: list[tuple[str, int]] = []
        for node in (a, b):
            async def lead(epoch: int, node: Cluster = node) -> None:
                elected.append((node.node, epoch))
            node.on_lead.append(lead)
        await a.start()
        await until(lambda: elected == [("a", 1)])
        await b.start()
        await until(lambda: b.leader == "a")
        await asyncio.sleep(0.4)  # a renews: b never takes over while a lives
        assert elected == [("a", a.epoch)] and not b.is_leader
        await crash(a)
        await until(lambda: len(elected) == 2, timeout=2)  # b took over and led
        assert elected == [("a", 1), ("b", 2)] and b.epoch == 2 and b.is_leader
        assert await b.alive({"a", "b"}) == {"b"}
        await b.stop()
    run(main)


def test_messages_reach_the_other_nodes_and_router_input_only_the_router(url: str) -> None:
    async def main() -> None:
        a, b = Cluster(url, "a"), Cluster(url, "b")
        got: dict[str, list[tuple[str, str, Any]]] = {"a": [], "b": []}
        for node in (a, b):
            for kind in ("hello", "direct", "router:input"):
                node.on(kind, lambda origin, body, n=node.node, k=kind:
                        got[n].append((k, origin, body)))
        await a.start()
        await until(lambda: a.is_leader)
        await b.start()
        b.publish("hello", {"x": 1})
        b.send("a", "direct", {"y": 2})
        b.to_router("input", {"z": 3})
        await until(lambda: len(got["a"]) == 3)
        assert got["a"] == [("hello", "b", {"x": 1}), ("direct", "b", {"y": 2}),
                            ("router:input", "b", {"z": 3})]
        assert got["b"] == []  # not its own broadcast, not router input
        await a.redis.xadd(a.key("events"), {"m": "not json"})  # garbage is counted, skipped
        await until(lambda: b.errors >= 1)
        await a.stop()
        await b.stop()
    run(main)


def test_agent_claims_are_atomic_and_expire(url: str) -> None:
    async def main() -> None:
        a, b = Cluster(url, "a"), Cluster(url, "b")
        await a.start()
        await b.start()
        assert await a.claim("1001", "offer-1", 0.3)
        assert not await b.claim("1001", "offer-2", 5)
        b.release("1001", "offer-2")  # not its claim: nothing happens
        await asyncio.sleep(0.1)
        assert not await b.claim("1001", "offer-2", 5)
        await asyncio.sleep(0.3)  # a's claim (its node died, say) ran out
        assert await b.claim("1001", "offer-2", 5)
        b.release("1001", "offer-2")
        await until(lambda: True)
        await asyncio.sleep(0.1)
        assert await a.claim("1001", "offer-3", 5)
        await a.stop()
        await b.stop()
    run(main)


def test_messages_sent_while_redis_is_away_arrive_when_it_is_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster_mod, "BLOCK_MS", 50)
    server = redis_server(tmp_path)
    url = server.__enter__()
    port = int(url.rsplit(":", 1)[1].split("/")[0])

    async def main() -> None:
        a, b = Cluster(url, "a"), Cluster(url, "b")
        got: list[Any] = []
        b.on("hello", lambda origin, body: got.append(body))
        await a.start()
        await b.start()
        server.__exit__(None, None, None)  # Redis goes away (and comes back empty)
        a.publish("hello", {"n": 1})
        a.publish("hello", {"n": 2})
        await asyncio.sleep(0.5)
        assert got == [] and a.errors > 0
        with redis_server(tmp_path, port):
            await until(lambda: len(got) == 2, timeout=5)
            assert got == [{"n": 1}, {"n": 2}]
            await a.stop()
            await b.stop()
    run(main)


def test_bad_urls_and_unreachable_redis_are_clear_errors() -> None:
    with pytest.raises(ClusterError, match="expected redis://"):
        Cluster("http://localhost:6379")

    async def main() -> None:
        node = Cluster("redis://127.0.0.1:1/0")
        with pytest.raises(ClusterError, match="cannot reach Redis"):
            await node.connect()
        await node.redis.aclose()
    run(main)


def _binding(contact: str, expires_at: float) -> Binding:
    return Binding("sip:1001@x", contact, expires_at, 1.0, "cid", 1, ("UDP", "127.0.0.1", 5070),
                   updated_at=expires_at - 60)


def test_registrations_are_shared_with_wall_clock_expiry(url: str) -> None:
    async def main() -> None:
        a, b = Cluster(url, "a"), Cluster(url, "b")
        # two processes whose monotonic clocks differ by 1000 s
        wall = time.time()
        store_a = ClusterBindingStore(a, lambda: wall)
        store_b = ClusterBindingStore(b, lambda: wall + 1000)
        await a.start()
        await b.start()
        store_a.put("1001", [_binding("sip:1001@127.0.0.1:5070", 100.0)])
        (got,) = await until(lambda: store_b.get("1001", -1000.0))
        assert got.expires_at == -900.0 and got.source == ("UDP", "127.0.0.1", 5070)
        assert got.updated_at == -960.0
        ttl = await a.redis.pttl(a.key("reg", "1001"))
        assert 90_000 < ttl <= 100_001  # Redis drops it when the binding expires
        late = Cluster(url, "c")  # a node starting now reads what Redis holds
        await late.connect()
        store_c = ClusterBindingStore(late, lambda: wall)
        assert await store_c.load() == 1 and store_c.get("1001", 0.0)[0].expires_at == 100.0
        store_a.put("1001", [])  # unregister: gone everywhere
        await until(lambda: not store_b.get("1001", -1000.0))
        assert await a.redis.exists(a.key("reg", "1001")) == 0
        await late.redis.aclose()
        await a.stop()
        await b.stop()
    run(main)


def test_history_written_on_one_node_pops_on_another(url: str, tmp_path: Path) -> None:
    async def main() -> None:
        a, b = Cluster(url, "a"), Cluster(url, "b")
        hist_a = ClusterHistory(tmp_path / "a", a)
        hist_b = ClusterHistory(tmp_path / "b", b)
        await a.connect()
        await b.connect()
        await hist_a.load()
        await hist_b.load()
        await a.start()
        await b.start()
        cdr = {"call_id": "c1", "started_at": "2026-11-23T05:00:00Z", "path": ["x"],
               "queue": "support", "agent": "1001", "end_reason": "caller_hangup"}
        hist_a.record_call("account:4711", cdr)
        await until(lambda: hist_b.recent("account:4711"))
        assert hist_b.add_note("account:4711", "c1", "1001", "solved", "refund sent", "now")
        await until(lambda: hist_a.recent("account:4711")[0]["notes"])
        assert hist_a.recent("account:4711")[0]["notes"][0]["note"] == "refund sent"
        late = Cluster(url, "c")
        await late.connect()
        hist_c = ClusterHistory(tmp_path / "c", late)
        assert await hist_c.load() == 2
        assert hist_c.recent("account:4711")[0]["notes"][0]["disposition"] == "solved"
        await late.redis.aclose()
        for h in (hist_a, hist_b, hist_c):
            h.close()
        await a.stop()
        await b.stop()
    run(main)


class FakeCluster:
    """Just what RemoteEngine touches, recording what it would send."""

    node = "n1"

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}
        self.on_tick: list[Any] = []
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.commands: list[tuple[str, ...]] = []

    def key(self, *parts: str) -> str:
        return "sb:" + ":".join(parts)

    def on(self, kind: str, handler: Any) -> None:
        self.handlers[kind] = handler

    def to_router(self, kind: str, body: dict[str, Any]) -> None:
        self.sent.append((kind, body))

    def command(self, *args: str) -> None:
        self.commands.append(args)


def _settings() -> AcdSettings:
    from switchboard.acdconfig import load_acd
    from switchboard.config import PACKAGE_ROOT

    return load_acd(PACKAGE_ROOT / "config" / "agents.yaml", PACKAGE_ROOT / "config" / "queues.yaml",
                    "switchboard")


def test_remote_engine_fences_stale_orders_and_hands_calls_to_a_new_router() -> None:
    fake = FakeCluster()
    woken: list[int] = []
    engine = RemoteEngine(fake, _settings(), lambda: 10.0, lambda: woken.append(1))  # type: ignore[arg-type]
    engine.enqueue("c1", "support", priority=2, data={"account": "4711"}, now=10.0)
    engine.enqueue("c2", "support", now=10.0)
    assert [k for k, _ in fake.sent] == ["enqueue", "enqueue"]
    assert json.loads(fake.commands[0][3]) == {"node": "n1", "queue": "support"}
    offer = Offer("o1", "c1", "1001", "support", 15.0, 1, {"data": {}})
    fake.handlers["order"]("router", {"e": 3, "a": encode(offer, 0.0)})
    stale = Offer("o0", "c2", "1002", "support", 15.0, 1, {"data": {}})
    fake.handlers["order"]("old-router", {"e": 2, "a": encode(stale, 0.0)})
    assert engine.take_actions() == [offer] and len(woken) == 1
    line = LogEvent(5.0, "c1", "support", "1001", "CONNECT", {"holdtime": 1})
    fake.handlers["order"]("router", {"e": 3, "a": encode(line, 100.0)})  # wall time 105
    (got,) = engine.take_actions()
    assert isinstance(got, LogEvent) and abs(got.time + (time.time() - 10.0) - 105.0) < 0.5
    from acd.actions import Bridge
    fake.handlers["order"]("router", {"e": 3, "a": encode(Bridge("c1", "1001", "o1", "support"),
                                                          0.0)})
    engine.take_actions()
    fake.sent.clear()
    fake.handlers["resync"]("new-router", {"epoch": 4})
    kinds = sorted((k, b["call_id"]) for k, b in fake.sent)
    assert kinds == [("adopt", "c1"), ("enqueue", "c2")]
    adopt = next(b for k, b in fake.sent if k == "adopt")
    assert adopt["agent"] == "1001" and adopt["talked"] >= 0
    fake.handlers["order"]("router", {"e": 3, "a": encode(offer, 0.0)})  # the dead router
    assert engine.take_actions() == []
    engine.call_abandoned("c2", 11.0)
    assert ("HDEL", "sb:calls", "c2") in fake.commands


class _SwallowingRedis:
    """A client whose blocked read answers a cancellation with an error of its own, as a
    cancellation racing a read can come out of a real client."""

    def __init__(self) -> None:
        self.calls = 0

    async def xread(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise ConnectionError("connection closed while reading") from None

    async def set(self, *args: Any, **kwargs: Any) -> Any:
        return await self.xread()


@pytest.mark.parametrize("loop", ["_reader", "_keeper"])
def test_a_cancelled_loop_stops_when_the_client_turns_the_cancel_into_an_error(loop: str) -> None:
    async def main() -> None:
        node = Cluster("redis://127.0.0.1:1/0", "a")
        fake = _SwallowingRedis()
        node.redis = fake  # type: ignore[assignment]
        task = asyncio.get_running_loop().create_task(getattr(node, loop)())
        await until(lambda: fake.calls == 1)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2.0)
        node._stopping = True  # without the fix the loop ends only here, so the test fails
        await asyncio.wait([task], timeout=5.0)  # rather than hanging
        assert done and task.cancelled() and fake.calls == 1
    run(main)

"""The ACD across a cluster: one router decides, every node executes for its own calls.

A call's media stays on the node that answered it (its "owner"). The ACD engine runs on
the node holding the router lease (`Cluster`): owners send it what happens to their calls
(`RemoteEngine`, which stands in for `AcdEngine` inside `ContactCenter`), and it sends each
owner the orders for its calls (offer, cancel, bridge, announce, exit, queue-log lines),
stamped with its fencing epoch. Agent state changes go to every node.

Shared state in Redis (docs/cluster.md):
- ``sb:agents``: hash agent -> {status, reason}, written when an agent's status changes;
  a new router restores statuses from it.
- ``sb:calls``: hash call id -> {node, queue, ...} for every call in the ACD, written by
  its owner. A new router, and the router when a node's heartbeat stops, logs the calls
  of dead nodes as LOST and frees their agents.
- ``sb:acd:snapshot``: the router's figures (queues, agents, positions) once a second;
  every node's wallboard and API read the same snapshot.

A new router starts with an empty engine and asks every node to hand its calls over
again (`resync`): waiting calls rejoin with the time they already waited, bridged calls
are adopted with their agent, and offers that were ringing are cancelled and made again.
`RESYNC_GRACE` later it restores agents' statuses and reachability, so an agent whose
call is being adopted is never offered another one meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from acd.actions import (
    Action,
    AgentChanged,
    Announce,
    Bridge,
    CancelOffer,
    Decision,
    ExitQueue,
    LogEvent,
    Offer,
)
from acd.engine import AcdEngine
from acd.errors import AcdUsageError
from acd.model import State, Status
from acd.stats import QueueStats

from .cluster import Cluster

if TYPE_CHECKING:
    from .acdconfig import AcdSettings

log = logging.getLogger("switchboard.router")

RESYNC_GRACE = 1.0  # seconds a new router gives the nodes to hand their calls over

ORDERS: dict[str, type] = {cls.__name__: cls for cls in (Offer, CancelOffer, Bridge, Announce,
                                                         ExitQueue, LogEvent)}
LogLine = Callable[[float, "str | None", "str | None", "str | None", str, dict[str, Any]], None]


def encode(action: Action, wall_offset: float) -> dict[str, Any]:
    body = asdict(action)
    if isinstance(action, LogEvent):
        body["time"] = action.time + wall_offset  # clocks differ per process: send wall time
    body["t"] = type(action).__name__
    return body


def decode(body: dict[str, Any], wall_offset: float) -> Action:
    fields = dict(body)
    cls = ORDERS[fields.pop("t")]
    if cls is LogEvent:
        fields["time"] = float(fields["time"]) - wall_offset
    action: Action = cls(**fields)
    return action


def _loads(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class AcdRouter:
    """The engine on the node that holds the router lease; idle elsewhere."""

    def __init__(self, cluster: Cluster, settings: AcdSettings, loop_time: Callable[[], float],
                 call_later: Callable[[float, Callable[[], None]], Any], log_line: LogLine,
                 reachable: Callable[[], set[str]]) -> None:
        self.cluster = cluster
        self.settings = settings
        self.now = loop_time
        self.call_later = call_later
        self.log_line = log_line
        self.reachable = reachable
        self.engine: AcdEngine | None = None
        self.owner: dict[str, str] = {}  # call id -> node
        self.resync_local: Callable[[int], None] = lambda epoch: None
        self._timer: Any = None
        self._restoring: asyncio.Task[None] | None = None
        self._restored = True  # False while a new router waits for the calls to come back
        self._fresh: set[str] = set()
        for kind in ("enqueue", "adopt", "key", "abandoned", "ended", "answered", "failed",
                     "status", "reachable"):
            cluster.on(f"router:{kind}", getattr(self, f"_on_{kind}"))
        cluster.on_lead.append(self.lead)
        cluster.on_follow.append(self.follow)
        cluster.on_tick.append(self.tick)

    # -- taking over and stepping down -----------------------------------------------------

    async def lead(self, epoch: int) -> None:
        engine = self.engine = AcdEngine(self.settings.queues, self.settings.agents,
                                         choose=lambda n: secrets.randbelow(n),
                                         ids=lambda: secrets.token_hex(6))
        self.owner.clear()
        self._restored = False
        self._fresh = set()  # agents whose status changed since: not restored
        redis = self.cluster.redis
        statuses = await redis.hgetall(self.cluster.key("agents"))  # as the old router left them
        await self._reap_calls(await redis.hgetall(self.cluster.key("calls")))
        self.cluster.publish("resync", {"epoch": epoch})
        self.resync_local(epoch)
        self.run()
        # agents come back once the nodes have handed their calls over: an agent talking
        # on a call about to be adopted must not look free to a call that rejoined first
        self._restoring = asyncio.get_running_loop().create_task(
            self._restore_agents(engine, statuses))

    async def _restore_agents(self, engine: AcdEngine, statuses: dict[str, str]) -> None:
        await asyncio.sleep(RESYNC_GRACE)
        if self.engine is not engine:
            return  # stepped down meanwhile
        self._restored = True
        now = self.now()
        for agent, text in statuses.items():
            saved = _loads(text)
            if agent in self.settings.agents and saved.get("status") and agent not in self._fresh:
                self._guard(engine.agent_set_status, agent, saved["status"],
                            saved.get("reason"), now=now)
        for agent in self.reachable() & set(self.settings.agents):
            self._guard(engine.agent_reachable, agent, True, now)
        self.run()
        log.info("event=router_agents_restored epoch=%d", self.cluster.epoch)

    def follow(self) -> None:
        self.engine = None
        self.owner.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def tick(self) -> None:
        """Once a second on the router: drop the calls of dead nodes, write the snapshot."""
        if self.engine is None:
            return
        nodes = set(self.owner.values())
        dead = nodes - await self.cluster.alive(nodes)
        if dead:
            calls = {c: json.dumps({"node": n}) for c, n in self.owner.items() if n in dead}
            await self._reap_calls(calls)
        self.cluster.command("SET", self.cluster.key("acd", "snapshot"),
                             json.dumps(self.snapshot(), default=str), "PX", "10000")

    async def _reap_calls(self, calls: dict[str, str]) -> None:
        """Calls whose owner is dead: out of the engine, LOST in the queue log."""
        entries = {c: _loads(text) for c, text in calls.items()}
        nodes = {str(e.get("node")) for e in entries.values()}
        alive = await self.cluster.alive(nodes)
        for call_id, entry in entries.items():
            node = str(entry.get("node"))
            if node in alive:
                continue
            self._lose(call_id, node, entry)
        self.run()

    def _lose(self, call_id: str, node: str, entry: dict[str, Any]) -> None:
        assert self.engine is not None
        now = self.now()
        self.owner.pop(call_id, None)
        queue, agent = entry.get("queue"), None
        if self.engine.position(call_id) is not None:
            self._guard(self.engine.call_abandoned, call_id, now)
        else:
            agent = next((a for a in self.settings.agents
                          if self.engine.agent_call(a) == call_id), None)
            if agent is not None:
                self._guard(self.engine.call_ended, call_id, "caller", now)
        self.log_line(time.time(), call_id, queue, agent, "LOST",
                      {"node": node, "reason": "node_down"})
        self.cluster.command("HDEL", self.cluster.key("calls"), call_id)
        log.warning("event=call_lost call=%s node=%s", call_id, node)

    # -- inputs from the owners ------------------------------------------------------------

    def _on_enqueue(self, node: str, b: dict[str, Any]) -> None:
        if self.engine is None:
            return
        self.owner[b["call_id"]] = node
        self._guard(self.engine.enqueue, b["call_id"], b["queue"], priority=int(b["priority"]),
                    skills=b.get("skills") or {}, data=b.get("data") or {}, now=self.now(),
                    waited=max(0.0, float(b.get("waited", 0.0))))
        self.run()

    def _on_adopt(self, node: str, b: dict[str, Any]) -> None:
        if self.engine is None:
            return
        self.owner[b["call_id"]] = node
        self._guard(self.engine.adopt_bridged, b["call_id"], b["queue"], b["agent"],
                    waited=float(b.get("waited", 0.0)), talked=float(b.get("talked", 0.0)),
                    now=self.now())
        self.run()

    def _on_key(self, node: str, b: dict[str, Any]) -> None:
        if self.engine is not None:
            self._guard(self.engine.caller_key, b["call_id"], b["digit"], self.now())
            self.run()

    def _on_abandoned(self, node: str, b: dict[str, Any]) -> None:
        if self.engine is not None:
            self._guard(self.engine.call_abandoned, b["call_id"], self.now())
            self.run()  # its last queue-log lines still go to its owner
            self.owner.pop(b["call_id"], None)

    def _on_ended(self, node: str, b: dict[str, Any]) -> None:
        if self.engine is not None:
            self._guard(self.engine.call_ended, b["call_id"], b["by"], self.now())
            self.run()
            self.owner.pop(b["call_id"], None)

    def _on_answered(self, node: str, b: dict[str, Any]) -> None:
        if self.engine is not None:
            self._guard(self.engine.offer_answered, b["offer_id"], self.now())
            self.run()

    def _on_failed(self, node: str, b: dict[str, Any]) -> None:
        if self.engine is not None:
            self._guard(self.engine.offer_failed, b["offer_id"], b["reason"], self.now())
            self.run()

    def _on_status(self, node: str, b: dict[str, Any]) -> None:
        if self.engine is not None:
            self._fresh.add(b["agent"])
            self._guard(self.engine.agent_set_status, b["agent"], b["status"], b.get("reason"),
                        now=self.now())
            self.run()

    def _on_reachable(self, node: str, b: dict[str, Any]) -> None:
        if self.engine is not None and b["agent"] in self.settings.agents:
            self._guard(self.engine.agent_reachable, b["agent"], bool(b["reachable"]),
                        self.now())
            self.run()

    @staticmethod
    def _guard(method: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Owners report what happened; a report the engine refuses (a call it never had,
        an offer already settled) is logged, and the router goes on."""
        try:
            method(*args, **kwargs)
        except AcdUsageError as exc:
            log.info("event=router_refused method=%s error=%s", method.__name__, exc)

    # -- orders to the owners --------------------------------------------------------------

    def run(self) -> None:
        engine = self.engine
        if engine is None:
            return
        wall = time.time() - self.now()
        for action in engine.take_actions():
            try:
                self._route(action, wall)
            except Exception:
                log.exception("event=router_action_failed action=%s", type(action).__name__)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = engine.next_deadline()
        if deadline is not None:
            self._timer = self.call_later(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.engine is not None:
            self.engine.on_timer(self.now())
            self.run()

    def _route(self, action: Action, wall: float) -> None:
        if isinstance(action, AgentChanged):
            body = {"agent": action.agent_id, "status": action.status.value,
                    "state": action.state.value, "reason": action.reason,
                    "e": self.cluster.epoch}
            if self._restored:  # until then the stored statuses are the ones to restore
                self.cluster.command("HSET", self.cluster.key("agents"), action.agent_id,
                                     json.dumps({"status": action.status.value,
                                                 "reason": action.reason}))
            self.cluster.publish("agent", body)
            self.cluster.handlers["agent"](self.cluster.node, body)
            return
        call_id = action.call_id
        node = self.owner.get(call_id) if call_id else None
        if node is None:
            if isinstance(action, LogEvent):  # no owner (an agent's own event): logged here
                self.log_line(action.time + wall, call_id or None, action.queue or None,
                              action.agent or None, action.event, dict(action.data))
            return
        if isinstance(action, ExitQueue):
            self.owner.pop(call_id, None)
        self.cluster.send(node, "order", {"e": self.cluster.epoch, "a": encode(action, wall)})

    # -- figures ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        engine = self.engine
        assert engine is not None
        now = self.now()
        agents = {}
        for agent in self.settings.agents:
            st = engine.agent_status(agent)
            agents[agent] = {"status": st.status.value, "state": st.state.value,
                             "reason": st.reason, "call_id": engine.agent_call(agent)}
        return {
            "router": self.cluster.node, "epoch": self.cluster.epoch, "at": time.time(),
            "queues": {q: vars(engine.stats(q, now)) for q in self.settings.queues},
            "agents": agents,
            "positions": {c: pos for c in self.owner
                          if (pos := engine.position(c)) is not None},
            "gauges": engine.gauges(),
        }


class RemoteEngine:
    """What `ContactCenter` calls instead of `AcdEngine` on a cluster node.

    Inputs go to the router; its orders come back through `order` and are handed to the
    center by `take_actions`; queries read the router's snapshot and the agent states
    every node hears about.
    """

    def __init__(self, cluster: Cluster, settings: AcdSettings, loop_time: Callable[[], float],
                 wake: Callable[[], None]) -> None:
        self.cluster = cluster
        self.settings = settings
        self.now = loop_time
        self.wake = wake
        self.epoch = 0
        self.pending: list[Action] = []
        self.agents: dict[str, AgentChanged] = {}
        self.snap: dict[str, Any] = {}
        self.mine: dict[str, dict[str, Any]] = {}  # this node's calls in the ACD
        self.on_resync: Callable[[], None] = lambda: None
        cluster.on("order", self._order)
        cluster.on("agent", self._agent)
        cluster.on("resync", lambda node, b: self.resync(int(b["epoch"])))
        cluster.on_tick.append(self._read_snapshot)

    # -- the engine's inputs ---------------------------------------------------------------

    def enqueue(self, call_id: str, queue: str, *, priority: int = 0,
                skills: dict[str, int] | None = None, data: dict[str, Any] | None = None,
                now: float, waited: float = 0.0) -> None:
        if queue not in self.settings.queues:
            raise AcdUsageError(f"unknown queue {queue!r}")
        entry = {"call_id": call_id, "queue": queue, "priority": int(priority),
                 "skills": dict(skills or {}), "data": dict(data or {}),
                 "node": self.cluster.node, "since": time.time() - waited}
        self.mine[call_id] = entry
        self.cluster.command("HSET", self.cluster.key("calls"), call_id,
                             json.dumps({"node": self.cluster.node, "queue": queue}))
        self._send_enqueue(entry)

    def _send_enqueue(self, entry: dict[str, Any]) -> None:
        body = {k: v for k, v in entry.items() if k not in ("since", "agent", "bridged")}
        body["waited"] = max(0.0, time.time() - entry["since"])
        self.cluster.to_router("enqueue", body)

    def caller_key(self, call_id: str, digit: str, now: float) -> bool:
        self.cluster.to_router("key", {"call_id": call_id, "digit": digit})
        return False

    def call_abandoned(self, call_id: str, now: float) -> None:
        self._forget(call_id)
        self.cluster.to_router("abandoned", {"call_id": call_id})

    def call_ended(self, call_id: str, by: str, now: float) -> None:
        self._forget(call_id)
        self.cluster.to_router("ended", {"call_id": call_id, "by": by})

    def offer_answered(self, offer_id: str, now: float) -> None:
        self.cluster.to_router("answered", {"offer_id": offer_id})

    def offer_failed(self, offer_id: str, reason: str, now: float) -> None:
        self.cluster.to_router("failed", {"offer_id": offer_id, "reason": reason})

    def agent_set_status(self, agent_id: str, status: Status | str, reason: str | None = None,
                         *, now: float) -> None:
        if agent_id not in self.settings.agents:
            raise AcdUsageError(f"unknown agent {agent_id!r}")
        try:
            value = Status(status).value
        except ValueError:
            raise AcdUsageError(f"agent {agent_id}: unknown status {status!r}") from None
        # kept in the store at once: a router taking over restores it even if this order
        # was on its way to the router that died
        self.cluster.command("HSET", self.cluster.key("agents"), agent_id,
                             json.dumps({"status": value, "reason": reason}))
        self.cluster.to_router("status", {"agent": agent_id, "status": value, "reason": reason})

    def agent_reachable(self, agent_id: str, reachable: bool, now: float) -> None:
        self.cluster.to_router("reachable", {"agent": agent_id, "reachable": reachable})

    def _forget(self, call_id: str) -> None:
        if self.mine.pop(call_id, None) is not None:
            self.cluster.command("HDEL", self.cluster.key("calls"), call_id)

    # -- the router's orders ---------------------------------------------------------------

    def _order(self, node: str, body: dict[str, Any]) -> None:
        epoch = int(body.get("e", 0))
        if epoch < self.epoch:
            log.info("event=order_stale epoch=%d current=%d router=%s", epoch, self.epoch, node)
            return
        self.epoch = epoch
        try:
            action = decode(body["a"], time.time() - self.now())
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("event=order_bad router=%s error=%s", node, exc)
            return
        if isinstance(action, ExitQueue):
            self._forget(action.call_id)
        elif isinstance(action, Bridge) and action.call_id in self.mine:
            self.mine[action.call_id].update(agent=action.agent_id, bridged=time.time())
        self.pending.append(action)
        self.wake()

    def _agent(self, node: str, body: dict[str, Any]) -> None:
        if int(body.get("e", 0)) < self.epoch:
            return
        change = AgentChanged(body["agent"], Status(body["status"]), State(body["state"]),
                              body.get("reason"))
        self.agents[change.agent_id] = change
        self.pending.append(change)
        self.wake()

    def resync(self, epoch: int) -> None:
        """A new router: hand over this node's calls (docs/cluster.md)."""
        if epoch < self.epoch:
            return
        self.epoch = epoch
        self.on_resync()  # the center cancels offers still ringing under the old router
        for entry in self.mine.values():
            if entry.get("agent"):
                self.cluster.to_router("adopt", {
                    "call_id": entry["call_id"], "queue": entry["queue"],
                    "agent": entry["agent"], "waited": entry["bridged"] - entry["since"],
                    "talked": time.time() - entry["bridged"]})
            else:
                self._send_enqueue(entry)
        log.info("event=resync epoch=%d calls=%d", epoch, len(self.mine))

    def take_actions(self) -> list[Action]:
        actions, self.pending = self.pending, []
        return actions

    def next_deadline(self) -> float | None:
        return None  # the router runs the engine's timers

    def on_timer(self, now: float) -> None:
        pass

    # -- queries ---------------------------------------------------------------------------

    async def _read_snapshot(self) -> None:
        text = await self.cluster.redis.get(self.cluster.key("acd", "snapshot"))
        if text:
            self.snap = _loads(text)

    def stats(self, queue: str, now: float) -> QueueStats:
        if queue not in self.settings.queues:
            raise AcdUsageError(f"unknown queue {queue!r}")
        figures = dict(self.snap.get("queues", {}).get(queue) or {})
        if not figures:
            return QueueStats(0, 0.0, {}, 0, 0, 0, None, None, None)
        return QueueStats(**figures)

    def agent_status(self, agent_id: str) -> AgentChanged:
        if agent_id not in self.settings.agents:
            raise AcdUsageError(f"unknown agent {agent_id!r}")
        known = self.agents.get(agent_id)
        if known is not None:
            return known
        saved = self.snap.get("agents", {}).get(agent_id)
        if saved:
            return AgentChanged(agent_id, Status(saved["status"]), State(saved["state"]),
                                saved.get("reason"))
        return AgentChanged(agent_id, Status.LOGGED_OUT, State.IDLE, None)

    def agent_call(self, agent_id: str) -> str | None:
        saved = self.snap.get("agents", {}).get(agent_id) or {}
        return saved.get("call_id")

    def position(self, call_id: str) -> int | None:
        value = self.snap.get("positions", {}).get(call_id)
        return int(value) if value is not None else None

    def why(self, call_id: str) -> list[Decision]:
        return []  # routing decisions are kept by the router (`switchboard why` asks it)

    def gauges(self) -> dict[str, int]:
        return dict(self.snap.get("gauges") or {})

    def available_agents(self) -> set[str]:
        return {a for a, s in (self.snap.get("agents") or {}).items()
                if s.get("status") == "ready" and s.get("state") == "idle"}

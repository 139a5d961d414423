"""Agents' desktops and supervisors' wallboards over WebSocket.

`/ws/agents/{id}` (the agent itself, or a supervisor): events are JSON objects with a
`type` (schema in docs/events.md): `hello` on connect, `offer` (the pop, sent and
flushed BEFORE the INVITE leaves for the agent's phone), `offer_cancelled`, `answered`,
`ended`, `state` and `analytics`. `/ws/supervisor` (supervisor or admin) gets every
`broadcast` event: live figures for the wallboard and analytics events. A slow or dead
socket never holds up calls: each send has a short timeout and a failed socket is dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from .webauth import allow_self, doc, principal, requires

log = logging.getLogger("switchboard.desk")

SEND_TIMEOUT = 0.5
# the first event a wallboard gets (the live figures), set by switchboard.wallboard
WALLBOARD_HELLO: web.AppKey[Callable[[], dict[str, Any]]] = web.AppKey("wallboard_hello")


class AgentDesk:
    def __init__(self, known_agents: set[str]) -> None:
        self.known = known_agents
        self.sockets: dict[str, set[web.WebSocketResponse]] = {}
        self.supervisors: set[web.WebSocketResponse] = set()
        self.since: dict[str, float] = {}  # agent -> when its status/state last changed
        self.started = time.time()
        self._tasks: set[asyncio.Task[Any]] = set()
        # in a cluster: hands an event to the other nodes, whose sockets it may be for
        # (docs/cluster.md); called with ("desk", {agent, event}) or ("sup", {event})
        self.relay: Callable[[str, dict[str, Any]], None] | None = None

    def connected(self, agent_id: str) -> int:
        return len(self.sockets.get(agent_id, ()))

    def state_since(self, agent_id: str) -> float:
        return self.since.get(agent_id, self.started)

    @requires("agent")
    @doc("An agent's desktop WebSocket (agents: their own; `?token=` or the cookie)")
    async def handler(self, request: web.Request) -> web.StreamResponse:
        agent_id = request.match_info["agent"]
        if agent_id not in self.known:
            raise web.HTTPNotFound(reason=f"unknown agent {agent_id}")
        allow_self(request, agent_id)
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        self.sockets.setdefault(agent_id, set()).add(ws)
        log.info("event=desk_connected agent=%s", agent_id)
        hello = request.app.get("desk_hello")
        await self._send_one(ws, hello(agent_id) if hello else {"type": "hello", "agent": agent_id})
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await ws.send_str('{"type":"pong"}')
        finally:
            self.sockets.get(agent_id, set()).discard(ws)
            log.info("event=desk_disconnected agent=%s", agent_id)
        return ws

    async def send(self, agent_id: str, event: dict[str, Any], relay: bool = True) -> int:
        """Deliver to every desktop the agent has open on this node (and hand it to the
        other nodes of a cluster); returns how many sockets here got it."""
        event.setdefault("at", time.time())
        if relay and self.relay is not None:
            self.relay("desk", {"agent": agent_id, "event": event})
        sent = 0
        for ws in list(self.sockets.get(agent_id, ())):
            if await self._send_one(ws, event):
                sent += 1
            else:
                self.sockets[agent_id].discard(ws)
        return sent

    def notify(self, agent_id: str, event: dict[str, Any], relay: bool = True) -> None:
        """Fire-and-forget variant for events nothing has to wait for."""
        if event.get("type") == "state":
            self.since[agent_id] = time.time()
        if relay and self.relay is not None:
            event.setdefault("at", time.time())
            self.relay("desk", {"agent": agent_id, "event": event})
        if self.sockets.get(agent_id):
            task = asyncio.get_running_loop().create_task(self.send(agent_id, event, False))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # -- supervisors ------------------------------------------------------------------------

    @requires("supervisor")
    @doc("The wallboard's WebSocket: `figures` every 2 s, `analytics` and other broadcasts")
    async def supervisor_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        self.supervisors.add(ws)
        log.info("event=wallboard_connected user=%s", principal(request).name)
        hello = request.app.get(WALLBOARD_HELLO)
        await self._send_one(ws, hello() if hello else {"type": "hello", "at": time.time()})
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await ws.send_str('{"type":"pong"}')
        finally:
            self.supervisors.discard(ws)
        return ws

    def broadcast(self, event: dict[str, Any], relay: bool = True) -> None:
        """Fire-and-forget to every supervisor socket (live figures, analytics events);
        `relay=False` for what every node produces itself (the wallboard's figures)."""
        event.setdefault("at", time.time())
        if relay and self.relay is not None:
            self.relay("sup", {"event": event})
        if not self.supervisors:
            return
        text = json.dumps(event, default=str)
        loop = asyncio.get_running_loop()
        for ws in list(self.supervisors):
            task = loop.create_task(self._send_text(ws, text))
            self._tasks.add(task)  # a reference until done: the loop keeps only weak ones
            task.add_done_callback(self._tasks.discard)

    async def _send_text(self, ws: web.WebSocketResponse, text: str) -> None:
        if ws.closed:
            self.supervisors.discard(ws)
            return
        try:
            async with asyncio.timeout(SEND_TIMEOUT):  # no inner task, as wait_for makes
                await ws.send_str(text)
        except (TimeoutError, ConnectionError, RuntimeError) as exc:
            log.warning("event=wallboard_send_failed error=%s", exc)
            self.supervisors.discard(ws)

    @staticmethod
    async def _send_one(ws: web.WebSocketResponse, event: dict[str, Any]) -> bool:
        if ws.closed:
            return False
        try:
            async with asyncio.timeout(SEND_TIMEOUT):  # no inner task, as wait_for makes
                await ws.send_str(json.dumps(event, default=str))
            return True
        except (TimeoutError, ConnectionError, RuntimeError) as exc:
            log.warning("event=desk_send_failed error=%s", exc)
            return False

    async def close(self) -> None:
        for sockets in self.sockets.values():
            for ws in list(sockets):
                await ws.close()
        for ws in list(self.supervisors):
            await ws.close()

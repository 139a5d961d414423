"""Agents' desktops over WebSocket (`/ws/agents/{id}`): the screen pop and live state.

Events are JSON objects with a `type` (schema in docs/events.md): `hello` on connect,
`offer` (the pop, sent and flushed BEFORE the INVITE leaves for the agent's phone),
`offer_cancelled`, `answered`, `ended` and `state`. A slow or dead desktop never holds
up calls: each send has a short timeout and a failed socket is dropped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import WSMsgType, web

log = logging.getLogger("switchboard.desk")

SEND_TIMEOUT = 0.5


class AgentDesk:
    def __init__(self, known_agents: set[str]) -> None:
        self.known = known_agents
        self.sockets: dict[str, set[web.WebSocketResponse]] = {}

    def connected(self, agent_id: str) -> int:
        return len(self.sockets.get(agent_id, ()))

    async def handler(self, request: web.Request) -> web.StreamResponse:
        agent_id = request.match_info["agent"]
        if agent_id not in self.known:
            raise web.HTTPNotFound(reason=f"unknown agent {agent_id}")
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

    async def send(self, agent_id: str, event: dict[str, Any]) -> int:
        """Deliver to every desktop the agent has open; returns how many got it."""
        event.setdefault("at", time.time())
        sent = 0
        for ws in list(self.sockets.get(agent_id, ())):
            if await self._send_one(ws, event):
                sent += 1
            else:
                self.sockets[agent_id].discard(ws)
        return sent

    def notify(self, agent_id: str, event: dict[str, Any]) -> None:
        """Fire-and-forget variant for events nothing has to wait for."""
        if self.sockets.get(agent_id):
            asyncio.get_running_loop().create_task(self.send(agent_id, event))

    @staticmethod
    async def _send_one(ws: web.WebSocketResponse, event: dict[str, Any]) -> bool:
        if ws.closed:
            return False
        try:
            await asyncio.wait_for(ws.send_str(json.dumps(event, default=str)), SEND_TIMEOUT)
            return True
        except (TimeoutError, ConnectionError, RuntimeError) as exc:
            log.warning("event=desk_send_failed error=%s", exc)
            return False

    async def close(self) -> None:
        for sockets in self.sockets.values():
            for ws in list(sockets):
                await ws.close()

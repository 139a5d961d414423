"""The supervisors' wallboard: live figures over `/ws/supervisor` and the last hour's chart.

A task of the HTTP app samples every queue every `SAMPLE_SECONDS` into a ring buffer of
one hour (calls waiting, longest wait, service level), served at /api/stats/history, and
pushes a `figures` event (queues and agents, as /api/wallboard returns) to the wallboard
sockets every `PUSH_SECONDS` while any is open. Both read counters the ACD keeps anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .desk import WALLBOARD_HELLO
from .webauth import doc, requires

if TYPE_CHECKING:
    from .server import Server

log = logging.getLogger("switchboard.wallboard")

SAMPLE_SECONDS = 10.0
HISTORY_SECONDS = 3600.0
PUSH_SECONDS = 2.0


class StatsHistory:
    """A bounded ring of per-queue samples: one hour at one sample per SAMPLE_SECONDS."""

    def __init__(self, keep: int = int(HISTORY_SECONDS / SAMPLE_SECONDS)) -> None:
        self.samples: deque[dict[str, Any]] = deque(maxlen=keep)

    def sample(self, queues: dict[str, dict[str, Any]], now: float) -> None:
        self.samples.append({"t": round(now, 3), "queues": {
            name: {"waiting": q.get("waiting", 0),
                   "longest_wait": round(float(q.get("longest_wait") or 0.0), 1),
                   "service_level_pct": q.get("service_level_pct")}
            for name, q in queues.items()}})

    def view(self) -> dict[str, Any]:
        return {"interval_s": SAMPLE_SECONDS, "samples": list(self.samples)}


HISTORY_KEY: web.AppKey[StatsHistory] = web.AppKey("stats_history", StatsHistory)


def _server(request: web.Request) -> Server:
    from .api import SERVER_KEY

    return request.app[SERVER_KEY]


def figures(server: Server) -> dict[str, Any]:
    """Queues (center.stats) and agents with time in state and current call."""
    from .api import agent_view

    center = server.center
    if center is None:
        return {"type": "figures", "queues": {}, "agents": []}
    talking = {leg.agent_id: call_id for call_id, leg in center.bridged.items()}
    ringing = {leg.agent_id: leg.call.call_id for leg in center.legs.values() if not leg.answered}
    now = time.time()
    agents = []
    for agent_id in server.acd_settings.agents:
        view = agent_view(server, agent_id)
        view["in_state_s"] = round(now - server.desk.state_since(agent_id), 1)
        # a call on another node of a cluster: from the router's snapshot
        view["call_id"] = (talking.get(agent_id) or ringing.get(agent_id)
                           or center.engine.agent_call(agent_id))
        agents.append(view)
    return {"type": "figures", "queues": center.stats(), "agents": agents}


@requires("supervisor")
@doc("Calls waiting, longest wait and service level per queue over the last hour "
     "(sampled every 10 s)", response={"type": "object"})
async def stats_history(request: web.Request) -> web.Response:
    return web.json_response(request.app[HISTORY_KEY].view())


@requires("supervisor")
@doc("What the wallboard shows now: queues and agents (time in state, current call)",
     response={"type": "object"})
async def wallboard_now(request: web.Request) -> web.Response:
    return web.json_response(figures(_server(request)))


async def _loop(app: web.Application) -> None:
    from .api import SERVER_KEY

    server = app[SERVER_KEY]
    history = app[HISTORY_KEY]
    next_sample = 0.0
    while True:
        try:
            now = time.time()
            if now >= next_sample and server.center is not None:
                history.sample(server.center.stats(), now)
                next_sample = now + SAMPLE_SECONDS
            if server.desk.supervisors:
                server.desk.broadcast(figures(server), relay=False)  # each node sends its own
        except Exception:
            log.exception("event=wallboard_error")
        await asyncio.sleep(PUSH_SECONDS)


async def _background(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.get_running_loop().create_task(_loop(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def add_routes(app: web.Application) -> None:
    from .api import SERVER_KEY

    server = app[SERVER_KEY]
    app[HISTORY_KEY] = StatsHistory()
    app[WALLBOARD_HELLO] = lambda: {**figures(server), "type": "hello"}
    app.cleanup_ctx.append(_background)
    app.router.add_get("/api/stats/history", stats_history)
    app.router.add_get("/api/wallboard", wallboard_now)
    app.router.add_get("/ws/supervisor", server.desk.supervisor_handler)

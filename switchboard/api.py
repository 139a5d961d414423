"""The HTTP API (same process and event loop as SIP and media).

This is the start of the API: health and the live call list. Every error is JSON
with a message and the right 4xx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .server import Server

SERVER_KEY: web.AppKey[Server] = web.AppKey("server")


def _server(request: web.Request) -> Server:
    return request.app[SERVER_KEY]


async def health(request: web.Request) -> web.Response:
    server = _server(request)
    sip = server.sip
    body: dict[str, Any] = {
        "status": "ok",
        "calls": len(server.calls),
        "rtp_ports_in_use": server.ports.in_use,
        "sip_dialogs": sip.ua.dialog_count if sip else 0,
        "sip_transactions": sip.ua.transaction_count if sip else 0,
        "flows": server.flows.names(),
        "agents_registered": sorted(server.registered),
        "bridged": len(server.center.bridged) if server.center else 0,
        "media_clock": {
            "ticks": server.clock.ticks if server.clock else 0,
            "late_p50_ms": server.clock.lateness.percentile(50) if server.clock else 0,
            "late_p99_ms": server.clock.lateness.percentile(99) if server.clock else 0,
            "skipped": server.clock.skipped if server.clock else 0,
            "work_p99_ms": server.clock.work.percentile(99) if server.clock else 0,
        },
        "gc": {"pauses": server.gc_pauses.count, "pause_p99_ms": server.gc_pauses.percentile(99),
               "pause_max_ms": server.gc_pauses.percentile(100)},
        "counters": dict(server.stats) | (dict(sip.ua.stats) if sip else {}),
    }
    return web.json_response(body)


async def metrics(request: web.Request) -> web.Response:
    from .metrics import render

    return web.Response(text=render(_server(request)), content_type="text/plain",
                        headers={"X-Content-Type-Options": "nosniff"})


async def calls(request: web.Request) -> web.Response:
    server = _server(request)
    items = []
    for call in server.calls.values():
        record = call.cdr()
        record.pop("ended_at", None)
        record["state"] = "queued" if call.queue else ("ivr" if call.answered_at else "ringing")
        items.append(record)
    return web.json_response({"calls": items})


async def queues(request: web.Request) -> web.Response:
    center = _server(request).center
    return web.json_response({"queues": center.stats() if center else {}})


def _agent_view(server: Server, agent_id: str) -> dict[str, Any]:
    assert server.center is not None
    changed = server.center.engine.agent_status(agent_id)
    config = server.acd_settings.agents[agent_id]
    return {"id": agent_id, "name": config.name, "extension": config.extension,
            "queues": dict(config.queues), "skills": dict(config.skills),
            "status": changed.status.value, "state": changed.state.value,
            "reason": changed.reason, "registered": agent_id in server.registered,
            "desktops": server.desk.connected(agent_id)}


async def agents(request: web.Request) -> web.Response:
    server = _server(request)
    return web.json_response({"agents": [_agent_view(server, a) for a in server.acd_settings.agents]})


async def agent(request: web.Request) -> web.Response:
    server = _server(request)
    agent_id = request.match_info["agent"]
    if agent_id not in server.acd_settings.agents:
        raise web.HTTPNotFound(reason=f"unknown agent {agent_id}")
    return web.json_response(_agent_view(server, agent_id))


async def agent_status(request: web.Request) -> web.Response:
    """POST {"status": "ready" | "not_ready" | "logged_out", "reason": "..."}."""
    from acd.errors import AcdUsageError
    from acd.model import Status

    server = _server(request)
    agent_id = request.match_info["agent"]
    if agent_id not in server.acd_settings.agents or server.center is None:
        raise web.HTTPNotFound(reason=f"unknown agent {agent_id}")
    body = await _json_body(request)
    try:
        status = Status(body.get("status"))
    except ValueError:
        raise web.HTTPBadRequest(reason="status must be ready, not_ready or logged_out") from None
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 64):
        raise web.HTTPBadRequest(reason="reason must be a string of at most 64 characters")
    try:
        server.center.set_status(agent_id, status, reason)
    except AcdUsageError as exc:
        raise web.HTTPConflict(reason=str(exc)) from None
    return web.json_response(_agent_view(server, agent_id))


def _live_call(server: Server, call_id: str) -> Any:
    for call in server.calls.values():
        if call.call_id == call_id:
            return call
    raise web.HTTPNotFound(reason=f"no live call {call_id}")


async def call_detail(request: web.Request) -> web.Response:
    server = _server(request)
    call = _live_call(server, request.match_info["call_id"])
    record = call.cdr()
    record.pop("ended_at", None)
    account = record["vars"].get("account")
    from .history import customer_key

    record["history"] = server.history.recent(customer_key(account, call.caller))
    record["position"] = server.center.engine.position(call.call_id) if server.center else None
    return web.json_response(record)


async def call_why(request: web.Request) -> web.Response:
    server = _server(request)
    call_id = request.match_info["call_id"]
    decisions = server.center.engine.why(call_id) if server.center else []
    if not decisions:
        raise web.HTTPNotFound(reason=f"no routing decisions recorded for {call_id}")
    return web.json_response({"call_id": call_id,
                              "decisions": [d.describe() for d in decisions]})


async def history(request: web.Request) -> web.Response:
    from .history import customer_key

    server = _server(request)
    account = request.match_info["account"]
    return web.json_response({"account": account,
                              "calls": server.history.recent(customer_key(account, None), 50)})


async def call_note(request: web.Request) -> web.Response:
    """POST {"account": "...", "agent": "1001", "disposition": "...", "note": "..."} (wrap-up)."""
    from .cdr import iso
    from .history import customer_key

    server = _server(request)
    call_id = request.match_info["call_id"]
    body = await _json_body(request)
    note = body.get("note")
    if not isinstance(note, str) or not note.strip() or len(note) > 4000:
        raise web.HTTPBadRequest(reason="note must be a non-empty string of at most 4000 characters")
    customer = customer_key(body.get("account"), body.get("caller"))
    if customer is None:
        raise web.HTTPBadRequest(reason="give the call's account (or caller)")
    import time as _time

    if not server.history.add_note(customer, call_id, body.get("agent"), body.get("disposition"),
                                   note.strip(), iso(_time.time()) or ""):
        raise web.HTTPNotFound(reason=f"no finished call {call_id} for that customer")
    return web.json_response({"ok": True}, status=201)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(reason="the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="the body must be a JSON object")
    return body


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response({"error": exc.reason, "status": exc.status}, status=exc.status)


def build_app(server: Server) -> web.Application:
    app = web.Application(middlewares=[json_errors])
    app[SERVER_KEY] = server
    app.router.add_get("/api/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/calls", calls)
    app.router.add_get("/api/calls/{call_id}", call_detail)
    app.router.add_get("/api/calls/{call_id}/why", call_why)
    app.router.add_post("/api/calls/{call_id}/notes", call_note)
    app.router.add_get("/api/queues", queues)
    app.router.add_get("/api/agents", agents)
    app.router.add_get("/api/agents/{agent}", agent)
    app.router.add_post("/api/agents/{agent}/status", agent_status)
    app.router.add_get("/api/history/{account}", history)
    app.router.add_get("/ws/agents/{agent}", server.desk.handler)
    return app

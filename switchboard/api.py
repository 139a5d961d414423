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


async def calls(request: web.Request) -> web.Response:
    server = _server(request)
    items = []
    for call in server.calls.values():
        record = call.cdr()
        record.pop("ended_at", None)
        record["state"] = "queued" if call.queue else ("ivr" if call.answered_at else "ringing")
        items.append(record)
    return web.json_response({"calls": items})


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
    app.router.add_get("/api/calls", calls)
    return app

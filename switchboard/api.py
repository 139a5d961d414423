"""The HTTP API (same process and event loop as SIP and media).

Every handler carries its access rule (``webauth.requires`` / ``webauth.public``) and its
OpenAPI metadata (``@doc``); the document at /api/openapi.json is made from the routes
registered here and in the route modules of ``ROUTE_MODULES``. Every error is JSON with
a message and the right 4xx. The web pages (agent desktop at ``/``, wallboard at
``/wallboard``, API docs at ``/api/docs``) are plain files under switchboard/web/.
"""

from __future__ import annotations

import hmac
import importlib
import importlib.util
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from signaling.auth import ha1

from . import openapi, webauth
from .webauth import allow_self, doc, principal, public, requires

if TYPE_CHECKING:
    from .server import Server

SERVER_KEY: web.AppKey[Server] = web.AppKey("server")
WEB_DIR = Path(__file__).resolve().parent / "web"
# Route modules: each has add_routes(app); a missing one is skipped (added by its owner).
ROUTE_MODULES = ("switchboard.api_flows", "switchboard.wallboard", "switchboard.api_recordings")
# Not-ready reason codes the desktop offers (the API accepts any short string).
REASON_CODES = ("break", "lunch", "meeting", "training", "after_call_work")

OBJ = {"type": "object"}
STATUS_BODY = {"type": "object", "required": ["status"], "properties": {
    "status": {"type": "string", "enum": ["ready", "not_ready", "logged_out"]},
    "reason": {"type": ["string", "null"], "maxLength": 64}}}
NOTE_BODY = {"type": "object", "required": ["note"], "properties": {
    "account": {"type": "string"}, "caller": {"type": "string"}, "agent": {"type": "string"},
    "disposition": {"type": "string", "maxLength": 64}, "note": {"type": "string", "maxLength": 4000}}}
AGENT = {"type": "object", "properties": {
    "id": {"type": "string"}, "name": {"type": "string"}, "status": {"type": "string"},
    "state": {"type": "string"}, "reason": {"type": ["string", "null"]},
    "registered": {"type": "boolean"}, "desktops": {"type": "integer"}}}
USER_BODY = {"type": "object", "required": ["name", "role", "password"], "properties": {
    "name": {"type": "string"}, "role": {"type": "string", "enum": list(webauth.USER_ROLES)},
    "password": {"type": "string", "minLength": 10}}}


def _server(request: web.Request) -> Server:
    return request.app[SERVER_KEY]


# -- health and metrics -------------------------------------------------------------------

def _media_clock(server: Server) -> dict[str, Any]:
    clock = server.media_clock
    if clock is None:
        return {"engine": None, "ticks": 0, "late_p50_ms": 0, "late_p99_ms": 0, "skipped": 0,
                "work_p99_ms": 0}
    return {
        "engine": "native" if server.native is not None else "python",
        "realtime": bool(getattr(clock, "realtime", False)),
        "slice_us": server.native.slice_ns // 1000 if server.native is not None else 0,
        "coalesce_us": server.native.coalesce_us if server.native is not None else 0,
        "background_nice": server.native.background_nice if server.native is not None else 0,
        "ticks": clock.ticks,
        "late_p50_ms": clock.lateness.percentile(50),
        "late_p99_ms": clock.lateness.percentile(99),
        "skipped": clock.skipped,
        "work_p99_ms": clock.work.percentile(99),
    }


@public
@doc("Health: counters, SIP/RTP tables, media clock, GC (no secrets; open on purpose)")
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
        "agents_registered": sorted(server.reachable_agents()),
        "bridged": len(server.center.bridged) if server.center else 0,
        "media_clock": _media_clock(server),
        "gc": {"pauses": server.gc_pauses.count, "pause_p99_ms": server.gc_pauses.percentile(99),
               "pause_max_ms": server.gc_pauses.percentile(100)},
        "counters": dict(server.stats) | (dict(sip.ua.stats) if sip else {}),
    }
    if server.cluster is not None:
        c = server.cluster
        body["cluster"] = {"node": c.node, "router": c.leader, "epoch": c.epoch,
                           "sent": c.sent, "received": c.received, "errors": c.errors}
    return web.json_response(body)


@public
@doc("Prometheus metrics (text format 0.0.4; no secrets, open on purpose)",
     content_type="text/plain")
async def metrics(request: web.Request) -> web.Response:
    from .metrics import auth_lines, render

    state = request.app[webauth.AUTH_KEY]
    text = render(_server(request)) + auth_lines(state.counters, len(state.sessions))
    return web.Response(text=text, content_type="text/plain",
                        headers={"X-Content-Type-Options": "nosniff"})


@public
@doc("This OpenAPI document")
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi.document(request.app))


@public
@doc("Interactive API docs (an HTML page)", content_type="text/html")
async def api_docs(request: web.Request) -> web.FileResponse:
    return _page("docs.html")


def _page(name: str) -> web.FileResponse:
    return web.FileResponse(WEB_DIR / name, headers={
        "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; "
                                   "media-src 'self' blob:; img-src 'self' data:; "
                                   "frame-ancestors 'none'"})


async def desktop_page(request: web.Request) -> web.FileResponse:
    return _page("desk.html")


async def wallboard_page(request: web.Request) -> web.FileResponse:
    return _page("wallboard.html")


# -- calls --------------------------------------------------------------------------------

def _live_call(server: Server, call_id: str) -> Any:
    for call in server.calls.values():
        if call.call_id == call_id:
            return call
    raise web.HTTPNotFound(reason=f"no live call {call_id}")


def _agent_of_call(server: Server, call: Any) -> set[str]:
    """The agent talking on the call, and any agent it is being offered to."""
    agents = {call.agent} if call.agent else set()
    if server.center is not None:
        agents |= {leg.agent_id for leg in server.center.legs.values()
                   if leg.call.call_id == call.call_id}
    return agents


def _own_call(request: web.Request, call: Any) -> None:
    who = principal(request)
    if who.role == "agent" and who.agent not in _agent_of_call(_server(request), call):
        raise web.HTTPForbidden(reason=f"call {call.call_id} is not offered to or taken by you")


@requires("supervisor")
@doc("Live calls with their IVR path, variables and state", response=OBJ)
async def calls(request: web.Request) -> web.Response:
    server = _server(request)
    items = []
    for call in server.calls.values():
        record = call.cdr()
        record.pop("ended_at", None)
        record["state"] = "bridged" if call.agent else "queued" if call.queue else \
            ("ivr" if call.answered_at else "ringing")
        items.append(record)
    return web.json_response({"calls": items})


@requires("agent")
@doc("One live call: pop data, customer history, queue position (agents: their own call)",
     response=OBJ)
async def call_detail(request: web.Request) -> web.Response:
    from .history import customer_key

    server = _server(request)
    call = _live_call(server, request.match_info["call_id"])
    _own_call(request, call)
    record = call.cdr()
    record.pop("ended_at", None)
    account = record["vars"].get("account")
    record["history"] = server.history.recent(customer_key(account, call.caller))
    record["position"] = server.center.engine.position(call.call_id) if server.center else None
    return web.json_response(record)


@requires("agent")
@doc("Hang up a live call (agents: their own call)", status=202, errors=(409,), response=OBJ)
async def call_hangup(request: web.Request) -> web.Response:
    server = _server(request)
    call = _live_call(server, request.match_info["call_id"])
    _own_call(request, call)
    if call.ended:
        raise web.HTTPConflict(reason=f"call {call.call_id} is already ending")
    call.hangup("api")
    return web.json_response({"ok": True, "call_id": call.call_id, "by": principal(request).name},
                             status=202)


@requires("supervisor")
@doc("The ACD's routing decisions for a call (what `switchboard why` prints)", response=OBJ)
async def call_why(request: web.Request) -> web.Response:
    server = _server(request)
    call_id = request.match_info["call_id"]
    center = server.center
    router = center.router.engine if center and center.router else None
    decisions = (router or center.engine).why(call_id) if center else []
    if not decisions and server.cluster is not None and not server.cluster.is_leader:
        raise web.HTTPNotFound(reason=f"routing decisions are kept by the cluster's router, "
                                      f"node {server.cluster.leader}: ask it")
    if not decisions:
        raise web.HTTPNotFound(reason=f"no routing decisions recorded for {call_id}")
    return web.json_response({"call_id": call_id,
                              "decisions": [d.describe() for d in decisions]})


@requires("agent")
@doc("Wrap-up note for a finished call, saved in the customer's history "
     "(agents: calls they took)", body=NOTE_BODY, status=201, response=OBJ)
async def call_note(request: web.Request) -> web.Response:
    from .cdr import iso
    from .history import customer_key

    server = _server(request)
    who = principal(request)
    call_id = request.match_info["call_id"]
    body = await _json_body(request)
    note = body.get("note")
    if not isinstance(note, str) or not note.strip() or len(note) > 4000:
        raise web.HTTPBadRequest(reason="note must be a non-empty string of at most 4000 characters")
    disposition = body.get("disposition")
    if disposition is not None and (not isinstance(disposition, str) or len(disposition) > 64):
        raise web.HTTPBadRequest(reason="disposition must be a string of at most 64 characters")
    customer = customer_key(_opt_str(body, "account"), _opt_str(body, "caller"))
    if customer is None:
        raise web.HTTPBadRequest(reason="give the call's account (or caller)")
    agent = who.agent if who.role == "agent" else body.get("agent")
    if who.role == "agent":
        entry = next((c for c in server.history.recent(customer, 50)
                      if c.get("call_id") == call_id), None)
        if entry is not None and entry.get("agent") != who.agent:
            raise web.HTTPForbidden(reason=f"call {call_id} was not taken by you")
    if not server.history.add_note(customer, call_id, agent, disposition, note.strip(),
                                   iso(time.time()) or ""):
        raise web.HTTPNotFound(reason=f"no finished call {call_id} for that customer")
    return web.json_response({"ok": True}, status=201)


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise web.HTTPBadRequest(reason=f"{key} must be a string")
    return value


# -- queues, agents, history --------------------------------------------------------------

@requires("supervisor")
@doc("Live figures per queue: waiting, longest wait, agents by state, offered, answered, "
     "abandoned, service level, ASA, AHT", response=OBJ)
async def queues(request: web.Request) -> web.Response:
    center = _server(request).center
    return web.json_response({"queues": center.stats() if center else {}})


@requires("supervisor")
@doc("Queue configuration as loaded (strategy, timeouts, service level...)", response=OBJ)
async def queue_config(request: web.Request) -> web.Response:
    out = {}
    for name, q in _server(request).acd_settings.queues.items():
        spec = {k: getattr(q, k) for k in q.__dataclass_fields__}
        spec["strategy"] = q.strategy.value
        spec["skill_relaxation"] = [list(step) for step in q.skill_relaxation]
        spec["exit_keys"] = dict(q.exit_keys)
        out[name] = spec
    return web.json_response({"queues": out})


def agent_view(server: Server, agent_id: str) -> dict[str, Any]:
    assert server.center is not None
    changed = server.center.engine.agent_status(agent_id)
    config = server.acd_settings.agents[agent_id]
    return {"id": agent_id, "name": config.name, "extension": config.extension,
            "queues": dict(config.queues), "skills": dict(config.skills),
            "status": changed.status.value, "state": changed.state.value,
            "reason": changed.reason, "registered": agent_id in server.reachable_agents(),
            "desktops": server.desk.connected(agent_id)}


@requires("supervisor")
@doc("Every agent: status, state, reason, registered, open desktops, queues, skills",
     response={"type": "object", "properties": {"agents": {"type": "array", "items": AGENT}}})
async def agents(request: web.Request) -> web.Response:
    server = _server(request)
    return web.json_response({"agents": [agent_view(server, a) for a in server.acd_settings.agents]})


def _known_agent(request: web.Request) -> str:
    server = _server(request)
    agent_id = request.match_info["agent"]
    if agent_id not in server.acd_settings.agents or server.center is None:
        raise web.HTTPNotFound(reason=f"unknown agent {agent_id}")
    allow_self(request, agent_id)
    return agent_id


@requires("agent")
@doc("One agent (agents: themselves)", response=AGENT)
async def agent(request: web.Request) -> web.Response:
    agent_id = _known_agent(request)
    return web.json_response(agent_view(_server(request), agent_id))


@requires("agent")
@doc("Set an agent's status (agents: their own)", body=STATUS_BODY, errors=(409,),
     response=AGENT)
async def agent_status(request: web.Request) -> web.Response:
    from acd.errors import AcdUsageError
    from acd.model import Status

    server = _server(request)
    agent_id = _known_agent(request)
    body = await _json_body(request)
    try:
        status = Status(body.get("status"))
    except ValueError:
        raise web.HTTPBadRequest(reason="status must be ready, not_ready or logged_out") from None
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 64):
        raise web.HTTPBadRequest(reason="reason must be a string of at most 64 characters")
    assert server.center is not None
    try:
        server.center.set_status(agent_id, status, reason)
    except AcdUsageError as exc:
        raise web.HTTPConflict(reason=str(exc)) from None
    return web.json_response(agent_view(server, agent_id))


@requires("agent")
@doc("Not-ready reason codes the desktop offers",
     response={"type": "object", "properties": {"reason_codes": {
         "type": "array", "items": {"type": "string"}}}})
async def reason_codes(request: web.Request) -> web.Response:
    return web.json_response({"reason_codes": list(REASON_CODES)})


@requires("supervisor")
@doc("An account's last 50 calls with their wrap-up notes", response=OBJ)
async def history(request: web.Request) -> web.Response:
    from .history import customer_key

    server = _server(request)
    account = request.match_info["account"]
    return web.json_response({"account": account,
                              "calls": server.history.recent(customer_key(account, None), 50)})


# -- users (admin) ------------------------------------------------------------------------

@requires("admin")
@doc("Supervisors and admins of the users file", response=OBJ)
async def users(request: web.Request) -> web.Response:
    state = request.app[webauth.AUTH_KEY]
    return web.json_response({"users": [{"name": u.name, "role": u.role}
                                        for u in state.users().values()]})


@requires("admin")
@doc("Add a supervisor or admin (the password is stored as a scrypt hash)", body=USER_BODY,
     status=201, errors=(409,), response=OBJ)
async def user_add(request: web.Request) -> web.Response:
    import asyncio

    state = request.app[webauth.AUTH_KEY]
    body = await _json_body(request)
    name, role, password = body.get("name"), body.get("role"), body.get("password")
    if not all(isinstance(v, str) for v in (name, role, password)):
        raise web.HTTPBadRequest(reason="give name, role and password as strings")
    assert isinstance(name, str) and isinstance(role, str) and isinstance(password, str)
    if name in state.users():
        raise web.HTTPConflict(reason=f"user {name} exists")
    try:
        await asyncio.to_thread(webauth.add_user, state.users_file, name, role, password,
                                replace=False)
    except webauth.UserError as exc:
        raise web.HTTPBadRequest(reason=str(exc)) from None
    return web.json_response({"name": name, "role": role}, status=201)


@requires("admin")
@doc("Remove a supervisor or admin", response=OBJ)
async def user_remove(request: web.Request) -> web.Response:
    state = request.app[webauth.AUTH_KEY]
    name = request.match_info["name"]
    if name not in state.users() or not webauth.remove_user(state.users_file, name):
        raise web.HTTPNotFound(reason=f"unknown user {name}")
    state.drop_user(name)
    return web.json_response({"ok": True})


# -- plumbing -----------------------------------------------------------------------------

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
        headers = {k: v for k, v in exc.headers.items() if k in ("Retry-After", "Allow")}
        return web.json_response({"error": exc.reason, "status": exc.status}, status=exc.status,
                                 headers=headers)


def _check_agent(server: Server) -> webauth.AgentCheck:
    def check(name: str, password: str) -> bool | None:
        creds = server.acd_settings.credentials.get(name)
        if creds is None:
            return None
        return hmac.compare_digest(ha1(name, creds.realm, password, "MD5"), creds.ha1_md5)

    return check


def build_app(server: Server) -> web.Application:
    app = web.Application(middlewares=[json_errors, webauth.auth_middleware],
                          client_max_size=256 * 1024)
    app[SERVER_KEY] = server
    cfg = server.cfg
    app[webauth.AUTH_KEY] = state = webauth.AuthState(
        cfg.users_file or cfg.data_dir / "users.yaml", cfg.data_dir, _check_agent(server))
    state.start()
    r = app.router
    r.add_get("/", desktop_page)
    r.add_get("/wallboard", wallboard_page)
    r.add_static("/static/", WEB_DIR, show_index=False, follow_symlinks=False)
    r.add_get("/api/health", health)
    r.add_get("/metrics", metrics)
    r.add_get("/api/openapi.json", openapi_json)
    r.add_get("/api/docs", api_docs)
    webauth.add_routes(app)
    r.add_get("/api/calls", calls)
    r.add_get("/api/calls/{call_id}", call_detail)
    r.add_get("/api/calls/{call_id}/why", call_why)
    r.add_post("/api/calls/{call_id}/hangup", call_hangup)
    r.add_post("/api/calls/{call_id}/notes", call_note)
    r.add_get("/api/queues", queues)
    r.add_get("/api/queues/config", queue_config)
    r.add_get("/api/agents", agents)
    r.add_get("/api/agents/{agent}", agent)
    r.add_post("/api/agents/{agent}/status", agent_status)
    r.add_get("/api/reason-codes", reason_codes)
    r.add_get("/api/history/{account}", history)
    r.add_get("/api/users", users)
    r.add_post("/api/users", user_add)
    r.add_delete("/api/users/{name}", user_remove)
    r.add_get("/ws/agents/{agent}", server.desk.handler)
    for name in ROUTE_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).add_routes(app)
    return app

"""The OpenAPI 3.1 document of the HTTP API, made from the routes the app really has.

Handlers carry their metadata with ``@doc(...)`` (summary, request and response JSON
schemas, query parameters, error statuses) and their role with ``webauth.requires`` or
``webauth.public``; ``document(app)`` walks ``app.router`` so a route that another
module adds shows up by itself. ``/api/docs`` is a small self-contained page
(switchboard/web/docs.html) that renders the document and sends requests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from aiohttp import web

DOC_ATTR = "__switchboard_doc__"
ACCESS_ATTR = "__switchboard_access__"
ERROR = {"type": "object", "required": ["error", "status"],
         "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}}
_STATUS_TEXT = {400: "Bad request body or parameter", 401: "Not logged in",
                403: "Wrong role, or not your own agent or call", 404: "Unknown id",
                409: "Conflicts with the current state", 429: "Too many failed logins"}
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")

F = TypeVar("F", bound=Callable[..., Any])


def doc(summary: str, *, body: dict[str, Any] | None = None,
        response: dict[str, Any] | None = None, params: dict[str, str] | None = None,
        errors: Iterable[int] = (), status: int = 200, description: str = "",
        content_type: str = "application/json") -> Callable[[F], F]:
    """Attach OpenAPI metadata to a handler. ``params`` are query parameters (name ->
    description); path parameters come from the route itself."""
    meta = {"summary": summary, "body": body, "response": response, "params": params or {},
            "errors": tuple(errors), "status": status, "description": description,
            "content_type": content_type}

    def mark(handler: F) -> F:
        setattr(handler, DOC_ATTR, meta)
        return handler

    return mark


def _tag(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["ws"]:
        return "websockets"
    if parts[:1] == ["api"] and len(parts) > 1:
        return {"login": "auth", "logout": "auth", "me": "auth", "openapi.json": "docs",
                "docs": "docs", "reason-codes": "agents"}.get(parts[1], parts[1])
    return "monitoring"


def _operation(method: str, path: str, handler: Any) -> dict[str, Any]:
    meta: dict[str, Any] = getattr(handler, DOC_ATTR, None) or {}
    access = getattr(handler, ACCESS_ATTR, None) or "denied"
    summary = meta.get("summary") or (handler.__doc__ or path).strip().splitlines()[0]
    op: dict[str, Any] = {
        "operationId": f"{method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}",
        "summary": summary, "tags": [_tag(path)], "x-switchboard-role": access,
        "description": (meta.get("description") or "") +
        (f"\n\nRole: {access}." if access != "public" else "\n\nNo login needed."),
    }
    params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
              for n in _PARAM.findall(path)]
    params += [{"name": n, "in": "query", "required": False, "description": d,
                "schema": {"type": "string"}} for n, d in meta.get("params", {}).items()]
    if params:
        op["parameters"] = params
    if meta.get("body") is not None:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": meta["body"]}}}
    status = str(meta.get("status", 200))
    ctype = meta.get("content_type", "application/json")
    ok: dict[str, Any] = {"description": "OK"}
    if path.startswith("/ws/"):
        status, ok = "101", {"description": "WebSocket upgrade; JSON events (docs/events.md)"}
    elif ctype == "application/json":
        ok["content"] = {ctype: {"schema": meta.get("response") or {"type": "object"}}}
    else:
        ok["content"] = {ctype: {"schema": {"type": "string"}}}
    responses: dict[str, Any] = {status: ok}
    errors = set(meta.get("errors", ()))
    if access not in ("public", "denied"):
        errors |= {401, 403}
    if params and any(p["in"] == "path" for p in params):
        errors.add(404)
    if meta.get("body") is not None:
        errors.add(400)
    for code in sorted(errors):
        responses[str(code)] = {"description": _STATUS_TEXT.get(code, "Error"), "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    op["responses"] = responses
    op["security"] = [] if access == "public" else [{"bearer": []}, {"cookie": []}]
    return op


def document(app: web.Application, *, version: str = "0.1.0") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method in ("HEAD", "*"):
            continue
        path = resource.canonical
        if not (path.startswith("/api/") or path.startswith("/ws/") or path == "/metrics"):
            continue
        paths.setdefault(_PARAM.sub(r"{\1}", path), {})[route.method.lower()] = \
            _operation(route.method, path, route.handler)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Switchboard API", "version": version, "description":
                 "Contact-center server API: agents, queues, calls, history, flows, "
                 "recordings, health. Log in with POST /api/login; send the token as "
                 "`Authorization: Bearer TOKEN` (or rely on the session cookie). "
                 "Roles: agent < supervisor < admin."},
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "sb_session"}},
        },
    }

"""Flows over HTTP: the live list with lint results, each flow as a graph, and reload.

The graph is made from the same loaded `Flow` objects the server runs (ivr.model):
one node per flow node, one edge per `Node.targets()` entry, labelled with the key
that leads there (`next`, `options.1`, `on_failure`...).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ivr.diagnostics import Diagnostic
from ivr.lint import lint_paths
from ivr.model import Flow, Node

from .webauth import doc, requires

if TYPE_CHECKING:
    from .server import Server

GRAPH = {"type": "object", "properties": {
    "name": {"type": "string"}, "start": {"type": "string"},
    "nodes": {"type": "array", "items": {"type": "object"}},
    "edges": {"type": "array", "items": {"type": "object", "properties": {
        "from": {"type": "string"}, "to": {"type": "string"}, "label": {"type": "string"}}}}}}


def _server(request: web.Request) -> Server:
    from .api import SERVER_KEY

    return request.app[SERVER_KEY]


def _diag(d: Diagnostic) -> dict[str, Any]:
    return {"file": d.file, "line": d.line, "col": d.col, "message": d.message,
            "severity": d.severity, "text": str(d)}


async def _lint(server: Server) -> list[dict[str, Any]]:
    """Lint the flow directory as `switchboard lint` would (off the event loop: it reads files)."""
    found = await asyncio.to_thread(lint_paths, [server.cfg.flow_dir],
                                    prompt_dir=server.cfg.prompt_dir)
    return [_diag(d) for d in found]


def _summary(server: Server, flow: Flow) -> dict[str, Any]:
    return {"name": flow.name, "description": flow.description, "version": flow.version,
            "source": flow.source, "start": flow.start, "nodes": len(flow.nodes),
            "dids": sorted(d for d, f in server.cfg.dids.items() if f == flow.name)}


@requires("supervisor")
@doc("Live flows (name, version, DIDs) and the lint result of the flow directory",
     response={"type": "object"})
async def flows(request: web.Request) -> web.Response:
    server = _server(request)
    live = [_summary(server, server.flows.get(name)) for name in server.flows.names()]
    return web.json_response({"flows": live, "diagnostics": await _lint(server)})


def _node(node: Node) -> dict[str, Any]:
    out: dict[str, Any] = {"id": node.id, "type": node.type, "line": node.pos[0],
                           "prompts": [name for _, name in node.prompts()]}
    for key in ("queue", "variable", "flow", "url"):
        if node.spec.get(key):
            out[key] = node.spec[key]
    return out


def graph(flow: Flow) -> dict[str, Any]:
    edges = [{"from": node.id, "to": target, "label": key}
             for node in flow.nodes.values() for key, target in node.targets()
             if target in flow.nodes]
    return {"name": flow.name, "start": flow.start, "version": flow.version,
            "description": flow.description, "nodes": [_node(n) for n in flow.nodes.values()],
            "edges": edges}


@requires("supervisor")
@doc("One flow as a graph: nodes and the branches between them", response=GRAPH)
async def flow_graph(request: web.Request) -> web.Response:
    server = _server(request)
    name = request.match_info["name"]
    try:
        flow = server.flows.get(name)
    except KeyError:
        raise web.HTTPNotFound(reason=f"unknown flow {name}") from None
    return web.json_response(graph(flow))


@requires("admin")
@doc("Reload the flow directory now (as SIGHUP does); a broken file keeps its previous "
     "version live and shows in diagnostics", response={"type": "object"})
async def flows_reload(request: web.Request) -> web.Response:
    server = _server(request)
    server.reload_flows()
    return web.json_response({"flows": server.flows.names(), "diagnostics": await _lint(server)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/flows", flows)
    app.router.add_post("/api/flows/reload", flows_reload)
    app.router.add_get("/api/flows/{name}", flow_graph)

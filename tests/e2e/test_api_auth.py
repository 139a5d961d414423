"""Every API route against a real server: roles (401/403), bad bodies (400), unknown ids
(404), conflicts (409), the OpenAPI document, users, flows, hang-up and the sockets."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .server import RunningServer, start_server
from .uac import Uac, sdp
from .wsclient import DeskClient

pytestmark = pytest.mark.e2e

SUP, ADMIN = ("sue", "supervisor-pw-1"), ("ada", "admin-pw-12345")
NONE, AGENT, SUPERVISOR, ADMIN_ROLE = "none", "agent", "supervisor", "admin"

# (method, path, body, the least role that gets in; "public" for open routes)
ROUTES: list[tuple[str, str, Any, str]] = [
    ("GET", "/api/health", None, "public"),
    ("GET", "/api/openapi.json", None, "public"),
    ("GET", "/api/docs", None, "public"),
    ("POST", "/api/login", None, "public"),
    ("POST", "/api/logout", None, AGENT),
    ("GET", "/api/me", None, AGENT),
    ("GET", "/api/calls", None, SUPERVISOR),
    ("GET", "/api/calls/{call_id}", None, AGENT),
    ("GET", "/api/calls/{call_id}/why", None, SUPERVISOR),
    ("POST", "/api/calls/{call_id}/hangup", None, AGENT),
    ("POST", "/api/calls/{call_id}/notes", {"note": "x", "account": "1"}, AGENT),
    ("GET", "/api/queues", None, SUPERVISOR),
    ("GET", "/api/queues/config", None, SUPERVISOR),
    ("GET", "/api/agents", None, SUPERVISOR),
    ("GET", "/api/agents/{agent}", None, AGENT),
    ("POST", "/api/agents/{agent}/status", {"status": "not_ready", "reason": "lunch"}, AGENT),
    ("GET", "/api/reason-codes", None, AGENT),
    ("GET", "/api/history/{account}", None, SUPERVISOR),
    ("GET", "/api/users", None, ADMIN_ROLE),
    ("POST", "/api/users", {"name": "x"}, ADMIN_ROLE),
    ("DELETE", "/api/users/{name}", None, ADMIN_ROLE),
    ("GET", "/api/flows", None, SUPERVISOR),
    ("POST", "/api/flows/reload", None, ADMIN_ROLE),
    ("GET", "/api/flows/{name}", None, SUPERVISOR),
    ("GET", "/api/stats/history", None, SUPERVISOR),
    ("GET", "/api/wallboard", None, SUPERVISOR),
    ("GET", "/ws/agents/{agent}", None, AGENT),
    ("GET", "/ws/supervisor", None, SUPERVISOR),
]
RANK = {NONE: -1, AGENT: 0, SUPERVISOR: 1, ADMIN_ROLE: 2}
FILL = {"{call_id}": "nope", "{agent}": "1001", "{account}": "4711", "{name}": "nobody"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(tmp_path_factory.mktemp("auth"),
                          users={SUP[0]: ("supervisor", SUP[1]), ADMIN[0]: ("admin", ADMIN[1])})
    try:
        yield server
    finally:
        server.stop()
        assert "Traceback" not in server.log(), server.log()[-4000:]


@pytest.fixture(scope="module")
def tokens(srv: RunningServer) -> dict[str, str]:
    return {AGENT: srv.login("1001"), SUPERVISOR: srv.login(*SUP), ADMIN_ROLE: srv.login(*ADMIN)}


def _fill(path: str) -> str:
    for key, value in FILL.items():
        path = path.replace(key, value)
    return path


def test_openapi_lists_every_route_and_is_valid(srv: RunningServer) -> None:
    from openapi_spec_validator import validate

    status, spec = srv.api("GET", "/api/openapi.json", token=None)
    assert status == 200
    validate(spec)
    documented = {(m.upper(), p): op for p, ops in spec["paths"].items() for m, op in ops.items()}
    tested = {(m, p) for m, p, _, _ in ROUTES}
    assert tested | {("GET", "/metrics")} <= set(documented), tested - set(documented)
    for method, path, _, role in ROUTES:
        assert documented[method, path]["x-switchboard-role"] == role
    for (_method, path), op in documented.items():  # routes of other modules too
        assert op["x-switchboard-role"] in ("public", "agent", "supervisor", "admin"), path
        assert op["summary"] and op["responses"], path
    status, page = srv.api("GET", "/api/docs", token=None)
    assert status == 200 and "/static/docs.js" in page


def _expected(role_needed: str, caller: str) -> set[int]:
    if role_needed == "public" or RANK[caller] >= RANK[role_needed]:
        return {200, 201, 202, 400, 404, 409, 101}  # in: whatever the handler says
    return {401} if caller == NONE else {403}


@pytest.mark.parametrize("caller", [NONE, AGENT, SUPERVISOR])
def test_roles_on_every_route(srv: RunningServer, tokens: dict[str, str], caller: str) -> None:
    token = tokens.get(caller)
    for method, path, body, role in ROUTES:
        if path in ("/api/logout", "/api/login") or path.startswith("/ws/"):
            continue  # logout would end the shared session; login and sockets: below
        status, payload = srv.api(method, _fill(path), body, token=token)
        assert status in _expected(role, caller), (caller, method, path, status, payload)
        if status in (401, 403):
            assert payload["status"] == status and payload["error"]


def test_no_session_and_bad_tokens_get_401(srv: RunningServer) -> None:
    assert srv.api("GET", "/api/me", token="not-a-token")[0] == 401
    status, me = srv.api("GET", "/api/me", token=srv.login("1002"))
    assert status == 200 and me == {"name": "1002", "role": "agent", "agent": "1002"}


def test_agents_act_only_for_themselves(srv: RunningServer, tokens: dict[str, str]) -> None:
    agent = tokens[AGENT]
    assert srv.api("GET", "/api/agents/1001", token=agent)[0] == 200
    status, body = srv.api("GET", "/api/agents/1002", token=agent)
    assert status == 403 and "1001 may not act for agent 1002" in body["error"]
    assert srv.api("POST", "/api/agents/1002/status", {"status": "ready"}, token=agent)[0] == 403
    status, body = srv.api("POST", "/api/agents/1001/status",
                           {"status": "not_ready", "reason": "break"}, token=agent)
    assert status == 200 and body["reason"] == "break"
    status, body = srv.api("POST", "/api/agents/1002/status", {"status": "ready"},
                           token=tokens[SUPERVISOR])
    assert status == 200 and body["status"] == "ready"
    srv.api("POST", "/api/agents/1002/status", {"status": "logged_out"}, token=tokens[SUPERVISOR])


@pytest.mark.parametrize(("method", "path", "body", "raw", "status", "message"), [
    ("POST", "/api/login", None, b"{", 400, "JSON object"),
    ("POST", "/api/login", {"user": 1, "password": "x"}, None, 400, "user and password"),
    ("POST", "/api/agents/1001/status", {"status": "asleep"}, None, 400, "status must be"),
    ("POST", "/api/agents/9999/status", {"status": "ready"}, None, 404, "unknown agent"),
    ("POST", "/api/calls/nope/notes", {"note": "x", "account": 5}, None, 400, "account must be"),
    ("POST", "/api/calls/nope/notes", {"note": "x", "account": "1", "disposition": 3}, None,
     400, "disposition"),
    ("POST", "/api/calls/nope/hangup", None, None, 404, "no live call"),
    ("GET", "/api/flows/nope", None, None, 404, "unknown flow"),
    ("POST", "/api/users", {"name": "x", "role": "root", "password": "long enough pw"}, None,
     400, "role must be"),
    ("POST", "/api/users", {"name": "x", "role": "admin", "password": "short"}, None, 400,
     "10 or more"),
    ("POST", "/api/users", {"name": "sue", "role": "admin", "password": "long enough pw"}, None,
     409, "exists"),
    ("POST", "/api/users", [1], None, 400, "JSON object"),
    ("DELETE", "/api/users/nobody", None, None, 404, "unknown user"),
    ("POST", "/api/agents/1001/status", {"status": "logged_out"}, None, 200, ""),
])
def test_bad_requests(srv: RunningServer, tokens: dict[str, str], method: str, path: str,
                      body: Any, raw: bytes | None, status: int, message: str) -> None:
    got, payload = srv.api(method, path, body, raw, token=tokens[ADMIN_ROLE])
    assert got == status, payload
    if message:
        assert message in payload["error"], payload


def test_users_added_and_removed_by_an_admin(srv: RunningServer, tokens: dict[str, str]) -> None:
    status, body = srv.api("POST", "/api/users", {"name": "sam", "role": "supervisor",
                                                  "password": "sams-password"},
                           token=tokens[ADMIN_ROLE])
    assert status == 201 and body == {"name": "sam", "role": "supervisor"}
    sam = srv.login("sam", "sams-password")
    assert srv.api("GET", "/api/queues", token=sam)[0] == 200
    assert srv.api("GET", "/api/users", token=sam)[0] == 403
    status, listed = srv.api("GET", "/api/users", token=tokens[ADMIN_ROLE])
    assert {u["name"]: u["role"] for u in listed["users"]} == {
        "sue": "supervisor", "ada": "admin", "sam": "supervisor"}
    assert "sams-password" not in json.dumps(listed)
    assert srv.api("DELETE", "/api/users/sam", token=tokens[ADMIN_ROLE])[0] == 200
    assert srv.api("GET", "/api/queues", token=sam)[0] == 401  # the session went with the user


def test_failed_logins_are_logged_and_locked_out(srv: RunningServer) -> None:
    for _ in range(5):
        status, _ = srv.api("POST", "/api/login", {"user": "sue", "password": "guess"}, token=None)
        assert status == 401
    req = urllib.request.Request(f"http://127.0.0.1:{srv.http_port}/api/login", method="POST",
                                 data=json.dumps({"user": "sue", "password": SUP[1]}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=5)
        raise AssertionError("a locked user logged in")
    except urllib.error.HTTPError as exc:
        assert exc.code == 429 and int(exc.headers["Retry-After"]) > 0
    log = srv.log()
    assert "event=auth_failed service=http reason=bad_credentials user=sue ip=127.0.0.1" in log
    assert "event=auth_lockout service=http user=sue ip=127.0.0.1" in log
    assert "guess" not in log


def test_flows_list_graph_and_reload(srv: RunningServer, tokens: dict[str, str]) -> None:
    status, body = srv.api("GET", "/api/flows", token=tokens[SUPERVISOR])
    assert status == 200 and [f["name"] for f in body["flows"]] == ["main"]
    assert body["flows"][0]["dids"] == ["100", "101"]
    assert [d for d in body["diagnostics"] if d["severity"] == "error"] == []
    status, graph = srv.api("GET", "/api/flows/main", token=tokens[SUPERVISOR])
    assert status == 200 and graph["start"] == "welcome"
    nodes = {n["id"]: n for n in graph["nodes"]}
    assert nodes["to_billing"]["queue"] == "billing" and nodes["get_account"]["type"] == "collect"
    edges = {(e["from"], e["to"], e["label"]) for e in graph["edges"]}
    assert ("main_menu", "to_billing", "options.1") in edges
    assert ("get_account", "goodbye", "on_failure") in edges
    status, body = srv.api("POST", "/api/flows/reload", token=tokens[ADMIN_ROLE])
    assert status == 200 and body["flows"] == ["main"]


def test_queue_config_reason_codes_and_stats_history(srv: RunningServer,
                                                     tokens: dict[str, str]) -> None:
    status, body = srv.api("GET", "/api/queues/config", token=tokens[SUPERVISOR])
    assert status == 200 and body["queues"]["billing"]["overflow"] == "support"
    assert body["queues"]["billing"]["strategy"] == "longest_idle"
    status, body = srv.api("GET", "/api/reason-codes", token=tokens[AGENT])
    assert status == 200 and "lunch" in body["reason_codes"]
    status, body = srv.api("GET", "/api/stats/history", token=tokens[SUPERVISOR])
    assert status == 200 and body["interval_s"] == 10
    assert body["samples"] and set(body["samples"][0]["queues"]) == {"billing", "support"}
    status, now = srv.api("GET", "/api/wallboard", token=tokens[SUPERVISOR])
    assert status == 200 and {a["id"] for a in now["agents"]} == {"1001", "1002", "1003", "1004"}
    assert all("in_state_s" in a for a in now["agents"])


def test_hang_up_a_live_call(srv: RunningServer, tokens: dict[str, str]) -> None:
    uac = Uac(srv.sip_port)
    try:
        uac.invite(sdp(uac.rtp_port))
        uac.ack()
        uac.silence(0.5)
        status, live = srv.api("GET", "/api/calls", token=tokens[SUPERVISOR])
        (call,) = [c for c in live["calls"] if c["call_id"] == uac.call_id]
        assert call["state"] == "ivr"
        assert srv.api("GET", f"/api/calls/{uac.call_id}", token=tokens[AGENT])[0] == 403
        assert srv.api("POST", f"/api/calls/{uac.call_id}/hangup", token=tokens[AGENT])[0] == 403
        status, body = srv.api("POST", f"/api/calls/{uac.call_id}/hangup",
                               token=tokens[SUPERVISOR])
        assert status == 202 and body["by"] == "sue"
        uac.answer_bye(5)
    finally:
        uac.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ended = [c for c in srv.cdrs() if c["call_id"] == uac.call_id]
        if ended:
            break
        time.sleep(0.1)
    assert ended and ended[0]["end_reason"] == "api"


async def _ws_status(url: str) -> int:
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


def test_websockets_need_the_right_login(srv: RunningServer, tokens: dict[str, str]) -> None:
    import asyncio

    base = f"http://127.0.0.1:{srv.http_port}"
    agent, sup = tokens[AGENT], tokens[SUPERVISOR]
    cases = [("/ws/agents/1001", None, 401), ("/ws/agents/1001", agent, 101),
             ("/ws/agents/1002", agent, 403), ("/ws/agents/1002", sup, 101),
             ("/ws/agents/9999", sup, 404), ("/ws/supervisor", None, 401),
             ("/ws/supervisor", agent, 403), ("/ws/supervisor", sup, 101)]
    for path, token, want in cases:
        url = base + path + (f"?token={token}" if token else "")
        assert asyncio.run(_ws_status(url)) == want, (path, token)
    with DeskClient(base + "/ws/supervisor", token=sup) as board:
        hello = board.wait_for("hello")
        assert set(hello["queues"]) == {"billing", "support"} and len(hello["agents"]) == 4
        figures = board.wait_for("figures", timeout=6)
        assert "agents" in figures


def test_initial_admin_password_is_logged_once(tmp_path: Path) -> None:
    """No users file: a one-time admin password, logged once, hash stored in DATA_DIR."""
    server = start_server(tmp_path)
    try:
        password = server.admin_password()
        stored = (server.data_dir / "initial_admin.json").read_text()
        assert password not in stored and (server.data_dir / "initial_admin.json").stat().st_mode & 0o077 == 0
        assert server.api("GET", "/api/users", token=server.login("admin", password))[0] == 200
        assert server.log().count(password) == 1
    finally:
        server.stop()

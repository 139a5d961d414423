"""The ACD's HTTP API, customer history with wrap-up notes, and `switchboard why`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.sipp import sipp_path, sipp_uas

from .server import REPO, RunningServer
from .test_sipp_acd import caller, login
from .wsclient import DeskClient

pytestmark = pytest.mark.e2e


def api(server: RunningServer, method: str, path: str, body: Any = None,
        raw: bytes | None = None) -> tuple[int, Any]:
    """As the one-time admin of the demo."""
    return server.api(method, path, body, raw)


def test_agents_and_queues_api(server: RunningServer) -> None:
    status, body = api(server, "GET", "/api/agents")
    assert status == 200
    assert {a["id"]: (a["status"], a["registered"]) for a in body["agents"]} == {
        a: ("logged_out", False) for a in ("1001", "1002", "1003", "1004")}
    status, body = api(server, "POST", "/api/agents/1003/status", {"status": "ready"})
    assert status == 200 and body["status"] == "ready" and body["state"] == "idle"
    status, body = api(server, "POST", "/api/agents/1003/status",
                       {"status": "not_ready", "reason": "lunch"})
    assert status == 200 and body["reason"] == "lunch"
    status, body = api(server, "GET", "/api/queues")
    assert status == 200 and set(body["queues"]) == {"billing", "support"}
    assert body["queues"]["billing"]["waiting"] == 0


@pytest.mark.parametrize(("method", "path", "body", "raw", "status", "message"), [
    ("POST", "/api/agents/1001/status", None, b"{not json", 400, "JSON object"),
    ("POST", "/api/agents/1001/status", [1, 2], None, 400, "JSON object"),
    ("POST", "/api/agents/1001/status", {"status": "asleep"}, None, 400, "status must be"),
    ("POST", "/api/agents/1001/status", {"status": "ready", "reason": 5}, None, 400, "reason"),
    ("POST", "/api/agents/9999/status", {"status": "ready"}, None, 404, "unknown agent"),
    ("GET", "/api/agents/9999", None, None, 404, "unknown agent"),
    ("GET", "/api/calls/nope", None, None, 404, "no live call"),
    ("GET", "/api/calls/nope/why", None, None, 404, "no routing decisions"),
    ("POST", "/api/calls/nope/notes", {"note": ""}, None, 400, "note must be"),
    ("POST", "/api/calls/nope/notes", {"note": "hi"}, None, 400, "account"),
    ("POST", "/api/calls/nope/notes", {"note": "hi", "account": "1"}, None, 404, "no finished call"),
    ("GET", "/api/nothing-here", None, None, 404, "Not Found"),
])
def test_bad_api_calls_get_json_errors(server: RunningServer, method: str, path: str, body: Any,
                                       raw: bytes | None, status: int, message: str) -> None:
    got, payload = api(server, method, path, body, raw)
    assert got == status and message in payload["error"], payload


@pytest.mark.skipif(sipp_path() is None, reason="sipp is not installed")
def test_history_notes_pop_and_why(server: RunningServer, tmp_path: Path) -> None:
    desk_url = f"http://127.0.0.1:{server.http_port}/ws/agents/"
    with sipp_uas("agent_answer.xml", extra=["-key", "agent_hangs_up_ms", "0"]) as agents:
        login(server, agents, 2)
        first = caller(server, tmp_path, "4711", "2", 2000)
        status, _ = api(server, "POST", f"/api/calls/{first['call_id']}/notes",
                        {"account": "4711", "agent": first["agent"], "disposition": "resolved",
                         "note": "Reset the router"})
        assert status == 201
        status, hist = api(server, "GET", "/api/history/4711")
        assert status == 200 and hist["calls"][0]["call_id"] == first["call_id"]
        assert hist["calls"][0]["notes"][0]["note"] == "Reset the router"
        with DeskClient(desk_url + "1001") as d1, DeskClient(desk_url + "1002") as d2:
            second = caller(server, tmp_path, "4711", "2", 2000)
            offers = [m for d in (d1, d2) for _, m in d.of_type("offer")]
    (pop,) = [o for o in offers if o["call_id"] == second["call_id"]]
    assert pop["history"][0]["call_id"] == first["call_id"]
    assert pop["history"][0]["notes"][0]["disposition"] == "resolved"
    env = {**os.environ, "SWITCHBOARD_TOKEN": server.login()}
    why = subprocess.run([sys.executable, "-m", "switchboard", "why", second["call_id"],
                          "--http", f"127.0.0.1:{server.http_port}"], cwd=REPO,
                         capture_output=True, text=True, timeout=30, env=env)
    assert why.returncode == 0, why.stderr
    assert "queue=support strategy=longest_idle" in why.stdout
    assert second["agent"] in why.stdout
    missing = subprocess.run([sys.executable, "-m", "switchboard", "why", "no-such-call",
                              "--http", f"127.0.0.1:{server.http_port}"], cwd=REPO,
                             capture_output=True, text=True, timeout=30, env=env)
    assert missing.returncode == 1 and "no routing decisions" in missing.stderr

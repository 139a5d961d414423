"""SIPp agents' softphones REGISTER with digest authentication against the running server."""

from __future__ import annotations

import time

import pytest

from tests.sipp import SCENARIOS, run_sipp, sipp_path

from .server import RunningServer

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sipp_path() is None, reason="sipp (apt sip-tester) is not installed"),
]


def test_agents_register_and_unregister(server: RunningServer) -> None:
    result = run_sipp("agent_register.xml", server.sip, calls=4, rate=4,
                      inject=SCENARIOS / "agents.csv", timeout=30)
    assert result.ok and result.successful == 4, result.errors[-2000:]
    log = server.log()
    for agent in ("1001", "1002", "1003", "1004"):
        assert f"agent={agent} kind=reachable" in log
        assert f"agent={agent} kind=unreachable" in log
    assert server.health()["agents_registered"] == []


def test_wrong_password_and_unknown_user_are_refused_and_logged(server: RunningServer) -> None:
    result = run_sipp("agent_register_refused.xml", server.sip, calls=2, rate=2,
                      inject=SCENARIOS / "agent_wrong_password.csv", timeout=30)
    assert result.ok and result.successful == 2, result.errors[-2000:]
    time.sleep(0.2)
    log = server.log()
    assert "event=auth_failed reason=bad_password user=1001 ip=127.0.0.1" in log
    assert "event=auth_failed reason=unknown_user user=9999 ip=127.0.0.1" in log
    assert "not-the-password" not in log and "whatever-it-is" not in log
    assert server.health()["agents_registered"] == []


def test_registered_agent_shows_in_health(server: RunningServer) -> None:
    # register for 2 s (the scenario's pause) and look while it is registered
    import threading

    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(run_sipp(
        "agent_register.xml", server.sip, calls=1, inject=SCENARIOS / "agents.csv", timeout=30)))
    t.start()
    deadline = time.monotonic() + 5
    seen: list[str] = []
    while time.monotonic() < deadline and not seen:
        seen = server.health()["agents_registered"]
        time.sleep(0.05)
    t.join(30)
    assert seen == ["1001"]

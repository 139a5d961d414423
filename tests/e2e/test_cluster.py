"""Two `switchboard run` processes on one real redis-server (docs/cluster.md).

- A call answered by node A is offered to an agent registered through node B, bridged,
  and both nodes' wallboards show the same queue figures.
- The router node is killed (-9) while an agent's phone rings with its call: the other
  node takes the router over, logs the call LOST in its queue log, and the agent is free
  again well before the offer's ring timeout would have ended.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.redis_server import redis_path, redis_server
from tests.sipp import SCENARIOS, sipp_command, sipp_path, sipp_uas

from .server import RunningServer, free_port, start_server
from .test_sipp_acd import caller, login
from .wsclient import DeskClient

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sipp_path() is None, reason="sipp (apt sip-tester) is not installed"),
    pytest.mark.skipif(redis_path() is None,
                       reason="redis-server (apt redis-server) is not installed"),
]

RING_TIMEOUT = 15.0  # config/queues.yaml, support


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    with redis_server(tmp_path) as url:
        yield url


def wait_until(what: str, check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def node(tmp_path: Path, name: str, url: str) -> RunningServer:
    (tmp_path / name).mkdir()
    return start_server(tmp_path / name, args=["--store", url, "--node-id", name])


def start_caller(server: RunningServer, tmp_path: Path, keys: str) -> subprocess.Popen[bytes]:
    """A SIPp caller in the background: `keys` is its injection line (account#;menu;hold ms)."""
    csv = tmp_path / "caller.csv"
    csv.write_text(f"SEQUENTIAL\n{keys}\n")
    return subprocess.Popen(sipp_command("ivr_rfc2833.xml", server.sip, inject=csv, timeout=60),
                            cwd=SCENARIOS, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop_caller(sipp: subprocess.Popen[bytes] | None) -> None:
    if sipp is not None and sipp.poll() is None:
        os.killpg(sipp.pid, signal.SIGKILL)
        sipp.wait(5)


def agent_state(server: RunningServer, agent: str) -> dict[str, Any]:
    status, body = server.api("GET", f"/api/agents/{agent}")
    assert status == 200, body
    return dict(body)


def queue_log(server: RunningServer) -> list[dict[str, Any]]:
    path = server.data_dir / "queue_log.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_call_on_one_node_is_bridged_to_an_agent_registered_on_the_other(
        redis_url: str, tmp_path: Path) -> None:
    a = node(tmp_path, "a", redis_url)
    b = node(tmp_path, "b", redis_url)
    try:
        wait_until("a router", lambda: "event=router_elected node=a" in a.log())
        desk_url = f"http://127.0.0.1:{b.http_port}/ws/agents/"
        with sipp_uas("agent_answer.xml", extra=["-key", "agent_hangs_up_ms", "0",
                                                 "-m", "1"]) as agents, \
                DeskClient(desk_url + "1001") as desk1, DeskClient(desk_url + "1002") as desk2:
            login(b, agents, 2)  # 1001 and 1002 register and dial *50 through node B
            for agent in ("1001", "1002"):  # node A hears of it through Redis
                wait_until(f"{agent} ready on A", lambda agent=agent: agent_state(a, agent)
                           .get("status") == "ready")
            record = caller(a, tmp_path, "4711", "2", 3000)
            agents.proc.wait(15)
            assert agents.proc.returncode == 0, agents.errors()
            # the desktops are on node B, the call on node A: the pop still reaches them
            desk = desk1 if record["agent"] == "1001" else desk2
            ((_, pop),) = desk.of_type("offer")
            assert pop["call_id"] == record["call_id"] and pop["account"] == "4711"
            assert desk.wait_for("answered")["call_id"] == record["call_id"]
            assert desk.wait_for("ended")["by"] == "caller"
        assert record["queue"] == "support" and record["agent"] in ("1001", "1002")
        assert record["end_reason"] == "caller_hangup" and record["bridged_at"]
        def events() -> list[str]:  # the router's last lines come back asynchronously
            return [e["event"] for e in queue_log(a) if e["call_id"] == record["call_id"]]
        wait_until("the call's queue log", lambda: "COMPLETECALLER" in events(), timeout=5)
        assert events()[0] == "ENTERQUEUE" and "CONNECT" in events()

        def same_figures() -> bool:
            fa, fb = a.api("GET", "/api/wallboard")[1], b.api("GET", "/api/wallboard")[1]
            qa, qb = fa["queues"]["support"], fb["queues"]["support"]
            def agents(f: dict[str, Any]) -> list[tuple[Any, ...]]:
                return [(x["state"], x["status"], x["registered"]) for x in f["agents"]]
            return bool(qa == qb and qa["answered"] == 1 and agents(fa) == agents(fb))
        wait_until("the same wallboard on both nodes", same_figures, timeout=10)
        status, why = a.api("GET", f"/api/calls/{record['call_id']}/why")  # A is the router
        assert status == 200 and why["decisions"], why
        status, why = b.api("GET", f"/api/calls/{record['call_id']}/why")
        assert status == 404 and "node a" in str(why), why
        cluster_b = b.api("GET", "/api/health", token=None)[1]["cluster"]
        assert (cluster_b["node"], cluster_b["router"], cluster_b["errors"]) == ("b", "a", 0)
        metrics = b.api("GET", "/metrics", token=None)[1]
        assert 'switchboard_cluster_router{node="b"} 0' in metrics
        assert 'switchboard_cluster_router{node="a"} 1' in a.api("GET", "/metrics", token=None)[1]
    finally:
        a.stop()
        b.stop()
    assert "Traceback" not in a.log() + b.log()


def test_router_killed_mid_offer_frees_the_agent_and_logs_the_call_lost(
        redis_url: str, tmp_path: Path) -> None:
    a = node(tmp_path, "a", redis_url)
    b = node(tmp_path, "b", redis_url)
    sipp = None
    try:
        wait_until("a router", lambda: "event=router_elected node=a" in a.log())
        with sipp_uas("agent_no_answer.xml") as phone:
            login(b, phone, 1)  # 1001 only (support); its phone rings and never answers
            wait_until("1001 ready on A", lambda: agent_state(a, "1001").get("status") == "ready")
            sipp = start_caller(a, tmp_path, "4711#;2;30000")
            offer = wait_until("the offer to 1001", lambda: next(
                (line for line in a.log().splitlines()
                 if "event=offer " in line and "agent=1001" in line), None), timeout=30)
            call_id = offer.split("call=", 1)[1].split()[0]
            wait_until("1001 reserved on B too",
                       lambda: agent_state(b, "1001")["state"] == "reserved", timeout=5)
            os.kill(a.proc.pid, signal.SIGKILL)
            killed = time.monotonic()
            a.proc.wait(5)
            wait_until("node B takes the router over",
                       lambda: "event=router_elected node=b" in b.log(), timeout=10)
            wait_until("1001 free again", lambda: agent_state(b, "1001")["state"] == "idle",
                       timeout=RING_TIMEOUT)
            freed_after = time.monotonic() - killed
            assert freed_after < RING_TIMEOUT, freed_after
            lost = wait_until("a LOST line", lambda: [
                e for e in queue_log(b) if e["call_id"] == call_id and e["event"] == "LOST"])
            assert lost[0]["data"] == {"node": "a", "reason": "node_down"}
            assert agent_state(b, "1001")["status"] == "ready"
    finally:
        stop_caller(sipp)
        a.stop()
        b.stop()
    assert "Traceback" not in b.log()


def test_a_bad_store_url_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "switchboard", "run", "--store", "http://x"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "expected redis://HOST:PORT/DB" in result.stderr
    port = free_port(socket.SOCK_STREAM)  # nothing listens there
    sip, http = free_port(), free_port(socket.SOCK_STREAM)
    result = subprocess.run([sys.executable, "-m", "switchboard", "run", "--store",
                             f"redis://127.0.0.1:{port}/0", "--sip", f"127.0.0.1:{sip}",
                             "--http", f"127.0.0.1:{http}", "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and "cannot reach Redis" in result.stdout + result.stderr


def test_a_talking_call_survives_the_router_and_is_adopted_by_the_next(
        redis_url: str, tmp_path: Path) -> None:
    """The router (A) dies while B's caller talks to an agent: B takes the router over,
    adopts the call with its agent (still on the call, not offered anything else), and
    the call ends normally, into wrap-up."""
    a = node(tmp_path, "a", redis_url)
    b = node(tmp_path, "b", redis_url)
    sipp = None
    try:
        wait_until("a router", lambda: "event=router_elected node=a" in a.log())
        with sipp_uas("agent_answer.xml", extra=["-key", "agent_hangs_up_ms", "0",
                                                 "-m", "1"]) as agents:
            login(b, agents, 1)  # 1001
            wait_until("1001 ready", lambda: agent_state(a, "1001").get("status") == "ready")
            sipp = start_caller(b, tmp_path, "4711#;2;9000")  # talks 9 s after the menu
            wait_until("the bridge", lambda: "event=bridged" in b.log(), timeout=30)
            os.kill(a.proc.pid, signal.SIGKILL)
            a.proc.wait(5)
            wait_until("node B takes the router over",
                       lambda: "event=router_elected node=b" in b.log(), timeout=10)
            wait_until("the call handed over", lambda: "event=resync epoch=2 calls=1" in b.log())
            wait_until("1001 on the adopted call",
                       lambda: agent_state(b, "1001")["state"] == "on_call", timeout=5)
            sipp.wait(40)
            assert sipp.returncode == 0
            wait_until("wrap-up after the adopted call",
                       lambda: agent_state(b, "1001")["state"] == "wrap_up", timeout=10)
        (record,) = [c for c in b.cdrs() if c["did"] == "100"]
        assert record["agent"] == "1001" and record["end_reason"] == "caller_hangup"
        events = [e["event"] for e in queue_log(b) if e["call_id"] == record["call_id"]]
        assert "CONNECT" in events and events[-1] in ("COMPLETECALLER", "WRAPUPSTART"), events
        assert not [e for e in queue_log(b) if e["event"] == "LOST"]
    finally:
        stop_caller(sipp)
        a.stop()
        b.stop()
    assert "Traceback" not in b.log()

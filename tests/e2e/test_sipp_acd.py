"""Caller -> IVR -> queue -> agent, with SIPp agents that REGISTER, log in with *50 and answer."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.sipp import SCENARIOS, SippServer, run_sipp, sipp_path, sipp_uas

from .server import RunningServer
from .wsclient import DeskClient

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sipp_path() is None, reason="sipp (apt sip-tester) is not installed"),
]


def login(server: RunningServer, agents: SippServer, count: int) -> None:
    """Agents 1001.. register with their Contact at the answering SIPp and dial *50."""
    result = run_sipp("agent_login.xml", server.sip, calls=count, rate=10,
                      inject=SCENARIOS / "agent_login.csv",
                      extra=["-key", "contact_port", str(agents.port)], timeout=30)
    assert result.ok and result.successful == count, result.errors[-2000:]


def queue_log(server: RunningServer, call_id: str) -> list[dict[str, Any]]:
    path = server.data_dir / "queue_log.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return [e for e in lines if e["call_id"] == call_id]


def caller(server: RunningServer, tmp_path: Path, account: str, choice: str, hold_ms: int) -> dict[str, Any]:
    csv = tmp_path / "caller.csv"
    csv.write_text(f"SEQUENTIAL\n{account}#;{choice};{hold_ms}\n")
    before = {c["call_id"] for c in server.cdrs()}
    result = run_sipp("ivr_rfc2833.xml", server.sip, calls=1, inject=csv, timeout=60)
    assert result.ok and result.successful == 1, (result.errors[-2000:], server.log()[-3000:])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        new = [c for c in server.cdrs() if c["call_id"] not in before and c["did"] == "100"]
        if new:
            return new[0]
        time.sleep(0.1)
    raise AssertionError("no CDR for the caller")


def invite_times(trace: Path) -> list[float]:
    """Wall-clock arrival of each INVITE in a SIPp -trace_msg file."""
    times, stamp = [], None
    for line in trace.read_text(errors="replace").splitlines():
        if line.startswith("-----") and line.strip("- ")[:2] == "20":
            stamp = datetime.strptime(line.strip("- "), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        elif line.startswith("INVITE ") and stamp is not None:
            times.append(stamp)
    return times


def test_caller_is_bridged_to_a_ready_agent_who_gets_the_pop(server: RunningServer,
                                                              tmp_path: Path) -> None:
    trace = tmp_path / "agent_messages.log"
    extra = ["-key", "agent_hangs_up_ms", "0", "-m", "1", "-trace_msg", "-message_file", str(trace)]
    desk_url = f"http://127.0.0.1:{server.http_port}/ws/agents/"
    with sipp_uas("agent_answer.xml", extra=extra) as agents, \
            DeskClient(desk_url + "1001") as desk1, DeskClient(desk_url + "1002") as desk2:
        login(server, agents, 2)  # 1001 and 1002: the support queue
        record = caller(server, tmp_path, "12345678", "2", 4000)
        agents.proc.wait(10)  # the agent's leg ended with our BYE: SIPp completed its call
        assert agents.proc.returncode == 0, agents.errors()
        assert agents.errors() == "", agents.errors()  # every pop header was present
        desk = desk1 if desk1.of_type("offer") else desk2
        ((popped_at, pop),) = desk.of_type("offer")
        assert pop["call_id"] == record["call_id"] and pop["account"] == "12345678"
        assert pop["vars"] == {"account": "12345678", "choice": "2"} and pop["queue"] == "support"
        # the server wrote the pop to the desktop's socket before the INVITE left: the time
        # it logged after the write precedes SIPp's receipt of the INVITE (same clock)
        (rang_at,) = invite_times(trace)
        (sent_line,) = [line for line in server.log().splitlines()
                        if "event=pop_sent" in line and record["call_id"] in line]
        sent_at = float(sent_line.rsplit("at=", 1)[1])
        assert "desktops=1" in sent_line and sent_at <= rang_at, (sent_line, rang_at)
        assert popped_at - sent_at < 1.0  # and the desktop really received it
        assert desk.wait_for("answered")["call_id"] == record["call_id"]
        assert desk.wait_for("ended")["by"] == "caller"
    assert record["queue"] == "support" and record["agent"] in ("1001", "1002")
    assert record["vars"] == {"account": "12345678", "choice": "2"}
    assert record["bridged_at"] and record["end_reason"] == "caller_hangup"
    events = [e["event"] for e in queue_log(server, record["call_id"])]
    assert events[0] == "ENTERQUEUE" and "OFFER" in events and "CONNECT" in events
    assert events.index("CONNECT") < events.index("COMPLETECALLER") < events.index("WRAPUPSTART")
    assert "event=feature_code code=*50 agent=1001" in server.log()


def test_agent_hangs_up_first(server: RunningServer, tmp_path: Path) -> None:
    with sipp_uas("agent_answer.xml", extra=["-key", "agent_hangs_up_ms", "1500"]) as agents:
        login(server, agents, 2)
        record = caller(server, tmp_path, "4711", "2", 0)  # 0: the caller waits for our BYE
    assert record["end_reason"] == "agent_hangup" and record["agent"] in ("1001", "1002")
    events = [e["event"] for e in queue_log(server, record["call_id"])]
    assert events.index("CONNECT") < events.index("COMPLETEAGENT")


def test_feature_code_from_an_unregistered_phone_is_refused(server: RunningServer) -> None:
    result = run_sipp("unknown_did.xml", server.sip, calls=1, service="*50", timeout=20)
    # unknown_did.xml expects 404; a refusal is 403, so SIPp counts the call failed
    assert result.failed == 1
    assert "event=feature_refused code=*50" in server.log()


def test_ring_no_answer_goes_to_the_next_agent(server: RunningServer, tmp_path: Path) -> None:
    """RONA: 1001's phone rings past the ring timeout, is cancelled, 1001 goes not ready
    ('no answer') and the caller, still at the head of the queue, is offered to 1002."""
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    lines = (SCENARIOS / "agent_login.csv").read_text().splitlines()
    one.write_text(f"SEQUENTIAL\n{lines[1]}\n")
    two.write_text(f"SEQUENTIAL\n{lines[2]}\n")
    with sipp_uas("agent_no_answer.xml", extra=["-m", "1"]) as silent, \
            sipp_uas("agent_answer.xml", extra=["-key", "agent_hangs_up_ms", "0"]) as answering:
        for csv, phone in ((one, silent), (two, answering)):
            result = run_sipp("agent_login.xml", server.sip, calls=1, inject=csv,
                              extra=["-key", "contact_port", str(phone.port)], timeout=30)
            assert result.ok, result.errors[-2000:]
            time.sleep(0.3)  # 1001 has been idle longest: it gets the first offer
        record = caller(server, tmp_path, "4711", "2", 25000)
        silent.proc.wait(10)
        assert silent.proc.returncode == 0, silent.errors()
    assert record["agent"] == "1002" and record["end_reason"] == "caller_hangup"
    events = [(e["event"], e["agent"]) for e in queue_log(server, record["call_id"])]
    assert ("RINGNOANSWER", "1001") in events and ("CONNECT", "1002") in events
    _, agent = server.api("GET", "/api/agents/1001")
    assert agent["status"] == "not_ready" and agent["reason"] == "no answer"


def test_caller_abandons_while_queued(server: RunningServer, tmp_path: Path) -> None:
    record = caller(server, tmp_path, "4711", "1", 3000)  # nobody is logged in to billing
    assert record["queue"] == "billing" and record["agent"] is None
    assert record["end_reason"] == "caller_hangup"
    events = [e["event"] for e in queue_log(server, record["call_id"])]
    assert events[0] == "ENTERQUEUE" and events[-1] == "ABANDON"


def acd_config(tmp: Path, billing_strategy: str, announce_every: int = 30) -> Path:
    """The demo config with the billing queue's strategy (and announcement period) changed."""
    from .server import REPO

    queues = (REPO / "config/queues.yaml").read_text().replace(
        "  billing:\n    strategy: longest_idle", f"  billing:\n    strategy: {billing_strategy}", 1)
    queues = queues.replace("announce_frequency: 30",
                            f"announce_frequency: {announce_every}\n    min_announce_gap: 0")
    (tmp / "queues.yaml").write_text(queues)
    cfg = (REPO / "config/switchboard.yaml").read_text()
    cfg = cfg.replace("prompts: ../prompts", f"prompts: {REPO / 'prompts'}")
    cfg = cfg.replace("flows: flows", f"flows: {REPO / 'config/flows'}")
    cfg = cfg.replace("agents: agents.yaml", f"agents: {REPO / 'config/agents.yaml'}")
    (tmp / "switchboard.yaml").write_text(cfg)
    return tmp / "switchboard.yaml"


def test_skills_routing_picks_the_most_skilled_agent(tmp_path: Path) -> None:
    """billing needs skill billing>=1: 1003 has 8, 1004 has 6. 1004 logs in first (longest
    idle would pick it); the skills strategy picks 1003."""
    from .server import start_server

    srv = start_server(tmp_path, config=acd_config(tmp_path, "skills"))
    lines = (SCENARIOS / "agent_login.csv").read_text().splitlines()
    try:
        with sipp_uas("agent_answer.xml", extra=["-key", "agent_hangs_up_ms", "0"]) as agents:
            for line in (lines[4], lines[3]):  # 1004, then 1003
                csv = tmp_path / "agent.csv"
                csv.write_text(f"SEQUENTIAL\n{line}\n")
                result = run_sipp("agent_login.xml", srv.sip, calls=1, inject=csv,
                                  extra=["-key", "contact_port", str(agents.port)], timeout=30)
                assert result.ok, result.errors[-2000:]
                time.sleep(0.3)
            record = caller(srv, tmp_path, "4711", "1", 2000)
        assert record["queue"] == "billing" and record["agent"] == "1003"
        _, body = srv.api("GET", f"/api/calls/{record['call_id']}/why")
        why = "\n".join(body["decisions"])
        assert "strategy=skills" in why and "billing>=1" in why
    finally:
        srv.stop()


def test_history_survives_a_restart(tmp_path: Path) -> None:
    from .server import start_server

    srv = start_server(tmp_path)
    try:
        first = caller(srv, tmp_path, "98765", "2", 1000)
    finally:
        srv.stop()
    srv = start_server(tmp_path)  # same data dir
    try:
        calls = srv.api("GET", "/api/history/98765")[1]["calls"]
        assert [c["call_id"] for c in calls] == [first["call_id"]]
        assert calls[0]["queue"] == "support" and calls[0]["outcome"] == "caller_hangup"
    finally:
        srv.stop()


def test_all_of_an_agents_phones_ring_and_the_first_answer_wins(server: RunningServer,
                                                                 tmp_path: Path) -> None:
    """1001 registers two phones: both ring; one answers, the other is cancelled."""
    csv = tmp_path / "one.csv"
    csv.write_text("SEQUENTIAL\n" + (SCENARIOS / "agent_login.csv").read_text().splitlines()[1] + "\n")
    with sipp_uas("agent_no_answer.xml", extra=["-m", "1"]) as desk_phone, \
            sipp_uas("agent_answer.xml", extra=["-key", "agent_hangs_up_ms", "0", "-m", "1"]) as mobile:
        for phone in (desk_phone, mobile):
            result = run_sipp("agent_login.xml", server.sip, calls=1, inject=csv,
                              extra=["-key", "contact_port", str(phone.port)], timeout=30)
            assert result.ok, result.errors[-2000:]
        record = caller(server, tmp_path, "4711", "2", 3000)
        desk_phone.proc.wait(10)  # its INVITE was cancelled when the other phone answered
        mobile.proc.wait(10)
        assert desk_phone.proc.returncode == 0, desk_phone.errors()
        assert mobile.proc.returncode == 0, mobile.errors()
    assert record["agent"] == "1001" and record["end_reason"] == "caller_hangup"


def test_caller_hanging_up_while_the_agent_rings_cancels_the_offer(server: RunningServer,
                                                                     tmp_path: Path) -> None:
    csv = tmp_path / "one.csv"
    csv.write_text("SEQUENTIAL\n" + (SCENARIOS / "agent_login.csv").read_text().splitlines()[1] + "\n")
    with sipp_uas("agent_no_answer.xml", extra=["-m", "1"]) as phone:
        result = run_sipp("agent_login.xml", server.sip, calls=1, inject=csv,
                          extra=["-key", "contact_port", str(phone.port)], timeout=30)
        assert result.ok, result.errors[-2000:]
        record = caller(server, tmp_path, "4711", "2", 3000)  # ring timeout is 15 s
        phone.proc.wait(10)
        assert phone.proc.returncode == 0, phone.errors()  # it got the CANCEL
    assert record["agent"] is None and record["end_reason"] == "caller_hangup"
    events = [e["event"] for e in queue_log(server, record["call_id"])]
    assert "OFFER" in events and "ABANDON" in events


def test_position_and_wait_are_announced_while_queued(tmp_path: Path) -> None:
    from .server import start_server

    srv = start_server(tmp_path, config=acd_config(tmp_path, "longest_idle", announce_every=3))
    try:
        record = caller(srv, tmp_path, "4711", "1", 8000)  # nobody answers billing
        announced = [line for line in srv.log().splitlines()
                     if "event=announce" in line and record["call_id"] in line]
        assert len(announced) >= 2, srv.log()[-2000:]
        assert "position=1" in announced[0] and "queue=billing" in announced[0]
    finally:
        srv.stop()

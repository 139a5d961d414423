"""SIPp callers against the running server: the CDR must show exactly what was keyed."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sipp import SCENARIOS, run_sipp, sipp_path

from .server import RunningServer, start_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sipp_path() is None, reason="sipp (apt sip-tester) is not installed"),
]

ACCOUNTS = SCENARIOS / "ivr_accounts.csv"
EXPECTED = [("4711", "1", "to_billing"), ("12345678", "2", "to_support"), ("1122", "1", "to_billing")]
FULL_PATH = ["welcome", "get_account", "readback", "main_menu"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_server(tmp_path_factory.mktemp("sipp"))
    try:
        yield server
    finally:
        server.stop()
        assert "Traceback" not in server.log(), server.log()[-4000:]


def run_calls(srv: RunningServer, scenario: str, count: int, **kw: Any) -> list[dict[str, Any]]:
    """Run SIPp and return the CDRs of exactly its calls (matched by SIPp's Call-ID pid)."""
    before = len(srv.cdrs())
    result = run_sipp(scenario, srv.sip, calls=count, timeout=kw.pop("timeout", 60), **kw)
    assert result.ok and result.successful == count, (result.stdout[-2000:], result.errors[-3000:])
    records = srv.wait_cdrs(before + count)[before:]
    return sorted(records, key=lambda r: int(r["call_id"].split("-")[0]))


def assert_ivr(records: list[dict[str, Any]]) -> None:
    assert len(records) == len(EXPECTED)
    for record, (account, choice, queue_node) in zip(records, EXPECTED, strict=True):
        assert record["vars"] == {"account": account, "choice": choice}, record
        assert record["path"] == [*FULL_PATH, queue_node], record
        assert record["end_reason"] == "caller_hangup"
        assert record["queue"] == ("billing" if choice == "1" else "support")
        assert record["answered_at"] and record["ended_at"] >= record["answered_at"]


def test_rfc4733_pcaps_udp(srv: RunningServer) -> None:
    assert_ivr(run_calls(srv, "ivr_rfc2833.xml", 3, rate=3, concurrency=3, inject=ACCOUNTS))


def test_rfc4733_pcaps_tcp(srv: RunningServer) -> None:
    assert_ivr(run_calls(srv, "ivr_rfc2833.xml", 3, rate=3, concurrency=3, inject=ACCOUNTS,
                         transport="t1"))


def test_sipp_bundled_dtmf_pcaps(srv: RunningServer) -> None:
    """SIPp's own dtmf_2833_N.pcap: fixed timestamps and SSRC for every replay."""
    if not Path("/usr/share/sip-tester/dtmf_2833_1.pcap").exists():
        pytest.skip("SIPp's bundled pcaps are not at /usr/share/sip-tester")
    assert_ivr(run_calls(srv, "ivr_rfc2833_bundled.xml", 3, rate=3, concurrency=3,
                         inject=ACCOUNTS))


def test_sip_info_dtmf(srv: RunningServer) -> None:
    assert_ivr(run_calls(srv, "ivr_info.xml", 3, rate=3, concurrency=3, inject=ACCOUNTS))


def test_sipp_play_dtmf(srv: RunningServer) -> None:
    """play_dtmf: telephone-event on PT 96 with a new SSRC for every key string."""
    if not (SCENARIOS / "ivr_play_dtmf.xml").exists():
        pytest.skip("no play_dtmf scenario")
    version = subprocess.run([sipp_path() or "sipp", "-v"], capture_output=True, text=True).stdout
    if "PCAP" not in version:
        pytest.skip("this SIPp has no PCAP play")
    assert_ivr(run_calls(srv, "ivr_play_dtmf.xml", 3, rate=3, concurrency=3, inject=ACCOUNTS))


def test_caller_hangs_up_early(srv: RunningServer) -> None:
    (record,) = run_calls(srv, "caller_hangs_up.xml", 1)
    assert record["end_reason"] == "caller_hangup"
    assert record["path"][:1] == ["welcome"] and record["vars"] == {}


def test_server_hangs_up_after_three_timeouts(srv: RunningServer) -> None:
    (record,) = run_calls(srv, "server_hangs_up.xml", 1, timeout=60)
    assert record["end_reason"].startswith("flow_hangup")
    assert record["path"] == ["welcome", "get_account", "goodbye", "bye"]
    assert record["vars"] == {}


def test_cancel_while_ringing_gives_487(srv: RunningServer) -> None:
    (record,) = run_calls(srv, "cancel_before_answer.xml", 1, service="101")
    assert record["end_reason"] == "caller_cancel"
    assert record["answered_at"] is None


def test_cancel_against_immediate_answer_race(srv: RunningServer) -> None:
    """The CANCEL/200 race (§9.2): either outcome is correct, the call must end cleanly."""
    (record,) = run_calls(srv, "cancel_before_answer.xml", 1, service="100")
    assert record["end_reason"] in ("caller_cancel", "caller_hangup")


def test_unknown_did_gets_404(srv: RunningServer) -> None:
    (record,) = run_calls(srv, "unknown_did.xml", 1, service="555")
    assert record["end_reason"] == "not_found" and record["flow"] is None


def test_options(srv: RunningServer) -> None:
    result = run_sipp("options.xml", srv.sip, calls=2, timeout=20)
    assert result.ok and result.successful == 2


def test_server_state_returns_to_zero(srv: RunningServer) -> None:
    """After every scenario above: no call, dialog or RTP port left behind."""
    health = srv.health()
    assert health["calls"] == 0 and health["rtp_ports_in_use"] == 0
    assert health["sip_dialogs"] == 0
    assert re.fullmatch(r"\d+", str(health["media_clock"]["ticks"]))


def _thread_nice(pid: int) -> dict[str, list[int]]:
    """{thread name: [nice value, ...]} of a process's threads, from /proc."""
    out: dict[str, list[int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        name = stat[stat.index("(") + 1: stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        out.setdefault(name, []).append(int(fields[16]))  # field 19 of stat(5): nice
    return out


def test_the_media_thread_gets_the_core_first(srv: RunningServer) -> None:
    """The demo config: the media thread asks for a short slice and stays at the nice value
    it was started with; every other thread of the server runs at nice 5 or more."""
    clock = srv.health()["media_clock"]
    assert clock["engine"] == "native" and clock["background_nice"] == 5, clock
    assert clock["slice_us"] in (0, 100), clock  # 0: a kernel that refused the request
    assert clock["coalesce_us"] == 0, clock  # off unless configured
    threads = _thread_nice(srv.proc.pid)
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    (media,) = threads.pop("sb-media")
    assert media == ours, threads
    others = [n for values in threads.values() for n in values]
    assert others and all(n >= max(5, ours) for n in others), threads

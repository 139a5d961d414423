"""The SIPp harness and caller scenarios, exercised against SIPp UAS stand-ins.

None of these need the Switchboard server: the UAS side is SIPp's built-in
``uas`` or one of the ``stub_uas*.xml`` scenarios.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

try:
    from tests import sipp
except ImportError:  # tests/ collected as a rootdir-less directory
    import sipp  # type: ignore[no-redef]

pytestmark = pytest.mark.skipif(sipp.sipp_path() is None, reason="sipp is not installed")

BUNDLED = Path("/usr/share/sip-tester/dtmf_2833_1.pcap")


def _inject(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "inject.csv"
    path.write_text("SEQUENTIAL\n" + "\n".join(rows) + "\n")
    return path


def _assert_ok(result: sipp.SippResult, calls: int = 1) -> None:
    detail = f"rc={result.returncode}\n{result.errors}\n{result.stderr[-2000:]}"
    assert result.returncode == 0, detail
    assert (result.successful, result.failed) == (calls, 0), detail


def test_free_udp_and_tcp_ports_are_bindable() -> None:
    for kind, port in ((socket.SOCK_DGRAM, sipp.free_udp_port()),
                       (socket.SOCK_STREAM, sipp.free_tcp_port())):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", port))


def test_free_port_pair_is_even_and_both_free() -> None:
    base = sipp.free_port_pair()
    assert base % 2 == 0
    for port in (base, base + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", port))


def test_media_ports_come_from_above_the_ephemeral_range_in_turn() -> None:
    """No socket bound to port 0 can take them before SIPp binds; a slot whose base is
    held is skipped; each slot has room for 128 calls' auto_media_port ports."""
    high = sipp._ephemeral_range()[1]
    if 65536 - high < 2 * sipp.SLOT:
        pytest.skip(f"the ephemeral range ends at {high}: no room above it")
    first = sipp.free_port_pair()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", first))
        bases = [sipp.free_port_pair() for _ in range(3)]
    for base in (first, *bases):
        assert base > high and base % sipp.SLOT == 0 and base + 4 * 127 + 3 <= 65535
    assert first not in bases and len(set(bases)) == 3


def test_options_ping_and_wait_for_sip(tmp_path: Path) -> None:
    dead = sipp.free_udp_port()
    assert not sipp.sip_options_ping("127.0.0.1", dead, timeout=0.3)
    with pytest.raises(TimeoutError):
        sipp.wait_for_sip("127.0.0.1", dead, timeout=0.5)
    with sipp.sipp_uas("stub_uas_options.xml") as uas:
        sipp.wait_for_sip("127.0.0.1", uas.port, timeout=5)


def test_options_scenario(tmp_path: Path) -> None:
    with sipp.sipp_uas("stub_uas_options.xml") as uas:
        result = sipp.run_sipp("options.xml", uas.target, timeout=10, logdir=tmp_path)
    _assert_ok(result)
    assert "OPTIONS sip:100@" in result.messages
    assert result.stat_csv is not None


@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_caller_hangs_up_against_builtin_uas(tmp_path: Path, transport: str) -> None:
    with sipp.sipp_uas("uas", transport=transport) as uas:
        result = sipp.run_sipp("caller_hangs_up.xml", uas.target, transport=transport,
                               timeout=15, logdir=tmp_path)
    _assert_ok(result)
    assert "BYE sip:" in result.messages


def test_several_calls_counted(tmp_path: Path) -> None:
    with sipp.sipp_uas("uas") as uas:
        result = sipp.run_sipp("caller_hangs_up.xml", uas.target, calls=3, rate=20,
                               concurrency=3, timeout=15, logdir=tmp_path)
    _assert_ok(result, calls=3)


def test_unknown_did_gets_404_and_acks(tmp_path: Path) -> None:
    with sipp.sipp_uas("stub_uas_404.xml") as uas:
        result = sipp.run_sipp("unknown_did.xml", uas.target, service="555", timeout=10,
                               logdir=tmp_path)
    _assert_ok(result)
    assert "SIP/2.0 404" in result.messages and "ACK sip:555@" in result.messages


def test_server_hangs_up(tmp_path: Path) -> None:
    with sipp.sipp_uas("stub_uas_hangup.xml") as uas:
        result = sipp.run_sipp("server_hangs_up.xml", uas.target, timeout=15, logdir=tmp_path)
    _assert_ok(result)


def test_cancel_before_answer_cancel_wins(tmp_path: Path) -> None:
    with sipp.sipp_uas("stub_uas_ringing.xml") as uas:
        result = sipp.run_sipp("cancel_before_answer.xml", uas.target, timeout=15,
                               logdir=tmp_path)
    _assert_ok(result)
    assert "CANCEL sip:100@" in result.messages
    assert "SIP/2.0 487" in result.messages


def test_ivr_info_sends_one_info_per_key(tmp_path: Path) -> None:
    with sipp.sipp_uas("stub_uas.xml") as uas:
        result = sipp.run_sipp("ivr_info.xml", uas.target, inject=_inject(tmp_path, "12#;2;200"),
                               timeout=18, logdir=tmp_path)
    _assert_ok(result)
    signals = [line for line in result.messages.splitlines() if line.startswith("Signal=")]
    assert signals == ["Signal=1", "Signal=2", "Signal=#", "Signal=2"]
    assert "Content-Type: application/dtmf-relay" in result.messages


@pytest.mark.parametrize("scenario, extra", [
    ("ivr_rfc2833.xml", ()),
    ("ivr_play_dtmf.xml", ()),
    ("ivr_rfc2833_seq.xml", ("-key", "account_pcap", "pcap/dtmf_seq_1122p.pcap",
                             "-key", "menu_pcap", "pcap/dtmf_2.pcap")),
])
def test_ivr_rtp_dtmf_scenarios_complete(tmp_path: Path, scenario: str,
                                         extra: tuple[str, ...]) -> None:
    with sipp.sipp_uas("stub_uas.xml") as uas:
        result = sipp.run_sipp(scenario, uas.target, inject=_inject(tmp_path, "11#;2;200"),
                               extra=extra, timeout=18, logdir=tmp_path)
    _assert_ok(result)


@pytest.mark.skipif(not BUNDLED.exists(), reason="SIPp's bundled DTMF pcaps not installed")
def test_ivr_bundled_pcaps_complete(tmp_path: Path) -> None:
    with sipp.sipp_uas("stub_uas.xml") as uas:
        result = sipp.run_sipp("ivr_rfc2833_bundled.xml", uas.target,
                               inject=_inject(tmp_path, "12#;2;200"), timeout=18,
                               logdir=tmp_path)
    _assert_ok(result)


def test_ivr_load_two_calls(tmp_path: Path) -> None:
    with sipp.sipp_uas("stub_uas.xml") as uas:
        result = sipp.run_sipp("ivr_load.xml", uas.target, inject=_inject(tmp_path, "1000"),
                               calls=2, rate=10, concurrency=2, timeout=15, logdir=tmp_path)
    _assert_ok(result, calls=2)


def test_timeout_kills_hung_sipp(tmp_path: Path) -> None:
    # Nobody answers on this port: SIPp would retransmit the INVITE for 32 s.
    dead = sipp.free_sip_port()
    started = time.monotonic()
    result = sipp.run_sipp("caller_hangs_up.xml", f"127.0.0.1:{dead}", timeout=1,
                           logdir=tmp_path)
    elapsed = time.monotonic() - started
    assert elapsed < 1 + sipp.KILL_GRACE + 3
    assert result.returncode != 0
    assert result.successful == 0


def test_harness_kills_sipp_that_ignores_its_timeout(tmp_path: Path, monkeypatch:
                                                     pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sipp, "KILL_GRACE", 0.5)
    started = time.monotonic()
    # -timeout is overridden to 60 s after the harness's own, so only the kill stops it
    result = sipp.run_sipp("caller_hangs_up.xml", f"127.0.0.1:{sipp.free_sip_port()}",
                           timeout=1, extra=("-timeout", "60s"), logdir=tmp_path)
    assert time.monotonic() - started < 6
    assert result.timed_out and result.returncode != 0
    assert not _sipp_running_from(tmp_path)


def _sipp_running_from(logdir: Path) -> bool:
    """Any live sipp whose command line mentions this test's log dir."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "sipp" in cmdline and str(logdir) in cmdline:
            return True
    return False


def _taken_first(monkeypatch: pytest.MonkeyPatch, held: socket.socket) -> list[int]:
    """free_port_pair hands out the held socket's port once (as if another socket took it
    after the check), then real ones; returns what it handed out."""
    real, given = sipp.free_port_pair, []

    def pair() -> int:
        port = held.getsockname()[1] if not given else real()
        given.append(port)
        return port
    monkeypatch.setattr(sipp, "free_port_pair", pair)
    return given


def test_a_port_taken_before_sipp_binds_it_gets_a_new_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIPp exits with EADDRINUSE before its first call: the UAS and the UAC are started
    again on ports of the harness's choosing, and the calls go through."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        given = _taken_first(monkeypatch, held)
        with sipp.sipp_uas("uas") as uas:
            assert len(given) == 2 and uas.media_port == given[1]
            given.clear()
            result = sipp.run_sipp("caller_hangs_up.xml", uas.target, timeout=15,
                                   logdir=tmp_path)
    _assert_ok(result)
    assert len(given) == 2 and "errno = 98" not in result.errors


def test_a_port_the_caller_chose_is_not_replaced(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        result = sipp.run_sipp("caller_hangs_up.xml", "127.0.0.1:9", timeout=5,
                               media_port=held.getsockname()[1], logdir=tmp_path)
    assert result.returncode != 0 and "errno = 98" in result.errors

"""Calls from a real-socket UAC: in-band DTMF, hold/resume, RTP timeout, delayed offer, reload."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .server import REPO, RunningServer, start_server
from .uac import Uac, sdp

pytestmark = pytest.mark.e2e


def make_config(tmp: Path, *, rtp_timeout: int = 30) -> Path:
    """A copy of the demo config with its own flow dir (so a test may edit flows)."""
    flows = tmp / "flows"
    shutil.copytree(REPO / "config" / "flows", flows)
    cfg = tmp / "switchboard.yaml"
    cfg.write_text(
        f"prompts: {REPO / 'prompts'}\nflows: {flows}\n"
        f"rtp:\n  timeout: {rtp_timeout}\n"
        "dids:\n  \"100\": main\n"
    )
    return cfg


@pytest.fixture(params=["native", "python"])  # media.engine: the C RTP plane, and Python's
def short_timeout_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    srv = start_server(tmp_path, config=make_config(tmp_path, rtp_timeout=3),
                       env={"SWITCHBOARD_MEDIA_ENGINE": request.param})
    try:
        yield srv
    finally:
        srv.stop()


def test_inband_dtmf_without_telephone_event(server: RunningServer) -> None:
    uac = Uac(server.sip_port)
    try:
        ok = uac.invite(sdp(uac.rtp_port, te=False))
        assert ok.status == 200 and b"telephone-event" not in ok.body
        uac.ack()
        uac.silence(2.5)
        uac.inband_digits("4711#")
        uac.silence(6.0)  # read-back
        uac.inband_digits("2")
        uac.silence(1.0)
        assert uac.bye().status == 200
    finally:
        uac.close()
    (record,) = server.wait_cdrs(1)
    assert record["vars"] == {"account": "4711", "choice": "2"}
    assert record["queue"] == "support"


def test_hold_is_not_an_rtp_timeout_and_resume_works(short_timeout_server: RunningServer) -> None:
    srv = short_timeout_server
    uac = Uac(srv.sip_port)
    try:
        uac.invite(sdp(uac.rtp_port))
        uac.ack()
        uac.silence(1.0)
        held = uac.reinvite(sdp(uac.rtp_port, direction="sendonly", version=2))
        assert held.status == 200 and b"a=recvonly" in held.body
        before = uac.received_rtp
        time.sleep(5.0)  # longer than the 3 s RTP timeout, but on hold
        uac.drain_rtp()
        assert uac.received_rtp - before < 5, "the server kept sending to a held caller"
        resumed = uac.reinvite(sdp(uac.rtp_port, version=3))
        assert resumed.status == 200 and b"a=sendrecv" in resumed.body
        before = uac.received_rtp
        uac.silence(1.0)
        assert uac.received_rtp - before > 30  # prompts flow again
        assert uac.bye().status == 200
    finally:
        uac.close()
    (record,) = srv.wait_cdrs(1)
    assert record["end_reason"] == "caller_hangup"


def test_silent_caller_is_hung_up_after_rtp_timeout(short_timeout_server: RunningServer) -> None:
    srv = short_timeout_server
    uac = Uac(srv.sip_port)
    try:
        uac.invite(sdp(uac.rtp_port))
        uac.ack()
        uac.answer_bye(timeout=8.0)
    finally:
        uac.close()
    (record,) = srv.wait_cdrs(1)
    assert record["end_reason"] == "rtp_timeout"


def test_delayed_offer_answer_in_ack(server: RunningServer) -> None:
    uac = Uac(server.sip_port)
    try:
        ok = uac.invite(None)
        assert ok.status == 200 and b"m=audio" in ok.body  # our offer
        uac.ack(sdp(uac.rtp_port))
        uac.silence(1.5)
        assert uac.received_rtp > 20
        assert uac.bye().status == 200
    finally:
        uac.close()
    (record,) = server.wait_cdrs(1)
    assert record["end_reason"] == "caller_hangup" and record["codec"] == "PCMU"


def test_unacceptable_sdp_gets_488(server: RunningServer) -> None:
    uac = Uac(server.sip_port)
    try:
        g729 = sdp(uac.rtp_port).replace(b"RTP/AVP 0 101", b"RTP/AVP 18").replace(
            b"a=rtpmap:0 PCMU/8000", b"a=rtpmap:18 G729/8000")
        assert uac.invite(g729).status == 488
        uac.ack()
    finally:
        uac.close()
    (record,) = server.wait_cdrs(1)
    assert record["end_reason"] == "incompatible_media"


def test_flow_reload_keeps_calls_and_refuses_broken_edits(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    srv = start_server(tmp_path, config=cfg)
    flow_file = tmp_path / "flows" / "main.yaml"
    original = flow_file.read_text()
    try:
        uac = Uac(srv.sip_port)
        uac.invite(sdp(uac.rtp_port))
        uac.ack()
        # a broken edit: refused with file:line:col, the running version stays
        flow_file.write_text(original.replace("next: get_account", "next: no_such_node", 1))
        _wait_for(lambda: "flows_reload_error" in srv.log())
        assert f"{flow_file}:" in srv.log() and "no_such_node" in srv.log()
        # a good edit: new calls get it, the call in progress keeps its version
        flow_file.write_text(original.replace("min_digits: 4", "min_digits: 5", 1))
        _wait_for(lambda: srv.log().count("event=flows_reload ") >= 1)
        uac.silence(0.5)
        assert uac.bye().status == 200
        uac.close()
        second = Uac(srv.sip_port)
        second.invite(sdp(second.rtp_port))
        second.ack()
        second.silence(0.5)
        second.bye()
        second.close()
        first, new = srv.wait_cdrs(2)
        assert first["flow_version"] != new["flow_version"]
        assert srv.alive()
    finally:
        srv.stop()


def test_rtp_ports_exhausted_gives_503(tmp_path: Path) -> None:
    """A full port pool refuses the call with 503; the calls already up are untouched."""
    srv = start_server(tmp_path, rtp_span=2)  # one even port: one call
    first, second = Uac(srv.sip_port), Uac(srv.sip_port)
    try:
        assert first.invite(sdp(first.rtp_port)).status == 200
        first.ack()
        assert second.invite(sdp(second.rtp_port)).status == 503
        second.ack()
        first.silence(0.5)
        assert first.received_rtp > 10
        assert first.bye().status == 200
        reasons = sorted(c["end_reason"] for c in srv.wait_cdrs(2))
        assert reasons == ["caller_hangup", "no_rtp_port"]
    finally:
        first.close()
        second.close()
        srv.stop()


def test_sighup_reloads_flows(tmp_path: Path) -> None:
    import os
    import signal

    srv = start_server(tmp_path, config=make_config(tmp_path))
    try:
        os.kill(srv.proc.pid, signal.SIGHUP)
        _wait_for(lambda: srv.log().count("event=flows_reload ") >= 1)
        assert srv.alive()
    finally:
        srv.stop()


def _wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")

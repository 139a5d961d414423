"""Network recording with real peers: SIPp caller and agent send known audio, the WAV
must hold exactly that audio on the right channel at the right time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from media.audio import PromptCache
from media.g711 import decode
from recorder.wavfile import read_wav
from switchboard.config import PACKAGE_ROOT
from tests.sipp import SCENARIOS, run_sipp, sipp_command, sipp_path, sipp_uas

from .audio import best_match, pcap_audio
from .server import RunningServer, start_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sipp_path() is None, reason="sipp (apt sip-tester) is not installed"),
]

RATE = 8000
CALLER_PCAP = SCENARIOS / "pcap" / "ivr_load_call.pcap"  # account 4711#, menu 1 (billing)
AGENT_PCAP = SCENARIOS / "pcap" / "pcmu_noise_45s.pcap"


def login_agent(server: RunningServer, contact_port: int, tmp_path: Path, agent: str) -> None:
    csv = tmp_path / "login.csv"
    csv.write_text(f"SEQUENTIAL\n{agent};[authentication username={agent} password=demo-{agent}]\n")
    result = run_sipp("agent_login.xml", server.sip, calls=1, inject=csv,
                      extra=["-key", "contact_port", str(contact_port)], timeout=30)
    assert result.ok and result.successful == 1, result.errors[-2000:]


def wait_for(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def recording_files(server: RunningServer, recording_id: str) -> tuple[Path, dict[str, Any]]:
    directory = server.data_dir / "recordings"
    wav, sidecar = directory / f"{recording_id}.wav", directory / f"{recording_id}.json"
    wait_for(lambda: wav.exists() and sidecar.exists())
    return wav, json.loads(sidecar.read_text())


def seconds(iso_a: str, iso_b: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(iso_b) - datetime.fromisoformat(iso_a)).total_seconds()


def test_bridged_call_is_recorded_in_stereo_on_one_timeline(server: RunningServer,
                                                            tmp_path: Path) -> None:
    talk_ms = 16000
    with sipp_uas("agent_answer.xml", extra=["-key", "agent_hangs_up_ms", "0", "-m", "1"]) as agents:
        login_agent(server, agents.port, tmp_path, "1003")  # billing
        csv = tmp_path / "caller.csv"
        csv.write_text(f"SEQUENTIAL\n{talk_ms}\n")
        result = run_sipp("ivr_load.xml", server.sip, calls=1, inject=csv, timeout=60)
        assert result.ok and result.successful == 1, (result.errors[-2000:], server.log()[-3000:])
        agents.proc.wait(10)
    (cdr,) = wait_for(lambda: [c for c in server.cdrs() if c["did"] == "100"])
    assert cdr["agent"] == "1003" and cdr["recording"], cdr
    wav, sidecar = recording_files(server, cdr["recording"])
    rate, frames = read_wav(wav)
    assert rate == RATE and frames.shape[1] == 2
    # 60 s of call is 60 s of file: the WAV spans answer to hang-up
    call_s = seconds(cdr["answered_at"], cdr["ended_at"])
    assert abs(len(frames) / RATE - call_s) < 0.5, (len(frames) / RATE, call_s)
    left, right = frames[:, 0], frames[:, 1]

    # left = the caller: SIPp's pcap starts at the answer, so pcap second 10 is WAV second ~10
    caller = pcap_audio(CALLER_PCAP)
    lag, ncc = best_match(left, caller[10 * RATE:12 * RATE])
    assert ncc > 0.95 and abs(lag / RATE - 10.0) < 0.5, (lag / RATE, ncc)
    # right, IVR part: the welcome prompt from the first moment
    cache = PromptCache(PACKAGE_ROOT / "prompts")
    welcome = decode("PCMU", b"".join(cache.frames("welcome", "PCMU")))
    lag, ncc = best_match(right[:4 * RATE], welcome[:RATE])
    assert ncc > 0.95 and lag / RATE < 0.5, (lag / RATE, ncc)
    # right, bridged part: the agent's audio, starting when the sidecar says it was bridged
    (bridged,) = [e for e in sidecar["events"] if e["type"] == "bridged"]
    assert bridged["agent"] == "1003" and bridged["queue"] == "billing"
    agent = pcap_audio(AGENT_PCAP)
    lag, ncc = best_match(right, agent[RATE:3 * RATE])
    assert ncc > 0.95 and abs(lag / RATE - (bridged["t"] + 1.0)) < 0.5, (lag / RATE, bridged, ncc)
    # and the channels are not mixed: the agent is not on the caller's side
    assert best_match(left, agent[RATE:3 * RATE])[1] < 0.5

    assert [d["digit"] for d in sidecar["dtmf"]] == list("4711#1")
    times = [d["t"] for d in sidecar["dtmf"]]
    assert times == sorted(times) and 2.0 < times[0] < 4.0
    types = [e["type"] for e in sidecar["events"]]
    assert types[0] == "start" and types[-1] == "end" and "queued" in types
    assert sidecar["call_id"] == cdr["call_id"] and sidecar["account"] == "4711"
    assert sidecar["queue"] == "billing" and sidecar["agent"] == "1003"
    assert sidecar["interrupted"] is False and sidecar["pauses"] == []
    log_lines = [json.loads(x) for x in (server.data_dir / "queue_log.jsonl").read_text().splitlines()]
    mine = [e for e in log_lines if e["call_id"] == cdr["call_id"]]
    assert mine and all(e.get("recording") == cdr["recording"] for e in mine), mine


def test_kill_9_mid_call_leaves_a_playable_recording(tmp_path: Path) -> None:
    """The server dies mid-call; on restart the recording is finished, marked interrupted,
    and holds the call up to at most 2 s before the kill."""
    server = start_server(tmp_path)
    csv = tmp_path / "caller.csv"
    csv.write_text("SEQUENTIAL\n20000\n")
    cmd = sipp_command("ivr_load.xml", server.sip, calls=1, rate=10, concurrency=None,
                       service="100", inject=csv, transport="u1", local_port=0, media_port=None,
                       extra=[], timeout=40, logdir=tmp_path, trace=False)
    sipp = subprocess.Popen(cmd, cwd=str(SCENARIOS), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        parts = wait_for(lambda: list((server.data_dir / "recordings").glob("*.part")))
        answered = time.monotonic()
        time.sleep(8.0)
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(5)
        killed_after = time.monotonic() - answered
    finally:
        sipp.kill()
        sipp.wait(5)
    recording_id = parts[0].name[: -len(".part")]
    restarted = start_server(tmp_path)
    try:
        wav, sidecar = recording_files(restarted, recording_id)
        assert not parts[0].exists()
        rate, frames = read_wav(wav)
        assert rate == RATE and frames.shape[1] == 2
        got = len(frames) / RATE
        assert killed_after - 2.0 <= got <= killed_after + 1.0, (got, killed_after)
        assert sidecar["interrupted"] is True and sidecar["call_id"]
        assert sidecar["did"] == "100" and sidecar["duration_s"] == pytest.approx(got, abs=0.01)
        # what was recovered is the caller's real audio
        caller = pcap_audio(CALLER_PCAP)
        lag, ncc = best_match(frames[:, 0], caller[4 * RATE:5 * RATE])
        assert ncc > 0.95 and abs(lag / RATE - 4.0) < 0.5
        assert "event=recording_interrupted" in restarted.log()
    finally:
        restarted.stop()
    assert int(np.abs(frames[:, 1]).max()) > 0  # prompts made it too

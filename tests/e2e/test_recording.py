"""Network recording with real peers: SIPp caller and agent send known audio, the WAV
must hold exactly that audio on the right channel at the right time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
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


def live_call(server: RunningServer, token: str, timeout: float = 30.0) -> dict[str, Any]:
    """The first live call that is bridged to an agent, from the API."""
    def bridged() -> dict[str, Any] | None:
        status, body = server.api("GET", "/api/calls", token=token)
        assert status == 200, body
        return next((c for c in body["calls"] if c.get("agent")), None)
    return wait_for(bridged, timeout)  # type: ignore[no-any-return]


PLANES = ["native", "python"]  # media.engine: the C RTP plane, and the pure-Python one


@pytest.mark.parametrize("plane", PLANES)
def test_bridged_call_is_recorded_in_stereo_on_one_timeline(tmp_path: Path, plane: str) -> None:
    """Caller and agent send known pcaps; mid-call the agent pauses the recording through
    the API for 2 s (a card number on the phone), then resumes."""
    server = start_server(tmp_path, users={"sue": ("supervisor", "sue-secret-1"),
                                           "ada": ("admin", "ada-secret-1")},
                          env={"SWITCHBOARD_MEDIA_ENGINE": plane})
    try:
        _bridged_call(server, tmp_path)
    finally:
        server.stop()
    assert "Traceback" not in server.log()


def _bridged_call(server: RunningServer, tmp_path: Path) -> None:
    talk_ms = 20000
    with sipp_uas("agent_answer.xml", extra=["-key", "agent_hangs_up_ms", "0", "-m", "1"]) as agents:
        login_agent(server, agents.port, tmp_path, "1003")  # billing
        csv = tmp_path / "caller.csv"
        csv.write_text(f"SEQUENTIAL\n{talk_ms}\n")
        with ThreadPoolExecutor(1) as pool:
            caller = pool.submit(run_sipp, "ivr_load.xml", server.sip, calls=1, inject=csv,
                                 timeout=60)
            live = live_call(server, server.login("sue", "sue-secret-1"))
            agent_token = server.login("1003")
            path = f"/api/calls/{live['call_id']}/recording"
            assert server.api("POST", path + "/pause", token=None)[0] == 401
            other = server.login("1004")
            assert server.api("POST", path + "/pause", token=other)[0] == 403  # not on this call
            status, state = server.api("POST", path + "/pause", token=agent_token)
            assert status == 200 and state["paused"] and state["reasons"] == ["api"], state
            time.sleep(2.0)
            status, state = server.api("POST", path + "/resume", token=agent_token)
            assert status == 200 and not state["paused"], state
            result = caller.result()
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

    # the API pause: silence on both channels for its whole span
    (pause,) = sidecar["pauses"]
    assert pause["reason"] == "api" and 1.8 < pause["end"] - pause["start"] < 3.0, pause
    # the sidecar's times are rounded to the millisecond: leave that much at each edge
    edge = RATE // 1000
    assert not frames[round(pause["start"] * RATE) + edge:round(pause["end"] * RATE) - edge].any()
    # left = the caller: SIPp's pcap starts at the answer, so pcap second 16 is WAV second ~16
    caller_audio = pcap_audio(CALLER_PCAP)
    lag, ncc = best_match(left, caller_audio[16 * RATE:18 * RATE])
    assert ncc > 0.95 and abs(lag / RATE - 16.0) < 0.5, (lag / RATE, ncc)
    # right, IVR part: the welcome prompt from the first moment
    cache = PromptCache(PACKAGE_ROOT / "prompts")
    welcome = decode("PCMU", b"".join(cache.frames("welcome", "PCMU")))
    lag, ncc = best_match(right[:4 * RATE], welcome[:RATE])
    assert ncc > 0.95 and lag / RATE < 0.5, (lag / RATE, ncc)
    # right, bridged part: the agent's audio, placed from when the sidecar says it was bridged
    (bridged,) = [e for e in sidecar["events"] if e["type"] == "bridged"]
    assert bridged["agent"] == "1003" and bridged["queue"] == "billing"
    assert bridged["t"] + 6.0 < pause["start"] or pause["end"] < bridged["t"] + 5.0
    agent = pcap_audio(AGENT_PCAP)
    lag, ncc = best_match(right, agent[5 * RATE:7 * RATE])
    assert ncc > 0.95 and abs(lag / RATE - (bridged["t"] + 5.0)) < 0.5, (lag / RATE, bridged, ncc)
    # and the channels are not mixed: the agent is not on the caller's side
    assert best_match(left, agent[5 * RATE:7 * RATE])[1] < 0.5

    assert [d["digit"] for d in sidecar["dtmf"]] == list("4711#1")
    times = [d["t"] for d in sidecar["dtmf"]]
    assert times == sorted(times) and 2.0 < times[0] < 4.0
    types = [e["type"] for e in sidecar["events"]]
    assert types[0] == "start" and types[-1] == "end" and "queued" in types
    assert types.index("paused") < types.index("resumed")
    assert sidecar["call_id"] == cdr["call_id"] and sidecar["account"] == "4711"
    assert sidecar["queue"] == "billing" and sidecar["agent"] == "1003"
    assert sidecar["interrupted"] is False
    log_lines = [json.loads(x) for x in (server.data_dir / "queue_log.jsonl").read_text().splitlines()]
    mine = [e for e in log_lines if e["call_id"] == cdr["call_id"]]
    assert mine and all(e.get("recording") == cdr["recording"] for e in mine), mine
    _recordings_api(server, cdr, wav)


def _recordings_api(server: RunningServer, cdr: dict[str, Any], wav: Path) -> None:
    rid = cdr["recording"]
    sue = server.login("sue", "sue-secret-1")
    agent = server.login("1003")
    status, body = server.api("GET", "/api/recordings", token=sue)
    assert status == 200 and [r["id"] for r in body["recordings"]] == [rid]
    summary = body["recordings"][0]
    assert summary["account"] == "4711" and summary["agent"] == "1003" and summary["queue"] == "billing"
    day = cdr["started_at"][:10]
    for query, hits in (("account=4711", 1), ("account=9999", 0), ("agent=1003", 1),
                        ("queue=support", 0), (f"since={day}", 1), (f"until={day}", 0),
                        ("limit=1", 1)):
        status, body = server.api("GET", f"/api/recordings?{query}", token=sue)
        assert status == 200 and len(body["recordings"]) == hits, (query, body)
    for query in ("limit=0", "limit=x", "since=yesterday"):
        status, body = server.api("GET", f"/api/recordings?{query}", token=sue)
        assert status == 400 and body["error"], (query, body)
    assert server.api("GET", "/api/recordings", token=None)[0] == 401
    assert server.api("GET", "/api/recordings", token=agent)[0] == 403
    status, sidecar = server.api("GET", f"/api/recordings/{rid}", token=sue)
    assert status == 200 and sidecar["recording_id"] == rid and sidecar["timeline"] == []
    req = urllib.request.Request(f"http://127.0.0.1:{server.http_port}/api/recordings/{rid}/audio",
                                 headers={"Authorization": f"Bearer {sue}", "Range": "bytes=0-43"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 206 and resp.read() == wav.read_bytes()[:44]
    for bad in ("20990101T000000-000000000000", "../cdr", "x"):
        assert server.api("GET", f"/api/recordings/{bad}", token=sue)[0] == 404
    assert server.api("DELETE", f"/api/recordings/{rid}", token=sue)[0] == 403
    admin = server.login("ada", "ada-secret-1")
    assert server.api("DELETE", f"/api/recordings/{rid}", token=admin)[0] == 204
    assert not wav.exists() and not wav.with_suffix(".json").exists()
    assert server.api("GET", f"/api/recordings/{rid}", token=sue)[0] == 404
    assert server.api("POST", "/api/calls/nope/recording/pause", token=sue)[0] == 404


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


CARD = "9182736450"  # keyed in a sensitive collect: must appear nowhere
PCI_FLOW = """\
flow: pci
start: welcome
nodes:
  welcome: {type: play, prompts: [welcome], next: card}
  card:
    type: collect
    prompts: [enter_account]
    variable: card
    min_digits: 4
    max_digits: 16
    sensitive: true
    next: account
  account: {type: collect, prompts: [enter_account], variable: account, min_digits: 4, next: bye}
  bye: {type: play, prompts: [thank_you], next: done}
  done: {type: hangup}
"""


def pci_config(tmp_path: Path) -> Path:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "pci.yaml").write_text(PCI_FLOW)
    config = tmp_path / "switchboard.yaml"
    demo = PACKAGE_ROOT / "config"
    config.write_text(f"""\
prompts: {PACKAGE_ROOT / "prompts"}
flows: {flows}
agents: {demo / "agents.yaml"}
queues: {demo / "queues.yaml"}
sip: {{digest_algorithms: [MD5, SHA-256]}}
dids: {{"100": pci}}
""")
    return config


def pci_call(server: RunningServer, first: list[bytes] | None = None) -> None:
    """In-band only: 1 s of silence, `first` frames, the rest of the welcome prompt, the
    card (sensitive collect), then the account; the flow hangs up."""
    from .uac import Uac, sdp

    welcome_s = PromptCache(PACKAGE_ROOT / "prompts").duration("welcome")
    uac = Uac(server.sip_port)
    try:
        assert uac.invite(sdp(uac.rtp_port, te=False)).status == 200
        uac.ack()
        uac.silence(1.0)
        uac.send_frames(first or [])
        uac.silence(welcome_s)
        uac.inband_digits(CARD + "#")
        uac.silence(1.5)
        uac.inband_digits("4711#")
        uac.silence(1.0)
        uac.answer_bye(timeout=15)
    finally:
        uac.close()


@pytest.mark.parametrize("plane", PLANES)
def test_card_digits_in_a_sensitive_collect_appear_nowhere(tmp_path: Path, plane: str) -> None:
    """In-band DTMF only (no telephone-event), so the digits are audio: the WAV is checked
    with the Goertzel detector, which must find the account (keyed unpaused) and not the card."""
    from media.dtmf import GoertzelDetector


    server = start_server(tmp_path, config=pci_config(tmp_path),
                          env={"SWITCHBOARD_MEDIA_ENGINE": plane})
    pci_call(server)
    try:
        (cdr,) = server.wait_cdrs(1)
        wav, sidecar = recording_files(server, cdr["recording"])
        logs = server.log()
    finally:
        server.stop()
    assert cdr["vars"] == {"card": "*" * len(CARD), "account": "4711"}, cdr["vars"]
    # the sidecar: one pause around the card; its digits masked, the account's kept
    (pause,) = sidecar["pauses"]
    welcome_s = PromptCache(PACKAGE_ROOT / "prompts").duration("welcome")
    assert pause["reason"] == "pci" and pause["end"] > pause["start"] > welcome_s - 0.5
    masked = [d for d in sidecar["dtmf"] if d.get("masked")]
    assert len(masked) == len(CARD) + 1 and all("digit" not in d for d in masked)
    assert "".join(d["digit"] for d in sidecar["dtmf"] if "digit" in d) == "4711#"
    # the WAV: silence across the pause on both channels, and no card tones anywhere
    rate, frames = read_wav(wav)
    lo, hi = round(pause["start"] * rate), round(pause["end"] * rate)
    assert hi - lo > len(CARD) * 0.16 * rate and not frames[lo:hi].any()
    heard = "".join(GoertzelDetector().feed(frames[:, 0].copy()))
    assert heard == "4711#", heard
    # nor in any file the server wrote, nor its log
    for path in [*server.data_dir.rglob("*.json*"), server.log_path]:
        assert CARD not in path.read_text(errors="replace"), path
    assert CARD not in logs


class StreamConsumer:
    """A Twilio-Media-Streams consumer on 127.0.0.1, in its own thread and event loop."""

    def __init__(self) -> None:
        import asyncio
        import threading

        self.messages: list[dict[str, Any]] = []
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _main(self) -> None:
        import asyncio

        from aiohttp import WSMsgType, web

        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.messages.append(json.loads(msg.data))
            return ws

        async def serve() -> None:
            app = web.Application()
            app.router.add_get("/media", handler)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self._ready.set()
            while True:
                await asyncio.sleep(3600)

        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(serve())

    def of(self, event: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["event"] == event]

    def audio(self, track: str) -> np.ndarray:
        import base64

        frames = [m["media"] for m in self.of("media") if m["media"]["track"] == track]
        return decode("PCMU", b"".join(base64.b64decode(f["payload"]) for f in frames))


def test_media_stream_carries_the_call_but_not_the_card(tmp_path: Path) -> None:
    """A flow streams its calls (streams.flows): the consumer gets Twilio's message sequence,
    the caller's audio on the inbound track, the prompts on the outbound track, the
    account's DTMF, and nothing of the card keyed while the recording was paused."""
    from .uac import Uac, sdp

    consumer = StreamConsumer()
    config = pci_config(tmp_path)
    config.write_text(config.read_text() + f"""\
streams:
  flows:
    pci: {{url: "ws://127.0.0.1:{consumer.port}/media", parameters: {{team: blue}}}}
""")
    server = start_server(tmp_path, config=config)
    welcome_s = PromptCache(PACKAGE_ROOT / "prompts").duration("welcome")
    rng = np.random.default_rng(7)
    noise = (rng.standard_normal(int(welcome_s * RATE)) * 3000).astype(np.int16)
    from media.g711 import encode

    payload = encode("PCMU", noise)
    uac = Uac(server.sip_port)
    try:
        assert uac.invite(sdp(uac.rtp_port)).status == 200  # with telephone-event: RFC 4733
        uac.ack()
        uac.send_frames([payload[i:i + 160] for i in range(0, len(payload) - 159, 160)])
        uac.silence(1.0)
        uac.rfc4733_digits(CARD + "#")
        uac.silence(1.0)
        uac.rfc4733_digits("4711#")
        uac.answer_bye(timeout=15)
    finally:
        uac.close()
    try:
        (cdr,) = server.wait_cdrs(1)
        wait_for(lambda: consumer.of("stop"))
    finally:
        server.stop()
    events = [m["event"] for m in consumer.messages]
    assert events[0] == "connected" and events[1] == "start" and events[-1] == "stop", events[:3]
    start = consumer.of("start")[0]["start"]
    assert start["callSid"] == cdr["call_id"] and start["tracks"] == ["inbound", "outbound"]
    assert start["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    assert start["customParameters"]["team"] == "blue"
    assert "".join(m["dtmf"]["digit"] for m in consumer.of("dtmf")) == "4711#"
    assert CARD not in json.dumps(consumer.messages)
    lag, ncc = best_match(consumer.audio("inbound"), decode("PCMU", payload)[RATE:2 * RATE])
    assert ncc > 0.95, ncc
    welcome = decode("PCMU", b"".join(PromptCache(PACKAGE_ROOT / "prompts").frames("welcome", "PCMU")))
    assert best_match(consumer.audio("outbound"), welcome[:RATE])[1] > 0.95
    assert {"paused", "resumed"} <= {m["mark"]["name"] for m in consumer.of("mark")}


def test_analyzers_hear_the_call_but_not_the_card_and_a_bad_one_harms_nothing(tmp_path: Path) -> None:
    """A spy analyzer beside one that sleeps and one that raises: the spy gets the events
    and the audio (no card digits in either), its alert lands in the sidecar's timeline at
    the offset of the audio that caused it, and the recording and media clock are unharmed."""
    from media.g711 import encode


    spy_out = tmp_path / "spy.jsonl"
    config = pci_config(tmp_path)
    flow = tmp_path / "flows" / "pci.yaml"  # a longer goodbye: the sleepy mailbox (256) overflows
    flow.write_text(flow.read_text().replace("prompts: [thank_you]", "prompts: [thank_you, menu]"))
    config.write_text(config.read_text() + f"""\
limits: {{max_calls: 10}}  # mailboxes of 256 chunks (a second of audio of each call, at least 256)
analytics:
  - {{path: "tests.e2e.plugins:Spy", options: {{out: "{spy_out}"}}}}
  - tests.e2e.plugins:Sleepy
  - tests.e2e.plugins:Raiser
  - talk
""")
    server = start_server(tmp_path, config=config)
    loud = encode("PCMU", np.full(800, 30000, dtype=np.int16))  # 100 ms, unmistakable
    pci_call(server, [loud[i:i + 160] for i in range(0, 800, 160)])  # loud at t ~ 1.0 s
    try:
        (cdr,) = server.wait_cdrs(1)
        wav, sidecar = recording_files(server, cdr["recording"])
        health = server.health()
        status, metrics = server.api("GET", "/metrics", token=None)
    finally:
        server.stop()
    records = [json.loads(line) for line in spy_out.read_text().splitlines()]
    assert records[0]["kind"] == "start" and records[0]["call"]["call_id"] == cdr["call_id"]
    assert records[-1] == {"kind": "close", "heard": "4711#"}, records[-1]
    events = [r["event"] for r in records if r["kind"] == "event"]
    assert "".join(e["digit"] for e in events if e["type"] == "dtmf") == "4711#"
    assert [e["type"] for e in events if e["type"] in ("paused", "resumed")] == ["paused", "resumed"]
    assert CARD not in spy_out.read_text()
    caller_chunks = [r for r in records if r["kind"] == "audio" and r["leg"] == "caller"]
    assert sum(r["n"] for r in caller_chunks) / RATE > cdr_seconds(cdr) - 1.0
    # the alert is in the timeline where the loud audio is in the WAV
    (alert,) = [e for e in sidecar["timeline"] if e["source"] == "spy"]
    rate, frames = read_wav(wav)
    first_loud = int(np.flatnonzero(np.abs(frames[:, 0].astype(np.int32)) > 20000)[0]) / rate
    assert alert["type"] == "alert" and abs(alert["t"] - first_loud) < 0.03, (alert, first_loud)
    assert abs(first_loud - 1.0) < 0.3
    assert any(e["source"] == "talk" for e in sidecar["timeline"])
    # the bad analyzers: counted, not felt
    assert status == 200 and 'switchboard_hook_events_total{analyzer="raiser",outcome="error"}' in metrics
    dropped = [line for line in metrics.splitlines()
               if line.startswith('switchboard_hook_events_total{analyzer="sleepy",outcome="dropped"}')]
    assert dropped and float(dropped[0].split()[-1]) > 0, dropped
    assert health["media_clock"]["late_p99_ms"] < 10, health["media_clock"]
    assert abs(len(frames) / rate - cdr_seconds(cdr)) < 0.5


def cdr_seconds(cdr: dict[str, Any]) -> float:
    return seconds(cdr["answered_at"], cdr["ended_at"])

"""Media streaming out: the sans-IO Twilio message builder, config validation, and the
asyncio client against real aiohttp WebSocket consumers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import json
import logging
import socket
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from aiohttp import WSMsgType, web
from hypothesis import given
from hypothesis import strategies as st

from media import g711
from recorder.mediastream import (
    DEFAULT_ACCOUNT_SID,
    FRAME_BYTES,
    MediaStreamClient,
    TwilioStreamMessages,
    new_sid,
    validate_stream_config,
)

ROOT = Path(__file__).resolve().parents[2]
SID = "MZ" + "ab" * 16
CALL = {"call_id": "c0ffee@127.0.0.1", "did": "100", "caller": "alice", "account": "12345",
        "flow": "main", "queue": None}
FAST: dict[str, Any] = {"backoff": 0.01, "connect_timeout": 1.0, "close_timeout": 1.0}

Int16Array = npt.NDArray[np.int16]


def tone(n: int, hz: float = 440.0, start: int = 0) -> Int16Array:
    t = (start + np.arange(n)) / 8000
    return (8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def builder(tracks: tuple[str, ...] = ("inbound", "outbound")) -> TwilioStreamMessages:
    return TwilioStreamMessages(SID, "CA1", "AC1", tracks, {"lang": "en"})


# -- the message builder -------------------------------------------------------------


def test_connected_and_start_have_twilio_shapes() -> None:
    m = builder()
    assert m.connected() == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert m.start() == {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": SID,
        "start": {
            "accountSid": "AC1",
            "streamSid": SID,
            "callSid": "CA1",
            "tracks": ["inbound", "outbound"],
            "customParameters": {"lang": "en"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    }


def test_dtmf_mark_stop_have_twilio_shapes_and_count_on() -> None:
    m = builder()
    m.start()
    assert m.dtmf("5") == {"event": "dtmf", "sequenceNumber": "2", "streamSid": SID,
                           "dtmf": {"track": "inbound_track", "digit": "5"}}
    assert m.mark("agent_answered") == {"event": "mark", "sequenceNumber": "3", "streamSid": SID,
                                        "mark": {"name": "agent_answered"}}
    assert m.stop() == {"event": "stop", "sequenceNumber": "4", "streamSid": SID,
                        "stop": {"accountSid": "AC1", "callSid": "CA1"}}


def test_media_splits_into_20ms_frames_with_chunks_per_track_and_one_sequence() -> None:
    m = builder()
    m.start()
    ulaw = bytes(range(256)) + bytes(144)  # 400 bytes: 160 + 160 + 80
    inbound = m.media("inbound", 1000, ulaw)
    outbound = m.media("outbound", 1010, ulaw[:160])
    assert [(x["sequenceNumber"], x["media"]["chunk"], x["media"]["timestamp"]) for x in inbound] == [
        ("2", "1", "1000"), ("3", "2", "1020"), ("4", "3", "1040")]
    assert outbound == [{"event": "media", "sequenceNumber": "5", "streamSid": SID, "media": {
        "track": "outbound", "chunk": "1", "timestamp": "1010",
        "payload": base64.b64encode(ulaw[:160]).decode()}}]
    assert [len(base64.b64decode(x["media"]["payload"])) for x in inbound] == [160, 160, 80]
    assert m.media("inbound", 2000, ulaw[:1])[0]["media"]["chunk"] == "4"


@given(st.binary(min_size=0, max_size=2000), st.integers(min_value=0, max_value=10**9))
def test_media_payloads_round_trip_in_order(ulaw: bytes, t_ms: int) -> None:
    out = builder(("inbound",)).media("inbound", t_ms, ulaw)
    assert b"".join(base64.b64decode(x["media"]["payload"]) for x in out) == ulaw
    assert [int(x["media"]["timestamp"]) for x in out] == [t_ms + 20 * i for i in range(len(out))]
    assert all(len(base64.b64decode(x["media"]["payload"])) == FRAME_BYTES for x in out[:-1])
    assert all(isinstance(x["sequenceNumber"], str) and isinstance(x["media"]["chunk"], str)
               for x in out)


def test_mulaw_payload_decodes_back_to_the_audio() -> None:
    pcm = tone(160)
    (msg,) = builder().media("inbound", 0, g711.ulaw_encode(pcm))
    decoded = g711.ulaw_decode(base64.b64decode(msg["media"]["payload"])).astype(np.int32)
    assert np.max(np.abs(decoded - pcm)) <= 8000 // 32  # mu-law step at this level


@pytest.mark.parametrize(("call", "error"), [
    (lambda m: m.media("outbound", 0, b"x"), "track 'outbound'"),
    (lambda m: m.media("inbound", -1, b"x"), "t_ms"),
    (lambda m: m.dtmf("x"), "DTMF"),
    (lambda m: TwilioStreamMessages(SID, "c", "a", ("both",)), "tracks"),
    (lambda m: TwilioStreamMessages(SID, "c", "a", ()), "tracks"),
])
def test_builder_refuses_misuse(call: Callable[[TwilioStreamMessages], Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        call(builder(("inbound",)))


def test_stream_sid_looks_like_twilios_and_comes_from_the_id_source() -> None:
    assert new_sid("MZ", lambda n: "0f" * n) == "MZ" + "0f" * 16
    sid = new_sid("MZ")
    assert len(sid) == 34 and sid.startswith("MZ") and int(sid[2:], 16) >= 0
    client = MediaStreamClient("ws://127.0.0.1:1/x", call=CALL, random_hex=lambda n: "e" * 2 * n)
    assert client.stream_sid == "MZ" + "e" * 32


# -- config ----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("ws://h/m", {"url": "ws://h/m", "tracks": "both", "parameters": {},
                  "account_sid": DEFAULT_ACCOUNT_SID}),
    ({"url": "wss://h:9/m?t=1", "tracks": "inbound", "parameters": {"a": "x", "n": 2, "b": True}},
     {"url": "wss://h:9/m?t=1", "tracks": "inbound", "parameters": {"a": "x", "n": "2", "b": "true"},
      "account_sid": DEFAULT_ACCOUNT_SID}),
    ({"url": "ws://h", "tracks": "outbound_track", "parameters": None, "account_sid": "AC9"},
     {"url": "ws://h", "tracks": "outbound", "parameters": {}, "account_sid": "AC9"}),
    ({"url": "ws://h", "tracks": "both_tracks"},
     {"url": "ws://h", "tracks": "both", "parameters": {}, "account_sid": DEFAULT_ACCOUNT_SID}),
])
def test_validate_stream_config_normalises(value: Any, expected: dict[str, Any]) -> None:
    assert validate_stream_config(value) == expected


@pytest.mark.parametrize(("value", "error"), [
    (None, "mapping"),
    ([], "mapping"),
    ({}, "needs a 'url'"),
    ({"url": "http://h/m"}, "ws:// or wss://"),
    ({"url": "ws:///nohost"}, "with a host"),
    ({"url": 5}, "must be a string"),
    ({"url": "ws://h", "tracks": "all"}, "'tracks' must be"),
    ({"url": "ws://h", "parameters": ["a"]}, "'parameters' must map"),
    ({"url": "ws://h", "parameters": {"a": {"b": 1}}}, "parameter 'a'"),
    ({"url": "ws://h", "account_sid": ""}, "account_sid"),
    ({"url": "ws://h", "track": "both"}, r"unknown stream key\(s\) \['track'\]"),
])
def test_validate_stream_config_says_what_is_wrong(value: Any, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        validate_stream_config(value)


@pytest.mark.parametrize("url", ["http://127.0.0.1/x", "127.0.0.1:80", "wss:/x"])
def test_client_accepts_only_websocket_urls(url: str) -> None:
    with pytest.raises(ValueError, match="ws://"):
        MediaStreamClient(url, call=CALL)


# -- a real consumer on 127.0.0.1 --------------------------------------------------------


class Consumer:
    """An aiohttp WebSocket server recording every message, one list per connection."""

    def __init__(self, *, close_first_after: int | None = None, stall: bool = False,
                 say: tuple[str, ...] = ()) -> None:
        self.connections: list[list[dict[str, Any]]] = []
        self.close_first_after = close_first_after
        self.stall = stall
        self.say = say
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        got: list[dict[str, Any]] = []
        self.connections.append(got)
        for text in self.say:
            await ws.send_str(text)
        if self.stall:
            await self.release.wait()  # read nothing: TCP buffers fill, the client's sends block
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                got.append(json.loads(msg.data))
            if len(self.connections) == 1 and len(got) == self.close_first_after:
                await ws.close()
        return ws

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [m for conn in self.connections for m in conn]


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"ws://{host}:{port}/media"
    finally:
        await runner.cleanup()


def consumer_app(consumer: Consumer) -> web.Application:
    app = web.Application()
    app.router.add_get("/media", consumer.handle)
    return app


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 30))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def events(messages: list[dict[str, Any]]) -> list[str]:
    return [m["event"] for m in messages]


def test_full_stream_in_order() -> None:
    async def main() -> None:
        consumer = Consumer()
        async with serving(consumer_app(consumer)) as url:
            client = MediaStreamClient(url + "?token=secret", call=CALL,
                                       custom_parameters={"lang": "en"}, **FAST)
            client.audio("caller", 10.0, tone(480))  # before start(): kept until connected
            client.start()
            client.audio("other", 10.06, tone(160, 1000.0))
            client.dtmf("5")
            client.mark("agent_answered")
            client.stop()
            client.stop()  # idempotent
            await client.wait_closed()
            await until(lambda: bool(consumer.messages) and consumer.messages[-1]["event"] == "stop")
        msgs = consumer.messages
        assert events(msgs) == ["connected", "start"] + ["media"] * 4 + ["dtmf", "mark", "stop"]
        assert [m["sequenceNumber"] for m in msgs[1:]] == [str(i) for i in range(1, 9)]
        assert {m["streamSid"] for m in msgs[1:]} == {client.stream_sid}
        assert msgs[1]["start"]["callSid"] == CALL["call_id"]
        assert msgs[1]["start"]["accountSid"] == DEFAULT_ACCOUNT_SID
        assert msgs[1]["start"]["customParameters"] == {
            "call_id": CALL["call_id"], "did": "100", "caller": "alice", "account": "12345",
            "flow": "main", "lang": "en"}
        media = [m["media"] for m in msgs if m["event"] == "media"]
        assert [(x["track"], x["chunk"], x["timestamp"]) for x in media] == [
            ("inbound", "1", "0"), ("inbound", "2", "20"), ("inbound", "3", "40"),
            ("outbound", "1", "60")]
        assert msgs[-1]["stop"] == {"accountSid": DEFAULT_ACCOUNT_SID, "callSid": CALL["call_id"]}
        assert client.state == "closed"
        assert client.stats == {"sent": len(msgs), "dropped": 0, "errors": 0, "reconnects": 0}

    run(main)


@pytest.mark.parametrize(("tracks", "expected"), [("inbound", ["inbound"]),
                                                  ("outbound", ["outbound"]),
                                                  ("both", ["inbound", "outbound"])])
def test_tracks_filter(tracks: str, expected: list[str]) -> None:
    async def main() -> None:
        consumer = Consumer()
        async with serving(consumer_app(consumer)) as url:
            client = MediaStreamClient(url, call=CALL, tracks=tracks, **FAST)
            client.start()
            for k in range(3):
                client.audio("caller", k * 0.02, tone(160))
                client.audio("other", k * 0.02, tone(160))
            client.stop()
            await client.wait_closed()
            await until(lambda: events(consumer.messages)[-1:] == ["stop"])
        assert consumer.messages[1]["start"]["tracks"] == expected
        seen = [m["media"]["track"] for m in consumer.messages if m["event"] == "media"]
        assert sorted(set(seen)) == expected and len(seen) == 3 * len(expected)
        assert client.stats["dropped"] == 0

    run(main)


def test_consumer_down_fails_after_bounded_retries(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        url = f"ws://127.0.0.1:{free_port()}/media?token=secret"
        client = MediaStreamClient(url, call=CALL, retries=2, **FAST)
        client.start()
        client.audio("caller", 0.0, tone(320))  # queued for the first attempt, then lost
        await until(lambda: client.state == "failed")
        client.audio("other", 0.1, tone(480))
        client.dtmf("1")
        client.mark("m")
        client.stop()
        await client.wait_closed()
        assert client.state == "failed"
        assert client.stats == {"sent": 0, "dropped": 2 + 3 + 1 + 1, "errors": 3, "reconnects": 0}

    with caplog.at_level(logging.DEBUG, logger="switchboard.mediastream"):
        run(main)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 2, lines  # one failure line for the whole episode, one giving up
    assert lines[0].startswith("event=stream_failed url=ws://127.0.0.1:")
    assert f"call_id={CALL['call_id']} error=" in lines[0]
    assert lines[1].startswith("event=stream_gave_up") and "attempts=3" in lines[1]
    assert all("secret" not in r.getMessage() for r in caplog.records)


def test_handshake_that_never_answers_is_a_connect_timeout() -> None:
    async def main() -> None:
        accepted: list[asyncio.StreamWriter] = []

        async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            client = MediaStreamClient(f"ws://127.0.0.1:{port}/", call=CALL, retries=1,
                                       backoff=0.01, connect_timeout=0.2)
            client.start()
            await until(lambda: client.state == "failed")
            assert client.stats["errors"] == 2 and len(accepted) == 2
            for writer in accepted:
                writer.close()

    run(main)


def test_consumer_closing_mid_stream_gets_a_new_start_on_a_new_socket() -> None:
    async def main() -> None:
        consumer = Consumer(close_first_after=5)  # connected, start, 3 media
        async with serving(consumer_app(consumer)) as url:
            client = MediaStreamClient(url, call=CALL, **FAST)
            client.start()
            k = 0
            while len(consumer.connections) < 2 or len(consumer.connections[1]) < 5:
                assert k < 2000
                client.audio("caller", k * 0.02, tone(160, start=160 * k))
                k += 1
                await asyncio.sleep(0.002)
            client.stop()
            await client.wait_closed()
            await until(lambda: events(consumer.connections[1])[-1:] == ["stop"])
        first, second = consumer.connections
        assert events(first) == ["connected", "start", "media", "media", "media"]
        assert events(second)[:2] == ["connected", "start"]
        assert second[1]["sequenceNumber"] == "1" and second[1]["streamSid"] == client.stream_sid
        assert second[2]["media"]["chunk"] == "1"
        assert int(second[2]["media"]["timestamp"]) > int(first[-1]["media"]["timestamp"])
        assert client.state == "closed"
        assert client.stats["reconnects"] == 1 and client.stats["errors"] == 1
        sent_media = len([m for m in consumer.messages if m["event"] == "media"])
        assert sent_media + client.stats["dropped"] >= k - 1  # every frame sent or counted

    run(main)


def test_slow_consumer_never_blocks_audio() -> None:
    """A consumer that stops reading fills the socket; audio() stays a few microseconds
    of work (measured worst case over thousands of calls) and drops are counted."""

    async def main() -> None:
        consumer = Consumer(stall=True)
        async with serving(consumer_app(consumer)) as url:
            client = MediaStreamClient(url, call=CALL, queue_size=50, heartbeat=None,
                                       close_timeout=0.3, backoff=0.01)
            client.start()
            await until(lambda: client.state == "streaming")
            rng = np.random.default_rng(4)
            worst, calls, t = 0.0, 0, 0.0
            deadline = time.monotonic() + 15
            while calls < 3000 or client.stats["dropped"] == 0:
                assert time.monotonic() < deadline, f"no drops after {calls} calls: {client.stats}"
                pcm = tone(int(rng.integers(1, 8000)))
                began = time.perf_counter()
                client.audio("caller" if calls % 2 else "other", t, pcm)
                worst = max(worst, time.perf_counter() - began)
                calls, t = calls + 1, t + len(pcm) / 8000
                if calls % 4 == 0:
                    await asyncio.sleep(0)
            assert worst < 0.02, f"audio() took {worst * 1000:.1f} ms"
            assert client.state == "streaming" and client.stats["errors"] == 0
            began = time.perf_counter()
            client.stop()
            await client.wait_closed()
            assert time.perf_counter() - began < 3.0  # bounded by close_timeout
            consumer.release.set()
        assert client.state == "closed"

    run(main)


def test_messages_from_the_consumer_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    said = ('{"event":"clear","streamSid":"x"}', '{"event":"media","media":{"payload":""}}',
            '{"event":"weird"}', "not json")

    async def main() -> None:
        consumer = Consumer(say=said)
        async with serving(consumer_app(consumer)) as url:
            client = MediaStreamClient(url, call=CALL, **FAST)
            client.start()
            await until(lambda: client.state == "streaming")
            await asyncio.sleep(0.05)
            client.audio("caller", 0.0, tone(160))
            client.stop()
            await client.wait_closed()
            await until(lambda: events(consumer.messages)[-1:] == ["stop"])
        assert events(consumer.messages) == ["connected", "start", "media", "stop"]
        assert client.stats["errors"] == 0

    with caplog.at_level(logging.DEBUG, logger="switchboard.mediastream"):
        run(main)
    unknown = [r.getMessage() for r in caplog.records if "stream_unknown_message" in r.getMessage()]
    assert len(unknown) == 2 and "'weird'" in unknown[0] and "None" in unknown[1]


def test_stop_before_start_and_audio_after_stop_are_quiet() -> None:
    async def main() -> None:
        client = MediaStreamClient("ws://127.0.0.1:9/m", call=CALL)
        client.stop()
        client.start()
        client.audio("caller", 0.0, tone(160))
        client.stop()
        await client.wait_closed()
        assert client.state == "closed"
        assert client.stats == {"sent": 0, "dropped": 0, "errors": 0, "reconnects": 0}
        with pytest.raises(ValueError, match="leg"):
            client.audio("agent", 0.0, tone(160))

    run(main)


def test_example_consumer_writes_both_tracks_to_a_wav(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "media_stream_consumer", ROOT / "examples" / "media_stream_consumer.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    printed: list[str] = []

    async def main() -> None:
        async with serving(example.make_app(tmp_path, "/media", printed.append)) as url:
            client = MediaStreamClient(url, call=CALL, **FAST)
            client.start()
            for k in range(50):  # one second of both legs
                client.audio("caller", 5.0 + k * 0.02, tone(160, 440.0, 160 * k))
                client.audio("other", 5.0 + k * 0.02, tone(160, 1000.0, 160 * k))
            client.dtmf("7")
            client.stop()
            await client.wait_closed()
            await until(lambda: any(" wrote " in line for line in printed))
        path = tmp_path / f"{client.stream_sid}.wav"
        with wave.open(str(path)) as wav:
            assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (2, 8000, 8000)
            frames = np.frombuffer(wav.readframes(8000), dtype="<i2").reshape(-1, 2)
        for channel, hz in ((0, 440.0), (1, 1000.0)):
            spectrum = np.abs(np.fft.rfft(frames[:, channel]))
            assert abs(int(np.argmax(spectrum)) - hz) <= 1  # 1 s of audio: 1 Hz a bin
        assert any("dtmf {'track': 'inbound_track', 'digit': '7'}" in line for line in printed)

    run(main)

#!/usr/bin/env python3
"""A small Media Streams consumer for trying Switchboard's streaming out.

    python examples/media_stream_consumer.py [--host 127.0.0.1] [--port 8765]
                                             [--path /media] [--out ./streams]

Point a flow's or queue's ``stream.url`` at ``ws://HOST:PORT/PATH`` (see
docs/media-streams.md). Every event is printed; each stream's audio is written to
``OUT/<streamSid>.wav``: 8 kHz stereo, left = inbound (the caller), right = outbound
(what the caller hears), each frame placed at its ``media.timestamp`` so gaps stay
silent. The WAV is written when the stream stops or its socket ends, so a stream that
reconnected ends up in one file. Audio is held in memory until then (about 1 MB a
minute). Needs only aiohttp; any consumer of Twilio Media Streams works the same way.
"""

from __future__ import annotations

import argparse
import base64
import json
import wave
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

RATE = 8000
SAMPLES_PER_MS = RATE // 1000


def _ulaw_to_linear(code: int) -> int:
    """G.711 mu-law expansion of one byte."""
    u = ~code & 0xFF
    magnitude = ((((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 0x07)) - 0x84
    return -magnitude if u & 0x80 else magnitude


ULAW = [_ulaw_to_linear(code) for code in range(256)]


class StreamAudio:
    """One stream's two tracks as int16 sample arrays, indexed by stream time."""

    def __init__(self) -> None:
        self.tracks = {"inbound": array("h"), "outbound": array("h")}
        self.frames = {"inbound": 0, "outbound": 0}

    def put(self, track: str, timestamp_ms: int, payload: bytes) -> None:
        samples = self.tracks[track]
        offset = timestamp_ms * SAMPLES_PER_MS
        if len(samples) < offset:
            samples.extend([0] * (offset - len(samples)))
        decoded = array("h", (ULAW[b] for b in payload))
        samples[offset:offset + len(decoded)] = decoded
        self.frames[track] += 1

    def write_wav(self, path: Path) -> None:
        left, right = self.tracks["inbound"], self.tracks["outbound"]
        n = max(len(left), len(right))
        stereo = array("h", bytes(4 * n))
        stereo[0:2 * len(left):2] = left
        stereo[1:2 * len(right):2] = right
        with wave.open(str(path), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes(stereo.tobytes())


class Consumer:
    """The WebSocket endpoint: parses each message and keeps each stream's audio."""

    def __init__(self, out_dir: Path, echo: Callable[[str], None] = print) -> None:
        self.out_dir = out_dir
        self.echo = echo
        self.streams: dict[str, StreamAudio] = {}

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = ""
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                sid = self.on_message(json.loads(msg.data)) or sid
        if sid:
            self.save(sid)
        return ws

    def on_message(self, message: dict[str, Any]) -> str:
        event = message.get("event")
        sid = str(message.get("streamSid", ""))
        if event == "connected":
            self.echo(f"connected protocol={message.get('protocol')} version={message.get('version')}")
        elif event == "start":
            start = message["start"]
            again = " (reconnected)" if sid in self.streams else ""
            self.streams.setdefault(sid, StreamAudio())
            self.echo(f"[{sid}] start{again} call={start['callSid']} tracks={','.join(start['tracks'])} "
                      f"format={start['mediaFormat']} parameters={start['customParameters']}")
        elif event == "media" and sid in self.streams:
            media = message["media"]
            self.streams[sid].put(media["track"], int(media["timestamp"]),
                                  base64.b64decode(media["payload"]))
        elif event in ("dtmf", "mark"):
            self.echo(f"[{sid}] {event} {message[event]}")
        elif event == "stop":
            audio = self.streams.get(sid)
            frames = audio.frames if audio else {}
            self.echo(f"[{sid}] stop call={message['stop']['callSid']} frames={frames}")
        else:
            self.echo(f"[{sid}] unexpected event {event!r}")
        return sid

    def save(self, sid: str) -> None:
        audio = self.streams.get(sid)
        if audio is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{sid}.wav"
        audio.write_wav(path)
        self.echo(f"[{sid}] wrote {path}")


def make_app(out_dir: Path, path: str = "/media", echo: Callable[[str], None] = print) -> web.Application:
    app = web.Application()
    app.router.add_get(path, Consumer(out_dir, echo).handle)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Print Media Streams events, write WAVs")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--path", default="/media")
    parser.add_argument("--out", type=Path, default=Path("streams"))
    args = parser.parse_args()
    print(f"listening on ws://{args.host}:{args.port}{args.path}, writing WAVs to {args.out}/")
    web.run_app(make_app(args.out, args.path, lambda line: print(line, flush=True)),
                host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()

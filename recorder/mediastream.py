"""Media streaming out: a call's audio to a WebSocket consumer, shaped like Twilio Media Streams.

Consumers written for Twilio Media Streams (speech-to-text bridges, voice bots, QA
taps) parse a fixed set of JSON text messages: ``connected``, ``start``, ``media``
(base64 mu-law, 20 ms a message, per track), ``dtmf``, ``mark`` and ``stop``. This
module speaks exactly that shape so such consumers work unchanged. docs/media-streams.md
has every message with an example.

Two layers, as everywhere in Switchboard:

- ``TwilioStreamMessages`` is sans-IO: it turns "audio of this track at this time",
  "digit", "mark", "stop" into message dicts (sequence numbers, chunk counters,
  20 ms framing, base64). No sockets, no clock: time is an argument.
- ``MediaStreamClient`` is the asyncio adapter on the server's event loop. The media
  path calls ``audio()``, which only encodes mu-law and appends to a bounded queue;
  one task per stream connects, sends, reconnects with backoff and gives up after a
  bounded number of attempts. A slow or dead consumer costs dropped frames, counted in
  ``stats``, never a blocked loop or a lost call.

Only the outbound direction is implemented: messages from the consumer (Twilio's
bidirectional ``media``, ``mark`` and ``clear``) are read and ignored.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import numpy as np
import numpy.typing as npt

from media import g711

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "FRAME_BYTES",
    "MediaStreamClient",
    "TwilioStreamMessages",
    "new_sid",
    "validate_stream_config",
]

log = logging.getLogger("switchboard.mediastream")

RATE = 8000
FRAME_MS = 20
FRAME_BYTES = RATE * FRAME_MS // 1000  # one mu-law byte a sample: 160 bytes = 20 ms
MEDIA_FORMAT = {"encoding": "audio/x-mulaw", "sampleRate": RATE, "channels": 1}
TRACK_SETS: dict[str, tuple[str, ...]] = {
    "inbound": ("inbound",),
    "outbound": ("outbound",),
    "both": ("inbound", "outbound"),
}
# Twilio's <Stream track="..."> spellings, accepted in config so existing setups paste in.
TRACK_ALIASES = {"inbound_track": "inbound", "outbound_track": "outbound", "both_tracks": "both"}
LEG_TRACKS = {"caller": "inbound", "other": "outbound"}  # recorder legs -> Twilio tracks
DTMF_DIGITS = frozenset("0123456789*#ABCD")
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
CALL_FIELDS = ("call_id", "did", "caller", "account", "flow", "queue")
STABLE_SECONDS = 5.0  # a socket that stayed up this long resets the retry count
CONFIG_KEYS = ("url", "tracks", "parameters", "account_sid")

Int16Array = npt.NDArray[np.int16]
Item = tuple[Any, ...]  # ("media", track, t_ms, ulaw) | ("dtmf", digit) | ("mark", name)


def new_sid(prefix: str, random_hex: Callable[[int], str] = secrets.token_hex) -> str:
    """A Twilio-style SID: two letters and 32 hex digits ("MZ" for a stream)."""
    return prefix + random_hex(16)


class TwilioStreamMessages:
    """Sans-IO builder of the messages of one stream connection.

    ``sequenceNumber`` counts every message after ``connected`` from "1"; ``media.chunk``
    counts each track's frames from "1"; ``media.timestamp`` is the caller's ``t_ms``
    (milliseconds since the stream started) plus 20 ms a frame. All three are strings,
    as in Twilio's messages.
    """

    def __init__(self, stream_sid: str, call_sid: str, account_sid: str,
                 tracks: Sequence[str], custom_parameters: Mapping[str, str] | None = None) -> None:
        unknown = [t for t in tracks if t not in ("inbound", "outbound")]
        if unknown or not tracks:
            raise ValueError(f"tracks must be 'inbound' and/or 'outbound', got {list(tracks)!r}")
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.account_sid = account_sid
        self.tracks = tuple(tracks)
        self.custom_parameters = dict(custom_parameters or {})
        self._sequence = 0
        self._chunks = dict.fromkeys(self.tracks, 0)

    def _message(self, event: str, body: dict[str, Any]) -> dict[str, Any]:
        self._sequence += 1
        return {"event": event, "sequenceNumber": str(self._sequence), event: body,
                "streamSid": self.stream_sid}

    def connected(self) -> dict[str, Any]:
        return {"event": "connected", "protocol": "Call", "version": "1.0.0"}

    def start(self) -> dict[str, Any]:
        return self._message("start", {
            "accountSid": self.account_sid,
            "streamSid": self.stream_sid,
            "callSid": self.call_sid,
            "tracks": list(self.tracks),
            "customParameters": dict(self.custom_parameters),
            "mediaFormat": dict(MEDIA_FORMAT),
        })

    def media(self, track: str, t_ms: int, ulaw: bytes) -> list[dict[str, Any]]:
        """One message a 20 ms frame of ``ulaw``; a last partial frame goes out short."""
        if track not in self._chunks:
            raise ValueError(f"track {track!r} is not one of this stream's {list(self.tracks)}")
        if t_ms < 0:
            raise ValueError(f"t_ms must be >= 0, got {t_ms}")
        out = []
        for offset in range(0, len(ulaw), FRAME_BYTES):
            self._chunks[track] += 1
            out.append(self._message("media", {
                "track": track,
                "chunk": str(self._chunks[track]),
                "timestamp": str(t_ms + offset * 1000 // RATE),
                "payload": base64.b64encode(ulaw[offset:offset + FRAME_BYTES]).decode("ascii"),
            }))
        return out

    def dtmf(self, digit: str) -> dict[str, Any]:
        if digit not in DTMF_DIGITS:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        return self._message("dtmf", {"track": "inbound_track", "digit": digit})

    def mark(self, name: str) -> dict[str, Any]:
        return self._message("mark", {"name": str(name)})

    def stop(self) -> dict[str, Any]:
        return self._message("stop", {"accountSid": self.account_sid, "callSid": self.call_sid})


def validate_stream_config(value: Any) -> dict[str, Any]:
    """Check a flow's or queue's ``stream`` setting; return it normalised.

    Accepts ``{"url": "ws[s]://...", "tracks": "both", "parameters": {...},
    "account_sid": "AC..."}`` (only ``url`` required) or a bare URL string. Returns all
    four keys, ``tracks`` as "inbound", "outbound" or "both" and parameter values as
    strings. Raises ValueError naming the key that is wrong.
    """
    if isinstance(value, str):
        value = {"url": value}
    if not isinstance(value, Mapping):
        raise ValueError(f"stream must be a mapping with a 'url' (or a ws:// URL), got {value!r}")
    unknown = sorted(str(k) for k in value if k not in CONFIG_KEYS)
    if unknown:
        raise ValueError(f"unknown stream key(s) {unknown}; expected {list(CONFIG_KEYS)}")
    if "url" not in value:
        raise ValueError("stream needs a 'url' (ws:// or wss://)")
    return {
        "url": _check_url(value["url"]),
        "tracks": _check_tracks(value.get("tracks", "both")),
        "parameters": _check_parameters(value.get("parameters") or {}),
        "account_sid": _check_account_sid(value.get("account_sid", DEFAULT_ACCOUNT_SID)),
    }


def _check_url(url: Any) -> str:
    if not isinstance(url, str):
        raise ValueError(f"stream 'url' must be a string, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"stream 'url' must be a ws:// or wss:// URL with a host, got {url!r}")
    return url


def _check_tracks(tracks: Any) -> str:
    tracks = TRACK_ALIASES.get(tracks, tracks) if isinstance(tracks, str) else tracks
    if tracks not in TRACK_SETS:
        raise ValueError(f"stream 'tracks' must be 'inbound', 'outbound' or 'both', got {tracks!r}")
    return str(tracks)


def _check_parameters(parameters: Any) -> dict[str, str]:
    if not isinstance(parameters, Mapping):
        raise ValueError(f"stream 'parameters' must map names to values, got {parameters!r}")
    out = {}
    for name, value in parameters.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif not isinstance(value, str | int | float):
            raise ValueError(f"stream parameter {name!r} must be a string or number, got {value!r}")
        out[str(name)] = str(value)
    return out


def _check_account_sid(sid: Any) -> str:
    if not isinstance(sid, str) or not sid:
        raise ValueError(f"stream 'account_sid' must be a non-empty string, got {sid!r}")
    return sid


def _redacted(url: str) -> str:
    """The URL without credentials or query: tokens often ride there, logs must not."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _call_parameters(call: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(call[k]) for k in CALL_FIELDS if call.get(k) not in (None, "")}


def _weight(item: Item) -> int:
    """How many messages an item becomes: what a drop of it counts."""
    if item[0] == "media":
        return -(-len(item[3]) // FRAME_BYTES)
    return 1


class _SocketLost(Exception):
    """The consumer closed the socket or it broke while we were streaming."""


_CONNECT_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)
_STREAM_ERRORS = (aiohttp.ClientError, OSError, TimeoutError, _SocketLost)


class MediaStreamClient:
    """Streams one call's audio to ``url`` in Twilio Media Streams messages.

    Lives on the server's event loop; every public method is synchronous, returns at
    once and never raises on network trouble (only ValueError for misuse). ``state``
    is "connecting", "streaming", "failed" or "closed"; ``stats`` counts messages
    "sent", frames and events "dropped", connection "errors" and "reconnects".

    Audio queued before the first connection is up is kept (up to ``queue_size``
    items); audio offered while a broken socket is being replaced, or after giving
    up, is dropped and counted. ``retries`` consecutive failures after the first are
    retried, ``backoff`` seconds doubling each time; then the stream is "failed".
    """

    def __init__(self, url: str, *, call: Mapping[str, Any], tracks: str = "both",
                 custom_parameters: Mapping[str, str] | None = None, queue_size: int = 500,
                 session: aiohttp.ClientSession | None = None, connect_timeout: float = 5.0,
                 retries: int = 3, backoff: float = 0.5, heartbeat: float | None = 10.0,
                 close_timeout: float = 5.0, account_sid: str = DEFAULT_ACCOUNT_SID,
                 random_hex: Callable[[int], str] = secrets.token_hex) -> None:
        self.url = _check_url(url)
        self.tracks = TRACK_SETS[_check_tracks(tracks)]
        self.call_id = str(call.get("call_id", ""))
        self.stream_sid = new_sid("MZ", random_hex)
        self.account_sid = account_sid
        self.custom_parameters = _call_parameters(call) | dict(custom_parameters or {})
        self.state = "connecting"
        self.stats = {"sent": 0, "dropped": 0, "errors": 0, "reconnects": 0}
        self._queue_size = queue_size
        self._session = session
        self._connect_timeout = connect_timeout
        self._retries = retries
        self._backoff = backoff
        self._heartbeat = heartbeat
        self._close_timeout = close_timeout
        self._pending: deque[Item] = deque()
        self._wake = asyncio.Event()
        self._origin: float | None = None
        self._down = False  # a socket broke and no new one is up yet
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    # -- the media path: synchronous, O(frame) --------------------------------------

    def start(self) -> None:
        """Spawn the connect-and-send task on the running loop; return at once."""
        if self._task is None and not self._stopping:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def audio(self, leg: str, t: float, pcm: Int16Array) -> None:
        """Queue 8 kHz int16 ``pcm`` of ``leg`` ("caller" or "other") heard at timeline ``t``."""
        track = LEG_TRACKS.get(leg)
        if track is None:
            raise ValueError(f"leg must be 'caller' or 'other', got {leg!r}")
        if track not in self.tracks or len(pcm) == 0:
            return
        if self._origin is None:
            self._origin = t  # media.timestamp counts from the first audio of the stream
        if self._refuses(-(-len(pcm) // FRAME_BYTES)):
            return
        t_ms = max(0, round((t - self._origin) * 1000))
        self._enqueue(("media", track, t_ms, g711.ulaw_encode(pcm)))

    def dtmf(self, digit: str) -> None:
        if digit not in DTMF_DIGITS:
            raise ValueError(f"not a DTMF digit: {digit!r}")
        if not self._refuses(1):
            self._enqueue(("dtmf", digit))

    def mark(self, name: str) -> None:
        if not self._refuses(1):
            self._enqueue(("mark", str(name)))

    def stop(self) -> None:
        """Send what is queued, then ``stop``, then close; bounded by ``close_timeout``."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        if self._task is None:
            self._finish()
        elif not self._task.done():
            self._task.get_loop().call_later(self._close_timeout, self._task.cancel)

    async def wait_closed(self) -> None:
        """Wait until the stream task has ended (after ``stop()`` or giving up)."""
        if self._task is not None:
            await asyncio.wait({self._task})

    def _refuses(self, weight: int) -> bool:
        if self._stopping or self.state == "closed":
            return True  # the call is over: nothing to count
        if self._down or self.state == "failed" or len(self._pending) >= self._queue_size:
            self.stats["dropped"] += weight
            return True
        return False

    def _enqueue(self, item: Item) -> None:
        self._pending.append(item)
        self._wake.set()

    # -- the stream task -------------------------------------------------------------

    async def _run(self) -> None:
        session = self._session or aiohttp.ClientSession()
        try:
            await self._connect_loop(session)
        except asyncio.CancelledError:
            pass  # stop() ran out of close_timeout: whatever is left is dropped below
        except Exception:  # a bug here must cost the stream, never the call
            log.exception("event=stream_error url=%s call_id=%s", _redacted(self.url), self.call_id)
            self.state = "failed"
        finally:
            if session is not self._session:
                await session.close()
            self._finish()

    def _finish(self) -> None:
        self._drop_pending()
        if self.state != "failed":
            self.state = "closed"

    async def _connect_loop(self, session: aiohttp.ClientSession) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        connected_before = False
        while True:  # even once stopping: what was queued still goes out, within close_timeout
            error: BaseException | None
            try:
                ws = await self._open(session)
            except _CONNECT_ERRORS as exc:
                error = exc
            else:
                self.stats["reconnects"] += int(connected_before)
                connected_before = True
                up_since = loop.time()
                error = await self._stream(ws)
                if error is None:
                    return
                if loop.time() - up_since >= STABLE_SECONDS:
                    failures = 0
            failures += 1
            if not await self._after_failure(error, failures):
                return

    async def _open(self, session: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
        async with asyncio.timeout(self._connect_timeout):
            return await session.ws_connect(self.url, heartbeat=self._heartbeat, autoclose=True)

    async def _after_failure(self, error: BaseException, failures: int) -> bool:
        """Count, log and back off after a failure; False once it is time to give up."""
        self.stats["errors"] += 1
        self._down = True
        self._drop_pending()
        first = self.state != "connecting" or failures == 1  # once an outage, not per retry
        log.log(logging.WARNING if first else logging.DEBUG,
                "event=stream_failed url=%s call_id=%s error=%s", _redacted(self.url),
                self.call_id, _describe(error))
        self.state = "connecting"
        if failures > self._retries:
            self.state = "failed"
            log.warning("event=stream_gave_up url=%s call_id=%s attempts=%d dropped=%d",
                        _redacted(self.url), self.call_id, failures, self.stats["dropped"])
            return False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._backoff * 2 ** (failures - 1)):
                while not self._stopping:
                    self._wake.clear()
                    await self._wake.wait()
        return not self._stopping

    async def _stream(self, ws: aiohttp.ClientWebSocketResponse) -> BaseException | None:
        """Stream on one socket until stopped (None) or until it breaks (the error)."""
        self._down = False
        self.state = "streaming"
        messages = TwilioStreamMessages(self.stream_sid, self.call_id, self.account_sid,
                                        self.tracks, self.custom_parameters)
        reader = asyncio.get_running_loop().create_task(self._read(ws))
        try:
            await self._send(ws, messages.connected())
            await self._send(ws, messages.start())
            while (item := await self._next_item(reader, ws)) is not None:
                for message in _build(messages, item):
                    await self._send(ws, message)
            await self._send(ws, messages.stop())
        except _STREAM_ERRORS as exc:
            return exc
        finally:
            await self._close(ws)
            reader.cancel()
        return None

    async def _close(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Close handshake, bounded: aiohttp drops the connection when it is cancelled."""
        with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError):
            async with asyncio.timeout(self._close_timeout):
                await ws.close()

    async def _next_item(self, reader: asyncio.Task[None],
                         ws: aiohttp.ClientWebSocketResponse) -> Item | None:
        while True:
            if reader.done():
                raise _SocketLost(f"consumer closed the socket (code {ws.close_code})")
            if self._pending:
                return self._pending.popleft()
            if self._stopping:
                return None
            self._wake.clear()
            await self._wake.wait()

    async def _send(self, ws: aiohttp.ClientWebSocketResponse, message: dict[str, Any]) -> None:
        await ws.send_str(json.dumps(message, separators=(",", ":")))
        self.stats["sent"] += 1

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Read and ignore what the consumer sends; wake the sender when the socket ends."""
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    _ignore(msg.data, self.call_id)
                else:
                    log.debug("event=stream_ignored call_id=%s type=%s", self.call_id, msg.type.name)
        except Exception as exc:  # the sender reports the socket's end; this is only its cause
            log.debug("event=stream_read_error call_id=%s error=%s", self.call_id, _describe(exc))
        finally:
            self._wake.set()

    def _drop_pending(self) -> None:
        self.stats["dropped"] += sum(_weight(item) for item in self._pending)
        self._pending.clear()


def _build(messages: TwilioStreamMessages, item: Item) -> list[dict[str, Any]]:
    if item[0] == "media":
        return messages.media(item[1], item[2], item[3])
    if item[0] == "dtmf":
        return [messages.dtmf(item[1])]
    return [messages.mark(item[1])]


def _ignore(text: str, call_id: str) -> None:
    """Bidirectional Twilio messages from the consumer are out of scope; others are logged."""
    try:
        event = json.loads(text).get("event")
    except (ValueError, AttributeError):
        event = None
    if event not in ("media", "mark", "clear"):
        log.debug("event=stream_unknown_message call_id=%s type=%.40r", call_id, event)


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text.replace("\n", " ")[:200]

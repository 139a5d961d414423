"""A call recording's timeline: RTP payloads placed on one stereo timeline of 8 kHz PCM16.

Channel 0 is the caller, channel 1 what the caller hears (IVR prompts, then the agent),
aligned on a common timeline with silence for gaps and loss. A packet is placed by its
RTP timestamp within its stream (RFC 3550 §5.1, unwrapped), a new stream (a new SSRC) by
its arrival time; the first packet to reach a sample wins; one packet far off its slot
is a straggler and dropped, two in a row that agree mean the sender's clock jumped and
re-anchor the stream. `take` hands over, interleaved, every frame older than the
holdback (silence where nothing came and over paused spans) and forgets it.

Two implementations with one interface (`Timeline`):

- ``media._engine.Timeline`` (media/_timeline.c), used whenever the native module is
  compiled: on the native plane the media thread places every tapped packet into it
  without the GIL, so the recorder's Python side handles one bytes object per call and
  flush;
- `PyTimeline` here, the fallback: packets are appended to runs of contiguous payload
  as they come (`tap` is the per-packet hot path: two comparisons and an append) and
  placed with one numpy operation per run when `take` runs.

tests/recorder/test_timeline.py feeds both the same packets and compares the audio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from media import g711

try:
    from media._engine import Timeline as NativeTimeline  # type: ignore[import-not-found]
except ImportError:  # not compiled
    NativeTimeline = None

__all__ = ["G711", "HOLDBACK_SECONDS", "MAX_SKEW_SECONDS", "PyTimeline", "Timeline",
           "NativeTimeline", "new_timeline", "ts_delta"]

G711 = ("PCMU", "PCMA")
# The newest audio stays in memory this long, so that a packet reordered across a
# flush boundary still finds its slot.
HOLDBACK_SECONDS = 0.2
# A stream whose RTP timestamps drift this far from arrival time has jumped (a device
# reset its clock without changing SSRC): re-anchor instead of leaving a huge gap or
# dropping the rest of the call as "late".
MAX_SKEW_SECONDS = 2.0
CHANNELS = 2

Int16Array = npt.NDArray[np.int16]
Tap = Callable[..., None]  # (payload, codec, rtp_ts, ssrc[, now])


class Timeline(Protocol):
    """What both implementations offer."""

    started: float
    rate: int

    @property
    def written(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def paused(self) -> bool: ...
    def feed(self, channel: int, payload: bytes, codec: str, ts: int, ssrc: int, now: float,
             /) -> None: ...
    def take(self, now: float, final: bool = False) -> tuple[int, bytes]: ...
    def take_legs(self, now: float, final: bool = False) -> tuple[int, bytes, bytes, bytes]: ...
    def pause(self, now: float) -> None: ...
    def resume(self, now: float) -> None: ...
    def close(self) -> None: ...
    def position(self, now: float) -> int: ...


def new_timeline(started: float, rate: int = 8000, *, native: bool | None = None) -> Timeline:
    """The C timeline when compiled (or when `native` asks for it), else `PyTimeline`."""
    if native is None:
        native = NativeTimeline is not None
    if native:
        if NativeTimeline is None:
            raise RuntimeError("media._engine is not compiled")
        timeline: Timeline = NativeTimeline(started, rate, HOLDBACK_SECONDS, MAX_SKEW_SECONDS)
        return timeline
    return PyTimeline(started, rate)


def tap_for(timeline: Timeline, channel: int, clock: Callable[[], float]) -> Tap:
    """A per-packet tap ``(payload, codec, rtp_ts, ssrc[, now])`` onto one channel, for a
    session that hands packets over one by one (the pure-Python RTP plane)."""
    if isinstance(timeline, PyTimeline):
        return timeline.tap(channel, clock)
    feed = timeline.feed

    def tap(payload: bytes, codec: str, ts: int, ssrc: int, now: float | None = None, /) -> None:
        feed(channel, payload, codec, ts, ssrc, clock() if now is None else now)

    return tap


def ts_delta(ts: int, ref: int) -> int:
    """Signed difference of two 32-bit RTP timestamps (RFC 3550 §5.1: they wrap)."""
    return ((ts - ref + 0x80000000) & 0xFFFFFFFF) - 0x80000000


@dataclass
class _Stream:
    """Where one (channel, SSRC) stream sits on the timeline."""

    ssrc: int
    anchor_pos: int
    anchor_ts: int  # unwrapped RTP timestamp of the anchor packet
    last_ts: int  # raw 32-bit timestamp of the newest sample
    last_unwrapped: int
    suspect: tuple[int, int] | None = None  # (ts, arrival) of a packet far off its slot


@dataclass
class _Channel:
    """`written` samples are handed over, `tail` is placed but not yet.

    `filled` marks the samples of `tail` some packet has set; None means all of them, the
    usual case of a stream that arrives in order, where placing a run is one append."""

    written: int = 0
    tail: Int16Array = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    filled: npt.NDArray[np.bool_] | None = None
    stream: _Stream | None = None

    @property
    def end(self) -> int:
        return self.written + len(self.tail)

    def _holes(self) -> npt.NDArray[np.bool_]:
        if self.filled is None:
            self.filled = np.ones(len(self.tail), dtype=bool)
        return self.filled

    def grow(self, end: int) -> None:
        extra = end - self.end
        if extra > 0:
            filled = self._holes()
            self.tail = np.concatenate([self.tail, np.zeros(extra, dtype=np.int16)])
            self.filled = np.concatenate([filled, np.zeros(extra, dtype=bool)])

    def place(self, pos: int, pcm: Int16Array) -> None:
        """First packet wins: a duplicate never overwrites audio already placed."""
        if pos == self.end and self.filled is None:
            self.tail = np.concatenate([self.tail, pcm]) if len(self.tail) else pcm
            return
        self.grow(pos + len(pcm))
        filled = self._holes()
        start = pos - self.written
        stop = start + len(pcm)
        free = ~filled[start:stop]
        self.tail[start:stop][free] = pcm[free]
        filled[start:stop] = True

    def silence(self, start: int, stop: int | None) -> None:
        lo = max(start - self.written, 0)
        hi = len(self.tail) if stop is None else min(stop - self.written, len(self.tail))
        if hi > lo:
            self.tail[lo:hi] = 0
            self._holes()[lo:hi] = True

    def commit(self, n: int) -> Int16Array:
        """The first `n` samples of the tail, now final."""
        chunk = self.tail[:n]
        self.written += n
        self.tail = self.tail[n:]
        if self.filled is not None:
            self.filled = self.filled[n:]
            if self.filled.all():
                self.filled = None
        return chunk


class _Intake:
    """One channel's packets as they arrive: runs of contiguous payload (the same stream,
    each packet's timestamp where the previous one ended) appended to one bytearray. The
    next packet of a run costs two comparisons and an append; only a run's first packet
    asks the clock for its arrival time, which places the run when no earlier audio of
    its stream does."""

    __slots__ = ("runs", "buf", "next_ts", "ssrc", "codec", "accepting", "clock")

    def __init__(self) -> None:
        self.runs: list[tuple[int, int, str, float, int, bytearray]] = []
        self.buf: bytearray | None = None
        self.next_ts = -1
        self.ssrc = -1
        self.codec = ""
        self.accepting = True
        self.clock: Callable[[], float] | None = None

    def feed(self, payload: bytes, codec: str, ts: int, ssrc: int, now: float | None = None, /
             ) -> None:
        """A session's tap (hot path): the run's arrival time is `now` when the caller
        knows it, else the clock's."""
        if ts == self.next_ts and ssrc == self.ssrc and codec == self.codec:
            self.buf += payload  # type: ignore[operator]  # a buffer whenever next_ts >= 0
            self.next_ts = (ts + len(payload)) & 0xFFFFFFFF
        elif self.accepting and (now is not None or self.clock is not None):
            self.add(payload, codec, ts, ssrc, self.clock() if now is None else now)  # type: ignore[misc]

    def add(self, payload: bytes, codec: str, ts: int, ssrc: int, now: float) -> None:
        if not self.accepting:
            return
        ts &= 0xFFFFFFFF
        if ts == self.next_ts and ssrc == self.ssrc and codec == self.codec:
            self.buf += payload  # type: ignore[operator]
        else:
            self.buf = bytearray(payload)
            self.runs.append((ts, ssrc, codec, now, len(payload), self.buf))
            self.ssrc, self.codec = ssrc, codec
        self.next_ts = (ts + len(payload)) & 0xFFFFFFFF

    def stop(self) -> None:
        """Close the open run: the next packet starts a new one (or is refused)."""
        self.buf, self.next_ts = None, -1

    def take(self) -> list[tuple[int, int, str, float, int, bytearray]]:
        """Runs as (ts, ssrc, codec, arrival of the first packet, its size, payload)."""
        runs, self.runs = self.runs, []
        self.stop()
        return runs


class PyTimeline:
    """The pure-Python `Timeline`."""

    def __init__(self, started: float, rate: int = 8000, holdback: float = HOLDBACK_SECONDS,
                 max_skew: float = MAX_SKEW_SECONDS) -> None:
        if rate <= 0:
            raise ValueError(f"bad sample rate {rate}")
        self.started = started
        self.rate = rate
        self.holdback = round(holdback * rate)
        self.skew = int(max_skew * rate)
        self.dropped = 0
        self.paused = False
        self._closed = False
        self._intake = [_Intake() for _ in range(CHANNELS)]
        self._channels = [_Channel() for _ in range(CHANNELS)]
        self._pauses: list[tuple[int, int | None]] = []

    @property
    def written(self) -> int:
        return self._channels[0].written

    @property
    def accepting(self) -> bool:
        return not (self.paused or self._closed)

    def position(self, now: float) -> int:
        return max(round((now - self.started) * self.rate), 0)

    # -- packets in -------------------------------------------------------------------

    def feed(self, channel: int, payload: bytes, codec: str, ts: int, ssrc: int, now: float,
             /) -> None:
        if not 0 <= channel < CHANNELS:
            raise ValueError(f"no channel {channel}")
        if self.accepting and not payload:
            self.dropped += 1
            return
        self._intake[channel].add(payload, codec, ts, ssrc, now)

    def tap(self, channel: int, clock: Callable[[], float]) -> Tap:
        intake = self._intake[channel]
        intake.clock = clock
        return intake.feed

    # -- pause and close ------------------------------------------------------------------

    def _set_accepting(self) -> None:
        for intake in self._intake:
            intake.accepting = self.accepting
            intake.stop()

    def pause(self, now: float) -> None:
        if self._closed or self.paused:
            return
        self.paused = True
        self._set_accepting()
        self._pauses.append((self.position(now), None))

    def resume(self, now: float) -> None:
        if self._closed or not self.paused:
            return
        start, _ = self._pauses[-1]
        self._pauses[-1] = (start, max(start, self.position(now)))
        self.paused = False
        self._set_accepting()

    def close(self) -> None:
        self._closed = True
        self._set_accepting()

    # -- frames out ----------------------------------------------------------------------

    def take(self, now: float, final: bool = False) -> tuple[int, bytes]:
        """Place what came since the last call; frames older than the holdback (all of
        them with `final`) are handed over, interleaved little-endian int16."""
        limit = max(self.position(now) - self.holdback, 0)
        for channel, intake in zip(self._channels, self._intake, strict=True):
            for pos, pcm in self._placed(channel, intake.take()):
                channel.place(pos, pcm)  # in arrival order: the first packet wins
            if not final:
                channel.grow(limit)  # nothing came for the audio before the limit: silence
        if final:  # both channels end together
            end = max(c.end for c in self._channels)
            for channel in self._channels:
                channel.grow(end)
        for start, stop in self._pauses:
            for channel in self._channels:
                channel.silence(start, stop)
        first = self.written
        n = len(self._channels[0].tail) if final else max(min(self._channels[0].end, limit) - first, 0)
        frames = np.empty((n, CHANNELS), dtype="<i2")
        for i, channel in enumerate(self._channels):
            frames[:, i] = channel.commit(n)
        self._pauses = [(a, b) for a, b in self._pauses if b is None or b > self.written]
        return first, frames.tobytes()

    def take_legs(self, now: float, final: bool = False) -> tuple[int, bytes, bytes, bytes]:
        """`take`, plus each channel's frames on their own (little-endian int16)."""
        first, data = self.take(now, final)
        left, right = as_channels(data)
        return first, data, left.tobytes(), right.tobytes()

    def _placed(self, channel: _Channel, runs: list[tuple[int, int, str, float, int, bytearray]]
                ) -> list[tuple[int, Int16Array]]:
        """One channel's runs placed on the timeline, each decoded with one numpy call. A run
        is placed by its first packet (RTP timestamp within its stream, arrival time for a
        new stream); G.711 has one sample per byte."""
        out: list[tuple[int, Int16Array]] = []
        for ts, ssrc, codec, now, first, buf in runs:
            n = len(buf)
            if codec not in G711:
                self.dropped += n // 160 or 1
                continue
            arrival = self.position(now)
            pos = self._stream_pos(channel, ts, ssrc, arrival)
            if pos is None and n > first:
                # the run's second packet agrees with its first: the sender's clock jumped
                # (as the C timeline, which sees packets one by one, drops only the first)
                self.dropped += first // 160 or 1
                ts, buf = (ts + first) & 0xFFFFFFFF, buf[first:]
                n -= first
                pos = self._stream_pos(channel, ts, ssrc, arrival)
            if pos is None:
                self.dropped += n // 160 or 1
                continue
            stream = channel.stream
            if stream is not None and stream.ssrc == ssrc and n > 1:
                last = (ts + n - 1) & 0xFFFFFFFF  # the run's last sample moves the stream on
                delta = ts_delta(last, stream.last_ts)
                if delta > 0:
                    stream.last_ts, stream.last_unwrapped = last, stream.last_unwrapped + delta
            skip = channel.written - pos
            if skip >= n:
                self.dropped += n // 160 or 1  # late or duplicate of audio already handed over
                continue
            out.append((max(pos, channel.written), _decode(codec, buf, max(skip, 0))))
        return out

    def _stream_pos(self, channel: _Channel, ts: int, ssrc: int, arrival_pos: int) -> int | None:
        """Sample index for a run: by RTP timestamp within a stream, by arrival for a new
        stream; None to drop it."""
        stream = channel.stream
        if stream is None or stream.ssrc != ssrc:
            channel.stream = _Stream(ssrc, arrival_pos, ts, ts, ts)
            return arrival_pos
        delta = ts_delta(ts, stream.last_ts)
        unwrapped = stream.last_unwrapped + delta
        pos = stream.anchor_pos + unwrapped - stream.anchor_ts
        if abs(pos - arrival_pos) <= self.skew:
            stream.suspect = None
            if delta > 0:
                stream.last_ts, stream.last_unwrapped = ts, unwrapped
            return pos
        # One packet far off its slot is a straggler: drop it. Two in a row that agree
        # with each other mean the sender's clock jumped: re-anchor at the first of them.
        if stream.suspect is not None and 0 < ts_delta(ts, stream.suspect[0]) <= self.skew:
            first_ts, first_pos = stream.suspect
            channel.stream = _Stream(ssrc, first_pos, first_ts, ts,
                                     first_ts + ts_delta(ts, first_ts))
            return first_pos + ts_delta(ts, first_ts)
        stream.suspect = (ts, arrival_pos)
        return None


def _table(codec: str) -> Int16Array:
    table = g711.decode(codec, bytes(range(256)))
    table.flags.writeable = False
    return table


# 512 bytes per law: stays in the L1 cache (a table of byte pairs would halve the lookups,
# but at 256 KiB it misses the cache on a busy event loop and ends up slower)
_TABLES = {codec: _table(codec) for codec in G711}


def _decode(codec: str, buf: bytearray, skip: int) -> Int16Array:
    """G.711 bytes from `skip` on, decoded straight from the intake's buffer (no copy)."""
    return _TABLES[codec].take(np.frombuffer(buf, dtype=np.uint8, offset=skip))


def as_channels(data: bytes) -> tuple[Int16Array, Int16Array]:
    """The two channels of interleaved frames from `take`, as read-only views."""
    frames: Any = np.frombuffer(data, dtype="<i2").reshape(-1, CHANNELS)
    return frames[:, 0], frames[:, 1]

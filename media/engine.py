"""The native RTP plane: every call leg's socket and the 20 ms media clock in one C thread.

`media/_engine.c` (built by `pip install`, optional) receives, latches, relays bridged
audio, places it on the call recording's timeline (`EngineSession.record`, a
``media._engine.Timeline``) and sends paced prompt frames without the GIL, so the event
loop spends no time per packet. Python keeps the decisions: what to play, what to
bridge, what to record, DTMF decoding (RFC 4733 and in-band, from the events the thread
hands over), the RTP inactivity timeout, and the recorder's files.

`EngineSession` has `RtpSession`'s interface, so the rest of the server does not know
which plane carries a call. Without the compiled module (no C compiler at install time)
or with ``SWITCHBOARD_MEDIA_ENGINE=python``, the server uses `RtpSession` and the
asyncio `MediaClock` instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

from .audio import silence_frame
from .clock import PHASES, TICK, LatenessHistogram
from .dtmf import GoertzelDetector, Rfc4733Receiver
from .g711 import decode
from .osthread import renice_others
from .session import (
    INBAND_BATCH,
    SO_ATTACH_FILTER,
    SO_DETACH_FILTER,
    TRANSCODE,
    MediaListener,
    _thin_program,
)

try:
    from . import _engine  # type: ignore[attr-defined]
except ImportError:  # not compiled: the pure-Python plane
    _engine = None

log = logging.getLogger("switchboard.media")

CODECS = ("PCMU", "PCMA")  # the engine's codec index
HOUSEKEEPING = 1.0  # the RTP inactivity check


def available() -> bool:
    """Whether the native plane can be used (compiled, and not turned off)."""
    return _engine is not None and os.environ.get("SWITCHBOARD_MEDIA_ENGINE", "") != "python"


class EngineClock:
    """The native clock's figures in `MediaClock`'s shape (metrics and the health API)."""

    def __init__(self, media: NativeMedia) -> None:
        self._media = media
        self.lateness = LatenessHistogram()
        self.work = LatenessHistogram()
        self.skipped = 0
        self.late_subticks = 0
        self.subticks = 0
        self.realtime = False
        self.events_dropped = 0

    def refresh(self) -> EngineClock:
        (self.subticks, self.skipped, self.late_subticks, late, work, realtime, _err,
         self.events_dropped, _streams) = self._media.engine.clock()
        for hist, buckets in ((self.lateness, late), (self.work, work)):
            hist.buckets = list(buckets)
            hist.count = sum(buckets)
        self.realtime = bool(realtime)
        return self

    @property
    def ticks(self) -> int:
        return self.subticks // PHASES

    @property
    def streams(self) -> dict[EngineSession, None]:
        return dict.fromkeys(self._media.sessions.values())


class NativeMedia:
    """One engine per server: its event fd on the loop, its sessions, its timers."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, *, priority: int = 0,
                 nice: int = 0, slice_us: int = 0, relay_jitter_ms: int = 0,
                 coalesce_us: int = 0) -> None:
        if _engine is None:
            raise RuntimeError("media._engine is not compiled")
        self.loop = loop or asyncio.get_running_loop()
        self.priority = priority
        self.nice = nice
        self.slice_us = slice_us
        self.slice_ns = 0  # the slice the kernel took (after `start`)
        self.thread_id = 0
        self.background_nice = 0  # what `yield_to_media` set
        self.relay_jitter_ms = relay_jitter_ms
        self.coalesce_us = coalesce_us
        self.engine: Any = _engine.Engine()
        self.sessions: dict[int, EngineSession] = {}
        self.errors = 0
        self._timers: list[asyncio.TimerHandle] = []
        self.clock = EngineClock(self)

    def start(self) -> None:
        if self.relay_jitter_ms:
            self.engine.set_relay_jitter(self.relay_jitter_ms)
        if self.coalesce_us:
            self.engine.set_coalesce(self.coalesce_us)
        self.engine.start(self.priority, self.nice, self.slice_us)
        self.loop.add_reader(self.engine.fileno(), self.pump)
        self._timers = [self.loop.call_later(HOUSEKEEPING, self._housekeeping)]
        clock = self.clock.refresh()
        if self.priority > 0 and not clock.realtime:
            log.info("event=media_engine realtime=no reason=not_permitted priority=%d", self.priority)
        self.thread_id, self.slice_ns, slice_error = self.engine.sched()
        if slice_error:
            log.info("event=media_engine slice=no slice_us=%d error=%s", self.slice_us,
                     os.strerror(slice_error))

    def yield_to_media(self, nice: int) -> None:
        """Give every other thread of the process (the event loop, and through it the
        threads it starts later: recorder I/O, analyzers) the nice value `nice`, so that the
        media thread (at `media.nice`, 0 by default) wins the core when both want it:
        against nice 5 it gets three times their share. Unprivileged, and one-way: a
        thread cannot lower its nice value back without ``CAP_SYS_NICE``."""
        if nice <= 0 or not self.thread_id:
            return
        failed = renice_others({self.thread_id}, nice)
        self.background_nice = nice
        if failed:
            log.info("event=media_engine background_nice=%d unchanged_threads=%d", nice,
                     len(failed))

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers = []
        try:
            self.loop.remove_reader(self.engine.fileno())
        except (ValueError, RuntimeError):
            pass
        self.engine.stop()

    def bind(self, listener: MediaListener, host: str, port: int, *, timeout: float = 30.0
             ) -> EngineSession:
        """A session on a UDP socket bound to host:port (OSError when it cannot be bound)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((host, port))
            session = EngineSession(self, sock, listener, port, timeout=timeout)
        except BaseException:
            sock.close()
            raise
        self.sessions[session.leg] = session
        return session

    # -- from the thread -----------------------------------------------------------------

    def pump(self) -> None:
        """Events: DTMF, in-band audio, prompts played out."""
        events = self.engine.drain()
        sessions = self.sessions
        for leg, gen, kind, play_id, ts, ssrc, t, data in events:
            session = sessions.get(leg)
            if session is None or session.gen != gen:
                continue
            try:
                session.on_event(kind, play_id, ts, ssrc, t, data)
            except Exception:  # one call's error must not stop the others' events
                self.errors += 1
                log.exception("event=media_event_error leg=%d", leg)

    def _housekeeping(self) -> None:
        self._timers[0] = self.loop.call_later(HOUSEKEEPING, self._housekeeping)
        counts = self.engine.rx_counts()
        now = self.loop.time()
        for leg, session in list(self.sessions.items()):
            try:
                session.housekeeping(now, counts.get(leg, 0))
            except Exception:
                self.errors += 1
                log.exception("event=media_housekeeping_error leg=%d", leg)


class EngineSession:
    """`RtpSession`'s interface over one leg of the native engine."""

    def __init__(self, media: NativeMedia, sock: socket.socket, listener: MediaListener,
                 local_port: int, *, timeout: float = 30.0) -> None:
        self.media = media
        self.engine = media.engine
        self.sock = sock
        self.listener = listener
        self.local_port = local_port
        self.timeout = timeout
        self.codec = "PCMU"
        self.pt = 0
        self.te_pt: int | None = None
        self.on_hold = False
        self.ssrc = int.from_bytes(os.urandom(4), "big")
        self.relay: EngineSession | None = None
        self._sending = True
        self._recording: Any = None  # the Timeline the engine places this leg's audio on
        self._rfc4733 = Rfc4733Receiver()
        self._inband: GoertzelDetector | None = None
        self._inband_buf: list[bytes] = []
        self._play_id = 0
        self._notify_done = False
        self._thinned = False
        self._rx_seen = 0
        self._idle = 0.0
        self.timing_out = False
        self._final: tuple[int, ...] | None = None  # counters kept when the leg is gone
        seq = int.from_bytes(os.urandom(2), "big")
        ts = int.from_bytes(os.urandom(4), "big")
        self.leg, self.gen = self.engine.add(sock.fileno(), self.ssrc, seq, ts)
        self._configure()

    # -- configuration ---------------------------------------------------------------

    def set_codec(self, codec: str, pt: int, te_pt: int | None) -> None:
        self.codec, self.pt, self.te_pt = codec, pt, te_pt
        self._inband = GoertzelDetector() if te_pt is None else None
        self._configure()
        self._refilter()

    def _configure(self) -> None:
        index = CODECS.index(self.codec) if self.codec in CODECS else 0
        self.engine.configure(self.leg, self.pt, -1 if self.te_pt is None else self.te_pt, index,
                              self.te_pt is None, silence_frame(self.codec))

    def set_remote(self, host: str, port: int) -> None:
        """From SDP; the first packet's source replaces it (latching). An address the engine
        cannot send to (a host name, IPv6) leaves the leg waiting for that first packet."""
        if (host, port) == self.remote:
            return
        try:
            self.engine.set_remote(self.leg, host, port)
        except ValueError:
            log.warning("event=rtp_remote_unusable host=%r port=%s action=latch_only", host, port)

    @property
    def remote(self) -> tuple[str, int] | None:
        if self._final is not None:
            return None
        got = self.engine.remote(self.leg)
        return None if got is None else got[0]

    @property
    def latched(self) -> bool:
        got = None if self._final is not None else self.engine.remote(self.leg)
        return bool(got and got[1])

    @property
    def sending(self) -> bool:
        return self._sending

    @sending.setter
    def sending(self, value: bool) -> None:
        self._sending = bool(value)
        if self._final is None:
            self.engine.set_sending(self.leg, self._sending)

    def record(self, timeline: Any) -> None:
        """Place what this leg hears (channel 0) and sends (channel 1) on `timeline` (a
        ``media._engine.Timeline``), packet by packet in the media thread; None stops.
        This plane has no per-packet Python taps (`RtpSession.tap_in`)."""
        if self._final is None:
            self.engine.record(self.leg, timeline)
        self._recording = timeline
        self._refilter()

    def start_timeout(self) -> None:
        self.timing_out = self.timeout > 0
        self._idle = 0.0

    # -- playback ----------------------------------------------------------------------

    def play(self, items: Sequence[Sequence[bytes]], *, loop: bool = False,
             then_loop: Sequence[Sequence[bytes]] = ()) -> None:
        """As `RtpSession.play`: `items` (frame tuples) then, with `loop`, the same again
        forever, or `then_loop` forever; `on_play_done` when a finite play ends."""
        queue = [i for i in items if i]
        main = [] if loop else queue
        repeat = queue if loop else [i for i in then_loop if i]
        self._notify_done = True
        self._play_id = self.engine.play(self.leg, main, repeat)
        if not main and not repeat:
            self._notify_done = False
            self.listener.on_play_done()

    def stop(self) -> None:
        self._notify_done = False
        if self._final is None:
            self.engine.stop_play(self.leg)

    @property
    def playing(self) -> bool:
        return self._final is None and bool(self.engine.playing(self.leg))

    # -- bridging -------------------------------------------------------------------------

    def bridge(self, other: Any) -> None:
        """Relay audio both ways in the engine (PCMU<->PCMA transcoded when the legs
        differ, DTMF events passed through); each leg keeps its own stream."""
        if not isinstance(other, EngineSession) or other.engine is not self.engine:
            raise TypeError("a native session bridges only to another of the same engine")
        self._notify_done = other._notify_done = False
        self.engine.bridge(self.leg, other.leg, TRANSCODE.get((self.codec, other.codec)),
                           TRANSCODE.get((other.codec, self.codec)))
        self.relay, other.relay = other, self
        self._refilter()
        other._refilter()

    def unbridge(self) -> None:
        other, self.relay = self.relay, None
        if self._final is None:
            self.engine.unbridge(self.leg)
        self._refilter()
        if other is not None and other.relay is self:
            other.relay = None
            other._refilter()

    # -- events from the engine ---------------------------------------------------------------

    def on_event(self, kind: int, play_id: int, ts: int, ssrc: int, t: float, data: bytes) -> None:
        if kind == _EV_DTMF:
            digit = self._rfc4733.feed(data, ts, ssrc, t)
            if digit is not None:
                self.listener.on_dtmf(digit, "rfc4733")
        elif kind == _EV_AUDIO:
            self._inband_feed(data)
        elif kind == _EV_DONE and play_id == self._play_id and self._notify_done:
            self._notify_done = False
            self.listener.on_play_done()

    def _inband_feed(self, payload: bytes) -> None:
        if self._inband is None:
            return
        self._inband_buf.append(payload)
        if len(self._inband_buf) < INBAND_BATCH:
            return
        joined = b"".join(self._inband_buf)
        self._inband_buf.clear()
        for digit in self._inband.feed(decode(self.codec, joined)):
            self.listener.on_dtmf(digit, "inband")

    def housekeeping(self, now: float, rx_packets: int) -> None:
        """Once a second: RTP inactivity (as `RtpSession.housekeeping`)."""
        if rx_packets != self._rx_seen or self.on_hold or not self.timing_out:
            self._rx_seen = rx_packets
            self._idle = 0.0
            return
        self._idle += HOUSEKEEPING
        if self._idle >= self.timeout:
            self.timing_out = False
            self.listener.on_rtp_timeout()

    # -- counters ---------------------------------------------------------------------------

    def _stats(self) -> tuple[int, ...]:
        return self._final if self._final is not None else tuple(self.engine.stats(self.leg))

    rx_packets = property(lambda self: self._stats()[0])
    rx_bad = property(lambda self: self._stats()[1])
    rx_foreign = property(lambda self: self._stats()[2])
    rx_unknown_pt = property(lambda self: self._stats()[3])
    tx_packets = property(lambda self: self._stats()[4])
    tx_dropped = property(lambda self: self._stats()[5])

    def stats_extra(self) -> dict[str, int]:
        """The engine's own counters: the relay playout buffer's late and overflowing
        packets."""
        stats = self._stats()
        return {"jb_late": stats[8], "jb_overflow": stats[9]}

    @property
    def drained(self) -> bool:
        """Read on its own sub-tick rather than woken for: bridged, with a relay playout
        delay of 40 ms or more (`update_wake` in the engine)."""
        return bool(self._stats()[10])

    @property
    def seq(self) -> int:
        return self._stats()[6]

    @property
    def ts(self) -> int:
        return self._stats()[7]

    # -- kernel filter and teardown ------------------------------------------------------------

    def _refilter(self) -> None:
        """As `RtpSession._refilter`: in the IVR with RFC 4733 and nothing tapping the caller,
        the kernel passes DTMF and 1 in 16 audio packets only."""
        want = self.te_pt is not None and self.relay is None and self._recording is None
        if want == self._thinned or self._final is not None:
            return
        try:
            if want:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, _thin_program(self.te_pt or 0))
            else:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
            self._thinned = want
        except OSError:
            self._thinned = False

    def close(self) -> None:
        if self._final is not None:
            return
        self.unbridge()
        self.stop()
        self._final = tuple(self.engine.stats(self.leg))
        self.engine.remove(self.leg)
        if self.media.sessions.get(self.leg) is self:
            del self.media.sessions[self.leg]
        self.sock.close()


_EV_DTMF, _EV_AUDIO, _EV_DONE = (1, 2, 3)
assert _engine is None or (_engine.EV_DTMF, _engine.EV_AUDIO, _engine.EV_DONE) == (1, 2, 3)
assert TICK == 0.020 and (_engine is None or _engine.PHASES == PHASES)

__all__ = ["NativeMedia", "EngineSession", "available"]

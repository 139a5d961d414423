"""One RTP endpoint per call: symmetric RTP, DTMF in, paced prompt audio out.

The receive path is the hot path (DESIGN.md): two byte checks, one `struct`
unpack for DTMF packets only, counters, no logging and no per-packet objects. The
send path runs from the shared `MediaClock`: one header pack and one `sendto` per
frame, from payloads the `PromptCache` encoded once for every call.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import struct
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol, cast

from .audio import silence_frame
from .dtmf import GoertzelDetector, Rfc4733Receiver
from .g711 import PAYLOAD_TYPES, decode, encode
from .rtp import HEADER

SAMPLES_PER_FRAME = 160
INBAND_BATCH = 4  # frames decoded together for the in-band detector (80 ms)
# connect(2) with AF_UNSPEC dissolves a UDP socket's association (Linux, BSD)
_UNSPEC = bytes([socket.AF_UNSPEC & 0xFF, socket.AF_UNSPEC >> 8]) + bytes(14)


class Tap(Protocol):
    """A recording tap: ``(payload, codec, rtp_ts, ssrc)`` per packet as it passes; the
    native engine (`media.engine`) calls it with a whole run of contiguous payload and
    the run's arrival time (monotonic seconds) as ``now``."""

    def __call__(self, payload: bytes, codec: str, ts: int, ssrc: int,
                 now: float | None = None, /) -> None: ...


class MediaListener(Protocol):
    def on_dtmf(self, digit: str, source: str) -> None: ...
    def on_play_done(self) -> None: ...
    def on_rtp_timeout(self) -> None: ...


class RtpSession(asyncio.DatagramProtocol):
    """RTP for one call leg. Configure with `set_remote`/`set_codec`, then `play`."""

    def __init__(self, listener: MediaListener, local_port: int, *, timeout: float = 30.0,
                 clock: Callable[[], float] | None = None) -> None:
        self.listener = listener
        self.local_port = local_port
        self.timeout = timeout
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None
        self.latched = False
        self.codec = "PCMU"
        self.pt = 0
        self.te_pt: int | None = None
        self.sending = True  # our direction allows sending
        self.on_hold = False  # the far end sends nothing on purpose
        self.ssrc = int.from_bytes(os.urandom(4), "big")
        self.seq = int.from_bytes(os.urandom(2), "big")
        self.ts = int.from_bytes(os.urandom(4), "big")
        self._silence = silence_frame("PCMU")
        self._queue: deque[Sequence[bytes]] = deque()
        self._current: Sequence[bytes] | None = None
        self._index = 0
        self._loop_items: tuple[Sequence[bytes], ...] | None = None
        self._marker = True
        self._notify_done = False
        self._rfc4733 = Rfc4733Receiver()
        self._inband: GoertzelDetector | None = None
        self._inband_buf: list[bytes] = []
        self.clock_now = 0.0  # refreshed by housekeeping; DTMF dedup needs only coarse time
        self.relay: RtpSession | None = None  # bridged to this leg: what we hear goes there
        self._xlate: bytes | None = None  # PCMU<->PCMA table for what we relay
        self._relay_src: int | None = None  # SSRC of the stream we relay into our own
        self._ts_offset = 0
        # Recording taps: what we hear (the caller), and what we send (prompts, then the
        # bridged agent's audio), as it leaves.
        self._tap: Tap | None = None  # `tap_in`
        self.tap_out: Tap | None = None
        # DTMF de-duplication's clock: the running loop's time unless one is injected
        self._now: Callable[[], float] = clock or _loop_time
        # counters (metrics)
        self.rx_packets = 0
        self.rx_bad = 0
        self.rx_foreign = 0
        self.rx_unknown_pt = 0
        self.tx_packets = 0
        self.tx_dropped = 0
        # once latched, a socket connected to the peer sends for us (see `_connect`)
        self._fd = -1  # the transport's descriptor once connected to the peer (`_connect`)
        self._thinned = False  # the kernel passes only DTMF and 1 in 16 audio packets
        self._rx_seen = 0
        self._idle = 0.0
        self.timing_out = False

    # -- configuration ---------------------------------------------------------------

    def set_codec(self, codec: str, pt: int, te_pt: int | None) -> None:
        self.codec, self.pt, self.te_pt = codec, pt, te_pt
        self._silence = silence_frame(codec)
        self._inband = GoertzelDetector() if te_pt is None else None
        self._refilter()

    @property
    def tap_in(self) -> Tap | None:
        return self._tap

    @tap_in.setter
    def tap_in(self, tap: Tap | None) -> None:
        self._tap = tap
        self._refilter()

    def set_remote(self, host: str, port: int) -> None:
        """From SDP; symmetric RTP replaces it with the first packet's source (latching)."""
        if (host, port) != self.remote:
            self.remote = (host, port)
            self.latched = False
            self._disconnect()

    def start_timeout(self) -> None:
        self.timing_out = self.timeout > 0
        self._idle = 0.0

    # -- playback ----------------------------------------------------------------------

    def play(self, items: Sequence[Sequence[bytes]], *, loop: bool = False,
             then_loop: Sequence[Sequence[bytes]] = ()) -> None:
        """Replace what is playing by `items` (frame tuples); `on_play_done` when they end.

        With `loop` the items repeat forever; `then_loop` repeats forever after them.
        """
        self._queue = deque(i for i in items if i)
        looped = tuple(i for i in then_loop if i)
        self._loop_items = tuple(self._queue) if loop else (looped or None)
        self._current, self._index = None, 0
        self._notify_done = True
        self._marker = True
        self._next_item()

    def stop(self) -> None:
        self._queue.clear()
        self._loop_items = None
        self._current = None
        self._notify_done = False

    @property
    def playing(self) -> bool:
        return self._current is not None

    def _next_item(self) -> None:
        if not self._queue and self._loop_items:
            self._queue.extend(self._loop_items)
        if self._queue:
            self._current, self._index = self._queue.popleft(), 0
        else:
            self._current = None
            if self._notify_done:
                self._notify_done = False
                self.listener.on_play_done()

    # -- clock callbacks ------------------------------------------------------------------

    def tick(self) -> None:
        if self.relay is not None:
            return  # bridged: the other leg's packets are our audio, sent as they arrive
        current = self._current
        if current is not None:
            payload = current[self._index]
            self._index += 1
            if self._index >= len(current):
                self._next_item()
        else:
            payload = self._silence
        remote = self.remote
        if remote is None or not self.sending or self.transport is None:
            return
        if self.tap_out is not None:
            self.tap_out(payload, self.codec, self.ts, self.ssrc)
        marker = 0x80 if self._marker else 0
        self._marker = False
        packet = HEADER.pack(0x80, self.pt | marker, self.seq, self.ts, self.ssrc) + payload
        if self._fd < 0:
            self.transport.sendto(packet, remote)
        else:
            self._write(packet)
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + SAMPLES_PER_FRAME) & 0xFFFFFFFF
        self.tx_packets += 1

    def housekeeping(self, now: float) -> None:
        """Once a second: RTP inactivity (RFC 3550 has none; Asterisk's rtptimeout)."""
        self.clock_now = now
        if self.rx_packets != self._rx_seen or self.on_hold or not self.timing_out:
            self._rx_seen = self.rx_packets
            self._idle = 0.0
            return
        self._idle += 1.0
        if self._idle >= self.timeout:
            self.timing_out = False
            self.listener.on_rtp_timeout()

    # -- receive path ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is not a subclass
        self._refilter()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        if len(data) < 12 or data[0] & 0xC0 != 0x80:
            self.rx_bad += 1
            return
        if not self.latched:
            self.remote, self.latched = addr, True
            self._connect(addr)
        elif addr != self.remote:
            self.rx_foreign += 1
            return
        self.rx_packets += 1
        pt = data[1] & 0x7F
        if pt == self.te_pt:
            if self.relay is not None:
                self.relay.send_relayed(data, self.relay.te_pt, None)
            self._telephone_event(data)
        elif pt == self.pt:
            relay = self.relay
            if relay is not None:  # the relay parses the packet once for itself and the tap
                relay.send_relayed(data, relay.pt, self._xlate, self._tap, self.codec)
                return
            if self._inband is not None:
                self._inband_feed(data)
            if self._tap is not None:
                self._tap_in(data)
        elif 72 <= pt <= 76:
            pass  # RTCP multiplexed (RFC 5761 §4): not ours to count as audio
        else:
            self.rx_unknown_pt += 1

    # -- bridging -------------------------------------------------------------------------

    def bridge(self, other: object) -> None:
        """Relay audio both ways (PCMU<->PCMA transcoded when the legs differ, DTMF
        events passed through); each leg keeps its own SSRC, sequence and timestamps."""
        if not isinstance(other, RtpSession):
            raise TypeError("an RtpSession bridges only to another RtpSession")
        for a, b in ((self, other), (other, self)):
            a.stop()
            a.relay = b
            a._xlate = TRANSCODE.get((a.codec, b.codec))
            a._refilter()

    def unbridge(self) -> None:
        other, self.relay = self.relay, None
        self._refilter()
        if other is not None and other.relay is self:
            other.relay = None
            other._refilter()

    def send_relayed(self, data: bytes, pt: int | None, xlate: bytes | None,
                     tap: Tap | None = None, codec: str = "") -> None:
        """One packet from the other leg, re-headed as part of our stream (RFC 3550 §7.1).
        `tap` (the other leg's recording tap) gets the payload as received, in `codec`,
        whether or not it can be sent on."""
        offset = payload_offset(data)
        if offset is None:
            return
        _, b1, _, ts, ssrc = HEADER.unpack_from(data)
        payload = data[offset:]
        if tap is not None:
            tap(payload, codec, ts, ssrc)
        remote = self.remote
        if pt is None or remote is None or not self.sending or self.transport is None:
            return
        if ssrc != self._relay_src:
            # a new source stream: continue our timeline where it stands
            self._relay_src = ssrc
            self._ts_offset = (self.ts - ts) & 0xFFFFFFFF
        out_ts = (ts + self._ts_offset) & 0xFFFFFFFF
        if xlate is not None:
            payload = payload.translate(xlate)
        if self.tap_out is not None and pt == self.pt:
            self.tap_out(payload, self.codec, out_ts, self.ssrc)
        packet = HEADER.pack(0x80, pt | (b1 & 0x80), self.seq, out_ts, self.ssrc) + payload
        if self._fd < 0:
            self.transport.sendto(packet, remote)
        else:
            self._write(packet)
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (out_ts + SAMPLES_PER_FRAME) & 0xFFFFFFFF
        self.tx_packets += 1

    def _tap_in(self, data: bytes) -> None:
        assert self._tap is not None
        offset = payload_offset(data)
        if offset is None:
            self.rx_bad += 1
            return
        _, _, _, ts, ssrc = HEADER.unpack_from(data)
        self._tap(data[offset:], self.codec, ts, ssrc)

    def _telephone_event(self, data: bytes) -> None:
        _, _, _, ts, ssrc = HEADER.unpack_from(data)
        offset = payload_offset(data)
        if offset is None:
            self.rx_bad += 1
            return
        now = self._now()
        digit = self._rfc4733.feed(data[offset:offset + 4], ts, ssrc, now)
        if digit is not None:
            self.listener.on_dtmf(digit, "rfc4733")

    def _inband_feed(self, data: bytes) -> None:
        self._inband_buf.append(data[12:])
        if len(self._inband_buf) < INBAND_BATCH:
            return
        payload = b"".join(self._inband_buf)
        self._inband_buf.clear()
        assert self._inband is not None
        for digit in self._inband.feed(decode(self.codec, payload)):
            self.listener.on_dtmf(digit, "inband")

    def error_received(self, exc: Exception) -> None:
        self.rx_bad += 1

    def _refilter(self) -> None:
        """Thin the caller's audio in the kernel while nothing needs it.

        In the IVR with RFC 4733 negotiated and no recording, stream or analyzer tapping
        the call, the server needs the caller's telephone-events, not their audio: a
        socket filter (classic BPF) passes DTMF, anything that is not RTP version 2 (to be
        counted as bad), and the audio packets whose sequence number is a multiple of 16
        (about 3 a second: enough to latch, and to keep the RTP timeout from firing).
        Bridging, a tap or in-band DTMF detection take the filter off again."""
        want = (self.te_pt is not None and self.relay is None and self._tap is None
                and self.transport is not None)
        if want == self._thinned:
            return
        sock = self._dup()
        if sock is None:
            return
        try:
            if want:
                sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, _thin_program(self.te_pt or 0))
            else:
                sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
            self._thinned = want
        except OSError:
            self._thinned = False
        finally:
            sock.close()

    def _dup(self) -> socket.socket | None:
        """A socket object on a duplicate of the transport's descriptor, for a moment (None:
        a test's fake transport)."""
        fd = self._transport_fd()
        if fd < 0:
            return None
        try:
            return socket.socket(fileno=os.dup(fd))
        except OSError:
            return None

    def _connect(self, addr: tuple[str, int]) -> None:
        """Connect the socket to the latched peer: every send then skips the kernel's route
        lookup and the address conversion (a plain write(2) on the descriptor), and
        datagrams from anywhere else are dropped by the kernel (what latching would drop
        anyway). Receiving stays with the event loop's transport."""
        self._disconnect()
        sock = self._dup()
        if sock is None:
            return
        try:
            sock.connect(addr)  # the association belongs to the socket, not the descriptor
            self._fd = self._transport_fd()
        except OSError:
            pass
        finally:
            sock.close()

    def _disconnect(self) -> None:
        """Back to an unconnected socket (a new remote from SDP: latch again)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            _libc().connect(fd, _UNSPEC, len(_UNSPEC))

    def _transport_fd(self) -> int:
        extra = getattr(self.transport, "get_extra_info", None)
        fileno = getattr(extra("socket") if extra else None, "fileno", None)
        return int(fileno()) if fileno is not None else -1

    def _write(self, packet: bytes) -> None:
        """Send on the connected socket (write(2) is send(2) there). An ICMP port unreachable
        that came back for an earlier frame is reported by the next send, which then sends
        nothing: try once more so that frame still leaves. A full buffer loses the frame."""
        try:
            os.write(self._fd, packet)
        except ConnectionRefusedError:
            try:
                os.write(self._fd, packet)
            except OSError:
                self.tx_dropped += 1
        except OSError:
            self.tx_dropped += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._fd = -1  # the descriptor is closed: never write to a number reused since

    def close(self) -> None:
        self.unbridge()
        self.stop()
        self._disconnect()
        if self.transport is not None:
            self.transport.close()
            self.transport = None


_LIBC: ctypes.CDLL | None = None
SO_ATTACH_FILTER, SO_DETACH_FILTER = 26, 27  # Linux <asm-generic/socket.h>
_PROGRAMS: dict[int, tuple[ctypes.Array[ctypes.c_char], bytes]] = {}


def _thin_program(te_pt: int) -> bytes:
    """A `struct sock_fprog` for `RtpSession._refilter` (offsets count from the UDP
    header: the RTP header starts at 8)."""
    cached = _PROGRAMS.get(te_pt)
    if cached is None:
        ldb, and_, jeq, ret = 0x30, 0x54, 0x15, 0x06  # BPF_LD|B|ABS, ALU|AND|K, JMP|JEQ|K, RET|K
        code = [
            (ldb, 0, 0, 8), (and_, 0, 0, 0xC0), (jeq, 0, 7, 0x80),  # not RTP v2: pass
            (ldb, 0, 0, 9), (and_, 0, 0, 0x7F), (jeq, 4, 0, te_pt),  # telephone-event: pass
            (ldb, 0, 0, 11), (and_, 0, 0, 0x0F), (jeq, 1, 0, 0),  # seq % 16 == 0: pass
            (ret, 0, 0, 0),  # the rest of the audio: dropped
            (ret, 0, 0, 0x40000),
        ]
        array = ctypes.create_string_buffer(b"".join(struct.pack("=HBBI", *i) for i in code))
        cached = (array, struct.pack("@HP", len(code), ctypes.addressof(array)))
        _PROGRAMS[te_pt] = cached
    return cached[1]



def _libc() -> ctypes.CDLL:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def payload_offset(data: bytes) -> int | None:
    """Where the payload starts after the CSRC list and any header extension (RFC 3550
    §5.3.1); None when the packet is too short for the extension it announces."""
    offset = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        if len(data) < offset + 4:
            return None
        offset += 4 + 4 * int.from_bytes(data[offset + 2:offset + 4], "big")
    return offset


def _transcode_table(src: str, dst: str) -> bytes:
    """G.711 code-to-code conversion: decode with one law, encode with the other."""
    return encode(dst, decode(src, bytes(range(256))))


TRANSCODE = {("PCMU", "PCMA"): _transcode_table("PCMU", "PCMA"),
             ("PCMA", "PCMU"): _transcode_table("PCMA", "PCMU")}


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


__all__ = ["RtpSession", "MediaListener", "PAYLOAD_TYPES", "Tap"]

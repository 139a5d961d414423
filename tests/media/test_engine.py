"""The native media engine (`media/_engine.c` behind `media.engine`) on real loopback
sockets: paced prompt frames with the RTP header of an ordinary stream, play-done and
loops, latching, RFC 4733 and in-band DTMF to Python, bridging with re-headed streams,
PCMU<->PCMA transcoding and DTMF pass-through, recording onto a call's timeline in the
media thread, garbage counted, and teardown that frees the port."""

from __future__ import annotations

import asyncio
import math
import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from media import engine
from media.audio import silence_frame
from media.g711 import decode, encode
from media.session import TRANSCODE

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(engine._engine is None, reason="media._engine is not compiled")

RTP = struct.Struct("!BBHII")


class Listener:
    def __init__(self) -> None:
        self.digits: list[tuple[str, str]] = []
        self.done = 0
        self.timeouts = 0

    def on_dtmf(self, digit: str, source: str) -> None:
        self.digits.append((digit, source))

    def on_play_done(self) -> None:
        self.done += 1

    def on_rtp_timeout(self) -> None:
        self.timeouts += 1


def _udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def _free_port() -> int:
    s = _udp()
    port = int(s.getsockname()[1])
    s.close()
    return port


def _packet(seq: int, ts: int, payload: bytes, pt: int = 0, ssrc: int = 0x1234,
            marker: bool = False) -> bytes:
    return RTP.pack(0x80, pt | (0x80 if marker else 0), seq, ts, ssrc) + payload


def _pcmu_leg(media: engine.NativeMedia
              ) -> tuple[socket.socket, Listener, engine.EngineSession, tuple[str, int]]:
    """A phone socket and an engine leg for it (PCMU, telephone-event 101), its listener
    and the address the phone sends to."""
    phone = _udp()
    listener = Listener()
    session = media.bind(listener, "127.0.0.1", _free_port())
    session.set_codec("PCMU", 0, 101)
    return phone, listener, session, ("127.0.0.1", session.local_port)


async def _recv_all(sock: socket.socket, seconds: float) -> list[tuple[float, bytes]]:
    out: list[tuple[float, bytes]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            while True:
                out.append((time.monotonic(), sock.recv(2048)))
        except BlockingIOError:
            pass
        await asyncio.sleep(0.002)
    return out


async def _until(cond: Callable[[], bool], seconds: float = 2.0) -> None:
    end = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


def _bridged(media: engine.NativeMedia) -> tuple[socket.socket, socket.socket,
                                                  engine.EngineSession, engine.EngineSession]:
    """A caller and an agent phone, each on a PCMU leg with telephone-event, bridged."""
    caller, agent = _udp(), _udp()
    a = media.bind(Listener(), "127.0.0.1", _free_port())
    b = media.bind(Listener(), "127.0.0.1", _free_port())
    for s, peer in ((a, caller), (b, agent)):
        s.set_codec("PCMU", 0, 101)
        s.set_remote("127.0.0.1", peer.getsockname()[1])
    a.bridge(b)
    return caller, agent, a, b


def _run(body: Callable[[engine.NativeMedia], Awaitable[None]], **options: Any) -> None:
    async def main() -> None:
        media = engine.NativeMedia(asyncio.get_running_loop(), **options)
        media.start()
        try:
            await body(media)
        finally:
            for session in list(media.sessions.values()):
                session.close()
            media.stop()
    asyncio.run(main())


def test_prompt_frames_leave_every_20_ms_then_play_done() -> None:
    async def body(media: engine.NativeMedia) -> None:
        phone = _udp()
        listener = Listener()
        session = media.bind(listener, "127.0.0.1", _free_port())
        session.set_codec("PCMU", 0, 101)
        session.set_remote("127.0.0.1", phone.getsockname()[1])
        frames = tuple(bytes([i]) * 160 for i in range(25))  # half a second
        session.play([frames])
        assert session.playing
        got = await _recv_all(phone, 0.7)
        assert listener.done == 1 and not session.playing
        payloads = [p[12:] for _, p in got]
        start = payloads.index(frames[0])
        assert payloads[start:start + 25] == list(frames)
        assert all(p == silence_frame("PCMU") for p in payloads[start + 25:])
        headers = [RTP.unpack_from(p) for _, p in got]
        assert headers[start][1] == 0x80  # marker on the first frame of the prompt
        assert all(h[1] == 0 for h in headers[start + 1:])
        seqs = [h[2] for h in headers]
        assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
        stamps = [h[3] for h in headers]
        assert all((b - a) & 0xFFFFFFFF == 160 for a, b in zip(stamps, stamps[1:], strict=False))
        assert {h[4] for h in headers} == {session.ssrc}
        gaps = np.diff([t for t, _ in got[start:start + 25]]) * 1000
        assert abs(float(np.median(gaps)) - 20.0) < 3.0
        # The clock goes on meanwhile: what it sent by the time tx_packets is read is what
        # came before plus, at most, what is still in the socket's queue (a busy machine
        # can delay this task by several frames).
        sent = session.tx_packets
        later = await _recv_all(phone, 0.05)
        assert len(got) <= sent <= len(got) + len(later)
        phone.close()
    _run(body)


def test_a_loop_repeats_and_a_new_play_replaces_it_without_a_stale_done() -> None:
    async def body(media: engine.NativeMedia) -> None:
        phone = _udp()
        listener = Listener()
        session = media.bind(listener, "127.0.0.1", _free_port())
        session.set_remote("127.0.0.1", phone.getsockname()[1])
        first = (b"\x01" * 160,)
        music = (b"\x02" * 160, b"\x03" * 160)
        session.play([first], then_loop=[music])
        got = [p[12:13] for _, p in await _recv_all(phone, 0.3)]
        assert got[0] == b"\x01" and set(got[1:]) == {b"\x02", b"\x03"}
        assert listener.done == 0 and session.playing
        session.play([(b"\x04" * 160,)] * 2)
        await _recv_all(phone, 0.2)
        assert listener.done == 1
        session.play([])  # nothing to play: done at once, as RtpSession
        assert listener.done == 2
        phone.close()
    _run(body)


def test_rfc4733_digits_reach_python_and_the_socket_latches() -> None:
    async def body(media: engine.NativeMedia) -> None:
        phone = _udp()
        listener = Listener()
        session = media.bind(listener, "127.0.0.1", _free_port())
        session.set_codec("PCMU", 0, 101)
        session.set_remote("127.0.0.1", 9)  # SDP said port 9: the first packet moves it
        target = ("127.0.0.1", session.local_port)
        for i, event in enumerate((5, 5, 11)):  # "5", "5" again (a new event), "#"
            ts = 8000 * (i + 1)
            for n, end in enumerate((False, False, True, True, True)):
                flags = 0x80 if end else 0
                phone.sendto(_packet(i * 10 + n, ts, bytes([event, flags, 0, 160]), pt=101), target)
        await _until(lambda: len(listener.digits) == 3)
        assert listener.digits == [("5", "rfc4733"), ("5", "rfc4733"), ("#", "rfc4733")]
        assert session.latched and session.remote == phone.getsockname()
        stranger = _udp()
        stranger.sendto(_packet(1, 1, bytes([1, 0x80, 0, 160]), pt=101), target)
        await asyncio.sleep(0.05)
        assert len(listener.digits) == 3  # the connected socket takes nothing from others
        for s in (phone, stranger):
            s.close()
    _run(body)


def test_rfc4733_repeats_reach_python_sparingly_and_a_long_press_stays_one() -> None:
    """An event's repeats (every 20-50 ms, the end packet 3 times) go to Python at most
    every 0.25 s; its receiver still hears one press per event, a long press as one, and
    the same event again after a pause (a replayed capture) as a new press."""
    async def body(media: engine.NativeMedia) -> None:
        phone, listener, session, target = _pcmu_leg(media)
        handed: list[int] = []
        on_event = session.on_event

        def counting(kind: int, *rest: Any) -> None:
            handed.append(kind)
            on_event(kind, *rest)

        session.on_event = counting  # type: ignore[method-assign,assignment]

        async def press(ts: int, packets: int, gap: float) -> None:
            for n in range(packets):
                end = n >= packets - 3
                phone.sendto(_packet(n, ts, bytes([7, 0x80 if end else 0, 0, 160]), pt=101), target)
                await asyncio.sleep(gap)

        await press(8000, 15, 0.02)  # 0.3 s: 12 packets, then the end 3 times
        await _until(lambda: len(listener.digits) == 1)
        assert 1 <= len(handed) <= 3  # 15 packets, at most one per 0.25 s
        await press(16000, 32, 0.05)  # a 1.6 s press
        await asyncio.sleep(0.1)
        assert listener.digits == [("7", "rfc4733")] * 2
        assert len(handed) <= 3 + 9
        await asyncio.sleep(1.2)
        await press(16000, 4, 0.02)  # the same event once more, after a pause
        await _until(lambda: len(listener.digits) == 3)
        assert listener.digits == [("7", "rfc4733")] * 3
        phone.close()
    _run(body)


def test_in_band_dtmf_without_telephone_event() -> None:
    async def body(media: engine.NativeMedia) -> None:
        phone = _udp()
        listener = Listener()
        session = media.bind(listener, "127.0.0.1", _free_port())
        session.set_codec("PCMU", 0, None)
        t = np.arange(8000 * 2) / 8000  # "7": 852 + 1209 Hz, 100 ms on, then silence
        tone = 6000 * (np.sin(2 * math.pi * 852 * t) + np.sin(2 * math.pi * 1209 * t))
        tone[800:] = 0
        audio = encode("PCMU", tone.astype(np.int16))
        for n in range(0, 40):
            phone.sendto(_packet(n, n * 160, audio[n * 160:(n + 1) * 160]),
                         ("127.0.0.1", session.local_port))
            await asyncio.sleep(0.002)
        await _until(lambda: listener.digits == [("7", "inband")])
        phone.close()
    _run(body)


def test_bridged_legs_relay_re_headed_transcoded_and_recorded() -> None:
    async def body(media: engine.NativeMedia) -> None:
        caller, agent = _udp(), _udp()
        a = media.bind(Listener(), "127.0.0.1", _free_port())
        b = media.bind(Listener(), "127.0.0.1", _free_port())
        a.set_codec("PCMU", 0, 101)
        b.set_codec("PCMA", 8, 101)
        a.set_remote("127.0.0.1", caller.getsockname()[1])
        b.set_remote("127.0.0.1", agent.getsockname()[1])
        timeline = engine._engine.Timeline(time.monotonic())
        a.record(timeline)
        a.play([(b"\x10" * 160,) * 50])
        a.bridge(b)
        assert not a.playing and a.relay is b and b.relay is a
        await _recv_all(caller, 0.05)
        await _recv_all(agent, 0.05)  # whatever left before the bridge
        mu = encode("PCMU", np.full(160, 1000, dtype=np.int16))
        al = encode("PCMA", np.full(160, 1000, dtype=np.int16))
        for n in range(10):
            caller.sendto(_packet(100 + n, 5000 + 160 * n, mu), ("127.0.0.1", a.local_port))
            agent.sendto(_packet(7 + n, 90 + 160 * n, al, pt=8, ssrc=99), ("127.0.0.1", b.local_port))
        caller.sendto(_packet(200, 7000, bytes([3, 0x80, 0, 160]), pt=101), ("127.0.0.1", a.local_port))
        to_agent = [p for _, p in await _recv_all(agent, 0.2)]
        to_caller = [p for _, p in await _recv_all(caller, 0.05)]
        audio = [p for p in to_agent if p[1] & 0x7F == 8]
        to_alaw, to_ulaw = TRANSCODE[("PCMU", "PCMA")], TRANSCODE[("PCMA", "PCMU")]
        assert len(audio) == 10 and all(p[12:] == mu.translate(to_alaw) for p in audio)
        assert {RTP.unpack_from(p)[4] for p in to_agent} == {b.ssrc}  # b's own stream
        events = [p for p in to_agent if p[1] & 0x7F == 101]
        assert len(events) == 1 and events[0][12] == 3
        assert len(to_caller) == 10 and all(p[12:] == al.translate(to_ulaw) for p in to_caller)
        seqs = [RTP.unpack_from(p)[2] for p in to_caller]
        assert all((y - x) & 0xFFFF == 1 for x, y in zip(seqs, seqs[1:], strict=False))
        a.record(None)  # no packet placed after this
        _, frames = timeline.take(time.monotonic(), final=True)
        pcm = np.frombuffer(frames, dtype="<i2").reshape(-1, 2)
        # the caller's audio on the left, as one stretch of 10 frames where it arrived
        heard = np.flatnonzero(pcm[:, 0] == decode("PCMU", mu)[0])
        assert len(heard) == 1600 and heard[-1] - heard[0] == 1599
        # on the right: the agent's audio as it was sent to the caller (transcoded to
        # the caller's PCMU)
        relayed = np.flatnonzero(pcm[:, 1] == decode("PCMU", al.translate(to_ulaw))[0])
        assert len(relayed) == 1600 and relayed[-1] - relayed[0] == 1599
        assert timeline.dropped == 0
        with pytest.raises(ValueError):  # one leg at a time
            a.record(timeline)
            b.record(timeline)
        a.record(None)
        with pytest.raises(TypeError):
            a.record(object())
        a.unbridge()
        assert a.relay is None and b.relay is None
        for s in (caller, agent):
            s.close()
    _run(body)


def test_garbage_is_counted_and_nothing_stops() -> None:
    async def body(media: engine.NativeMedia) -> None:
        phone, listener, session, target = _pcmu_leg(media)
        for junk in (b"x", b"\x00" * 40, b"\x80" * 5):  # too short, RTP version 0, too short
            phone.sendto(junk, target)
        # sequence numbers that are multiples of 16 pass the kernel's thinning filter
        phone.sendto(bytes([0x90, 0, 0, 0]) + bytes(8), target)  # an extension it lacks: no tap
        phone.sendto(_packet(16, 1, b"\xff" * 160, pt=33), target)
        phone.sendto(_packet(32, 1, b"\xff" * 160, pt=0), target)
        phone.sendto(_packet(3, 1, bytes([9, 0x80, 0, 1]), pt=101), target)
        await _until(lambda: listener.digits == [("9", "rfc4733")])
        assert (session.rx_bad, session.rx_unknown_pt, session.rx_packets) == (3, 1, 4)
    _run(body)


def test_closing_frees_the_port_and_keeps_the_counters() -> None:
    async def body(media: engine.NativeMedia) -> None:
        port = _free_port()
        session = media.bind(Listener(), "127.0.0.1", port)
        phone = _udp()
        session.set_remote("127.0.0.1", phone.getsockname()[1])
        await _until(lambda: session.tx_packets >= 3)
        session.close()
        sent = session.tx_packets
        assert sent >= 3 and session.leg not in media.sessions
        again = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        again.bind(("127.0.0.1", port))  # free again
        again.close()
        with pytest.raises(OSError):
            media.bind(Listener(), "127.0.0.1", phone.getsockname()[1])  # taken
        await asyncio.sleep(0.05)
        assert media.clock.refresh().subticks > 0
        phone.close()
    _run(body)


def test_rtp_inactivity_times_out_once_but_not_on_hold() -> None:
    async def body(media: engine.NativeMedia) -> None:
        listener = Listener()
        session = media.bind(listener, "127.0.0.1", _free_port(), timeout=2.0)
        session.start_timeout()
        for now in range(4):
            session.housekeeping(float(now), 0)
        assert listener.timeouts == 1
        held = Listener()
        other = media.bind(held, "127.0.0.1", _free_port(), timeout=2.0)
        other.start_timeout()
        other.on_hold = True
        for now in range(4):
            other.housekeeping(float(now), 0)
        assert held.timeouts == 0
    _run(body)


def test_bad_frames_are_refused_and_the_leg_plays_on() -> None:
    async def body(media: engine.NativeMedia) -> None:
        phone = _udp()
        session = media.bind(Listener(), "127.0.0.1", _free_port())
        session.set_remote("127.0.0.1", phone.getsockname()[1])
        session.play([(b"\x05" * 160,)], loop=True)
        for bad in ([(b"",)], [("text",)], [(b"x" * 1501,)], [5]):
            with pytest.raises(TypeError):
                media.engine.play(session.leg, bad, [])
        assert session.playing
        got = [p[12:13] for _, p in await _recv_all(phone, 0.1)]
        assert got and set(got) == {b"\x05"}
        phone.close()
    _run(body)


def test_relay_playout_buffer_sends_jittery_audio_on_the_clock() -> None:
    """With media.relay_jitter_ms 40, audio that arrives in bursts (two frames at once
    every 40 ms, one 30 ms late) leaves every 20 ms, about 40 ms after it came, with the
    sequence order kept for a telephone-event in between."""
    async def body(media: engine.NativeMedia) -> None:
        caller, agent, a, b = _bridged(media)
        assert a.drained and b.drained  # read on the clock: the buffer absorbs the wait
        await _recv_all(agent, 0.05)
        sent: list[float] = []

        async def send() -> None:
            start = time.monotonic()
            for n in range(0, 40, 2):
                late = 0.03 if n == 20 else 0.0
                await asyncio.sleep(max(0.0, start + n * 0.02 + late - time.monotonic()))
                for k in (n, n + 1):
                    caller.sendto(_packet(k, 160 * k, bytes([k]) * 160), ("127.0.0.1", a.local_port))
                    sent.append(time.monotonic())
                if n == 10:
                    caller.sendto(_packet(99, 160 * 11, bytes([4, 0x80, 0, 160]), pt=101),
                                  ("127.0.0.1", a.local_port))

        _, got = await asyncio.gather(send(), _recv_all(agent, 1.2))
        audio = [(t, p) for t, p in got if p[1] & 0x7F == 0]
        assert [p[12] for _, p in audio] == list(range(40))
        gaps = np.diff([t for t, _ in audio]) * 1000
        # (received by polling every 2 ms; without the buffer the gaps are ~0 and ~40 ms)
        assert float(np.percentile(np.abs(gaps - 20.0), 95)) < 5.0, gaps
        delays = [(t - sent[p[12]]) * 1000 for t, p in audio]
        assert 30 < float(np.median(delays)) < 70, delays
        seqs = [RTP.unpack_from(p)[2] for _, p in got]
        assert all((y - x) & 0xFFFF == 1 for x, y in zip(seqs, seqs[1:], strict=False))
        assert any(p[1] & 0x7F == 101 for _, p in got)
        for sock in (caller, agent):
            sock.close()
    _run(body, relay_jitter_ms=40)


def test_relay_playout_buffer_keeps_its_schedule_after_a_stall() -> None:
    """The sender stalls 100 ms (more than the 40 ms buffer), then catches up with a burst:
    the late frames leave at once, and the frames after the burst are back on the
    original schedule (about 40 ms after their nominal time), not 100 ms later."""
    async def body(media: engine.NativeMedia) -> None:
        caller, agent, a, b = _bridged(media)
        await _recv_all(agent, 0.05)
        start = time.monotonic()

        async def send() -> None:
            for k in range(40):
                nominal = start + k * 0.02
                stalled = 0.10 if 10 <= k < 15 else 0.0  # frames 10-14 come 100 ms late at most
                when = max(nominal, start + 0.30) if stalled else nominal
                await asyncio.sleep(max(0.0, when - time.monotonic()))
                caller.sendto(_packet(k, 160 * k, bytes([k]) * 160), ("127.0.0.1", a.local_port))

        _, got = await asyncio.gather(send(), _recv_all(agent, 1.3))
        audio = {p[12]: t for t, p in got if p[1] & 0x7F == 0}
        assert sorted(audio) == list(range(40))
        after = [(audio[k] - (start + k * 0.02)) * 1000 for k in range(20, 40)]
        assert 30 < float(np.median(after)) < 60, after
        assert b.stats_extra()["jb_late"] >= 1
        for sock in (caller, agent):
            sock.close()
    _run(body, relay_jitter_ms=40)


def test_an_sdp_address_it_cannot_send_to_waits_for_latching() -> None:
    async def body(media: engine.NativeMedia) -> None:
        phone = _udp()
        listener = Listener()
        session = media.bind(listener, "127.0.0.1", _free_port())
        session.set_codec("PCMU", 0, 101)
        session.set_remote("phone.example.com", 4000)  # a host name in c=: nothing to send to
        assert session.remote is None
        await asyncio.sleep(0.05)
        assert session.tx_packets == 0
        phone.sendto(_packet(16, 0, b"\xff" * 160), ("127.0.0.1", session.local_port))
        await _until(lambda: session.tx_packets > 0)  # latched: it sends to the phone now
        assert session.remote == phone.getsockname()
        phone.close()
    _run(body)


def _sched_slice(tid: int) -> int | None:
    """The thread's EEVDF slice in ns as /proc shows it (Linux >= 6.6), or None."""
    try:
        text = open(f"/proc/self/task/{tid}/sched").read()
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "se.slice":
            return int(value.strip())
    return None


def test_the_media_thread_asks_for_a_short_slice_and_keeps_its_nice_value() -> None:
    async def body(media: engine.NativeMedia) -> None:
        tid, taken, error = media.engine.sched()
        assert tid == media.thread_id and tid > 0 and tid != threading.get_native_id()
        assert media.slice_ns == taken
        # the kernel took it (or refused it with a reason); never a silent half
        assert (taken == 300_000 and error == 0) or (taken == 0 and error != 0)
        shown = _sched_slice(tid)
        if taken and shown is not None:
            assert shown == 300_000
        assert os.getpriority(os.PRIO_PROCESS, tid) == os.getpriority(
            os.PRIO_PROCESS, threading.get_native_id()) + 2
        assert open(f"/proc/self/task/{tid}/comm").read().strip() == "sb-media"

    _run(body, slice_us=300, nice=os.getpriority(os.PRIO_PROCESS, 0) + 2)


def test_a_slice_out_of_range_is_refused() -> None:
    for bad in (-1, 100_001):
        with pytest.raises(ValueError, match="0 \\(default\\) to 100000 us"):
            engine._engine.Engine().start(0, 0, bad)


def test_yield_to_media_renices_every_other_thread_and_their_later_threads() -> None:
    """In a process of its own: raising nice values cannot be undone without privilege."""
    code = textwrap.dedent("""
        import asyncio, os, threading
        from media import engine

        def nice(tid):
            return os.getpriority(os.PRIO_PROCESS, tid)

        async def main():
            stop = threading.Event()
            early = threading.Thread(target=stop.wait)
            early.start()
            media = engine.NativeMedia(asyncio.get_running_loop(), slice_us=100)
            media.start()
            media.yield_to_media(7)
            print(nice(threading.get_native_id()), nice(early.native_id),
                  nice(media.thread_id), media.background_nice)
            later = []
            t = threading.Thread(target=lambda: later.append(nice(0)))
            t.start(); t.join()
            print(later[0])
            stop.set(); early.join()
            media.stop()

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=False, cwd=REPO)
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    main, early, media, reported = (int(x) for x in first.split())
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert (main, early, media, reported) == (max(7, base), max(7, base), base, 7)
    assert int(second) == max(7, base)  # a thread started afterwards inherits it


def _sched_without_cap_sys_nice(rtprio_limit: int) -> tuple[int, int, int, int, int, int]:
    """A child that drops CAP_SYS_NICE and sets RLIMIT_RTPRIO, then starts the engine
    with `realtime_priority` 10 and a 200 us slice: (realtime as reported, slice taken,
    slice the thread reports, its errno, the thread's policy and priority)."""
    code = textwrap.dedent(f"""
        import asyncio, ctypes, os, resource
        from media import engine

        CAP_SYS_NICE = 23
        libc = ctypes.CDLL(None, use_errno=True)
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
        data = (ctypes.c_uint32 * 6)()  # 2 x (effective, permitted, inheritable)
        assert libc.capget(header, data) == 0
        data[0] &= ~(1 << CAP_SYS_NICE)
        data[1] &= ~(1 << CAP_SYS_NICE)
        assert libc.capset(header, data) == 0, ctypes.get_errno()
        try:
            resource.setrlimit(resource.RLIMIT_RTPRIO, ({rtprio_limit}, {rtprio_limit}))
        except ValueError:  # a hard limit below it, and no CAP_SYS_RESOURCE to raise it
            raise SystemExit("skip")

        async def main():
            media = engine.NativeMedia(asyncio.get_running_loop(), priority=10, slice_us=200)
            media.start()
            clock = media.clock.refresh()
            tid, *slice = media.engine.sched()
            print(int(clock.realtime), media.slice_ns, *slice, os.sched_getscheduler(tid),
                  os.sched_getparam(tid).sched_priority)
            media.stop()

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=False, cwd=REPO)
    if done.returncode == 1 and done.stderr.strip() == "skip":
        pytest.skip(f"RLIMIT_RTPRIO cannot be raised to {rtprio_limit} here")
    assert done.returncode == 0, done.stderr
    realtime, taken, reported, error, policy, priority = (int(x) for x in done.stdout.split())
    return realtime, taken, reported, error, policy, priority


def test_a_refused_realtime_priority_falls_back_to_the_slice() -> None:
    """Without CAP_SYS_NICE and with RLIMIT_RTPRIO 0 (a child that drops both) SCHED_FIFO
    is refused; the thread stays normal and still asks for its short slice."""
    realtime, taken, reported, error, policy, _ = _sched_without_cap_sys_nice(0)
    assert not realtime and policy == os.SCHED_OTHER
    assert taken == reported and ((taken == 200_000 and error == 0) or (taken == 0 and error))


def test_rlimit_rtprio_grants_the_realtime_priority_without_privileges() -> None:
    """The service's way (systemd ``LimitRTPRIO=10``, examples/switchboard.service): no
    CAP_SYS_NICE, but RLIMIT_RTPRIO 10 lets the media thread take SCHED_FIFO 10."""
    realtime, taken, _, _, policy, priority = _sched_without_cap_sys_nice(10)
    assert realtime and (policy, priority) == (os.SCHED_FIFO, 10)
    assert taken == 0  # SCHED_FIFO: no slice asked for


def _voluntary_switches(tid: int) -> int:
    for line in open(f"/proc/self/task/{tid}/status"):
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches")


def _wakes_relaying(coalesce_us: int, relay_jitter_ms: int = 0) -> tuple[int, int]:
    """(media thread wake-ups, packets relayed) for 200 packets sent 200 us apart (fewer
    than the agent's socket buffers unread)."""
    got: dict[str, int] = {}

    async def body(media: engine.NativeMedia) -> None:
        caller, agent, a, _ = _bridged(media)
        mu = encode("PCMU", np.full(160, 1000, dtype=np.int16))
        caller.sendto(_packet(1, 0, mu), ("127.0.0.1", a.local_port))  # latch
        await _recv_all(agent, 0.15 if relay_jitter_ms else 0.05)  # the latching packet
        before = _voluntary_switches(media.thread_id)
        due = time.perf_counter()
        for n in range(200):
            while time.perf_counter() < due:
                pass
            caller.sendto(_packet(2 + n, 160 * (n + 1), mu), ("127.0.0.1", a.local_port))
            due += 0.0002
        await asyncio.sleep(0.02)
        got["wakes"] = _voluntary_switches(media.thread_id) - before
        got["relayed"] = len(await _recv_all(agent, 0.5 if relay_jitter_ms else 0.05))
        for s in (caller, agent):
            s.close()

    _run(body, coalesce_us=coalesce_us, relay_jitter_ms=relay_jitter_ms)
    return got["wakes"], got["relayed"]


def test_coalescing_lets_one_wake_up_take_several_packets() -> None:
    """Packets 200 us apart wake the media thread about once each (fewer on a loaded
    machine, where it finds several at once anyway); with a 3 ms coalescing pause, one
    wake-up takes many of them (the 5 ms sub-ticks still come: about three wake-ups per
    sub-tick), and every packet is still relayed."""
    at_once, relayed = _wakes_relaying(0)
    assert relayed == 200
    coalesced, relayed = _wakes_relaying(3000)
    assert relayed == 200
    assert at_once > 80 and coalesced < at_once / 2, (at_once, coalesced)


def test_with_a_playout_delay_bridged_legs_are_read_on_the_clock() -> None:
    """With a relay playout delay of 40 ms or more, what a bridged leg hears leaves on the
    playout schedule anyway, so the thread reads it on the leg's sub-tick: the same 200
    packets cost a fraction of the wake-ups, and every one is still relayed."""
    at_once, relayed = _wakes_relaying(0)
    assert relayed == 200
    clocked, relayed = _wakes_relaying(0, relay_jitter_ms=60)
    assert relayed == 200
    assert at_once > 80 and clocked < at_once / 3, (at_once, clocked)


def test_a_coalescing_pause_out_of_range_is_refused() -> None:
    for bad in (-1, 4001):
        with pytest.raises(ValueError, match="0 to 4000 us"):
            engine._engine.Engine().set_coalesce(bad)


def test_which_legs_are_read_on_the_clock() -> None:
    """Only a bridged leg with a playout delay of 40 ms or more is read on its sub-tick. A
    recorded IVR leg is woken for per packet (reading it on the clock was tried and made
    the clock late at 1,000 calls): every packet lands on the recording and a digit
    reaches Python."""
    async def body(media: engine.NativeMedia) -> None:
        phone, listener, a, to = _pcmu_leg(media)
        a.set_remote("127.0.0.1", phone.getsockname()[1])
        timeline = engine._engine.Timeline(time.monotonic())
        a.record(timeline)
        assert not a.drained
        mu = encode("PCMU", np.full(160, 1000, dtype=np.int16))
        for n in range(20):
            phone.sendto(_packet(1 + n, 160 * n, mu), to)
        phone.sendto(_packet(30, 4000, bytes([7, 0x80, 0, 160]), pt=101), to)
        await _until(lambda: ("7", "rfc4733") in listener.digits, 1.0)
        assert a.rx_packets == 21
        b = media.bind(Listener(), "127.0.0.1", _free_port())
        b.set_codec("PCMU", 0, 101)
        a.bridge(b)
        assert not a.drained and not b.drained  # no playout delay: relayed at once
        media.engine.set_relay_jitter(40)
        assert a.drained and b.drained
        media.engine.set_relay_jitter(35)  # too shallow to absorb a 20 ms wait
        assert not a.drained and not b.drained
        media.engine.set_relay_jitter(40)
        a.unbridge()
        assert not a.drained and not b.drained
        a.bridge(b)
        assert a.drained and b.drained
        b.close()  # the leg it relayed to is gone: woken for again
        assert not a.drained
        a.record(None)
        _, frames = timeline.take(time.monotonic(), final=True)
        pcm = np.frombuffer(frames, dtype="<i2").reshape(-1, 2)
        assert np.count_nonzero(pcm[:, 0] == decode("PCMU", mu)[0]) == 20 * 160
        phone.close()
    _run(body)

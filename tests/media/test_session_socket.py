"""RtpSession on real loopback sockets: after latching, the socket is connected to the peer
(sends skip the route lookup; other sources are dropped by the kernel), a new remote from
SDP disconnects it, and closing the session frees the port."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from collections.abc import Callable

import pytest

from media.session import RtpSession


class Listener:
    def on_dtmf(self, digit: str, source: str) -> None: ...
    def on_play_done(self) -> None: ...
    def on_rtp_timeout(self) -> None: ...


def _udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(1.0)
    return s


def _rtp(seq: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, 1234) + b"\xff" * 160


def _loops() -> list[Callable[[], asyncio.AbstractEventLoop]]:
    loops: list[Callable[[], asyncio.AbstractEventLoop]] = [asyncio.new_event_loop]
    try:
        import uvloop
        loops.append(uvloop.new_event_loop)
    except ImportError:
        pass
    return loops


@pytest.mark.parametrize("new_loop", _loops())
def test_latched_session_sends_connected_and_frees_its_port(
        new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        session = RtpSession(Listener(), 0, clock=loop.time)
        probe = _udp()  # an explicit port, as the server's port pool gives (a socket bound
        port = probe.getsockname()[1]  # to port 0 gives its port up when disconnected)
        probe.close()
        await loop.create_datagram_endpoint(lambda: session, local_addr=("127.0.0.1", port))
        phone, stranger, moved = _udp(), _udp(), _udp()
        fds = len(os.listdir("/proc/self/fd"))
        session.set_remote("127.0.0.1", phone.getsockname()[1])
        phone.sendto(_rtp(1), ("127.0.0.1", port))
        for _ in range(100):
            await asyncio.sleep(0.01)
            if session.latched and session.rx_packets:
                break
        assert session._fd >= 0  # connected to the phone
        assert len(os.listdir("/proc/self/fd")) == fds  # with no descriptor of its own
        session.tick()
        got, source = phone.recvfrom(2048)
        assert source[1] == port and got[1] & 0x7F == 0 and len(got) == 172
        phone_port = phone.getsockname()[1]
        phone.close()  # the phone's port goes away for a moment: ICMP port unreachable
        session.tick()  # no await: the loop's reader must not take the error first
        phone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        phone.bind(("127.0.0.1", phone_port))
        phone.settimeout(1.0)
        session.tick()  # the pending error is reported here, and the frame still leaves
        assert phone.recvfrom(2048)[1][1] == port and session.tx_dropped == 0
        stranger.sendto(_rtp(2), ("127.0.0.1", port))  # the kernel drops it
        phone.sendto(_rtp(3), ("127.0.0.1", port))
        for _ in range(100):
            await asyncio.sleep(0.01)
            if session.rx_packets >= 2:
                break
        assert session.rx_packets == 2 and session.rx_foreign == 0
        session.set_remote("127.0.0.1", moved.getsockname()[1])  # re-INVITE: new address
        assert session._fd < 0
        session.tick()
        assert moved.recvfrom(2048)[1][1] == port  # sent unconnected, to the new address
        stranger.sendto(_rtp(4), ("127.0.0.1", port))  # the first packet latches again
        for _ in range(100):
            await asyncio.sleep(0.01)
            if session.latched:
                break
        assert session.remote == stranger.getsockname() and session._fd >= 0
        session.close()
        await asyncio.sleep(0.05)
        again = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        again.bind(("127.0.0.1", port))  # no descriptor of the session keeps the port
        again.close()
        for s in (phone, stranger, moved):
            s.close()

    loop = new_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def _te(seq: int) -> bytes:
    return struct.pack("!BBHII", 0x80, 101, seq, 8000, 1234) + bytes([1, 0x8A, 0, 160])


@pytest.mark.parametrize("new_loop", _loops())
def test_ivr_audio_is_thinned_in_the_kernel_until_something_taps_it(
        new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        session = RtpSession(Listener(), 0, clock=loop.time)
        session.set_codec("PCMU", 0, 101)
        probe = _udp()
        port = probe.getsockname()[1]
        probe.close()
        await loop.create_datagram_endpoint(lambda: session, local_addr=("127.0.0.1", port))
        assert session._thinned
        phone = _udp()
        target = ("127.0.0.1", port)

        async def send(packets: list[bytes], expect: Callable[[], bool]) -> None:
            for packet in packets:
                phone.sendto(packet, target)
            for _ in range(200):
                await asyncio.sleep(0.005)
                if expect():
                    break
            await asyncio.sleep(0.05)  # and nothing more arrives

        await send([_rtp(seq) for seq in range(32)] + [_te(40), _te(41), b"\x00" * 20],
                   lambda: session.rx_packets >= 4 and session.rx_bad >= 1)
        # seq 0 and 16 of the audio, both events, and the packet that is not RTP v2
        assert (session.rx_packets, session.rx_bad) == (4, 1)
        heard: list[int] = []
        session.tap_in = lambda payload, codec, ts, ssrc: heard.append(ts)
        assert not session._thinned
        await send([_rtp(seq) for seq in range(100, 110)], lambda: len(heard) >= 10)
        assert len(heard) == 10 and session.rx_packets == 14
        session.tap_in = None
        assert session._thinned
        other = RtpSession(Listener(), 0, clock=loop.time)
        session.bridge(other)  # a bridged leg relays every packet
        assert not session._thinned
        session.unbridge()
        assert session._thinned
        session.set_codec("PCMU", 0, None)  # in-band DTMF needs the audio
        assert not session._thinned
        session.close()
        phone.close()

    loop = new_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()

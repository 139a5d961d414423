"""Two RTP legs bridged: relay, G.711 transcoding, DTMF passthrough, header continuity."""

from __future__ import annotations

import struct

import numpy as np

from media.g711 import alaw_encode, ulaw_decode, ulaw_encode
from media.rtp import parse
from media.session import RtpSession


class Listener:
    def __init__(self) -> None:
        self.digits: list[str] = []

    def on_dtmf(self, digit: str, source: str) -> None:
        self.digits.append(digit)

    def on_play_done(self) -> None:
        pass

    def on_rtp_timeout(self) -> None:
        pass


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))

    def close(self) -> None:
        pass


def leg(codec: str, pt: int, te: int | None, remote_port: int) -> tuple[RtpSession, FakeTransport]:
    session = RtpSession(Listener(), 20000, clock=lambda: 0.0)
    transport = FakeTransport()
    session.connection_made(transport)  # type: ignore[arg-type]
    session.set_codec(codec, pt, te)
    session.set_remote("127.0.0.1", remote_port)
    return session, transport


def rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, pt | (0x80 if marker else 0), seq, ts, ssrc) + payload


def test_pcmu_caller_to_pcma_agent_is_transcoded_and_re_headed() -> None:
    caller, _ = leg("PCMU", 0, 101, 6000)
    agent, agent_tx = leg("PCMA", 8, 96, 7000)
    caller.bridge(agent)
    tone = ulaw_encode((np.sin(np.arange(160) / 5) * 8000).astype(np.int16))
    for i in range(3):
        caller.datagram_received(rtp(0, 100 + i, 5000 + 160 * i, 0xAAAA, tone, i == 0),
                                 ("127.0.0.1", 6000))
    packets = [parse(d) + (d,) for d, _ in agent_tx.sent]
    assert [p[0] for p in packets] == [8, 8, 8]
    assert packets[0][1] is True and packets[1][1] is False  # marker passed through
    seqs = [p[2] for p in packets]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(3)]
    assert [p[3] - packets[0][3] for p in packets] == [0, 160, 320]
    assert all(p[4] == agent.ssrc for p in packets)
    assert packets[0][6][12:] == alaw_encode(ulaw_decode(tone))
    assert all(addr == ("127.0.0.1", 7000) for _, addr in agent_tx.sent)


def test_a_new_source_ssrc_continues_the_outgoing_timeline() -> None:
    caller, _ = leg("PCMU", 0, 101, 6000)
    agent, agent_tx = leg("PCMU", 0, 101, 7000)
    caller.bridge(agent)
    src = ("127.0.0.1", 6000)
    caller.datagram_received(rtp(0, 1, 1000, 1, b"\xff" * 160), src)
    caller.datagram_received(rtp(0, 9, 999_000, 2, b"\xff" * 160), src)  # phone restarted RTP
    (_, _, s1, t1, _, _), (_, _, s2, t2, _, _) = (parse(d) for d, _ in agent_tx.sent)
    assert (s2 - s1) & 0xFFFF == 1 and (t2 - t1) & 0xFFFFFFFF == 160


def test_dtmf_events_pass_through_with_the_other_legs_payload_type() -> None:
    caller, _ = leg("PCMU", 0, 101, 6000)
    agent, agent_tx = leg("PCMU", 0, 96, 7000)
    caller.bridge(agent)
    event = bytes([5, 0x0A, 0, 160])
    caller.datagram_received(rtp(101, 1, 1000, 7, event, True), ("127.0.0.1", 6000))
    ((data, _),) = agent_tx.sent
    assert parse(data)[0] == 96 and data[12:] == event


def test_bridged_legs_send_no_clocked_audio_and_unbridge_restores_it() -> None:
    caller, caller_tx = leg("PCMU", 0, 101, 6000)
    agent, agent_tx = leg("PCMU", 0, 101, 7000)
    caller.bridge(agent)
    caller.tick()
    agent.tick()
    assert caller_tx.sent == [] and agent_tx.sent == []
    caller.unbridge()
    assert agent.relay is None
    caller.tick()
    assert len(caller_tx.sent) == 1


def test_packets_from_a_foreign_source_are_not_relayed() -> None:
    caller, _ = leg("PCMU", 0, 101, 6000)
    agent, agent_tx = leg("PCMU", 0, 101, 7000)
    caller.bridge(agent)
    caller.datagram_received(rtp(0, 1, 1, 1, b"\xff" * 160), ("127.0.0.1", 6000))  # latches
    caller.datagram_received(rtp(0, 2, 161, 1, b"\xff" * 160), ("127.0.0.1", 6666))
    assert len(agent_tx.sent) == 1 and caller.rx_foreign == 1


def test_recording_taps_hear_both_directions_as_received_even_when_a_leg_cannot_send() -> None:
    """The caller's tap gets the caller's payload with its own codec, timestamp and SSRC
    (also while the agent's leg is on hold and relays nothing); the caller's tap_out gets
    the agent's audio as re-headed and transcoded for the caller."""
    caller, to_caller = leg("PCMU", 0, None, 40000)
    agent, to_agent = leg("PCMA", 8, None, 40002)
    caller.bridge(agent)
    heard_in: list[tuple[bytes, str, int, int]] = []
    heard_out: list[tuple[bytes, str, int, int]] = []
    caller.tap_in = lambda *a: heard_in.append(a)
    caller.tap_out = lambda *a: heard_out.append(a)
    voice = ulaw_encode(np.full(160, 1000, dtype=np.int16))
    caller.datagram_received(rtp(0, 1, 8000, 0xCA11, voice), ("127.0.0.1", 40000))
    assert heard_in == [(voice, "PCMU", 8000, 0xCA11)] and len(to_agent.sent) == 1
    agent.sending = False  # on hold
    caller.datagram_received(rtp(0, 2, 8160, 0xCA11, voice), ("127.0.0.1", 40000))
    assert heard_in[-1] == (voice, "PCMU", 8160, 0xCA11) and len(to_agent.sent) == 1
    reply = alaw_encode(np.full(160, -500, dtype=np.int16))
    agent.datagram_received(rtp(8, 7, 555, 0xA6E7, reply), ("127.0.0.1", 40002))
    (payload, codec, ts, ssrc), = heard_out
    packet = to_caller.sent[-1][0]
    _, _, _, sent_ts, sent_ssrc, offset = parse(packet)
    assert codec == "PCMU" and ssrc == caller.ssrc == sent_ssrc and ts == sent_ts
    assert payload == packet[offset:] and abs(int(ulaw_decode(payload).mean()) + 500) < 40

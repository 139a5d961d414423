"""Outbound INVITEs (offers to agents) against a scripted phone, with a fake clock."""

from __future__ import annotations

from signaling.events import CallAnswered, CallEnded, CallFailed, CallProgress, Peer
from signaling.ids import CountingIds
from signaling.message import SipMessage, make_response, parse_message
from signaling.useragent import UserAgent

AGENT = Peer("UDP", "127.0.0.1", 5071)
SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 0\r\n"


class Phone:
    """The agent's softphone side: reads what the UA sent, answers it."""

    def __init__(self) -> None:
        self.ua = UserAgent(ids=CountingIds(), local={"UDP": ("127.0.0.1", 5060)})
        self.now = 0.0
        self.handle = self.ua.invite(uri="sip:1001@127.0.0.1:5071", peer=AGENT,
                                     from_uri="sip:alice@127.0.0.1", from_name="Alice",
                                     to_uri="sip:1001@127.0.0.1", sdp=SDP, now=0.0,
                                     headers=[("X-Switchboard-Queue", "support")])
        (out,) = self.sent()
        self.invite = parse_message(out)

    def sent(self) -> list[bytes]:
        return [o.data for o in self.ua.take_outgoing()]

    def reply(self, status: int, *, tag: str = "agent1", body: bytes = b"",
              request: SipMessage | None = None) -> list[bytes]:
        req = request or self.invite
        headers = [("Contact", "<sip:1001@127.0.0.1:5071>")] if status < 300 else []
        resp = make_response(req, status, to_tag=tag if status > 100 else None,
                             headers=headers, body=body)
        self.ua.receive(resp.serialize(), AGENT, self.now)
        return self.sent()

    def advance(self, until: float) -> list[bytes]:
        out: list[bytes] = []
        while (d := self.ua.next_deadline()) is not None and d <= until:
            self.now = d
            self.ua.on_timer(d)
            out += self.sent()
        self.now = until
        return out


def test_invite_carries_pop_headers_and_sdp() -> None:
    p = Phone()
    inv = p.invite
    assert inv.method == "INVITE" and inv.uri == "sip:1001@127.0.0.1:5071"
    assert inv.get("x-switchboard-queue") == "support"
    assert inv.from_.display == "Alice" and inv.from_.tag and not inv.to.tag
    assert inv.body == SDP and inv.content_type == "application/sdp"


def test_ringing_then_answer_is_acked_and_reported() -> None:
    p = Phone()
    assert p.reply(100) == [] and p.ua.take_events() == []
    p.reply(180)
    assert p.ua.take_events() == [CallProgress(p.handle, 180, None)]
    (ack,) = [parse_message(d) for d in p.reply(200, body=SDP)]
    assert ack.method == "ACK" and ack.cseq.seq == 1 and ack.to.tag == "agent1"
    assert ack.uri == "sip:1001@127.0.0.1:5071"
    assert p.ua.take_events() == [CallAnswered(p.handle, SDP)]
    # a retransmitted 200 (our ACK was lost) is ACKed again, not reported twice
    (again,) = p.reply(200, body=SDP)
    assert again.startswith(b"ACK ") and p.ua.take_events() == []


def test_busy_is_acked_by_the_transaction_and_fails_the_offer() -> None:
    p = Phone()
    (ack,) = [parse_message(d) for d in p.reply(486)]
    assert ack.method == "ACK" and ack.via[0].branch == p.invite.via[0].branch
    assert p.ua.take_events() == [CallFailed(p.handle, 486, "Busy Here")]


def test_cancel_waits_for_a_provisional_response() -> None:
    """§9.1: a CANCEL must not be sent before a provisional response."""
    p = Phone()
    p.ua.hangup(p.handle, 1.0)
    assert p.sent() == []
    (cancel,) = [parse_message(d) for d in p.reply(180)]
    assert cancel.method == "CANCEL" and cancel.cseq.seq == 1 and cancel.cseq.method == "CANCEL"
    assert cancel.via[0].branch == p.invite.via[0].branch and not cancel.to.tag
    p.ua.take_events()
    p.reply(487)
    assert p.ua.take_events() == [CallFailed(p.handle, 487, "Request Terminated")]


def test_answer_racing_our_cancel_is_acked_then_ended_with_bye() -> None:
    p = Phone()
    p.reply(180)
    p.ua.take_events()
    p.ua.hangup(p.handle, 1.0)
    assert [parse_message(d).method for d in p.sent()] == ["CANCEL"]
    methods = [parse_message(d).method for d in p.reply(200, body=SDP)]
    assert methods == ["ACK", "BYE"]
    assert p.ua.take_events() == [CallFailed(p.handle, 487, "cancelled")]


def test_no_response_at_all_times_out_with_408() -> None:
    p = Phone()
    resent = p.advance(40.0)
    assert len([d for d in resent if d.startswith(b"INVITE")]) == 6  # Timer A: 0.5 .. 16 s
    assert p.ua.take_events() == [CallFailed(p.handle, 408, "no response")]


def test_agent_hangs_up_after_answer() -> None:
    p = Phone()
    p.reply(200, body=SDP)
    p.ua.take_events()
    bye = (f"BYE sip:switchboard@127.0.0.1:5060 SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKagentbye\r\n"
           f"From: <sip:1001@127.0.0.1>;tag=agent1\r\nTo: {p.invite.get('from')}\r\n"
           f"Call-ID: {p.invite.call_id}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n").encode()
    p.ua.receive(bye, AGENT, 5.0)
    assert [parse_message(d).status for d in p.sent()] == [200]
    assert p.ua.take_events() == [CallEnded(p.handle, "remote_bye")]


def test_we_hang_up_after_answer_with_bye_in_the_dialog() -> None:
    p = Phone()
    p.reply(200, body=SDP)
    p.ua.hangup(p.handle, 2.0)
    (bye,) = [parse_message(d) for d in p.sent() if d.startswith(b"BYE")]
    assert bye.to.tag == "agent1" and bye.from_.tag == p.invite.from_.tag
    assert bye.cseq.seq == 2 and bye.uri == "sip:1001@127.0.0.1:5071"
    p.reply(200, request=bye)
    p.advance(100.0)
    assert p.ua.transaction_count == 0 and p.ua.dialog_count == 0 and len(p.ua.outbound) == 0

"""The user-agent core against raw requests, with a fake clock (RFC 3261 §8, §9, §12-§14, RFC 6026)."""

from __future__ import annotations

import pytest

from signaling.ids import CountingIds
from signaling.message import parse_message
from signaling.useragent import (
    CallCancelled,
    CallConfirmed,
    CallEnded,
    IncomingCall,
    InfoReceived,
    Peer,
    ReInvite,
    UserAgent,
)

PHONE = Peer("UDP", "127.0.0.1", 5070)
SDP = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"


def request(method: str = "INVITE", *, branch: str = "z9hG4bK1", cseq: int = 1, to_tag: str = "",
            uri: str = "sip:100@127.0.0.1", extra: str = "", body: bytes = b"",
            ctype: str = "application/sdp", cseq_method: str | None = None) -> bytes:
    to = "<sip:100@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    head = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: \"Alice\" <sip:alice@127.0.0.1:5070>;tag=from1\r\n"
        f"To: {to}\r\n"
        "Call-ID: call-1@127.0.0.1\r\n"
        f"CSeq: {cseq} {cseq_method or method}\r\n"
        "Contact: <sip:alice@127.0.0.1:5070>\r\n"
        f"{extra}"
    )
    if body:
        head += f"Content-Type: {ctype}\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class Harness:
    def __init__(self) -> None:
        self.ua = UserAgent(ids=CountingIds(), local={"UDP": ("127.0.0.1", 5060)})
        self.now = 0.0

    def rx(self, data: bytes, peer: Peer = PHONE) -> list[bytes]:
        self.ua.receive(data, peer, self.now)
        return [o.data for o in self.ua.take_outgoing()]

    def statuses(self, data: bytes) -> list[int]:
        return [parse_message(d).status or 0 for d in self.rx(data)]

    def advance(self, until: float) -> list[bytes]:
        sent: list[bytes] = []
        while (deadline := self.ua.next_deadline()) is not None and deadline <= until:
            self.now = deadline
            self.ua.on_timer(deadline)
            sent += [o.data for o in self.ua.take_outgoing()]
        self.now = until
        return sent

    def invite(self) -> tuple[int, str]:
        out = self.rx(request(body=SDP))
        assert parse_message(out[0]).status == 100
        (event,) = self.ua.take_events()
        assert isinstance(event, IncomingCall)
        return event.handle, ""

    def answer(self) -> tuple[int, str]:
        handle, _ = self.invite()
        self.ua.progress(handle, self.now, 180)
        self.ua.answer(handle, SDP, self.now)
        out = [parse_message(o.data) for o in self.ua.take_outgoing()]
        assert [m.status for m in out] == [180, 200]
        tag = out[1].to.tag
        assert tag and out[1].body == SDP and out[1].contact
        return handle, tag


def test_invite_gives_100_then_event_with_caller_and_did() -> None:
    h = Harness()
    h.rx(request(body=SDP))
    (event,) = h.ua.take_events()
    assert isinstance(event, IncomingCall)
    assert (event.caller, event.caller_name, event.did, event.sdp) == ("alice", "Alice", "100", SDP)


def test_2xx_retransmitted_until_ack_then_confirmed() -> None:
    h = Harness()
    handle, tag = h.answer()
    resent = h.advance(2.0)
    assert len(resent) == 2 and all(b" 200 " in r.split(b"\r\n")[0] for r in resent)  # 0.5, 1.5
    h.rx(request("ACK", branch="z9hG4bK2", to_tag=tag))
    assert h.ua.take_events() == [CallConfirmed(handle, None)]
    assert h.advance(40.0) == []


def test_no_ack_sends_bye_and_ends_call() -> None:
    """RFC 3261 §13.3.1.4 / RFC 6026: 64*T1 without ACK -> BYE."""
    h = Harness()
    handle, _ = h.answer()
    sent = h.advance(33.0)
    assert any(s.startswith(b"BYE ") for s in sent)
    assert CallEnded(handle, "ack_timeout") in h.ua.take_events()


def test_cancel_before_answer_gives_200_and_487() -> None:
    h = Harness()
    handle, _ = h.invite()
    out = [parse_message(d) for d in h.rx(request("CANCEL", cseq_method="CANCEL"))]
    assert sorted((m.status, m.cseq.method) for m in out) == [(200, "CANCEL"), (487, "INVITE")]
    assert h.ua.take_events() == [CallCancelled(handle)]
    h.rx(request("ACK", to_tag=parse_message(
        [d for d in [o.serialize() for o in out] if b"487" in d][0]).to.tag or ""))
    assert h.ua.dialog_count == 0


def test_cancel_after_200_only_answers_cancel() -> None:
    """The CANCEL/200 race (§9.2): the call stays up; the caller ACKs and sends BYE."""
    h = Harness()
    handle, tag = h.answer()
    out = [parse_message(d) for d in h.rx(request("CANCEL", cseq_method="CANCEL"))]
    assert [(m.status, m.cseq.method) for m in out] == [(200, "CANCEL")]
    assert h.ua.take_events() == []
    h.rx(request("ACK", branch="z9hG4bK2", to_tag=tag))
    assert h.statuses(request("BYE", branch="z9hG4bK3", cseq=2, to_tag=tag)) == [200]
    assert CallEnded(handle, "remote_bye") in h.ua.take_events()


def test_cancel_without_invite_is_481() -> None:
    h = Harness()
    assert h.statuses(request("CANCEL", branch="z9hG4bKzz", cseq_method="CANCEL")) == [481]


def test_bye_from_caller_and_from_us() -> None:
    h = Harness()
    handle, tag = h.answer()
    h.rx(request("ACK", branch="z9hG4bK2", to_tag=tag))
    h.ua.take_events()
    h.ua.hangup(handle, h.now)
    (bye,) = [parse_message(o.data) for o in h.ua.take_outgoing()]
    assert bye.method == "BYE" and bye.from_.tag == tag and bye.to.tag == "from1"
    assert bye.uri == "sip:alice@127.0.0.1:5070" and bye.cseq.seq == 1
    # the 200 for our BYE ends the client transaction; a late BYE from them gets 481
    h.rx(b"SIP/2.0 200 OK\r\n" + bye.serialize().split(b"\r\n", 1)[1])
    assert h.statuses(request("BYE", branch="z9hG4bK9", cseq=3, to_tag=tag)) == [481]


def test_out_of_dialog_bye_is_481_and_options_200() -> None:
    h = Harness()
    assert h.statuses(request("BYE", to_tag="nope")) == [481]
    assert h.statuses(request("BYE", branch="z9hG4bK5")) == [481]
    out = parse_message(h.rx(request("OPTIONS", branch="z9hG4bK6"))[0])
    assert out.status == 200 and "INVITE" in (out.get("allow") or "")


@pytest.mark.parametrize(("raw", "status"), [
    (request("FOO"), 501),
    (request("SUBSCRIBE"), 405),
    (request("INVITE", uri="tel:+15551234"), 416),
    (request("INVITE", extra="Require: 100rel, foo\r\n"), 420),
    (request("INVITE", body=b"<xml/>", ctype="application/xml"), 415),
    (request("INVITE", body=SDP, extra="Content-Encoding: gzip\r\n"), 415),
    (b"INVITE sip:100@127.0.0.1 SIP/3.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKv\r\n"
     b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n", 505),
    (b"INVITE sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKv\r\n"
     b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: abc INVITE\r\n\r\n", 400),
])
def test_bad_requests_get_their_status(raw: bytes, status: int) -> None:
    h = Harness()
    assert h.statuses(raw) == [status]
    assert h.ua.take_events() == []


def test_garbage_without_via_is_dropped_and_counted() -> None:
    h = Harness()
    assert h.rx(b"\x00\x01garbage\r\n\r\n") == []
    assert h.rx(b"hello world") == []
    assert h.ua.stats["rx_malformed"] == 2


def test_merged_request_is_482() -> None:
    """§8.2.2.2: same From tag, Call-ID and CSeq on another branch (forked back to us)."""
    h = Harness()
    h.invite()
    assert h.statuses(request(branch="z9hG4bKother", body=SDP)) == [482]


def test_invite_retransmission_is_absorbed_by_the_transaction() -> None:
    h = Harness()
    h.invite()
    assert h.statuses(request(body=SDP)) == [100]
    assert h.ua.take_events() == []


def test_reinvite_for_hold_is_passed_up_and_answered_without_491() -> None:
    h = Harness()
    handle, tag = h.answer()
    h.rx(request("ACK", branch="z9hG4bK2", to_tag=tag))
    h.ua.take_events()
    hold = SDP.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")
    h.rx(request("INVITE", branch="z9hG4bK7", cseq=2, to_tag=tag, body=hold))
    (event,) = h.ua.take_events()
    assert isinstance(event, ReInvite) and event.sdp == hold
    h.ua.respond(event.tx, 200, h.now, SDP, "application/sdp")
    (ok,) = [parse_message(o.data) for o in h.ua.take_outgoing()]
    assert ok.status == 200 and ok.cseq.seq == 2 and ok.body == SDP
    h.rx(request("ACK", branch="z9hG4bK8", cseq=2, to_tag=tag))
    assert h.advance(40.0) == []  # ACK stopped the 2xx retransmissions; no BYE


def test_info_in_dialog_is_passed_up() -> None:
    h = Harness()
    handle, tag = h.answer()
    h.rx(request("INFO", branch="z9hG4bKi", cseq=2, to_tag=tag, body=b"Signal=5\r\nDuration=160\r\n",
                 ctype="application/dtmf-relay"))
    (event,) = [e for e in h.ua.take_events() if isinstance(e, InfoReceived)]
    assert event.content_type == "application/dtmf-relay"
    h.ua.respond(event.tx, 200, h.now)
    assert [parse_message(o.data).status for o in h.ua.take_outgoing()] == [200]


def test_out_of_order_cseq_in_dialog_is_500() -> None:
    h = Harness()
    handle, tag = h.answer()
    h.rx(request("INFO", branch="z9hG4bKa", cseq=5, to_tag=tag, body=b"5", ctype="application/dtmf"))
    assert h.statuses(request("INFO", branch="z9hG4bKb", cseq=4, to_tag=tag, body=b"5",
                              ctype="application/dtmf")) == [500]


def test_rport_and_received_are_stamped_on_responses() -> None:
    """RFC 3581 §4: the response goes to the source port and says where we saw it from."""
    h = Harness()
    natted = Peer("UDP", "127.0.0.1", 40000)
    h.ua.receive(request("OPTIONS", branch="z9hG4bKr"), natted, 0.0)
    (out,) = h.ua.take_outgoing()
    assert out.peer == natted
    assert parse_message(out.data).via[0].param("rport") == "40000"


def test_full_dialog_table_answers_503() -> None:
    h = Harness()
    h.ua.max_dialogs = 1
    h.invite()
    raw = request(branch="z9hG4bKn2", body=SDP).replace(b"call-1@", b"call-2@")
    assert h.statuses(raw) == [503]


def test_tables_return_to_zero_after_calls() -> None:
    h = Harness()
    handle, tag = h.answer()
    h.rx(request("ACK", branch="z9hG4bK2", to_tag=tag))
    h.rx(request("BYE", branch="z9hG4bK3", cseq=2, to_tag=tag))
    h.advance(100.0)
    assert h.ua.dialog_count == 0 and h.ua.transaction_count == 0
    assert len(h.ua.timers) == 0


def test_bye_goes_back_to_the_source_when_contact_is_a_host_name() -> None:
    """Interop (_nat_fallback): softphones behind NAT that advertise an unresolvable
    Contact host name, e.g. `Contact: <sip:alice@alice-laptop.local:5060>`."""
    h = Harness()
    raw = request(body=SDP).replace(b"Contact: <sip:alice@127.0.0.1:5070>",
                                    b"Contact: <sip:alice@alice-laptop.local:5060>")
    h.rx(raw, Peer("UDP", "127.0.0.1", 41000))
    (event,) = h.ua.take_events()
    h.ua.answer(event.handle, SDP, h.now)
    h.ua.take_outgoing()
    h.ua.hangup(event.handle, h.now)
    (bye,) = h.ua.take_outgoing()
    assert bye.data.startswith(b"BYE sip:alice@alice-laptop.local:5060 ")
    assert bye.peer == Peer("UDP", "127.0.0.1", 41000)

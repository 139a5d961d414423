"""RFC 3261 §17 transaction state machines with a fake clock and a recording context."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from signaling.message import SipMessage, make_response, parse_message
from signaling.timers import TimerHeap
from signaling.transaction import (
    T1,
    T2,
    Ev,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    Outcome,
    State,
    Transaction,
    TransactionStateError,
    ack_for_non_2xx,
)

INVITE = (
    b"INVITE sip:100@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@127.0.0.1>;tag=a1\r\n"
    b"To: <sip:100@127.0.0.1>\r\n"
    b"Call-ID: call-1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n"
)
BYE = INVITE.replace(b"INVITE sip", b"BYE sip").replace(b"1 INVITE", b"2 BYE")


class Ctx:
    def __init__(self) -> None:
        self.heap = TimerHeap()
        self.sent: list[tuple[float, bytes]] = []
        self.tu: list[SipMessage] = []
        self.outcomes: list[Outcome] = []
        self.now = 0.0

    def send(self, tx: Transaction, data: bytes) -> None:
        self.sent.append((self.now, data))

    def schedule(self, when: float, callback: Callable[[float], None]) -> int:
        return self.heap.schedule(when, callback)

    def cancel(self, handle: int | None) -> None:
        self.heap.cancel(handle)

    def to_tu(self, tx: Transaction, msg: SipMessage) -> None:
        self.tu.append(msg)

    def outcome(self, tx: Transaction, outcome: Outcome) -> None:
        self.outcomes.append(outcome)

    def advance(self, until: float) -> None:
        """Fire every timer up to `until`, in order, with `now` at each deadline."""
        while True:
            deadline = self.heap.next_deadline()
            if deadline is None or deadline > until:
                break
            self.now = deadline
            self.heap.fire(deadline)
        self.now = until

    def send_times(self) -> list[float]:
        return [round(t, 3) for t, _ in self.sent]


def server_tx(cls: type, raw: bytes, reliable: bool = False) -> tuple[Transaction, Ctx]:
    ctx = Ctx()
    msg = parse_message(raw)
    tx = cls(key=("k",), request=msg, reliable=reliable, ctx=ctx)
    tx.start(0.0)
    return tx, ctx


def test_invite_server_non2xx_retransmits_with_timer_g_until_h() -> None:
    tx, ctx = server_tx(InviteServerTransaction, INVITE)
    tx.handle(Ev.TU_FINAL, 0.0, make_response(tx.request, 486, to_tag="x"))
    ctx.advance(40.0)
    # G: T1, 2T1, 4T1, then capped at T2 until H = 64*T1 = 32 s
    times = ctx.send_times()
    assert times[:5] == [0.0, 0.5, 1.5, 3.5, 7.5]
    assert all(b - a == pytest.approx(T2) for a, b in zip(times[4:], times[5:], strict=False))
    assert times[-1] <= 64 * T1
    assert tx.state is State.TERMINATED
    assert ctx.outcomes == [Outcome.TIMEOUT, Outcome.TERMINATED]


def test_invite_server_ack_confirms_then_timer_i() -> None:
    tx, ctx = server_tx(InviteServerTransaction, INVITE)
    tx.handle(Ev.TU_FINAL, 0.0, make_response(tx.request, 404, to_tag="x"))
    ctx.advance(0.7)  # one retransmission at 0.5
    tx.handle(Ev.ACK, 0.7)
    assert tx.state is State.CONFIRMED
    sent = len(ctx.sent)
    tx.handle(Ev.ACK, 0.8)  # retransmitted ACK absorbed
    ctx.advance(0.7 + 5.0 - 0.01)
    assert tx.state is State.CONFIRMED and len(ctx.sent) == sent
    ctx.advance(6.0)
    assert tx.state is State.TERMINATED


def test_invite_server_over_tcp_never_retransmits_and_i_is_zero() -> None:
    tx, ctx = server_tx(InviteServerTransaction, INVITE, reliable=True)
    tx.handle(Ev.TU_FINAL, 0.0, make_response(tx.request, 480, to_tag="x"))
    tx.handle(Ev.ACK, 1.0)
    ctx.advance(1.0)
    assert tx.state is State.TERMINATED
    assert len(ctx.sent) == 1


def test_invite_server_request_retransmission_resends_last_provisional() -> None:
    tx, ctx = server_tx(InviteServerTransaction, INVITE)
    tx.handle(Ev.TU_1XX, 0.0, make_response(tx.request, 100))
    tx.handle(Ev.REQUEST, 0.5, tx.request)
    assert [d[:20] for _, d in ctx.sent] == [b"SIP/2.0 100 Trying\r\n"] * 2


def test_invite_server_2xx_goes_to_accepted_and_absorbs_retransmissions() -> None:
    """RFC 6026 §7.1: INVITE retransmissions in Accepted are absorbed, ACK goes up."""
    tx, ctx = server_tx(InviteServerTransaction, INVITE)
    tx.handle(Ev.TU_2XX, 0.0, make_response(tx.request, 200, to_tag="x"))
    assert tx.state is State.ACCEPTED
    tx.handle(Ev.REQUEST, 0.3, tx.request)
    assert len(ctx.sent) == 1
    ack = parse_message(INVITE.replace(b"INVITE sip", b"ACK sip").replace(b"1 INVITE", b"1 ACK"))
    tx.handle(Ev.ACK, 0.4, ack)
    assert ctx.tu == [ack]
    ctx.advance(64 * T1 + 0.01)
    assert tx.state is State.TERMINATED


def test_non_invite_server_timer_j() -> None:
    tx, ctx = server_tx(NonInviteServerTransaction, BYE)
    tx.handle(Ev.REQUEST, 0.1, tx.request)  # absorbed in Trying
    assert ctx.sent == []
    tx.handle(Ev.TU_2XX, 0.2, make_response(tx.request, 200))
    tx.handle(Ev.REQUEST, 1.0, tx.request)  # retransmission answered from Completed
    assert len(ctx.sent) == 2
    ctx.advance(0.2 + 64 * T1 - 0.01)
    assert tx.state is State.COMPLETED
    ctx.advance(0.2 + 64 * T1 + 0.01)
    assert tx.state is State.TERMINATED


def test_non_invite_client_timer_e_backoff_and_f_timeout() -> None:
    ctx = Ctx()
    tx = NonInviteClientTransaction(key=("k",), request=parse_message(BYE), reliable=False, ctx=ctx)
    tx.start(0.0)
    ctx.advance(40.0)
    times = ctx.send_times()
    assert times[:5] == [0.0, 0.5, 1.5, 3.5, 7.5]
    assert times[-1] < 64 * T1
    assert ctx.outcomes == [Outcome.TIMEOUT, Outcome.TERMINATED]


def test_non_invite_client_provisional_switches_e_to_t2() -> None:
    ctx = Ctx()
    request = parse_message(BYE)
    tx = NonInviteClientTransaction(key=("k",), request=request, reliable=False, ctx=ctx)
    tx.start(0.0)
    ctx.advance(0.6)
    tx.handle(Ev.RESP_1XX, 0.6, make_response(request, 100))
    ctx.advance(10.0)
    times = ctx.send_times()
    assert times[:3] == [0.0, 0.5, 1.5]
    assert times[3] - times[2] == pytest.approx(T2)


def test_non_invite_client_final_then_timer_k() -> None:
    ctx = Ctx()
    request = parse_message(BYE)
    tx = NonInviteClientTransaction(key=("k",), request=request, reliable=False, ctx=ctx)
    tx.start(0.0)
    ok = make_response(request, 200)
    tx.handle(Ev.RESP_2XX, 0.1, ok)
    tx.handle(Ev.RESP_2XX, 0.2, ok)  # retransmitted response absorbed
    assert ctx.tu == [ok]
    ctx.advance(5.2)
    assert tx.state is State.TERMINATED


def test_invite_client_timer_a_doubles_without_cap_and_b_times_out() -> None:
    ctx = Ctx()
    tx = InviteClientTransaction(key=("k",), request=parse_message(INVITE), reliable=False, ctx=ctx)
    tx.start(0.0)
    ctx.advance(40.0)
    assert ctx.send_times() == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert ctx.outcomes[0] is Outcome.TIMEOUT


def test_invite_client_non2xx_is_acked_by_the_transaction() -> None:
    ctx = Ctx()
    request = parse_message(INVITE)
    tx = InviteClientTransaction(key=("k",), request=request, reliable=False, ctx=ctx)
    tx.start(0.0)
    busy = make_response(request, 486, to_tag="remote")
    tx.handle(Ev.RESP_FINAL, 0.1, busy)
    tx.handle(Ev.RESP_FINAL, 0.2, busy)  # retransmitted 486 -> ACK again, not passed up
    acks = [d for _, d in ctx.sent if d.startswith(b"ACK")]
    assert len(acks) == 2 and ctx.tu == [busy]
    ack = parse_message(acks[0])
    assert ack.cseq.method == "ACK" and ack.cseq.seq == 1
    assert ack.to.tag == "remote" and ack.via[0].branch == "z9hG4bKabc"
    ctx.advance(0.1 + 32.01)
    assert tx.state is State.TERMINATED


def test_ack_for_non_2xx_keeps_route_and_request_uri() -> None:
    request = parse_message(INVITE.replace(b"Max-Forwards: 70\r\n",
                                           b"Max-Forwards: 70\r\nRoute: <sip:p1;lr>\r\n"))
    ack = ack_for_non_2xx(request, make_response(request, 404, to_tag="t"))
    assert ack.uri == "sip:100@127.0.0.1"
    assert ack.get_all("route") == ["<sip:p1;lr>"]


def test_impossible_event_raises() -> None:
    tx, _ = server_tx(NonInviteServerTransaction, BYE)
    with pytest.raises(TransactionStateError):
        tx.handle(Ev.TIMER_G, 0.0)


@pytest.mark.parametrize("cls", [InviteServerTransaction, NonInviteServerTransaction,
                                 InviteClientTransaction, NonInviteClientTransaction])
def test_every_table_row_targets_a_state_and_known_actions(cls: type) -> None:
    for (state, ev), (target, actions) in cls.TABLE.items():
        assert isinstance(state, State) and isinstance(ev, Ev) and isinstance(target, State)
        for action in actions:
            assert hasattr(cls, "_do_" + action), f"{cls.__name__} lacks action {action}"


def test_timer_heap_cancel_and_order() -> None:
    heap = TimerHeap()
    fired: list[str] = []
    heap.schedule(2.0, lambda t: fired.append("b"))
    h = heap.schedule(1.0, lambda t: fired.append("a"))
    heap.schedule(3.0, lambda t: fired.append("c"))
    heap.cancel(h)
    assert heap.next_deadline() == 2.0
    assert heap.fire(2.5) == 1
    assert fired == ["b"] and len(heap) == 1

"""SIP transactions, RFC 3261 §17 with the RFC 6026 "Accepted" states.

Each transaction is a state machine with one transition table copied from its RFC
figure: §17.1.1 (INVITE client, RFC 6026 Fig. 5), §17.1.2 (non-INVITE client),
§17.2.1 (INVITE server, RFC 6026 Fig. 7), §17.2.2 (non-INVITE server). A (state, event)
pair missing from a table is a bug in our code and raises `TransactionStateError`;
every network event the RFC lets happen in a state is in the table, absorbed if the
RFC says to ignore it.

Sans-IO: a transaction talks to its owner through `TransactionContext` (send bytes,
schedule and cancel timers on the shared heap, report to the transaction user).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto
from typing import ClassVar, Protocol

from .message import SipMessage, make_request

T1 = 0.5  # RTT estimate, §17.1.1.1
T2 = 4.0  # maximum retransmit interval for non-INVITE requests and INVITE responses
T4 = 5.0  # maximum duration a message remains in the network


class State(Enum):
    CALLING = auto()
    TRYING = auto()
    PROCEEDING = auto()
    COMPLETED = auto()
    CONFIRMED = auto()
    ACCEPTED = auto()
    TERMINATED = auto()


class Ev(Enum):
    # from the transaction user
    TU_1XX = auto()
    TU_2XX = auto()
    TU_FINAL = auto()  # 300-699
    # from the network
    REQUEST = auto()  # a retransmission of the request that created a server transaction
    ACK = auto()
    RESP_1XX = auto()
    RESP_2XX = auto()
    RESP_FINAL = auto()
    TRANSPORT_ERROR = auto()
    # timers (§17, Table 4; L and M from RFC 6026)
    TIMER_A = auto()
    TIMER_B = auto()
    TIMER_D = auto()
    TIMER_E = auto()
    TIMER_F = auto()
    TIMER_G = auto()
    TIMER_H = auto()
    TIMER_I = auto()
    TIMER_J = auto()
    TIMER_K = auto()
    TIMER_L = auto()
    TIMER_M = auto()


class TransactionStateError(Exception):
    """Our own code drove a transaction with an event its RFC figure does not allow."""


class Outcome(Enum):
    """What a transaction reports to its user besides passing messages up."""

    TIMEOUT = auto()
    TRANSPORT_ERROR = auto()
    TERMINATED = auto()


class TransactionContext(Protocol):
    def send(self, tx: Transaction, data: bytes) -> None: ...
    def schedule(self, when: float, callback: Callable[[float], None]) -> int: ...
    def cancel(self, handle: int | None) -> None: ...
    def to_tu(self, tx: Transaction, msg: SipMessage) -> None: ...
    def outcome(self, tx: Transaction, outcome: Outcome) -> None: ...


Row = tuple[State, tuple[str, ...]]
Table = dict[tuple[State, Ev], Row]

S = State


@dataclass(eq=False)
class Transaction:
    """Common machinery; subclasses provide TABLE and the action methods they name."""

    key: tuple[str, ...]
    request: SipMessage
    reliable: bool  # TCP: no retransmissions and zero wait timers (§17.1.1.2, §17.2.1)
    ctx: TransactionContext
    state: State = S.TERMINATED
    last_response: SipMessage | None = None
    last_bytes: bytes = b""
    _timers: dict[str, int] | None = None
    _intervals: dict[str, float] | None = None

    TABLE: ClassVar[Table] = {}

    def handle(self, ev: Ev, now: float, msg: SipMessage | None = None) -> None:
        row = self.TABLE.get((self.state, ev))
        if row is None:
            raise TransactionStateError(f"{type(self).__name__}: {ev.name} in {self.state.name}")
        self.state, actions = row
        for action in actions:
            getattr(self, "_do_" + action)(now, msg)
        if self.state is S.TERMINATED:
            self._cancel_all()
            self.ctx.outcome(self, Outcome.TERMINATED)

    # -- timers -------------------------------------------------------------------

    def _start(self, name: str, now: float, interval: float) -> None:
        if self._timers is None:
            self._timers, self._intervals = {}, {}
        assert self._intervals is not None
        self.ctx.cancel(self._timers.get(name))
        self._intervals[name] = interval
        event = Ev["TIMER_" + name]
        self._timers[name] = self.ctx.schedule(now + interval, lambda t: self._fire(event, t))

    def _fire(self, event: Ev, now: float) -> None:
        if self._timers is not None:
            self._timers.pop(event.name[-1], None)
        if self.state is not S.TERMINATED:
            self.handle(event, now)

    def _stop(self, name: str) -> None:
        if self._timers is not None:
            self.ctx.cancel(self._timers.pop(name, None))

    def _cancel_all(self) -> None:
        for handle in (self._timers or {}).values():
            self.ctx.cancel(handle)
        self._timers = {}

    def _interval(self, name: str) -> float:
        return (self._intervals or {}).get(name, T1)

    def _wait(self, unreliable: float) -> float:
        return 0.0 if self.reliable else unreliable

    # -- shared actions --------------------------------------------------------------

    def _do_absorb(self, now: float, msg: SipMessage | None) -> None:
        pass

    def _do_tu(self, now: float, msg: SipMessage | None) -> None:
        assert msg is not None
        self.ctx.to_tu(self, msg)

    def _do_timeout(self, now: float, msg: SipMessage | None) -> None:
        self.ctx.outcome(self, Outcome.TIMEOUT)

    def _do_transport_error(self, now: float, msg: SipMessage | None) -> None:
        self.ctx.outcome(self, Outcome.TRANSPORT_ERROR)

    def _do_send(self, now: float, msg: SipMessage | None) -> None:
        assert msg is not None
        self.last_response = msg
        self.last_bytes = msg.serialize()
        self.ctx.send(self, self.last_bytes)

    def _do_resend(self, now: float, msg: SipMessage | None) -> None:
        if self.last_bytes:
            self.ctx.send(self, self.last_bytes)


# --------------------------------------------------------------------------------------
# Server transactions


class InviteServerTransaction(Transaction):
    """§17.2.1, Figure 7, with RFC 6026 §7.1 (2xx leads to Accepted, Timer L)."""

    TABLE: ClassVar[Table] = {
        (S.PROCEEDING, Ev.REQUEST): (S.PROCEEDING, ("resend",)),
        (S.PROCEEDING, Ev.ACK): (S.PROCEEDING, ("absorb",)),
        (S.PROCEEDING, Ev.TU_1XX): (S.PROCEEDING, ("send",)),
        (S.PROCEEDING, Ev.TU_2XX): (S.ACCEPTED, ("send", "start_L")),
        (S.PROCEEDING, Ev.TU_FINAL): (S.COMPLETED, ("send", "start_G", "start_H")),
        (S.PROCEEDING, Ev.TRANSPORT_ERROR): (S.TERMINATED, ("transport_error",)),
        (S.COMPLETED, Ev.REQUEST): (S.COMPLETED, ("resend",)),
        (S.COMPLETED, Ev.ACK): (S.CONFIRMED, ("stop_G", "stop_H", "start_I")),
        (S.COMPLETED, Ev.TIMER_G): (S.COMPLETED, ("resend", "again_G")),
        (S.COMPLETED, Ev.TIMER_H): (S.TERMINATED, ("timeout",)),
        (S.COMPLETED, Ev.TRANSPORT_ERROR): (S.TERMINATED, ("transport_error",)),
        (S.CONFIRMED, Ev.REQUEST): (S.CONFIRMED, ("absorb",)),
        (S.CONFIRMED, Ev.ACK): (S.CONFIRMED, ("absorb",)),
        (S.CONFIRMED, Ev.TIMER_I): (S.TERMINATED, ()),
        (S.ACCEPTED, Ev.REQUEST): (S.ACCEPTED, ("absorb",)),
        (S.ACCEPTED, Ev.ACK): (S.ACCEPTED, ("tu",)),
        (S.ACCEPTED, Ev.TU_2XX): (S.ACCEPTED, ("send",)),
        (S.ACCEPTED, Ev.TRANSPORT_ERROR): (S.ACCEPTED, ("absorb",)),
        (S.ACCEPTED, Ev.TIMER_L): (S.TERMINATED, ()),
    }

    def start(self, now: float) -> None:
        self.state = S.PROCEEDING

    def _do_start_G(self, now: float, msg: SipMessage | None) -> None:
        if not self.reliable:
            self._start("G", now, T1)

    def _do_again_G(self, now: float, msg: SipMessage | None) -> None:
        self._start("G", now, min(2 * self._interval("G"), T2))

    def _do_stop_G(self, now: float, msg: SipMessage | None) -> None:
        self._stop("G")

    def _do_start_H(self, now: float, msg: SipMessage | None) -> None:
        self._start("H", now, 64 * T1)

    def _do_stop_H(self, now: float, msg: SipMessage | None) -> None:
        self._stop("H")

    def _do_start_I(self, now: float, msg: SipMessage | None) -> None:
        self._start("I", now, self._wait(T4))

    def _do_start_L(self, now: float, msg: SipMessage | None) -> None:
        self._start("L", now, 64 * T1)


class NonInviteServerTransaction(Transaction):
    """§17.2.2, Figure 8."""

    TABLE: ClassVar[Table] = {
        (S.TRYING, Ev.REQUEST): (S.TRYING, ("absorb",)),
        (S.TRYING, Ev.TU_1XX): (S.PROCEEDING, ("send",)),
        (S.TRYING, Ev.TU_2XX): (S.COMPLETED, ("send", "start_J")),
        (S.TRYING, Ev.TU_FINAL): (S.COMPLETED, ("send", "start_J")),
        (S.PROCEEDING, Ev.REQUEST): (S.PROCEEDING, ("resend",)),
        (S.PROCEEDING, Ev.TU_1XX): (S.PROCEEDING, ("send",)),
        (S.PROCEEDING, Ev.TU_2XX): (S.COMPLETED, ("send", "start_J")),
        (S.PROCEEDING, Ev.TU_FINAL): (S.COMPLETED, ("send", "start_J")),
        (S.PROCEEDING, Ev.TRANSPORT_ERROR): (S.TERMINATED, ("transport_error",)),
        (S.COMPLETED, Ev.REQUEST): (S.COMPLETED, ("resend",)),
        (S.COMPLETED, Ev.TRANSPORT_ERROR): (S.TERMINATED, ("transport_error",)),
        (S.COMPLETED, Ev.TIMER_J): (S.TERMINATED, ()),
    }

    def start(self, now: float) -> None:
        self.state = S.TRYING

    def _do_start_J(self, now: float, msg: SipMessage | None) -> None:
        self._start("J", now, self._wait(64 * T1))


# --------------------------------------------------------------------------------------
# Client transactions


class InviteClientTransaction(Transaction):
    """§17.1.1, Figure 5, with RFC 6026 §7.2 (2xx leads to Accepted, Timer M)."""

    _ack_bytes: bytes = b""

    TABLE: ClassVar[Table] = {
        (S.CALLING, Ev.TIMER_A): (S.CALLING, ("resend_request", "again_A")),
        (S.CALLING, Ev.TIMER_B): (S.TERMINATED, ("timeout",)),
        (S.CALLING, Ev.RESP_1XX): (S.PROCEEDING, ("stop_A", "tu")),
        (S.CALLING, Ev.RESP_2XX): (S.ACCEPTED, ("stop_A", "tu", "start_M")),
        (S.CALLING, Ev.RESP_FINAL): (S.COMPLETED, ("stop_A", "send_ack", "tu", "start_D")),
        (S.CALLING, Ev.TRANSPORT_ERROR): (S.TERMINATED, ("transport_error",)),
        (S.PROCEEDING, Ev.TIMER_B): (S.PROCEEDING, ("absorb",)),
        (S.PROCEEDING, Ev.RESP_1XX): (S.PROCEEDING, ("tu",)),
        (S.PROCEEDING, Ev.RESP_2XX): (S.ACCEPTED, ("tu", "start_M")),
        (S.PROCEEDING, Ev.RESP_FINAL): (S.COMPLETED, ("send_ack", "tu", "start_D")),
        (S.PROCEEDING, Ev.TRANSPORT_ERROR): (S.TERMINATED, ("transport_error",)),
        (S.COMPLETED, Ev.RESP_1XX): (S.COMPLETED, ("absorb",)),
        (S.COMPLETED, Ev.RESP_2XX): (S.COMPLETED, ("absorb",)),
        (S.COMPLETED, Ev.RESP_FINAL): (S.COMPLETED, ("resend_ack",)),
        (S.COMPLETED, Ev.TIMER_B): (S.COMPLETED, ("absorb",)),
        (S.COMPLETED, Ev.TRANSPORT_ERROR): (S.TERMINATED, ("transport_error",)),
        (S.COMPLETED, Ev.TIMER_D): (S.TERMINATED, ()),
        (S.ACCEPTED, Ev.RESP_1XX): (S.ACCEPTED, ("absorb",)),
        (S.ACCEPTED, Ev.RESP_2XX): (S.ACCEPTED, ("tu",)),
        (S.ACCEPTED, Ev.RESP_FINAL): (S.ACCEPTED, ("absorb",)),
        (S.ACCEPTED, Ev.TIMER_B): (S.ACCEPTED, ("absorb",)),
        (S.ACCEPTED, Ev.TRANSPORT_ERROR): (S.ACCEPTED, ("absorb",)),
        (S.ACCEPTED, Ev.TIMER_M): (S.TERMINATED, ()),
    }

    def start(self, now: float) -> None:
        self.state = S.CALLING
        self.last_bytes = self.request.serialize()
        self.ctx.send(self, self.last_bytes)
        if not self.reliable:
            self._start("A", now, T1)
        self._start("B", now, 64 * T1)

    def _do_resend_request(self, now: float, msg: SipMessage | None) -> None:
        self.ctx.send(self, self.last_bytes)

    def _do_again_A(self, now: float, msg: SipMessage | None) -> None:
        self._start("A", now, 2 * self._interval("A"))

    def _do_stop_A(self, now: float, msg: SipMessage | None) -> None:
        self._stop("A")

    def _do_send_ack(self, now: float, msg: SipMessage | None) -> None:
        assert msg is not None
        self._ack_bytes = ack_for_non_2xx(self.request, msg).serialize()
        self.ctx.send(self, self._ack_bytes)

    def _do_resend_ack(self, now: float, msg: SipMessage | None) -> None:
        self.ctx.send(self, self._ack_bytes)

    def _do_start_D(self, now: float, msg: SipMessage | None) -> None:
        self._start("D", now, self._wait(32.0))

    def _do_start_M(self, now: float, msg: SipMessage | None) -> None:
        self._start("M", now, 64 * T1)


class NonInviteClientTransaction(Transaction):
    """§17.1.2, Figure 6."""

    TABLE: ClassVar[Table] = {
        (S.TRYING, Ev.TIMER_E): (S.TRYING, ("resend_request", "again_E")),
        (S.TRYING, Ev.TIMER_F): (S.TERMINATED, ("timeout",)),
        (S.TRYING, Ev.RESP_1XX): (S.PROCEEDING, ("tu",)),
        (S.TRYING, Ev.RESP_2XX): (S.COMPLETED, ("stop_E", "stop_F", "tu", "start_K")),
        (S.TRYING, Ev.RESP_FINAL): (S.COMPLETED, ("stop_E", "stop_F", "tu", "start_K")),
        (S.TRYING, Ev.TRANSPORT_ERROR): (S.TERMINATED, ("transport_error",)),
        (S.PROCEEDING, Ev.TIMER_E): (S.PROCEEDING, ("resend_request", "t2_E")),
        (S.PROCEEDING, Ev.TIMER_F): (S.TERMINATED, ("timeout",)),
        (S.PROCEEDING, Ev.RESP_1XX): (S.PROCEEDING, ("tu",)),
        (S.PROCEEDING, Ev.RESP_2XX): (S.COMPLETED, ("stop_E", "stop_F", "tu", "start_K")),
        (S.PROCEEDING, Ev.RESP_FINAL): (S.COMPLETED, ("stop_E", "stop_F", "tu", "start_K")),
        (S.PROCEEDING, Ev.TRANSPORT_ERROR): (S.TERMINATED, ("transport_error",)),
        (S.COMPLETED, Ev.RESP_1XX): (S.COMPLETED, ("absorb",)),
        (S.COMPLETED, Ev.RESP_2XX): (S.COMPLETED, ("absorb",)),
        (S.COMPLETED, Ev.RESP_FINAL): (S.COMPLETED, ("absorb",)),
        (S.COMPLETED, Ev.TIMER_K): (S.TERMINATED, ()),
    }

    def start(self, now: float) -> None:
        self.state = S.TRYING
        self.last_bytes = self.request.serialize()
        self.ctx.send(self, self.last_bytes)
        if not self.reliable:
            self._start("E", now, T1)
        self._start("F", now, 64 * T1)

    def _do_resend_request(self, now: float, msg: SipMessage | None) -> None:
        self.ctx.send(self, self.last_bytes)

    def _do_again_E(self, now: float, msg: SipMessage | None) -> None:
        self._start("E", now, min(2 * self._interval("E"), T2))

    def _do_t2_E(self, now: float, msg: SipMessage | None) -> None:
        self._start("E", now, T2)

    def _do_stop_E(self, now: float, msg: SipMessage | None) -> None:
        self._stop("E")

    def _do_stop_F(self, now: float, msg: SipMessage | None) -> None:
        self._stop("F")

    def _do_start_K(self, now: float, msg: SipMessage | None) -> None:
        self._start("K", now, self._wait(T4))


def response_event(status: int) -> Ev:
    if status < 200:
        return Ev.RESP_1XX
    return Ev.RESP_2XX if status < 300 else Ev.RESP_FINAL


def tu_event(status: int) -> Ev:
    if status < 200:
        return Ev.TU_1XX
    return Ev.TU_2XX if status < 300 else Ev.TU_FINAL


def ack_for_non_2xx(request: SipMessage, response: SipMessage) -> SipMessage:
    """§17.1.1.3: the ACK the INVITE client transaction sends for a 300-699 response."""
    headers = [("Via", request.get_all("via")[0])]
    headers += [("Route", r) for r in request.get_all("route")]
    headers += [
        ("Max-Forwards", "70"),
        ("From", request.get("from") or ""),
        ("To", response.get("to") or ""),
        ("Call-ID", request.call_id),
        ("CSeq", f"{request.cseq.seq} ACK"),
    ]
    return make_request("ACK", request.uri or "", headers)

"""The SIP user-agent core: transactions, dialogs and request handling (RFC 3261 §8, §12-§17).

Sans-IO in the style of aioquic: feed it datagrams/messages with `now`, then drain
`take_outgoing()` and `take_events()`, and re-arm one timer for `next_deadline()`.
The application sees `Event` objects that name a dialog by an integer handle and
answers with commands (`progress`, `answer`, `reject`, `hangup`, `respond`). It never
handles raw SIP messages.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .dialog import Dialog, DialogState
from .errors import SipError
from .events import (
    CallCancelled,
    CallConfirmed,
    CallEnded,
    Event,
    IncomingCall,
    InfoReceived,
    Outgoing,
    Peer,
    RegistrationChanged,
    ReInvite,
)
from .headers import Via
from .ids import MAGIC_COOKIE, IdSource, new_branch
from .message import SipMessage, make_response, parse_message
from .registration import Registration
from .stateless import error_response_bytes
from .transaction import (
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
    response_event,
    tu_event,
)

log = logging.getLogger("switchboard.sip")

KNOWN_METHODS = frozenset(
    "INVITE ACK BYE CANCEL OPTIONS INFO REGISTER UPDATE PRACK SUBSCRIBE NOTIFY REFER "
    "MESSAGE PUBLISH".split()
)
ALLOWED = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO")
SUPPORTED_OPTIONS: frozenset[str] = frozenset()  # option tags we implement (§19.2)


@dataclass(eq=False)
class _Pending2xx:
    """RFC 6026 §8.1 / RFC 3261 §13.3.1.4: the TU retransmits its 2xx until the ACK."""

    cseq: int
    data: bytes
    peer: Peer
    interval: float
    deadline: float
    timer: int | None = None


class UserAgent:
    """A SIP UAS core (and the client side it needs for BYE)."""

    def __init__(
        self,
        *,
        ids: IdSource,
        local: Mapping[str, tuple[str, int]],
        max_dialogs: int = 10_000,
        max_transactions: int = 40_000,
        server: str = "Switchboard",
        registration: Registration | None = None,
    ) -> None:
        from .timers import TimerHeap

        self.ids = ids
        self.local = dict(local)
        self.max_dialogs = max_dialogs
        self.max_transactions = max_transactions
        self.server = server
        self.timers = TimerHeap()
        self.stats: Counter[str] = Counter()
        self._out: list[Outgoing] = []
        self._events: list[Event] = []
        self._server_tx: dict[tuple[str, ...], Transaction] = {}
        self._client_tx: dict[tuple[str, ...], Transaction] = {}
        self._peer: dict[Transaction, Peer] = {}
        self._tx_ids: dict[int, Transaction] = {}
        self._tx_dialog: dict[Transaction, Dialog] = {}
        self._merge: dict[tuple[str, str, int], tuple[str, ...]] = {}
        self._dialogs: dict[tuple[str, str, str], Dialog] = {}
        self._handles: dict[int, Dialog] = {}
        self._invite_tx: dict[int, InviteServerTransaction] = {}
        self._pending_2xx: dict[int, _Pending2xx] = {}
        self._next_handle = 0
        self._next_tx = 0
        self.now = 0.0  # time of the input being handled (for callbacks without one)
        self.registration = registration
        self.allowed = ALLOWED + (("REGISTER",) if registration is not None else ())
        self._allow = ", ".join(self.allowed)
        from .uac import OutboundCalls

        self.outbound = OutboundCalls(self)

    # -- I/O surface ---------------------------------------------------------------------

    def take_outgoing(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def next_deadline(self) -> float | None:
        deadline = self.timers.next_deadline()
        if self.registration is not None:
            expiry = self.registration.next_deadline()
            if expiry is not None and (deadline is None or expiry < deadline):
                return expiry
        return deadline

    def on_timer(self, now: float) -> None:
        self.now = now
        self.timers.fire(now)
        if self.registration is not None:
            expiry = self.registration.next_deadline()
            if expiry is not None and expiry <= now:
                for ev in self.registration.reap(now):
                    self._events.append(RegistrationChanged(ev.user, ev.kind, ev.contact))

    @property
    def dialog_count(self) -> int:
        return len(self._handles)

    @property
    def transaction_count(self) -> int:
        return len(self._server_tx) + len(self._client_tx)

    def receive(self, data: bytes, peer: Peer, now: float) -> None:
        """One datagram from `peer`. Malformed input is answered (when possible) and counted."""
        if not data.strip(b"\r\n"):
            return  # keep-alive (RFC 5626 §4.4.1)
        try:
            msg = parse_message(data)
        except SipError as exc:
            self.stats["rx_malformed"] += 1
            log.warning("event=sip_malformed peer=%s:%d status=%d reason=%r",
                        peer.host, peer.port, exc.status, exc.reason)
            reply = error_response_bytes(data, exc.status, exc.reason)
            if reply is not None:
                self._out.append(Outgoing(peer, reply))
            return
        self.receive_message(msg, peer, now)

    def receive_message(self, msg: SipMessage, peer: Peer, now: float) -> None:
        self.now = now
        try:
            if msg.is_request:
                self._on_request(self._stamp_via(msg, peer), peer, now)
            else:
                self._on_response(msg, now)
        except SipError as exc:
            # a header that only failed when a typed view was asked for
            self.stats["rx_malformed"] += 1
            log.warning("event=sip_malformed peer=%s:%d status=%d reason=%r",
                        peer.host, peer.port, exc.status, exc.reason)
            if msg.is_request and msg.method != "ACK":
                reply = error_response_bytes(msg.serialize(), exc.status, exc.reason)
                if reply is not None:
                    self._out.append(Outgoing(peer, reply))

    def connection_lost(self, conn: int, now: float) -> None:
        """A TCP connection closed: its transactions get a transport error (§17.1.4, §17.2.4)."""
        for tx, peer in list(self._peer.items()):
            if peer.conn == conn and tx.state is not State.TERMINATED:
                try:
                    tx.handle(Ev.TRANSPORT_ERROR, now)
                except TransactionStateError:
                    pass  # e.g. Confirmed: the RFC figure has nothing left to fail

    # -- commands from the application ---------------------------------------------------

    def progress(self, handle: int, now: float, status: int = 180, sdp: bytes | None = None) -> None:
        dialog, tx = self._early(handle)
        self._tu_respond(tx, dialog, status, now, sdp)

    def answer(self, handle: int, sdp: bytes, now: float) -> None:
        dialog, tx = self._early(handle)
        resp = self._tu_respond(tx, dialog, 200, now, sdp)
        del self._invite_tx[handle]
        dialog.state = DialogState.CONFIRMED
        self._retransmit_2xx(dialog, resp, self._peer[tx], now)

    def reject(self, handle: int, status: int, now: float) -> None:
        dialog, tx = self._early(handle)
        self._tu_respond(tx, dialog, status, now, None)
        del self._invite_tx[handle]
        self._forget(dialog)

    def invite(self, *, uri: str, peer: Peer, from_uri: str, to_uri: str, sdp: bytes, now: float,
               from_name: str | None = None, headers: Sequence[tuple[str, str]] = ()) -> int:
        """Place an outbound call (an offer to an agent); events follow with the handle."""
        self.now = now
        return self.outbound.invite(uri=uri, peer=peer, from_uri=from_uri, from_name=from_name,
                                    to_uri=to_uri, sdp=sdp, headers=headers, now=now)

    def hangup(self, handle: int, now: float) -> None:
        """End the call from our side: BYE when answered, 480 while an inbound call rings,
        CANCEL while an outbound call rings."""
        self.now = now
        dialog = self._handles.get(handle)
        if dialog is None:
            self.outbound.cancel(handle, now)
            return
        if handle in self._invite_tx:
            self.reject(handle, 480, now)
            return
        self._stop_2xx(handle)
        self._send_in_dialog(dialog, "BYE", now)
        self._forget(dialog)

    def respond(self, tx_id: int, status: int, now: float, body: bytes = b"",
                content_type: str | None = None) -> None:
        """Answer a request the application was given (re-INVITE, INFO)."""
        tx = self._tx_ids.pop(tx_id, None)
        if tx is None or tx.state is State.TERMINATED:
            return
        dialog = self._tx_dialog.get(tx)
        headers: list[tuple[str, str]] = []
        if dialog is not None and tx.request.method == "INVITE" and status < 300:
            headers.append(("Contact", self._contact(dialog, self._peer[tx])))
        if content_type:
            headers.append(("Content-Type", content_type))
        resp = make_response(tx.request, status, headers=self._common(headers), body=body)
        tx.handle(tu_event(status), now, resp)
        if dialog is not None and tx.request.method == "INVITE" and 200 <= status < 300:
            self._retransmit_2xx(dialog, resp, self._peer[tx], now)

    def dialog_peer(self, handle: int) -> Peer | None:
        dialog = self._handles.get(handle)
        peer = dialog.extras.get("peer") if dialog else None
        return peer if isinstance(peer, Peer) else None

    # -- requests ----------------------------------------------------------------------

    def _stamp_via(self, msg: SipMessage, peer: Peer) -> SipMessage:
        """§18.2.1 received and RFC 3581 §4 rport on the top Via."""
        vias = msg.get_all("via")
        top = msg.via[0]
        needs_rport = top.has_param("rport") and not top.param("rport")
        if top.host == peer.host and not needs_rport:
            return msg
        stamped = top.with_received(peer.host, peer.port if needs_rport else None)
        return msg.replace_header("Via", [str(stamped), *vias[1:]])

    def _on_request(self, msg: SipMessage, peer: Peer, now: float) -> None:
        self.stats["rx_" + (msg.method or "?")] += 1
        if msg.method == "ACK":
            self._on_ack(msg, now)
            return
        key = self._server_key(msg)
        tx = self._server_tx.get(key)
        if tx is not None:
            tx.handle(Ev.REQUEST, now, msg)  # retransmission
            return
        if msg.method == "CANCEL":
            self._on_cancel(msg, peer, now)
            return
        if self.transaction_count >= self.max_transactions:
            self._stateless(msg, peer, 503, [("Retry-After", "5")])
            return
        status, headers = self._validate(msg)
        if status:
            self._reply(self._new_server_tx(msg, peer, key, now), status, now, headers)
            return
        if msg.to.tag:
            self._in_dialog(msg, peer, key, now)
        elif msg.method == "INVITE":
            self._new_invite(msg, peer, key, now)
        elif msg.method == "OPTIONS":
            self._reply(self._new_server_tx(msg, peer, key, now), 200, now, self._capabilities())
        elif msg.method == "REGISTER":
            self._register(msg, peer, key, now)
        else:
            # BYE/INFO/UPDATE outside a dialog: no such dialog (§12.2.2)
            self._reply(self._new_server_tx(msg, peer, key, now), 481, now)

    def _validate(self, msg: SipMessage) -> tuple[int, list[tuple[str, str]]]:
        """§8.2.1-§8.2.3: method, URI scheme, merged requests, Require, content."""
        from .uri import uri_scheme

        method = msg.method or ""
        if method not in KNOWN_METHODS:
            return 501, [("Allow", self._allow)]
        if method not in self.allowed:
            return 405, [("Allow", self._allow)]
        if uri_scheme(msg.uri or "") not in ("sip", "sips"):
            return 416, []
        if not msg.to.tag:
            merged = self._merge.get((msg.call_id, msg.from_.tag or "", msg.cseq.seq))
            if merged is not None and merged != self._server_key(msg):
                return 482, []
        unsupported = [t for t in msg.require if t not in SUPPORTED_OPTIONS]
        if unsupported and method not in ("CANCEL",):
            return 420, [("Unsupported", ", ".join(unsupported))]
        encoding = (msg.get("content-encoding") or "identity").strip().lower()
        if msg.body and encoding != "identity":
            return 415, [("Accept-Encoding", "identity")]
        if method == "INVITE" and msg.body and msg.content_type != "application/sdp":
            return 415, [("Accept", "application/sdp")]
        return 0, []

    def _register(self, msg: SipMessage, peer: Peer, key: tuple[str, ...], now: float) -> None:
        """§10.3 with digest authentication (§22); the ACD hears who became reachable."""
        assert self.registration is not None
        tx = self._new_server_tx(msg, peer, key, now)
        reply = self.registration.handle(msg, peer, now)
        resp = make_response(msg, reply.status, reply.reason,
                             headers=self._common(list(reply.headers)))
        tx.handle(tu_event(reply.status), now, resp)
        for ev in reply.events:
            self._events.append(RegistrationChanged(ev.user, ev.kind, ev.contact))

    def _new_invite(self, msg: SipMessage, peer: Peer, key: tuple[str, ...], now: float) -> None:
        tx = self._new_server_tx(msg, peer, key, now)
        assert isinstance(tx, InviteServerTransaction)
        if len(self._handles) >= self.max_dialogs:
            self._reply(tx, 503, now, [("Retry-After", "5")])
            self.stats["rejected_full"] += 1
            return
        self._reply(tx, 100, now)  # §17.2.1: at once, we may take longer than 200 ms
        dialog = Dialog.for_uas(self.new_handle(), msg, self.ids.token())
        dialog.extras["peer"] = peer
        self._dialogs[dialog.key] = dialog
        self._handles[dialog.handle] = dialog
        self._invite_tx[dialog.handle] = tx
        self._tx_dialog[tx] = dialog
        caller_uri = msg.from_
        try:
            caller = caller_uri.sip_uri().user or caller_uri.uri
        except SipError:
            caller = caller_uri.uri
        from .uri import SipUri

        did = SipUri.parse(msg.uri or "").user or ""
        self._events.append(IncomingCall(
            dialog.handle, msg.call_id, caller, caller_uri.display, did,
            msg.body if msg.body else None, peer,
        ))

    def _in_dialog(self, msg: SipMessage, peer: Peer, key: tuple[str, ...], now: float) -> None:
        dialog = self._dialogs.get((msg.call_id, msg.to.tag or "", msg.from_.tag or ""))
        if dialog is None:
            self._reply(self._new_server_tx(msg, peer, key, now), 481, now)
            return
        tx = self._new_server_tx(msg, peer, key, now)
        if not dialog.accept_remote_cseq(msg):
            self._reply(tx, 500, now, [("Retry-After", "1")])  # §12.2.2 out of order
            return
        method = msg.method
        if method == "BYE":
            self._reply(tx, 200, now)
            self._remote_bye(dialog, now)
        elif method == "INVITE":
            self._reinvite(dialog, tx, msg, now)
        elif method == "INFO":
            self._events.append(InfoReceived(dialog.handle, self._tx_id(tx, dialog),
                                             msg.content_type, msg.body))
        elif method == "OPTIONS":
            self._reply(tx, 200, now, self._capabilities())
        else:
            self._reply(tx, 405, now, [("Allow", self._allow)])

    def _reinvite(self, dialog: Dialog, tx: Transaction, msg: SipMessage, now: float) -> None:
        busy = any(t.request.method == "INVITE" and t.state is State.PROCEEDING
                   for t, d in self._tx_dialog.items() if d is dialog and t is not tx)
        if busy or dialog.handle in self._invite_tx:
            # §14.2: an INVITE while another one is still being answered
            self._reply(tx, 500, now, [("Retry-After", "2")])
            return
        self._events.append(ReInvite(dialog.handle, self._tx_id(tx, dialog),
                                     msg.body if msg.body else None))

    def _remote_bye(self, dialog: Dialog, now: float) -> None:
        handle = dialog.handle
        invite = self._invite_tx.pop(handle, None)
        if invite is not None and invite.state is State.PROCEEDING:
            self._tu_respond(invite, dialog, 487, now, None)
        self._stop_2xx(handle)
        self._forget(dialog)
        self._events.append(CallEnded(handle, "remote_bye"))

    def _on_cancel(self, msg: SipMessage, peer: Peer, now: float) -> None:
        """§9.2: CANCEL matches the INVITE server transaction; 487 if still unanswered."""
        key = self._server_key(msg)
        invite_key = key[:-1] + ("INVITE",)
        invite = self._server_tx.get(invite_key)
        tx = self._new_server_tx(msg, peer, key, now)
        if invite is None:
            self._reply(tx, 481, now)
            return
        self._reply(tx, 200, now)
        dialog = self._tx_dialog.get(invite)
        if invite.state is State.PROCEEDING and dialog is not None:
            assert isinstance(invite, InviteServerTransaction)
            self._tu_respond(invite, dialog, 487, now, None)
            self._invite_tx.pop(dialog.handle, None)
            self._forget(dialog)
            self._events.append(CallCancelled(dialog.handle))
        # otherwise the final response already went out: the CANCEL/200 race (§9.2) —
        # the caller ACKs our 2xx and sends BYE; nothing to undo here.

    def _on_ack(self, msg: SipMessage, now: float) -> None:
        tx = self._server_tx.get(self._server_key(msg))
        if tx is not None:
            tx.handle(Ev.ACK, now, msg)  # ACK for a non-2xx, or passed up in Accepted
            return
        self._ack_2xx(msg, now)

    def _ack_2xx(self, msg: SipMessage, now: float) -> None:
        dialog = self._dialogs.get((msg.call_id, msg.to.tag or "", msg.from_.tag or ""))
        if dialog is None:
            self.stats["ack_no_dialog"] += 1
            return
        pending = self._pending_2xx.get(dialog.handle)
        if pending is not None and pending.cseq == msg.cseq.seq:
            self._stop_2xx(dialog.handle)
            if not dialog.extras.get("confirmed"):
                dialog.extras["confirmed"] = True
                self._events.append(CallConfirmed(dialog.handle, msg.body or None))

    # -- responses ---------------------------------------------------------------------

    def _on_response(self, msg: SipMessage, now: float) -> None:
        vias = msg.via
        branch = vias[0].branch or ""
        tx = self._client_tx.get((branch, msg.cseq.method))
        if tx is None:
            self.stats["rx_stray_response"] += 1
            return
        tx.handle(response_event(msg.status or 0), now, msg)

    # -- TransactionContext ------------------------------------------------------------

    def send(self, tx: Transaction, data: bytes) -> None:
        self._out.append(Outgoing(self._peer[tx], data))

    def schedule(self, when: float, callback: object) -> int:
        return self.timers.schedule(when, callback)  # type: ignore[arg-type]

    def cancel(self, handle: int | None) -> None:
        self.timers.cancel(handle)

    def to_tu(self, tx: Transaction, msg: SipMessage) -> None:
        if isinstance(tx, InviteClientTransaction):
            self.outbound.on_response(tx, msg, self.now)
        elif msg.is_request and msg.method == "ACK":
            self._ack_2xx(msg, self.now)

    def outcome(self, tx: Transaction, outcome: Outcome) -> None:
        if isinstance(tx, InviteClientTransaction):
            self.outbound.on_outcome(tx, outcome)
        if outcome is Outcome.TERMINATED:
            self._drop_tx(tx)
        elif outcome is Outcome.TRANSPORT_ERROR:
            dialog = self._tx_dialog.get(tx)
            if dialog is not None and dialog.handle in self._handles:
                self._stop_2xx(dialog.handle)
                self._invite_tx.pop(dialog.handle, None)
                self._forget(dialog)
                self._events.append(CallEnded(dialog.handle, "transport_error"))

    # -- helpers -----------------------------------------------------------------------

    def _server_key(self, msg: SipMessage) -> tuple[str, ...]:
        """§17.2.3 matching, with the RFC 2543 fallback for branches without the cookie."""
        top = msg.via[0]
        method = "INVITE" if msg.method == "ACK" else (msg.method or "")
        branch = top.branch or ""
        if branch.startswith(MAGIC_COOKIE):
            return ("3261", branch, f"{top.host}:{top.port or 5060}", method)
        return ("2543", msg.call_id, msg.from_.tag or "", str(msg.cseq.seq),
                f"{top.host}:{top.port or 5060}", msg.uri or "", method)

    def _new_server_tx(self, msg: SipMessage, peer: Peer, key: tuple[str, ...],
                       now: float) -> Transaction:
        cls = InviteServerTransaction if msg.method == "INVITE" else NonInviteServerTransaction
        tx = cls(key=key, request=msg, reliable=peer.reliable, ctx=self)
        self._server_tx[key] = tx
        self._peer[tx] = self._response_peer(msg, peer)
        if msg.method == "INVITE" and not msg.to.tag:
            self._merge[(msg.call_id, msg.from_.tag or "", msg.cseq.seq)] = key
        tx.start(now)
        return tx

    def _response_peer(self, msg: SipMessage, peer: Peer) -> Peer:
        """§18.2.2 with RFC 3581: reliable -> same connection; UDP -> source IP, rport or sent-by port."""
        if peer.reliable:
            return peer
        top = msg.via[0]
        if top.has_param("rport"):
            return peer
        return Peer(peer.transport, peer.host, top.port or 5060)

    def _drop_tx(self, tx: Transaction) -> None:
        client = isinstance(tx, NonInviteClientTransaction | InviteClientTransaction)
        table = self._client_tx if client else self._server_tx
        if table.get(tx.key) is tx:
            del table[tx.key]
        self._peer.pop(tx, None)
        self._tx_dialog.pop(tx, None)
        req = tx.request
        if req.method == "INVITE" and not client:
            merge_key = (req.call_id, req.from_.tag or "", req.cseq.seq)
            if self._merge.get(merge_key) == tx.key:
                del self._merge[merge_key]
        for tid, t in list(self._tx_ids.items()):
            if t is tx:
                del self._tx_ids[tid]

    def _tx_id(self, tx: Transaction, dialog: Dialog) -> int:
        self._next_tx += 1
        self._tx_ids[self._next_tx] = tx
        self._tx_dialog[tx] = dialog
        return self._next_tx

    def _early(self, handle: int) -> tuple[Dialog, InviteServerTransaction]:
        dialog = self._handles.get(handle)
        tx = self._invite_tx.get(handle)
        if dialog is None or tx is None:
            from .errors import SipUsageError

            raise SipUsageError(f"dialog {handle} has no INVITE waiting for an answer")
        return dialog, tx

    def _common(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [*headers, ("Server", self.server)]

    def _capabilities(self) -> list[tuple[str, str]]:
        return [("Allow", self._allow), ("Accept", "application/sdp"),
                ("Accept-Encoding", "identity"), ("Accept-Language", "en")]

    def _contact(self, dialog: Dialog, peer: Peer) -> str:
        host, port = self.local.get(peer.transport, next(iter(self.local.values())))
        user = dialog.extras.get("contact_user", "switchboard")
        suffix = ";transport=tcp" if peer.transport == "TCP" else ""
        return f"<sip:{user}@{host}:{port}{suffix}>"

    def _reply(self, tx: Transaction, status: int, now: float,
               headers: list[tuple[str, str]] | None = None) -> None:
        resp = make_response(tx.request, status, headers=self._common(headers or []))
        tx.handle(tu_event(status), now, resp)

    def _tu_respond(self, tx: InviteServerTransaction, dialog: Dialog, status: int, now: float,
                    sdp: bytes | None) -> SipMessage:
        headers: list[tuple[str, str]] = []
        if status < 300 and status != 100:
            headers.append(("Contact", self._contact(dialog, self._peer[tx])))
        if status >= 200 and status < 300:
            headers.append(("Allow", self._allow))
        if sdp:
            headers.append(("Content-Type", "application/sdp"))
        resp = make_response(tx.request, status, to_tag=dialog.local_tag,
                             headers=self._common(headers), body=sdp or b"")
        tx.handle(tu_event(status), now, resp)
        return resp

    def _stateless(self, msg: SipMessage, peer: Peer, status: int,
                   headers: list[tuple[str, str]]) -> None:
        resp = make_response(msg, status, headers=self._common(headers))
        self._out.append(Outgoing(self._response_peer(msg, peer), resp.serialize()))

    def _retransmit_2xx(self, dialog: Dialog, resp: SipMessage, peer: Peer, now: float) -> None:
        self._stop_2xx(dialog.handle)
        pending = _Pending2xx(resp.cseq.seq, resp.serialize(), peer, T1, now + 64 * T1)
        self._pending_2xx[dialog.handle] = pending
        first = now + (64 * T1 if peer.reliable else T1)
        pending.timer = self.timers.schedule(first, lambda t: self._on_2xx_timer(dialog, t))

    def _on_2xx_timer(self, dialog: Dialog, now: float) -> None:
        pending = self._pending_2xx.get(dialog.handle)
        if pending is None:
            return
        if now >= pending.deadline:
            # §13.3.1.4: no ACK within 64*T1 — confirm and then terminate the session
            del self._pending_2xx[dialog.handle]
            self.stats["ack_timeout"] += 1
            if dialog.handle in self._handles:
                self._send_in_dialog(dialog, "BYE", now)
                self._forget(dialog)
                self._events.append(CallEnded(dialog.handle, "ack_timeout"))
            return
        self._out.append(Outgoing(pending.peer, pending.data))
        pending.interval = min(2 * pending.interval, T2)
        when = min(now + pending.interval, pending.deadline)
        pending.timer = self.timers.schedule(when, lambda t: self._on_2xx_timer(dialog, t))

    def _stop_2xx(self, handle: int) -> None:
        pending = self._pending_2xx.pop(handle, None)
        if pending is not None:
            self.timers.cancel(pending.timer)

    # -- used by OutboundCalls ----------------------------------------------------------

    def new_handle(self) -> int:
        self._next_handle += 1
        return self._next_handle

    def local_address(self, transport: str) -> tuple[str, int]:
        return self.local.get(transport, next(iter(self.local.values())))

    @property
    def allow_header(self) -> str:
        return self._allow

    def register_client_tx(self, tx: Transaction, peer: Peer) -> None:
        self._client_tx[tx.key] = tx
        self._peer[tx] = peer

    def emit(self, event: Event) -> None:
        self._events.append(event)

    def send_to(self, peer: Peer, data: bytes) -> None:
        self._out.append(Outgoing(peer, data))

    def adopt_dialog(self, dialog: Dialog, peer: Peer) -> None:
        """An outbound call was answered: its dialog now takes in-dialog requests."""
        dialog.extras.setdefault("peer", peer)
        self._dialogs[dialog.key] = dialog
        self._handles[dialog.handle] = dialog

    def live_handles(self) -> set[int]:
        return set(self._handles)

    def _send_in_dialog(self, dialog: Dialog, method: str, now: float) -> None:
        peer = self.request_peer(dialog)
        host, port = self.local.get(peer.transport, next(iter(self.local.values())))
        via = f"SIP/2.0/{peer.transport} {host}:{port};branch={new_branch(self.ids)};rport"
        req = dialog.request(method, via, headers=(("Server", self.server),))
        tx = NonInviteClientTransaction(key=(Via.parse(via).branch or "", method), request=req,
                                        reliable=peer.reliable, ctx=self)
        self._client_tx[tx.key] = tx
        self._peer[tx] = peer
        tx.start(now)

    def request_peer(self, dialog: Dialog) -> Peer:
        """Where an in-dialog request goes (§8.1.2, §18.1.1), see `_nat_fallback`."""
        from .uri import SipUri

        origin = dialog.extras.get("peer")
        assert isinstance(origin, Peer)
        try:
            uri = SipUri.parse(dialog.next_hop())
        except SipError:
            return origin
        transport = (uri.param("transport") or origin.transport).upper()
        if transport not in self.local:
            transport = origin.transport
        return _nat_fallback(uri.host, uri.port, transport, origin)

    def _forget(self, dialog: Dialog) -> None:
        dialog.state = DialogState.TERMINATED
        self._dialogs.pop(dialog.key, None)
        self._handles.pop(dialog.handle, None)


def is_ip_literal(host: str) -> bool:
    if host.startswith("["):
        return True
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def _nat_fallback(host: str, port: int | None, transport: str, origin: Peer) -> Peer:
    """Interop: send in-dialog requests back to where the dialog came from when the
    Contact is a host name (we do not resolve names on the signalling path) or the
    transport is a stream (reuse the caller's connection, RFC 5923 style).
    Seen with softphones behind NAT that advertise unroutable Contacts."""
    if transport == "TCP" and origin.transport == "TCP":
        return origin
    if not is_ip_literal(host):
        return origin
    return Peer(transport, host, port or 5060)

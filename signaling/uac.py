"""Outbound INVITEs (UAC side, RFC 3261 §13.2, §9.1, §17.1.1): how calls are offered to agents.

`OutboundCalls` belongs to a `UserAgent`: it builds the INVITE, runs it through an
INVITE client transaction, creates the dialog from the first response with a To tag
(§12.1.2), ACKs every 2xx itself (§13.2.2.4, the ACK for a 2xx is the UAC core's job,
re-sent for each retransmitted 2xx), and CANCELs only after a provisional response
(§9.1). A 2xx that arrives after we gave up is ACKed and then ended with BYE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .dialog import Dialog, DialogState
from .events import CallAnswered, CallFailed, CallProgress, Peer
from .ids import new_branch
from .message import SipMessage, make_request
from .transaction import InviteClientTransaction, NonInviteClientTransaction, Outcome

if TYPE_CHECKING:
    from .useragent import UserAgent


@dataclass(eq=False)
class _Leg:
    handle: int
    request: SipMessage
    tx: InviteClientTransaction
    peer: Peer
    dialog: Dialog | None = None
    provisional: bool = False
    cancel_wanted: bool = False
    cancelled: bool = False
    answered: bool = False
    ack: bytes = b""
    ack_peer: Peer | None = None


class OutboundCalls:
    def __init__(self, ua: UserAgent) -> None:
        self.ua = ua
        self._legs: dict[int, _Leg] = {}
        self._by_tx: dict[InviteClientTransaction, _Leg] = {}

    def __len__(self) -> int:
        return len(self._legs)

    def owns(self, handle: int) -> bool:
        return handle in self._legs

    def invite(self, *, uri: str, peer: Peer, from_uri: str, from_name: str | None, to_uri: str,
               sdp: bytes, headers: Sequence[tuple[str, str]], now: float) -> int:
        ua = self.ua
        handle = ua.new_handle()
        host, port = ua.local_address(peer.transport)
        branch = new_branch(ua.ids)
        display = f'"{from_name}" ' if from_name else ""
        fields = [
            ("Via", f"SIP/2.0/{peer.transport} {host}:{port};branch={branch};rport"),
            ("Max-Forwards", "70"),
            ("From", f"{display}<{from_uri}>;tag={ua.ids.token()}"),
            ("To", f"<{to_uri}>"),
            ("Call-ID", f"{ua.ids.token()}@{host}"),
            ("CSeq", "1 INVITE"),
            ("Contact", f"<sip:switchboard@{host}:{port}"
                        f"{';transport=tcp' if peer.transport == 'TCP' else ''}>"),
            ("Allow", ua.allow_header),
            *headers,
            ("Content-Type", "application/sdp"),
        ]
        request = make_request("INVITE", uri, fields, sdp)
        tx = InviteClientTransaction(key=(branch, "INVITE"), request=request,
                                     reliable=peer.reliable, ctx=ua)
        leg = _Leg(handle, request, tx, peer)
        self._legs[handle] = leg
        self._by_tx[tx] = leg
        ua.register_client_tx(tx, peer)
        tx.start(now)
        return handle

    def cancel(self, handle: int, now: float) -> None:
        """Stop ringing: CANCEL once a provisional response came (§9.1), or as soon as one does."""
        leg = self._legs.get(handle)
        if leg is None or leg.answered or leg.cancelled:
            return
        leg.cancel_wanted = True
        if leg.provisional:
            self._send_cancel(leg, now)

    def _send_cancel(self, leg: _Leg, now: float) -> None:
        """§9.1: same Request-URI, Call-ID, From, To, CSeq number and top Via branch."""
        req = leg.request
        fields = [("Via", req.get_all("via")[0]), ("Max-Forwards", "70")]
        fields += [("Route", r) for r in req.get_all("route")]
        fields += [("From", req.get("from") or ""), ("To", req.get("to") or ""),
                   ("Call-ID", req.call_id), ("CSeq", f"{req.cseq.seq} CANCEL")]
        cancel = make_request("CANCEL", req.uri or "", fields)
        tx = NonInviteClientTransaction(key=(leg.tx.key[0], "CANCEL"), request=cancel,
                                        reliable=leg.peer.reliable, ctx=self.ua)
        self.ua.register_client_tx(tx, leg.peer)
        leg.cancelled = True
        tx.start(now)

    # -- from the INVITE client transaction -----------------------------------------------

    def on_response(self, tx: InviteClientTransaction, msg: SipMessage, now: float) -> None:
        leg = self._by_tx.get(tx)
        if leg is None:
            return
        status = msg.status or 0
        if status < 200:
            self._provisional(leg, msg, now)
        elif status < 300:
            self._success(leg, msg, now)
        else:
            self._failure(leg, status, msg.reason or "", now)

    def _provisional(self, leg: _Leg, msg: SipMessage, now: float) -> None:
        leg.provisional = True
        if msg.to.tag and leg.dialog is None and (msg.status or 0) > 100:
            leg.dialog = self._dialog(leg, msg)  # early dialog (§12.1.2)
        if leg.cancel_wanted and not leg.cancelled:
            self._send_cancel(leg, now)
            return
        if (msg.status or 0) > 100:
            self.ua.emit(CallProgress(leg.handle, msg.status or 0, msg.body or None))

    def _success(self, leg: _Leg, msg: SipMessage, now: float) -> None:
        if leg.answered:
            if leg.ack and leg.ack_peer is not None:
                self.ua.send_to(leg.ack_peer, leg.ack)  # a retransmitted 2xx: ACK again
            return
        leg.answered = True
        dialog = leg.dialog if leg.dialog and leg.dialog.remote_tag == (msg.to.tag or "") \
            else self._dialog(leg, msg)
        dialog.remote_target = msg.contact[0].uri if msg.contact else dialog.remote_target
        dialog.route_set = tuple(reversed(msg.get_all("record-route")))
        dialog.state = DialogState.CONFIRMED
        leg.dialog = dialog
        peer = self.ua.request_peer(dialog)
        host, port = self.ua.local_address(peer.transport)
        via = f"SIP/2.0/{peer.transport} {host}:{port};branch={new_branch(self.ua.ids)};rport"
        leg.ack = dialog.request("ACK", via, cseq=leg.request.cseq.seq).serialize()
        leg.ack_peer = peer
        self.ua.send_to(peer, leg.ack)
        self.ua.adopt_dialog(dialog, leg.peer)
        if leg.cancel_wanted:
            # §15: the callee answered as we cancelled: confirm, then hang up at once
            self.ua.hangup(leg.handle, now)
            self.ua.emit(CallFailed(leg.handle, 487, "cancelled"))
            return
        self.ua.emit(CallAnswered(leg.handle, msg.body or None))

    def _failure(self, leg: _Leg, status: int, reason: str, now: float) -> None:
        if leg.answered:
            return
        self._finish(leg)
        self.ua.emit(CallFailed(leg.handle, status, reason))

    def on_outcome(self, tx: InviteClientTransaction, outcome: Outcome) -> None:
        leg = self._by_tx.get(tx)
        if leg is None:
            return
        if outcome is Outcome.TIMEOUT and not leg.answered:
            self._finish(leg)
            self.ua.emit(CallFailed(leg.handle, 408, "no response"))
        elif outcome is Outcome.TRANSPORT_ERROR and not leg.answered:
            self._finish(leg)
            self.ua.emit(CallFailed(leg.handle, 503, "transport error"))
        elif outcome is Outcome.TERMINATED:
            self._by_tx.pop(tx, None)
            if leg.answered or leg.handle not in self.ua.live_handles():
                self._legs.pop(leg.handle, None)

    def _finish(self, leg: _Leg) -> None:
        self._legs.pop(leg.handle, None)

    def _dialog(self, leg: _Leg, msg: SipMessage) -> Dialog:
        dialog = Dialog.for_uac(leg.handle, leg.request, msg)
        dialog.extras["peer"] = leg.peer
        return dialog

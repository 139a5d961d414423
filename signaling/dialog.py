"""Dialogs, RFC 3261 §12: identifiers, route set, remote target and CSeq spaces.

A dialog is created by the UAS when it answers an INVITE (§12.1.1) or by the UAC on a
response with a To tag (§12.1.2). It builds in-dialog requests (§12.2.1.1) and checks
the CSeq order of requests it receives (§12.2.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, auto

from .headers import NameAddr
from .message import SipMessage, make_request


class DialogState(Enum):
    EARLY = auto()  # INVITE received, no final response yet
    CONFIRMED = auto()  # 2xx sent or received
    TERMINATED = auto()


@dataclass(eq=False)
class Dialog:
    """Mutable dialog state, owned by the user-agent core."""

    handle: int
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # the From/To header value we use for ourselves (with our tag)
    remote_uri: str  # the peer's From/To value (with its tag)
    remote_target: str  # Contact URI of the peer
    route_set: tuple[str, ...] = ()
    local_seq: int = 0
    remote_seq: int | None = None
    secure: bool = False
    state: DialogState = DialogState.EARLY
    is_uas: bool = True
    extras: dict[str, object] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def for_uas(cls, handle: int, invite: SipMessage, local_tag: str) -> Dialog:
        """§12.1.1: the UAS side of a dialog created by an INVITE."""
        remote = invite.from_
        contacts = invite.contact
        target = contacts[0].uri if contacts else remote.uri
        to = invite.to
        local = to if to.tag else to.with_tag(local_tag)
        return cls(
            handle=handle,
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=remote.tag or "",
            local_uri=str(local),
            remote_uri=invite.get("from") or "",
            remote_target=target,
            route_set=tuple(invite.get_all("record-route")),
            remote_seq=invite.cseq.seq,
            secure=(invite.uri or "").lower().startswith("sips:"),
        )

    @classmethod
    def for_uac(cls, handle: int, request: SipMessage, response: SipMessage) -> Dialog:
        """§12.1.2: the UAC side, from a 1xx/2xx response carrying a To tag."""
        contacts = response.contact
        return cls(
            handle=handle,
            call_id=request.call_id,
            local_tag=request.from_.tag or "",
            remote_tag=response.to.tag or "",
            local_uri=request.get("from") or "",
            remote_uri=response.get("to") or "",
            remote_target=contacts[0].uri if contacts else (request.uri or ""),
            route_set=tuple(reversed(response.get_all("record-route"))),
            local_seq=request.cseq.seq,
            is_uas=False,
        )

    def accept_remote_cseq(self, msg: SipMessage) -> bool:
        """§12.2.2: a request with a lower CSeq than the last one is out of order."""
        seq = msg.cseq.seq
        if self.remote_seq is not None and seq < self.remote_seq:
            return False
        self.remote_seq = seq
        return True

    def next_cseq(self) -> int:
        if self.local_seq == 0:
            self.local_seq = 1
        else:
            self.local_seq += 1
        return self.local_seq

    def request(
        self,
        method: str,
        via: str,
        *,
        cseq: int | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> SipMessage:
        """§12.2.1.1: a request within the dialog (loose routing, RFC 3261 §16.12)."""
        seq = self.next_cseq() if cseq is None else cseq
        uri, routes = self.remote_target, list(self.route_set)
        if routes and ";lr" not in routes[0].lower():
            # strict router (RFC 2543): first route becomes the Request-URI
            uri = NameAddr.parse(routes[0]).uri
            routes = routes[1:] + [f"<{self.remote_target}>"]
        fields: list[tuple[str, str]] = [("Via", via), ("Max-Forwards", "70")]
        fields += [("Route", r) for r in routes]
        fields += [
            ("From", self.local_uri),
            ("To", self.remote_uri),
            ("Call-ID", self.call_id),
            ("CSeq", f"{seq} {method}"),
        ]
        fields += list(headers)
        return make_request(method, uri, fields, body)

    def next_hop(self) -> str:
        """The URI whose host/port the request is sent to (§8.1.2)."""
        if self.route_set:
            return NameAddr.parse(self.route_set[0]).uri
        return self.remote_target

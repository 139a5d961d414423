"""What the user-agent core tells the application, and where messages go (no SIP messages here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Peer:
    """Where a message came from or goes to. `conn` names a TCP connection (0: any/new)."""

    transport: str  # 'UDP' | 'TCP'
    host: str
    port: int
    conn: int = 0

    @property
    def reliable(self) -> bool:
        return self.transport != "UDP"


@dataclass(frozen=True)
class Outgoing:
    peer: Peer
    data: bytes


# -- events for the application ---------------------------------------------------------


@dataclass(frozen=True)
class IncomingCall:
    handle: int
    call_id: str
    caller: str  # user part of From (or the whole URI when it has none)
    caller_name: str | None
    did: str  # user part of the Request-URI
    sdp: bytes | None
    peer: Peer


@dataclass(frozen=True)
class CallConfirmed:
    """The ACK for our 2xx arrived (with the SDP answer when we made a delayed offer)."""

    handle: int
    sdp: bytes | None = None


@dataclass(frozen=True)
class CallCancelled:
    handle: int


@dataclass(frozen=True)
class CallEnded:
    handle: int
    reason: str  # 'remote_bye' | 'ack_timeout' | 'transport_error'


@dataclass(frozen=True)
class ReInvite:
    handle: int
    tx: int
    sdp: bytes | None


@dataclass(frozen=True)
class InfoReceived:
    handle: int
    tx: int
    content_type: str | None
    body: bytes




@dataclass(frozen=True)
class CallProgress:
    """An outbound call got a provisional response (180 ringing, 183 with early media)."""

    handle: int
    status: int
    sdp: bytes | None


@dataclass(frozen=True)
class CallAnswered:
    """An outbound call was answered (we already sent the ACK)."""

    handle: int
    sdp: bytes | None


@dataclass(frozen=True)
class CallFailed:
    """An outbound call ended without being answered (busy, declined, no answer, cancelled)."""

    handle: int
    status: int
    reason: str


@dataclass(frozen=True)
class RegistrationChanged:
    """A user's bindings changed: kind is registered, refreshed, unregistered, expired,
    reachable (first binding) or unreachable (last binding gone)."""

    user: str
    kind: str
    contact: str | None


Event = (IncomingCall | CallConfirmed | CallCancelled | CallEnded | ReInvite | InfoReceived
         | CallProgress | CallAnswered | CallFailed | RegistrationChanged)

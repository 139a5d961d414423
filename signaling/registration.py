"""REGISTER handling for the user-agent core: digest check (RFC 3261 §22), then the registrar (§10.3).

Glue between `DigestAuthenticator` and `Registrar`, owned by a `UserAgent` that was
given one. Failed authentications become one fail2ban-friendly `key=value` line on the
`switchboard.security` logger; a first REGISTER without credentials (the normal
challenge round trip) is not a security event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .auth import DigestAuthenticator, security_log_line
from .events import Peer
from .message import SipMessage
from .registrar import Registrar, RegistrarEvent

security_log = logging.getLogger("switchboard.security")


@dataclass(frozen=True)
class RegisterReply:
    status: int
    reason: str | None
    headers: tuple[tuple[str, str], ...]
    events: tuple[RegistrarEvent, ...]


class Registration:
    def __init__(self, authenticator: DigestAuthenticator, registrar: Registrar, *,
                 wall_offset: float = 0.0) -> None:
        self.auth = authenticator
        self.registrar = registrar
        self.wall_offset = wall_offset  # wall-clock seconds minus the core's `now` (for Date)
        self.failures = 0

    def handle(self, msg: SipMessage, peer: Peer, now: float) -> RegisterReply:
        result = self.auth.verify(msg, now)
        if not result.ok:
            if result.reason != "no credentials":
                self.failures += 1
                security_log.warning(security_log_line(result, peer.host, msg.get("user-agent")))
            challenges = self.auth.challenges(now, stale=result.stale)
            headers = tuple(("WWW-Authenticate", c.header_value()) for c in challenges)
            return RegisterReply(401, None, headers, ())
        assert result.username is not None
        outcome = self.registrar.register(msg, result.username, (peer.transport, peer.host, peer.port),
                                          now, wall_time=now + self.wall_offset)
        return RegisterReply(outcome.status, outcome.reason, outcome.headers, outcome.events)

    def next_deadline(self) -> float | None:
        return self.registrar.next_deadline()

    def reap(self, now: float) -> list[RegistrarEvent]:
        self.auth.reap(now)
        return self.registrar.reap(now)

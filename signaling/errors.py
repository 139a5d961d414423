"""The two error families of the SIP layer (DESIGN.md, Style rule 4).

``SipError`` means the peer broke the protocol and carries the status to
answer (RFC 3261 §21: 400, 416, 505, 513...).  ``SipUsageError`` means our own
code called an API the wrong way; it is a bug, never a peer's fault.
"""

from __future__ import annotations


class SipError(Exception):
    """The peer broke the protocol. status/reason are what to answer (e.g. 400, 505, 513)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.status} {self.reason}"


class SipUsageError(Exception):
    """Our own code misused an API."""

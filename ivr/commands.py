"""What a flow run asks its driver to do, and what the driver sends back.

The interpreter never performs I/O: it yields one of these commands and waits
for the matching result (``Hangup`` is final and has none).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

DTMF_KEYS = "0123456789*#ABCD"


@dataclass(frozen=True)
class DigitSpec:
    """How to collect one entry; timeouts in seconds (see docs/ivr.md, digit timing)."""

    min_digits: int
    max_digits: int
    terminators: str
    first_digit_timeout: float
    inter_digit_timeout: float


@dataclass(frozen=True)
class Play:
    """Play prompts in order. With ``barge_in`` a key press stops them."""

    prompts: tuple[str, ...]
    barge_in: bool


@dataclass(frozen=True)
class PlayResult:
    barge_digit: str | None = None


@dataclass(frozen=True)
class GetDigits:
    """Play ``prompts`` then collect digits per ``spec``.

    ``typeahead`` holds keys the caller already pressed (a barge-in on an
    earlier prompt); the driver feeds them first and skips the prompts.
    """

    prompts: tuple[str, ...]
    spec: DigitSpec
    barge_in: bool
    typeahead: str = ""
    sensitive: bool = False  # the recording is paused while these digits are keyed


@dataclass(frozen=True)
class RecordControl:
    """Pause or resume the call's recording (PCI); the driver answers with None."""

    action: str  # 'pause' | 'resume'


@dataclass(frozen=True)
class DigitsResult:
    digits: str
    terminator: str | None
    reason: str  # 'terminator' | 'max' | 'timeout'


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    timeout: float


@dataclass(frozen=True)
class HttpResult:
    status: int | None
    body: bytes = b""
    error: str | None = None


@dataclass(frozen=True)
class EnterQueue:
    """Hand the call to the ACD. ``data`` is the screen-pop payload (unmasked)."""

    queue: str
    priority: int
    skills: tuple[tuple[str, int], ...]
    data: tuple[tuple[str, str], ...]
    timeout: float | None
    music: str | None = None
    prompts: tuple[str, ...] = ()  # entry announcements, played once the call is in the queue


@dataclass(frozen=True)
class QueueResult:
    """How the call left the queue. `target` names a node of the same flow to continue at
    (an exit key or a `node:<id>` overflow); otherwise the queue step's `next` applies."""

    outcome: str
    target: str | None = None


@dataclass(frozen=True)
class Hangup:
    reason: str


@dataclass(frozen=True)
class GetTime:
    """Ask the driver for the current time; the result is an aware ``datetime``."""


Command = Play | GetDigits | HttpRequest | EnterQueue | Hangup | GetTime | RecordControl
Result = PlayResult | DigitsResult | HttpResult | QueueResult | datetime

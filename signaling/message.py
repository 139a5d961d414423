"""SIP messages: parsing, framing and serializing (RFC 3261 §7, §18.3, §20).

A ``SipMessage`` keeps its header lines raw (order, case, compact forms,
unknown headers) and parses typed views lazily (DESIGN.md, Style rule 3).
``parse_message`` is for one datagram; ``StreamParser`` frames a byte stream by
Content-Length. Every parser here returns a value or raises ``SipError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TypeVar

from .errors import SipError, SipUsageError
from .headers import CSeq, NameAddr, Via, parse_params, split_header_values
from .uri import LWS, SipUri, is_token, parse_uint, uri_scheme

__all__ = [
    "COMPACT",
    "REASONS",
    "MULTI_VALUE",
    "SipMessage",
    "parse_message",
    "Ping",
    "StreamParser",
    "make_response",
    "make_request",
]

#: Compact header forms (§7.3.3, §20 and later RFCs) -> canonical name.
COMPACT: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

#: Default reason phrases (§21, plus later RFCs).
REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    433: "Anonymity Disallowed",
    436: "Bad Identity-Info",
    437: "Unsupported Certificate",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}

#: Lower-case canonical names whose values are comma-separated lists (§7.3.1).
#: Authorization, WWW-Authenticate and dates contain commas of their own.
MULTI_VALUE: frozenset[str] = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "accept-resource-priority",
        "alert-info",
        "allow",
        "allow-events",
        "call-info",
        "contact",
        "content-encoding",
        "content-language",
        "error-info",
        "history-info",
        "in-reply-to",
        "p-asserted-identity",
        "p-preferred-identity",
        "path",
        "proxy-require",
        "reason",
        "record-route",
        "require",
        "resource-priority",
        "route",
        "security-client",
        "security-server",
        "security-verify",
        "service-route",
        "supported",
        "unsupported",
        "via",
        "warning",
    }
)

MAX_HEADER_LINES = 200
MAX_LINE_LENGTH = 8192

_COMPACT_LOWER = {short: name.lower() for short, name in COMPACT.items()}
# Control chars are allowed only as quoted-pairs (§25.1: "\" %x00-09 / %x0B-0C / %x0E-7F).
_BAD_CTL = re.compile(rb"\r|(?<!\\)[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SIP_VERSION_RE = re.compile(r"SIP/[0-9]{1,4}\.[0-9]{1,4}", re.IGNORECASE)
_T = TypeVar("_T")


def canonical_name(name: str) -> str:
    """Lower-case long form of a header name, compact forms expanded (§7.3.3)."""
    key = name.lower()
    return _COMPACT_LOWER.get(key, key)


def _typed(parse: Callable[[str], _T], value: str, label: str) -> _T:
    """Run a header parser; any syntax error becomes 400 "Bad <label> header"."""
    try:
        return parse(value)
    except SipError as exc:
        raise SipError(400, f"Bad {label} header") from exc


@dataclass(frozen=True)
class SipMessage:
    """A SIP request or response with raw header lines and lazy typed views (§7)."""

    method: str | None
    uri: str | None
    status: int | None
    reason: str | None
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        """True for a request (§7.1), False for a response (§7.2)."""
        return self.method is not None

    # -- raw access (§7.3) ---------------------------------------------------

    @cached_property
    def _index(self) -> dict[str, list[str]]:
        """Line values by canonical header name, in order (built once per message: every
        view and lookup reads it)."""
        index: dict[str, list[str]] = {}
        for n, v in self.headers:
            key = canonical_name(n)
            values = index.get(key)
            if values is None:
                index[key] = [v]
            else:
                values.append(v)
        return index

    def _values(self, name: str) -> list[str]:
        """Every line value of the header, compact and long forms alike."""
        return list(self._index.get(canonical_name(name), ()))

    def get(self, name: str) -> str | None:
        """First value; for MULTI_VALUE headers the first comma-separated element."""
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        """Every value in order; MULTI_VALUE headers split into elements (§7.3.1)."""
        values = self._values(name)
        if canonical_name(name) not in MULTI_VALUE:
            return values
        return [element for v in values for element in split_header_values(v)]

    def has(self, name: str) -> bool:
        """True if at least one line of the header is present."""
        return canonical_name(name) in self._index

    def _single(self, name: str, label: str) -> str:
        """The one value of a mandatory single-valued header (§20)."""
        values = self._values(name)
        if not values:
            raise SipError(400, f"Missing {label} header")
        if len(values) > 1:
            raise SipError(400, f"Duplicate {label} header")
        return values[0]

    def _optional(self, name: str, label: str) -> str | None:
        """The value of an optional single-valued header, or None."""
        values = self._values(name)
        if len(values) > 1:
            raise SipError(400, f"Duplicate {label} header")
        return values[0] if values else None

    # -- typed views (§20) ---------------------------------------------------

    @cached_property
    def via(self) -> list[Via]:
        """Via values, top first (§20.42)."""
        values = self.get_all("via")
        if not values:
            raise SipError(400, "Missing Via header")
        return [_typed(Via.parse, v, "Via") for v in values]

    @cached_property
    def call_id(self) -> str:
        """Call-ID (§20.8): word [ "@" word ], no whitespace."""
        value = self._single("call-id", "Call-ID")
        if not value or not value.isascii() or not value.isprintable() or " " in value:
            raise SipError(400, "Bad Call-ID header")
        return value

    @cached_property
    def cseq(self) -> CSeq:
        """CSeq (§20.16)."""
        return _typed(CSeq.parse, self._single("cseq", "CSeq"), "CSeq")

    @cached_property
    def from_(self) -> NameAddr:
        """From (§20.20)."""
        return _typed(NameAddr.parse, self._single("from", "From"), "From")

    @cached_property
    def to(self) -> NameAddr:
        """To (§20.39)."""
        return _typed(NameAddr.parse, self._single("to", "To"), "To")

    @cached_property
    def contact(self) -> list[NameAddr]:
        """Contact values (§20.10); [] if absent; '*' only alone."""
        contacts = [_typed(NameAddr.parse, v, "Contact") for v in self.get_all("contact")]
        if len(contacts) > 1 and any(c.star for c in contacts):
            raise SipError(400, "Bad Contact header")
        return contacts

    @cached_property
    def max_forwards(self) -> int | None:
        """Max-Forwards (§20.22): 0-255, or None when absent."""
        value = self._optional("max-forwards", "Max-Forwards")
        if value is None:
            return None
        return parse_uint(value, limit=255, what="Bad Max-Forwards header")

    @cached_property
    def content_length(self) -> int | None:
        """Content-Length (§20.14) as written, or None when absent."""
        value = self._optional("content-length", "Content-Length")
        if value is None:
            return None
        return parse_uint(value, limit=2**31 - 1, what="Bad Content-Length header")

    @cached_property
    def content_type(self) -> str | None:
        """Lower-case ``type/subtype`` of Content-Type (§20.15), parameters dropped."""
        value = self._optional("content-type", "Content-Type")
        return None if value is None else _typed(_media_type, value, "Content-Type")

    @cached_property
    def require(self) -> list[str]:
        """Require option tags, lower-cased (§20.32)."""
        return _option_tags(self.get_all("require"), "Require")

    @cached_property
    def supported(self) -> list[str]:
        """Supported option tags, lower-cased (§20.37)."""
        return _option_tags(self.get_all("supported"), "Supported")

    # -- output and edits ----------------------------------------------------

    def start_line(self) -> str:
        """Request-Line (§7.1) or Status-Line (§7.2)."""
        if self.method is not None:
            return f"{self.method} {self.uri} SIP/2.0"
        return f"SIP/2.0 {self.status} {self.reason or ''}"

    def serialize(self) -> bytes:
        """Bytes on the wire; Content-Length rewritten to len(body) (§18.3, §20.14)."""
        lines = [self.start_line()]
        length = str(len(self.body))
        for name, value in self.headers:
            lines.append(f"{name}: {length if canonical_name(name) == 'content-length' else value}")
        if not self.has("content-length"):
            lines.append(f"Content-Length: {length}")
        text = "\r\n".join(lines) + "\r\n\r\n"
        try:
            return text.encode("utf-8", "surrogateescape") + self.body
        except UnicodeEncodeError as exc:
            raise SipUsageError(f"header text cannot be encoded: {exc}") from exc

    def with_header(self, name: str, value: str, *, first: bool = False) -> SipMessage:
        """Copy with one more header line, appended or (``first``) prepended."""
        line = _checked_line(name, value)
        headers = (line, *self.headers) if first else (*self.headers, line)
        return replace(self, headers=headers)

    def without_header(self, name: str) -> SipMessage:
        """Copy without any line of the header (compact forms included)."""
        key = canonical_name(name)
        return replace(self, headers=tuple(h for h in self.headers if canonical_name(h[0]) != key))

    def replace_header(self, name: str, values: list[str]) -> SipMessage:
        """Replace all lines of the header by one line per value, where the first was."""
        key = canonical_name(name)
        new = [_checked_line(name, v) for v in values]
        out: list[tuple[str, str]] = []
        for header in self.headers:
            if canonical_name(header[0]) != key:
                out.append(header)
            elif new:
                out += new
                new = []
        return replace(self, headers=(*out, *new))

    def with_body(self, body: bytes, content_type: str | None) -> SipMessage:
        """Copy with a new body; Content-Type set (or removed when None), length updated."""
        msg = replace(self, body=body)
        if content_type is None:
            msg = msg.without_header("content-type")
        else:
            msg = msg.replace_header("Content-Type", [content_type])
        return msg.replace_header("Content-Length", [str(len(body))])


def _checked_line(name: str, value: str) -> tuple[str, str]:
    if not is_token(name) or "\r" in value or "\n" in value:
        raise SipUsageError(f"bad header line {name!r}: {value!r}")
    return name, value


def _media_type(value: str) -> str:
    """media-type = m-type SLASH m-subtype *(SEMI m-parameter) (§20.15, §25.1)."""
    mtype, _, params = value.partition(";")
    main, slash, sub = mtype.partition("/")
    main, sub = main.strip(LWS), sub.strip(LWS)
    if not slash or not is_token(main) or not is_token(sub):
        raise SipError(400, "Bad media type")
    parse_params(params)
    return f"{main}/{sub}".lower()


def _option_tags(values: list[str], label: str) -> list[str]:
    """option-tag = token (§25.1), lower-cased."""
    if not all(is_token(v) for v in values):
        raise SipError(400, f"Bad {label} header")
    return [v.lower() for v in values]


# -- parsing -------------------------------------------------------------------


@dataclass(frozen=True)
class _Head:
    """Start line and header lines of a message, and where its body starts."""

    method: str | None
    uri: str | None
    status: int | None
    reason: str | None
    headers: tuple[tuple[str, str], ...]
    body_start: int


def _skip_crlf(data: bytes, pos: int = 0) -> int:
    """Skip CRLFs before a start line (§7.5)."""
    while data[pos : pos + 2] == b"\r\n" or data[pos : pos + 1] == b"\n":
        pos += 2 if data[pos : pos + 1] == b"\r" else 1
    return pos


def _split_head(data: bytes, start: int) -> tuple[list[bytes], int] | None:
    """Lines up to the empty line and the body offset; None if no empty line yet.

    Bare LF line ends are accepted as well as CRLF (interop, §7.5 allows
    tolerance). Line count and length are bounded before anything is decoded.
    """
    lines: list[bytes] = []
    pos = start
    while True:
        nl = data.find(b"\n", pos, pos + MAX_LINE_LENGTH + 2)
        if nl < 0:
            if len(data) - pos > MAX_LINE_LENGTH + 1:
                raise SipError(400, "Header line too long")
            return None
        line = data[pos:nl]
        line = line[:-1] if line.endswith(b"\r") else line
        if len(line) > MAX_LINE_LENGTH:
            raise SipError(400, "Header line too long")
        pos = nl + 1
        if not line:
            return lines, pos
        if len(lines) > MAX_HEADER_LINES:
            raise SipError(400, "Too many header lines")
        lines.append(line)


def _decode(line: bytes) -> str:
    """Header text as str; bytes that are not UTF-8 survive as surrogates."""
    if _BAD_CTL.search(line) is not None:
        raise SipError(400, "Control character in header")
    return line.decode("utf-8", "surrogateescape")


def _check_version(version: str) -> None:
    """SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT, only 2.0 spoken (§7.1, §8.2.2)."""
    if version.upper() == "SIP/2.0":
        return
    if _SIP_VERSION_RE.fullmatch(version):
        raise SipError(505, "Version Not Supported")
    raise SipError(400, "Bad SIP version")


def _parse_status_line(line: str) -> tuple[int, str]:
    """Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2).

    A missing reason phrase, with or without its SP, is tolerated (RFC 4475 §3.1.1.13).
    """
    version, _, rest = line.partition(" ")
    _check_version(version)
    code, _, reason = rest.partition(" ")
    if len(code) != 3 or not code.isascii() or not code.isdigit() or code[0] not in "123456":
        raise SipError(400, "Bad status code")
    return int(code), reason


def _parse_request_line(line: str) -> tuple[str, str]:
    """Request-Line = Method SP Request-URI SP SIP-Version (§7.1), single SPs only."""
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipError(400, "Bad request line")
    method, uri, version = parts
    _check_version(version)
    if not is_token(method):
        raise SipError(400, "Bad method")
    _check_request_uri(uri)
    return method, uri


def _check_request_uri(uri: str) -> None:
    """Request-URI = SIP-URI / SIPS-URI / absoluteURI, no headers in it (§19.1.5)."""
    try:
        scheme = uri_scheme(uri)
        if not uri.isascii() or not uri.isprintable() or "<" in uri or ">" in uri:
            raise SipError(400, "Bad Request-URI")
        if scheme in ("sip", "sips") and SipUri.parse(uri).headers:
            raise SipError(400, "Bad Request-URI")
    except SipError as exc:
        raise SipError(400, "Bad Request-URI") from exc


def _unfold(lines: list[str]) -> list[tuple[str, str]]:
    """Header lines -> (name, value), folding (§7.3.1) joined with one space."""
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line[0] in LWS:
            if not headers:
                raise SipError(400, "Folded line without header")
            name, value = headers[-1]
            more = line.strip(LWS)
            headers[-1] = (name, f"{value} {more}" if value and more else value or more)
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(LWS)
        if not colon or not is_token(name):
            raise SipError(400, "Malformed header line")
        headers.append((name, value.strip(LWS)))
    return headers


def _parse_head(data: bytes, start: int) -> _Head | None:
    """Start line and headers (§7.1-§7.3); None while the empty line is missing."""
    split = _split_head(data, start)
    if split is None:
        return None
    raw_lines, body_start = split
    if not raw_lines:
        raise SipError(400, "Empty message")
    lines = [_decode(line) for line in raw_lines]
    headers = tuple(_unfold(lines[1:]))
    if lines[0][:4].upper() == "SIP/":
        status, reason = _parse_status_line(lines[0])
        return _Head(None, None, status, reason, headers, body_start)
    method, uri = _parse_request_line(lines[0])
    return _Head(method, uri, None, None, headers, body_start)


def _frame_body(msg: SipMessage, rest: bytes, stream: bool) -> bytes:
    """Body by Content-Length (§18.3): UDP trims extra bytes, a stream requires it."""
    length = msg.content_length
    if length is None:
        if stream:
            raise SipError(400, "Missing Content-Length header")
        return rest
    if length > len(rest):
        raise SipError(400, "Content-Length larger than body")
    return rest[:length]


def _validate(msg: SipMessage) -> None:
    """Mandatory headers (§8.1.1, §20) parse, and CSeq matches the method (§8.1.1.5)."""
    msg.via  # noqa: B018 - each cached view raises SipError on bad syntax
    msg.from_  # noqa: B018
    msg.to  # noqa: B018
    msg.call_id  # noqa: B018
    if not msg.is_request:
        # A response only needs a CSeq to exist here: one that does not parse
        # matches no transaction, and the transaction layer drops it (§17.1.3).
        msg._single("cseq", "CSeq")
    elif msg.cseq.method != msg.method:
        raise SipError(400, "CSeq method mismatch")
    msg.contact  # noqa: B018
    msg.max_forwards  # noqa: B018


def _build(head: _Head, data: bytes, stream: bool) -> SipMessage:
    msg = SipMessage(head.method, head.uri, head.status, head.reason, head.headers)
    body = _frame_body(msg, data[head.body_start :], stream)
    if body:
        framed = replace(msg, body=body)
        # the header index and length read for framing hold for the copy too (cached
        # views live in the instance dict, as cached_property puts them)
        vars(framed).update(_index=msg._index, content_length=msg.content_length)
        msg = framed
    _validate(msg)
    return msg


def parse_message(data: bytes, *, max_size: int = 65535, stream: bool = False) -> SipMessage:
    """Parse one complete message, e.g. a UDP datagram (§7, §18.3).

    Leading CRLFs are skipped. Without ``stream`` a missing Content-Length means
    the body is the rest of the datagram and extra bytes are dropped (§18.3).
    """
    if len(data) > max_size:
        raise SipError(513, "Message Too Large")
    start = _skip_crlf(data)
    if start == len(data):
        raise SipError(400, "Empty message")
    head = _parse_head(data, start)
    if head is None:
        raise SipError(400, "Missing empty line after headers")
    return _build(head, data, stream)


# -- streams -------------------------------------------------------------------


class Ping:
    """A CRLFCRLF keep-alive seen on a stream (RFC 5626 §3.5.1)."""

    def __repr__(self) -> str:
        return "Ping()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ping)

    def __hash__(self) -> int:
        return hash(Ping)


class StreamParser:
    """Frames SIP messages on a byte stream (TCP) by Content-Length (§18.3); Content-Length is mandatory on streams."""

    def __init__(self, *, max_size: int = 65535) -> None:
        self._max_size = max_size
        self._buf = bytearray()
        self._head: _Head | None = None
        self._rescan = True
        self._error: SipError | None = None

    def feed(self, data: bytes) -> list[SipMessage | Ping]:
        """Add bytes; return the messages and pings now complete.

        Raises SipError on missing Content-Length, oversize or garbage; the
        connection is then to be closed and every later feed raises again.
        """
        if self._error is not None:
            raise self._error
        self._buf += data
        self._rescan = self._rescan or b"\n" in data
        out: list[SipMessage | Ping] = []
        try:
            while (item := self._next()) is not None:
                out.append(item)
        except SipError as exc:
            self._error = exc
            raise
        return out

    def _next(self) -> SipMessage | Ping | None:
        ping = self._take_keepalive()
        if ping is not None or self._waiting_for_keepalive():
            return ping
        if self._head is None:
            self._head = self._scan()
            if self._head is None:
                return None
        return self._take_message(self._head)

    def _take_keepalive(self) -> Ping | None:
        """Consume CRLFCRLF pings and stray CRLF pongs (RFC 5626 §3.5.1, §4.4.1)."""
        buf = self._buf
        while True:
            if buf[:4] == b"\r\n\r\n":
                del buf[:4]
                return Ping()
            if buf[:2] == b"\r\n" and len(buf) > 2 and buf[2:3] != b"\r":
                del buf[:2]
            elif buf[:1] == b"\n":
                del buf[:1]
            else:
                return None

    def _waiting_for_keepalive(self) -> bool:
        """A partial CRLFCRLF (or nothing) is buffered: wait for more bytes."""
        return len(self._buf) <= 3 and bytes(self._buf) in (b"", b"\r", b"\r\n", b"\r\n\r")

    def _scan(self) -> _Head | None:
        if not self._rescan and len(self._buf) <= self._max_size:
            return None
        self._rescan = False
        head = _parse_head(bytes(self._buf), 0)
        if head is None and len(self._buf) > self._max_size:
            raise SipError(513, "Message Too Large")
        return head

    def _take_message(self, head: _Head) -> SipMessage | None:
        msg = SipMessage(head.method, head.uri, head.status, head.reason, head.headers)
        if msg.content_length is None:
            raise SipError(400, "Missing Content-Length header")
        total = head.body_start + msg.content_length
        if total > self._max_size:
            raise SipError(513, "Message Too Large")
        if len(self._buf) < total:
            return None
        data = bytes(self._buf[:total])
        del self._buf[:total]
        self._head = None
        self._rescan = True
        return _build(head, data, True)


# -- construction --------------------------------------------------------------


def make_response(
    request: SipMessage,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> SipMessage:
    """Build a response to ``request`` (§8.2.6).

    Copies every Via line (in order, as written), From, To, Call-ID and CSeq;
    adds ``;tag=to_tag`` to To unless it already has a tag (§8.2.6.2).
    """
    if not request.is_request:
        raise SipUsageError("make_response needs a request")
    if not 100 <= status <= 699:
        raise SipUsageError(f"bad status {status}")
    if to_tag is not None and not is_token(to_tag):
        raise SipUsageError(f"to_tag is not a token: {to_tag!r}")
    copied: list[tuple[str, str]] = []
    for name, value in request.headers:
        key = canonical_name(name)
        if key == "to" and to_tag is not None and NameAddr.parse(value).tag is None:
            value = f"{value};tag={to_tag}"
        if key in ("via", "from", "to", "call-id", "cseq"):
            copied.append((name, value))
    copied += [_checked_line(n, v) for n, v in headers]
    text = REASONS.get(status, "Unknown") if reason is None else reason
    return _with_length(SipMessage(None, None, status, text, tuple(copied), body))


def make_request(
    method: str, uri: str, headers: Sequence[tuple[str, str]], body: bytes = b""
) -> SipMessage:
    """Build a request (§8.1.1); the caller supplies the mandatory headers."""
    if not is_token(method):
        raise SipUsageError(f"method is not a token: {method!r}")
    try:
        uri_scheme(uri)
    except SipError as exc:
        raise SipUsageError(f"bad Request-URI {uri!r}") from exc
    if any(c in uri for c in " \t\r\n"):
        raise SipUsageError(f"bad Request-URI {uri!r}")
    lines = tuple(_checked_line(n, v) for n, v in headers)
    return _with_length(SipMessage(method, uri, None, None, lines, body))


def _with_length(msg: SipMessage) -> SipMessage:
    """Append Content-Length when absent, so views agree with the wire (§20.14)."""
    if msg.has("content-length"):
        return msg.replace_header("Content-Length", [str(len(msg.body))])
    return msg.with_header("Content-Length", str(len(msg.body)))

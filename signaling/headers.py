"""Typed views of the SIP header fields the core needs (RFC 3261 §7.3, §20, §25.1).

Each ``parse`` accepts the header value as stored by the message layer (folding
already undone) and either returns a frozen value or raises ``SipError(400)``.
Header parameter names are lower-cased (§7.3.1: they are case-insensitive);
values are kept exactly as written, quotes included, so they survive a round trip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .errors import SipError, SipUsageError
from .uri import LWS, TOKEN_CHARS, SipUri, is_token, parse_host, parse_uint, uri_scheme

__all__ = [
    "NameAddr",
    "Via",
    "CSeq",
    "split_header_values",
    "parse_params",
    "format_params",
    "quote_string",
    "unquote_string",
]

Params = tuple[tuple[str, str | None], ...]

#: gen-value = token / host / quoted-string (§25.1); host adds ':' and brackets.
_VALUE_CHARS = TOKEN_CHARS | frozenset("[]:/")
_VALUE_RE = re.compile("[" + re.escape("".join(sorted(_VALUE_CHARS))) + "]+")
_LWS_RUN = re.compile(r"[ \t]+")
_CSEQ_RE = re.compile(r"([0-9]+)[ \t]+([^ \t]+)")


def _quoted_end(text: str, start: int) -> int:
    """Index just past the quoted-string opening at ``start`` (§25.1 quoted-pair aware)."""
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
        elif c == '"':
            return i + 1
        else:
            i += 1
    raise SipError(400, "Unterminated quoted string")


def unquote_string(text: str) -> str:
    """Content of a complete quoted-string, quoted-pairs resolved (§25.1)."""
    out: list[str] = []
    i = 1
    while i < len(text) - 1:
        if text[i] == "\\" and i + 1 < len(text) - 1:
            i += 1
        out.append(text[i])
        i += 1
    return "".join(out)


def quote_string(text: str) -> str:
    """Quote ``text`` as a quoted-string; CR/LF cannot be quoted-pairs so become SP."""
    body = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + body.replace("\r", " ").replace("\n", " ") + '"'


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quoted strings and <angle brackets> (§7.3.1)."""
    if '"' not in text and "<" not in text:
        return text.split(sep)  # nothing to step over: the common case
    parts: list[str] = []
    start = 0
    i = 0
    in_angle = False
    while i < len(text):
        c = text[i]
        if c == '"':
            try:
                i = _quoted_end(text, i)
            except SipError:
                break  # lenient: the rest is one element; its own parser will object
            continue
        if c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == sep and not in_angle:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def split_header_values(value: str) -> list[str]:
    """Split a header value on top-level commas (§7.3.1), respecting quotes and <...>.

    Empty elements are dropped and each element is stripped of LWS.
    """
    return [p.strip(LWS) for p in _split_top(value, ",") if p.strip(LWS)]


def _check_param_value(value: str) -> None:
    """gen-value = token / host / quoted-string (§25.1)."""
    if value.startswith('"'):
        if _quoted_end(value, 0) != len(value):
            raise SipError(400, "Bad header parameter")
    elif _VALUE_RE.fullmatch(value) is None:
        raise SipError(400, "Bad header parameter")


def parse_params(text: str) -> Params:
    """Parse ``;a=b;c`` (generic-param list, §25.1); the leading ';' is optional.

    Names are lower-cased; a flag parameter has value None; quoted values keep
    their quotes. Empty parameters (``;;``) are a syntax error.
    """
    text = text.strip(LWS)
    if not text:
        return ()
    if text.startswith(";"):
        text = text[1:]
    params: list[tuple[str, str | None]] = []
    for item in _split_top(text, ";"):
        name, eq, value = item.partition("=")
        name, value = name.strip(LWS), value.strip(LWS)
        if not is_token(name):
            raise SipError(400, "Bad header parameter")
        if eq:
            _check_param_value(value)
        params.append((name.lower(), value if eq else None))
    return tuple(params)


def format_params(params: Params) -> str:
    """``;name=value;flag`` text of a parameter tuple."""
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


def _get_param(params: Params, name: str) -> str | None:
    key = name.lower()
    for pname, value in params:
        if pname == key:
            return "" if value is None else value
    return None


def _set_param(params: Params, name: str, value: str | None) -> Params:
    """Replace parameter ``name`` in place, or append it."""
    key = name.lower()
    if any(pname == key for pname, _ in params):
        return tuple((p, value if p == key else v) for p, v in params)
    return (*params, (key, value))


def _display_char_ok(c: str) -> bool:
    """Interop: accept non-ASCII chars in an unquoted display name.

    §25.1 only allows ``*(token LWS)`` there, but phones with localized
    directories send ``From: Zoë <sip:...>`` without quotes; rejecting the call
    for that would be worse than the deviation.
    """
    return c in TOKEN_CHARS or not c.isascii()


def _parse_display(text: str) -> str | None:
    """display-name = *(token LWS) / quoted-string (§25.1); None when absent."""
    text = text.strip(LWS)
    if not text:
        return None
    if text.startswith('"'):
        if _quoted_end(text, 0) != len(text):
            raise SipError(400, "Bad display name")
        return unquote_string(text)
    for word in _LWS_RUN.split(text):
        if not all(_display_char_ok(c) for c in word):
            raise SipError(400, "Bad display name")
    return text


def _format_display(display: str) -> str:
    words = display.split(" ")
    if all(w and all(c in TOKEN_CHARS for c in w) for w in words):
        return display
    return quote_string(display)


def _find_laquot(text: str) -> int:
    """Index of the first '<' outside a quoted string, or -1."""
    i = 0
    while i < len(text):
        if text[i] == '"':
            i = _quoted_end(text, i)
            continue
        if text[i] == "<":
            return i
        i += 1
    return -1


def _check_uri(uri: str) -> None:
    """An absolute URI without whitespace; sip/sips ones must parse (§25.1 addr-spec)."""
    if not uri or not uri.isascii() or not uri.isprintable() or " " in uri:
        raise SipError(400, "Bad URI")
    if uri_scheme(uri) in ("sip", "sips"):
        SipUri.parse(uri)


@dataclass(frozen=True)
class NameAddr:
    """From, To, Contact, Route, Record-Route values (§20.10, §25.1 name-addr / addr-spec)."""

    display: str | None
    uri: str
    params: Params = ()
    star: bool = False

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        """Parse ``[display] <uri> *(;param)``, ``uri *(;param)`` or ``*`` (§20.10).

        In the addr-spec form every ';' starts a header parameter, so a URI with
        ',', '?' or ';' of its own must be in angle brackets (§20.10).
        """
        text = text.strip(LWS)
        if text == "*":
            return cls(None, "*", (), True)
        lt = _find_laquot(text)
        if lt >= 0:
            return cls._parse_name_addr(text, lt)
        uri, semi, param_text = text.partition(";")
        uri = uri.strip(LWS)
        if '"' in uri or "," in uri or "?" in uri or ">" in uri:
            raise SipError(400, "Bad address")
        _check_uri(uri)
        return cls(None, uri, parse_params(param_text) if semi else ())

    @classmethod
    def _parse_name_addr(cls, text: str, lt: int) -> NameAddr:
        """name-addr = [display-name] LAQUOT addr-spec RAQUOT (no LWS inside <>)."""
        display = _parse_display(text[:lt])
        gt = text.find(">", lt)
        if gt < 0:
            raise SipError(400, "Bad address")
        uri = text[lt + 1 : gt]
        _check_uri(uri)
        rest = text[gt + 1 :].strip(LWS)
        if rest and not rest.startswith(";"):
            raise SipError(400, "Bad address")
        return cls(display, uri, parse_params(rest))

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (§19.3), or None."""
        return self.param("tag")

    def param(self, name: str) -> str | None:
        """Header parameter ``name`` (case-insensitive); '' for a flag."""
        return _get_param(self.params, name)

    def with_tag(self, tag: str) -> NameAddr:
        """Copy with ``;tag=`` set (§8.2.6.2)."""
        if not is_token(tag):
            raise SipUsageError(f"tag is not a token: {tag!r}")
        return replace(self, params=_set_param(self.params, "tag", tag))

    def sip_uri(self) -> SipUri:
        """The URI as a SipUri; SipError(416) if it is not sip/sips."""
        return SipUri.parse(self.uri)

    def __str__(self) -> str:
        """``"Display" <uri>;params`` (always the bracketed form), or ``*``."""
        if self.star:
            return "*" + format_params(self.params)
        display = "" if self.display is None else _format_display(self.display) + " "
        return f"{display}<{self.uri}>{format_params(self.params)}"


def _parse_sent_by(text: str) -> tuple[str, int | None]:
    """sent-by = host [ COLON port ], LWS allowed around the colon (§20.42, §25.1)."""
    text = text.strip(LWS)
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipError(400, "Bad Via header")
        host, rest = text[: end + 1], text[end + 1 :]
    else:
        host, colon, port_text = text.partition(":")
        rest = colon + port_text
    rest = rest.strip(LWS)
    port: int | None = None
    if rest:
        if not rest.startswith(":"):
            raise SipError(400, "Bad Via header")
        port = parse_uint(rest[1:], limit=65535, what="Bad Via header")
    return parse_host(host.rstrip(LWS)), port


def _check_via_params(params: Params) -> None:
    """rport and ttl carry numbers when valued (§20.42, RFC 3581 §3)."""
    for name, limit in (("rport", 65535), ("ttl", 255)):
        value = _get_param(params, name)
        if value:
            parse_uint(value, limit=limit, what="Bad Via header")


@dataclass(frozen=True)
class Via:
    """One Via value (§20.42, §18.2.1; RFC 3581 rport)."""

    transport: str
    host: str
    port: int | None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> Via:
        """via-parm = sent-protocol LWS sent-by *( SEMI via-params ) (§25.1).

        Only SIP/2.0 is accepted; LWS may surround the slashes (RFC 4475 §3.1.1.1).
        """
        name, _, rest = text.partition("/")
        version, _, rest = rest.partition("/")
        if name.strip(LWS).upper() != "SIP" or version.strip(LWS) != "2.0":
            raise SipError(400, "Bad Via header")
        rest = rest.lstrip(LWS)
        end = 0
        while end < len(rest) and rest[end] in TOKEN_CHARS:
            end += 1
        transport, rest = rest[:end], rest[end:]
        if not transport or not rest[:1] or rest[0] not in LWS:
            raise SipError(400, "Bad Via header")
        sent_by, semi, param_text = rest.partition(";")
        host, port = _parse_sent_by(sent_by)
        params = parse_params(param_text) if semi else ()
        _check_via_params(params)
        return cls(transport.upper(), host, port, params)

    @property
    def branch(self) -> str | None:
        """The transaction branch (§8.1.1.7, §17.2.3), or None."""
        return self.param("branch")

    def param(self, name: str) -> str | None:
        """Parameter ``name`` (case-insensitive); '' when present without value."""
        return _get_param(self.params, name)

    def has_param(self, name: str) -> bool:
        """True if the parameter is present, with or without value."""
        return self.param(name) is not None

    def with_received(self, host: str, rport: int | None) -> Via:
        """Set ``received`` (§18.2.1) and fill an empty ``rport`` (RFC 3581 §4)."""
        params = _set_param(self.params, "received", host)
        if rport is not None and _get_param(params, "rport") == "":
            params = _set_param(params, "rport", str(rport))
        return replace(self, params=params)

    def __str__(self) -> str:
        """``SIP/2.0/UDP host:port;branch=...``."""
        port = "" if self.port is None else f":{self.port}"
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"


@dataclass(frozen=True)
class CSeq:
    """CSeq = 1*DIGIT LWS Method (§20.16); the number is below 2**31 (§8.1.1.5)."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        """Parse ``4711 INVITE``; SipError(400) if bad or seq >= 2**31."""
        match = _CSEQ_RE.fullmatch(text.strip(LWS))
        if match is None or not is_token(match.group(2)):
            raise SipError(400, "Bad CSeq header")
        seq = parse_uint(match.group(1), limit=2**31 - 1, what="Bad CSeq header")
        return cls(seq, match.group(2))

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"

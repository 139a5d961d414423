"""SIP and SIPS URIs (RFC 3261 §19.1, grammar in §25.1).

Also holds the few grammar primitives (token, LWS, bounded integers) that the
header and message parsers share, so that every parser agrees on them.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from .errors import SipError

__all__ = [
    "SipUri",
    "uri_scheme",
    "is_token",
    "parse_uint",
    "parse_host",
    "TOKEN_CHARS",
    "LWS",
]

ALPHANUM = frozenset(string.ascii_letters + string.digits)
#: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")  (§25.1)
TOKEN_CHARS = ALPHANUM | frozenset("-.!%*_+`'~")
#: Linear white space inside a header value, once folding is undone (§7.3.1, §25.1).
LWS = " \t"

_MARK = frozenset("-_.!~*'()")
_UNRESERVED = ALPHANUM | _MARK
_USER_CHARS = _UNRESERVED | frozenset("&=+$,;?/")
_PASSWORD_CHARS = _UNRESERVED | frozenset("&=+$,")
_PARAM_CHARS = _UNRESERVED | frozenset("[]/:&+$")
_HEADER_CHARS = _UNRESERVED | frozenset("[]/?:+$")
_HEX = frozenset(string.hexdigits)

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.\-]*[A-Za-z0-9_.])?")
_IPV6_RE = re.compile(r"\[[0-9A-Fa-f:.]{2,45}\]")


_TOKEN_RE = re.compile("[" + re.escape("".join(sorted(TOKEN_CHARS))) + "]+")


def is_token(text: str) -> bool:
    """True if ``text`` is a non-empty RFC 3261 token (§25.1)."""
    return _TOKEN_RE.fullmatch(text) is not None


def parse_uint(text: str, *, limit: int, what: str) -> int:
    """Parse ``1*DIGIT`` no greater than ``limit``; SipError(400, what) otherwise.

    ASCII digits only (``str.isdigit`` also accepts '²'), and the length is
    bounded before ``int`` so a megabyte of digits costs nothing.
    """
    digits = text.strip(LWS)
    if not digits or not digits.isascii() or not digits.isdigit():
        raise SipError(400, what)
    stripped = digits.lstrip("0") or "0"
    if len(stripped) > len(str(limit)) or int(stripped) > limit:
        raise SipError(400, what)
    return int(stripped)


def uri_scheme(text: str) -> str:
    """Lower-case scheme of an absolute URI (§19.1, RFC 3986 §3.1); SipError(400) if none."""
    match = _SCHEME_RE.match(text)
    if match is None:
        raise SipError(400, "Bad URI")
    return match.group()[:-1].lower()


_CLEAN: dict[frozenset[str], re.Pattern[str]] = {}


def _check_chars(text: str, allowed: frozenset[str], what: str) -> None:
    """Every char of ``text`` is in ``allowed`` or part of a valid %HH escape."""
    clean = _CLEAN.get(allowed)
    if clean is None:
        clean = _CLEAN[allowed] = re.compile(
            "(?:[" + re.escape("".join(sorted(allowed))) + "]|%[0-9A-Fa-f]{2})*")
    if clean.fullmatch(text) is not None:
        return
    # find the culprit, to say which it is
    i = 0
    while i < len(text):
        c = text[i]
        if c == "%":
            if text[i + 1 : i + 2] not in _HEX or text[i + 2 : i + 3] not in _HEX:
                raise SipError(400, f"Bad escape in URI {what}")
            i += 3
            continue
        if c not in allowed:
            raise SipError(400, f"Bad character in URI {what}")
        i += 1


def _unescape(text: str) -> str:
    """Decode %HH escapes (already validated); bytes that are not UTF-8 survive as surrogates."""
    if "%" not in text:
        return text
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "%":
            out.append(int(text[i + 1 : i + 3], 16))
            i += 3
        else:
            out += text[i].encode("utf-8", "surrogateescape")
            i += 1
    return out.decode("utf-8", "surrogateescape")


def _escape(text: str, allowed: frozenset[str]) -> str:
    """Escape every char not in ``allowed`` as %HH of its UTF-8 bytes (§19.1.2)."""
    out: list[str] = []
    for c in text:
        if c in allowed:
            out.append(c)
        else:
            out.extend(f"%{b:02X}" for b in c.encode("utf-8", "surrogateescape"))
    return "".join(out)


def parse_host(text: str) -> str:
    """host = hostname / IPv4address / IPv6reference (§25.1), lower-cased."""
    if text.startswith("["):
        if _IPV6_RE.fullmatch(text) is None or text.count(":") < 2:
            raise SipError(400, "Bad host in URI")
    elif _HOSTNAME_RE.fullmatch(text) is None:
        raise SipError(400, "Bad host in URI")
    return text.lower()


def _split_hostport(text: str) -> tuple[str, int | None]:
    """hostport = host [ ":" port ] (§25.1)."""
    if text.startswith("["):
        end = text.find("]")
        host_text, rest = (text, "") if end < 0 else (text[: end + 1], text[end + 1 :])
    else:
        host_text, colon, port_text = text.partition(":")
        rest = colon + port_text
    port: int | None = None
    if rest:
        if not rest.startswith(":"):
            raise SipError(400, "Bad host in URI")
        port = parse_uint(rest[1:], limit=65535, what="Bad port in URI")
    return parse_host(host_text), port


def _parse_uri_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """uri-parameters = *( ";" uri-parameter ) (§19.1.1); names lower-cased."""
    params: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not name:
            raise SipError(400, "Bad URI parameter")
        _check_chars(name, _PARAM_CHARS, "parameter")
        _check_chars(value, _PARAM_CHARS, "parameter")
        params.append((name.lower(), value if eq else None))
    return tuple(params)


def _parse_uri_headers(text: str) -> tuple[tuple[str, str], ...]:
    """headers = "?" header *( "&" header ) (§19.1.1); values kept escaped."""
    headers: list[tuple[str, str]] = []
    for item in text.split("&"):
        name, eq, value = item.partition("=")
        if not name or not eq:
            raise SipError(400, "Bad URI header")
        _check_chars(name, _HEADER_CHARS, "header")
        _check_chars(value, _HEADER_CHARS, "header")
        headers.append((name, value))
    return tuple(headers)


def _split_userinfo(rest: str) -> tuple[str | None, str | None, str]:
    """Split ``[userinfo "@"] hostport...``; '@' can only delimit userinfo (§25.1)."""
    if "@" not in rest:
        return None, None, rest
    userinfo, _, after = rest.partition("@")
    if "@" in after:
        raise SipError(400, "Bad URI")
    user_text, colon, password_text = userinfo.partition(":")
    if not user_text:
        raise SipError(400, "Bad user in URI")
    _check_chars(user_text, _USER_CHARS, "user")
    _check_chars(password_text, _PASSWORD_CHARS, "password")
    password = _unescape(password_text) if colon else None
    return _unescape(user_text), password, after


@dataclass(frozen=True)
class SipUri:
    """A sip: or sips: URI (RFC 3261 §19.1.1)."""

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse SIP-URI / SIPS-URI (§25.1).

        SipError(416) for another scheme (§8.2.2.1), SipError(400) for bad syntax.
        Whitespace is never part of a URI, so any makes it invalid.
        """
        scheme = uri_scheme(text)
        if scheme not in ("sip", "sips"):
            raise SipError(416, "Unsupported URI Scheme")
        rest = text[len(scheme) + 1 :]
        if not rest.isascii() or not rest.isprintable() or " " in rest:
            raise SipError(400, "Bad character in URI")
        user, password, rest = _split_userinfo(rest)
        rest, qmark, header_text = rest.partition("?")
        hostport, semi, param_text = rest.partition(";")
        host, port = _split_hostport(hostport)
        params = _parse_uri_params(param_text) if semi else ()
        headers = _parse_uri_headers(header_text) if qmark else ()
        return cls(scheme, user, password, host, port, params, headers)

    def param(self, name: str) -> str | None:
        """Value of URI parameter ``name`` (case-insensitive); '' for a flag like ;lr."""
        key = name.lower()
        for pname, value in self.params:
            if pname == key:
                return "" if value is None else value
        return None

    def has_param(self, name: str) -> bool:
        """True if the URI carries parameter ``name`` (case-insensitive)."""
        return self.param(name) is not None

    def __str__(self) -> str:
        """Canonical text; user and password re-escaped where §25.1 requires it."""
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(_escape(self.user, _USER_CHARS))
            if self.password is not None:
                out += [":", _escape(self.password, _PASSWORD_CHARS)]
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        for name, value in self.params:
            out.append(f";{name}" if value is None else f";{name}={value}")
        if self.headers:
            out.append("?" + "&".join(f"{n}={v}" for n, v in self.headers))
        return "".join(out)

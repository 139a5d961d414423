"""SIP digest authentication, server side (RFC 3261 §22, RFC 7616, RFC 2617, RFC 8760).

Sans-IO: the caller passes ``now`` and injects randomness. Nonces are stateless
(§3.3 of RFC 7616 leaves their construction to the server): the timestamp, some
random bytes and an HMAC over both and the realm, so any process that shares the
secret can check a nonce it never issued. The only state is the highest nonce
count seen per nonce, which is bounded and reaped (DESIGN.md, Style rule 8).

Only ``qop=auth`` is offered and accepted; ``auth-int``, the ``-sess``
algorithms and ``userhash`` are not offered, so a response using them is refused.
An unknown user and a wrong password take the same path and produce the same
challenge, so the 401 tells a peer nothing about which user names exist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import SipError, SipUsageError
from .message import SipMessage
from .uri import LWS, TOKEN_CHARS, is_token

__all__ = [
    "ALGORITHMS",
    "AUTH_REASONS",
    "AuthResult",
    "Credentials",
    "DigestAuthenticator",
    "DigestChallenge",
    "DigestResponse",
    "ha1",
    "parse_authorization",
    "request_digest",
    "security_log_line",
]

#: Offered algorithms, strongest first (RFC 8760 §2.4: one challenge each, preferred first).
ALGORITHMS: tuple[str, ...] = ("SHA-256", "MD5")
_HASHES: dict[str, Callable[[bytes], hashlib._Hash]] = {
    "SHA-256": hashlib.sha256,
    "MD5": hashlib.md5,
}
#: Parameters whose value is a quoted-string in RFC 7616 §3.4 and RFC 3261 §25.1.
_QUOTED_ONLY = frozenset({"username", "realm", "nonce", "uri", "response", "cnonce", "opaque"})
_REQUIRED = ("username", "realm", "nonce", "uri", "response")
_HEX = frozenset("0123456789abcdefABCDEF")
_TS_LEN = 8
_RANDOM_LEN = 16
_MAC_LEN = 16
_NONCE_LEN = _TS_LEN + _RANDOM_LEN + _MAC_LEN
#: A nonce stamped this far in the future is forged or from a badly skewed peer node.
_FUTURE_SKEW = 5.0

#: Every value of AuthResult.reason.
AUTH_REASONS = frozenset(
    {
        "ok",
        "no credentials",
        "unknown user",
        "bad password",
        "stale nonce",
        "bad nonce",
        "replayed nonce count",
        "wrong realm",
        "unsupported algorithm",
        "uri mismatch",
        "malformed",
    }
)


def _hex_digest(algorithm: str, text: str) -> str:
    return _HASHES[algorithm](text.encode("utf-8", "surrogateescape")).hexdigest()


def ha1(username: str, realm: str, password: str, algorithm: str) -> str:
    """HA1 = H(username ":" realm ":" password) (RFC 7616 §3.4.2, RFC 2617 §3.2.2.2)."""
    if algorithm not in _HASHES:
        raise SipUsageError(f"unsupported digest algorithm {algorithm!r}")
    return _hex_digest(algorithm, f"{username}:{realm}:{password}")


@dataclass(frozen=True)
class Credentials:
    """What the user database stores: HA1 per algorithm, never the password itself."""

    username: str
    realm: str
    ha1_md5: str
    ha1_sha256: str

    @classmethod
    def from_password(cls, username: str, realm: str, password: str) -> Credentials:
        """Provisioning helper: both HA1 values of a password."""
        return cls(
            username,
            realm,
            ha1(username, realm, password, "MD5"),
            ha1(username, realm, password, "SHA-256"),
        )

    def ha1_for(self, algorithm: str) -> str:
        return self.ha1_sha256 if algorithm == "SHA-256" else self.ha1_md5


@dataclass(frozen=True)
class DigestChallenge:
    """One WWW-Authenticate / Proxy-Authenticate challenge (RFC 7616 §3.3, RFC 3261 §22.1)."""

    realm: str
    nonce: str
    opaque: str
    algorithm: str
    qop: str = "auth"
    stale: bool = False

    def header_value(self) -> str:
        """``Digest realm="...", nonce="...", ...``; stale only when true (RFC 7616 §3.3)."""
        parts = [
            f"realm={_quote(self.realm)}",
            f"nonce={_quote(self.nonce)}",
            f"opaque={_quote(self.opaque)}",
            f"algorithm={self.algorithm}",
            f"qop={_quote(self.qop)}",
        ]
        if self.stale:
            parts.append("stale=true")
        return "Digest " + ", ".join(parts)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class DigestResponse:
    """The fields of an Authorization / Proxy-Authorization digest (RFC 7616 §3.4).

    Values are unquoted. ``algorithm`` is None when absent (MD5 is then implied,
    RFC 7616 §3.3); ``qop``, ``nc`` and ``cnonce`` come together or not at all.
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str | None = None
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    userhash: bool = False


# -- parsing -------------------------------------------------------------------


def _skip_lws(text: str, i: int) -> int:
    while i < len(text) and text[i] in LWS:
        i += 1
    return i


def _read_token(text: str, i: int) -> tuple[str, int]:
    start = i
    while i < len(text) and text[i] in TOKEN_CHARS:
        i += 1
    return text[start:i], i


def _read_quoted(text: str, i: int) -> tuple[str, int]:
    """quoted-string = DQUOTE *(qdtext / quoted-pair) DQUOTE (RFC 3261 §25.1)."""
    out: list[str] = []
    i += 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            if i + 1 >= len(text) or text[i + 1] in "\r\n":
                break
            c = text[i + 1]
            i += 1
        elif c < " " and c != "\t" or c == "\x7f":
            raise SipError(400, "Bad Authorization header")
        out.append(c)
        i += 1
    raise SipError(400, "Bad Authorization header")


def _read_param(text: str, i: int) -> tuple[str, str, bool, int]:
    """auth-param = token LWS "=" LWS ( token / quoted-string ); returns name, value, quoted, end."""
    name, i = _read_token(text, _skip_lws(text, i))
    i = _skip_lws(text, i)
    if not name or text[i : i + 1] != "=":
        raise SipError(400, "Bad Authorization header")
    i = _skip_lws(text, i + 1)
    if text[i : i + 1] == '"':
        value, i = _read_quoted(text, i)
        return name.lower(), value, True, i
    value, i = _read_token(text, i)
    if not value:
        raise SipError(400, "Bad Authorization header")
    return name.lower(), value, False, i


def _split_scheme(value: str) -> str:
    """Check the ``Digest`` scheme (RFC 3261 §22.4: Basic is not allowed) and return the rest."""
    text = value.strip(LWS)
    scheme, i = _read_token(text, 0)
    if scheme.lower() != "digest":
        raise SipError(400, "Unsupported authorization scheme")
    if i >= len(text) or text[i] not in LWS:
        raise SipError(400, "Bad Authorization header")
    return text[i:]


def _parse_params(text: str) -> dict[str, tuple[str, bool]]:
    """Comma-separated auth-params; a repeated name is an error (RFC 7616 §3.4)."""
    params: dict[str, tuple[str, bool]] = {}
    i = 0
    while True:
        name, value, quoted, i = _read_param(text, i)
        if name in params:
            raise SipError(400, "Duplicate Authorization parameter")
        params[name] = (value, quoted)
        i = _skip_lws(text, i)
        if i >= len(text):
            return params
        if text[i] != ",":
            raise SipError(400, "Bad Authorization header")
        i += 1


def _token_param(params: dict[str, tuple[str, bool]], name: str) -> str | None:
    """A token-valued parameter (algorithm, qop, nc), quoted or not.

    Interop: RFC 7616 §3.4 has these unquoted, but clients that copy the
    challenge's ``qop="auth"`` send it quoted (RFC 2617 erratum 1959 allowed
    for it); the quoted content must still be a token.
    """
    if name not in params:
        return None
    value, _ = params[name]
    if not is_token(value):
        raise SipError(400, f"Bad {name} in Authorization header")
    return value


def _check_fields(params: dict[str, tuple[str, bool]]) -> None:
    for name in _REQUIRED:
        if name not in params:
            raise SipError(400, f"Missing {name} in Authorization header")
    for name in _QUOTED_ONLY:
        if name in params and not params[name][1]:
            raise SipError(400, f"Unquoted {name} in Authorization header")
    response = params["response"][0]
    if not response or any(c not in _HEX for c in response):
        raise SipError(400, "Bad response in Authorization header")


def _check_qop(qop: str | None, nc: str | None, cnonce: str | None) -> None:
    """qop, nc and cnonce go together (RFC 7616 §3.4); nc is 8LHEX."""
    if qop is None:
        if nc is not None or cnonce is not None:
            raise SipError(400, "nc or cnonce without qop in Authorization header")
        return
    if nc is None or cnonce is None:
        raise SipError(400, "qop without nc or cnonce in Authorization header")
    if len(nc) != 8 or any(c not in _HEX for c in nc):
        raise SipError(400, "Bad nc in Authorization header")


def parse_authorization(value: str) -> DigestResponse:
    """Parse a ``Digest`` credentials value (RFC 3261 §25.1 digest-response, RFC 7616 §3.4).

    Returns the fields or raises ``SipError(400)`` for another scheme, bad
    quoting, a repeated or missing parameter, or a non-hex response/nc.
    Unknown parameters are ignored (RFC 7616 §3.4 auth-param).
    """
    params = _parse_params(_split_scheme(value))
    _check_fields(params)
    qop, nc = _token_param(params, "qop"), _token_param(params, "nc")
    cnonce = params["cnonce"][0] if "cnonce" in params else None
    _check_qop(qop, nc, cnonce)
    userhash = _token_param(params, "userhash")
    return DigestResponse(
        username=params["username"][0],
        realm=params["realm"][0],
        nonce=params["nonce"][0],
        uri=params["uri"][0],
        response=params["response"][0].lower(),
        algorithm=_token_param(params, "algorithm"),
        qop=qop,
        nc=nc,
        cnonce=cnonce,
        opaque=params["opaque"][0] if "opaque" in params else None,
        userhash=userhash is not None and userhash.lower() == "true",
    )


# -- verification --------------------------------------------------------------


@dataclass(frozen=True)
class AuthResult:
    """Outcome of ``DigestAuthenticator.verify``.

    ``username`` is the authenticated user when ``ok``; on failure it is the name
    the peer claimed (for logs only) or None. ``reason`` is for logs, never for
    the peer: every failure but 'malformed' answers the same 401 challenge.
    """

    ok: bool
    username: str | None
    reason: str

    @property
    def stale(self) -> bool:
        """True when the new challenge must carry ``stale=true`` (RFC 7616 §3.3)."""
        return self.reason == "stale nonce"


def _fail(reason: str, username: str | None = None) -> AuthResult:
    return AuthResult(False, username, reason)


def request_digest(
    algorithm: str, ha1_hex: str, method: str, response: DigestResponse
) -> str:
    """KD(HA1, nonce:nc:cnonce:qop:H(method:uri)) for qop=auth (RFC 7616 §3.4.1, RFC 2617 §3.2.2.1)."""
    ha2 = _hex_digest(algorithm, f"{method}:{response.uri}")
    data = f"{ha1_hex}:{response.nonce}:{response.nc}:{response.cnonce}:{response.qop}:{ha2}"
    return _hex_digest(algorithm, data)


class DigestAuthenticator:
    """Issues challenges and checks credentials for one realm (RFC 3261 §22.2, §22.3).

    Stateless nonces: ``base64(timestamp || random || HMAC(secret, timestamp ||
    random || realm))``, valid for ``nonce_ttl`` seconds; past that, a request
    whose digest is right gets ``stale=true`` so the phone retries without asking
    the agent for a password (RFC 7616 §3.3).

    Nonce-count replay protection (RFC 7616 §3.4, §5.12): the highest nc seen per
    nonce is kept in a bounded LRU table, only after the digest checked out (so
    forged requests cannot fill it); an nc not above the last one is refused. An
    entry is dropped once its nonce has expired. When the table is full the
    least recently used entry is evicted and every nonce at least that old is
    then treated as stale, so eviction can never reopen a replay window.
    """

    def __init__(
        self,
        realm: str,
        *,
        secret: bytes,
        lookup: Callable[[str], Credentials | None],
        nonce_ttl: float = 300,
        random_bytes: Callable[[int], bytes],
        max_nonces: int = 50_000,
        algorithms: Sequence[str] = ALGORITHMS,
    ) -> None:
        if len(secret) < 16:
            raise SipUsageError("the nonce secret needs at least 16 bytes")
        if nonce_ttl <= 0 or max_nonces <= 0:
            raise SipUsageError("nonce_ttl and max_nonces must be positive")
        if not algorithms or any(a not in ALGORITHMS for a in algorithms):
            raise SipUsageError(f"digest algorithms must be taken from {', '.join(ALGORITHMS)}")
        self.realm = realm
        self.algorithms = tuple(algorithms)
        self._secret = secret
        self._lookup = lookup
        self._ttl = nonce_ttl
        self._random = random_bytes
        self._max_nonces = max_nonces
        # nonce -> (highest nc, expiry); order = least recently used first.
        self._nc: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._evicted_upto = float("-inf")
        self._opaque = hmac.new(secret, b"opaque:" + realm.encode(), hashlib.sha256).hexdigest()[:32]
        dummy = base64.b64encode(hmac.new(secret, b"dummy", hashlib.sha256).digest()).decode()
        self._dummy = Credentials.from_password("\x00", realm, dummy)

    # -- challenges ------------------------------------------------------------

    def challenges(self, now: float, *, stale: bool = False) -> list[DigestChallenge]:
        """One challenge per algorithm, SHA-256 first (RFC 8760 §2.4), sharing a fresh nonce."""
        nonce = self._new_nonce(now)
        return [
            DigestChallenge(self.realm, nonce, self._opaque, algorithm, "auth", stale)
            for algorithm in self.algorithms
        ]

    def _mac(self, stamp: bytes, rand: bytes) -> bytes:
        msg = stamp + rand + self.realm.encode("utf-8", "surrogateescape")
        return hmac.new(self._secret, msg, hashlib.sha256).digest()[:_MAC_LEN]

    def _new_nonce(self, now: float) -> str:
        rand = self._random(_RANDOM_LEN)
        if len(rand) != _RANDOM_LEN:
            raise SipUsageError("random_bytes returned the wrong length")
        stamp = int(now * 1000).to_bytes(_TS_LEN, "big", signed=True)
        return base64.b64encode(stamp + rand + self._mac(stamp, rand)).decode("ascii")

    def _nonce_time(self, nonce: str, now: float) -> float | None:
        """Issue time of a nonce we made, or None if it is forged or garbled."""
        try:
            raw = base64.b64decode(nonce.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error):
            return None
        if len(raw) != _NONCE_LEN:
            return None
        stamp, rand, mac = raw[:_TS_LEN], raw[_TS_LEN:-_MAC_LEN], raw[-_MAC_LEN:]
        if not hmac.compare_digest(mac, self._mac(stamp, rand)):
            return None
        issued = int.from_bytes(stamp, "big", signed=True) / 1000
        return None if issued > now + _FUTURE_SKEW else issued

    # -- verification ------------------------------------------------------------

    def verify(self, request: SipMessage, now: float, *, header: str = "authorization") -> AuthResult:
        """Check the request's credentials (RFC 3261 §22.2, §22.3; RFC 7616 §3.4-§3.5).

        ``header`` is 'authorization' for a registrar/UAS (401) or
        'proxy-authorization' for a proxy (407). Several headers may be present
        (one per realm, §22.3); the first for our realm is used.
        """
        if not request.is_request:
            raise SipUsageError("verify() needs a request")
        self._reap_oldest(now)
        values = request.get_all(header)
        if not values:
            return _fail("no credentials")
        parsed = self._pick(values)
        if isinstance(parsed, AuthResult):
            return parsed
        return self._check(parsed, request, now)

    def _pick(self, values: list[str]) -> DigestResponse | AuthResult:
        """The first credentials for our realm; 'malformed' or 'wrong realm' otherwise."""
        result = _fail("wrong realm")
        for value in values:
            try:
                parsed = parse_authorization(value)
            except SipError:
                result = _fail("malformed")
                continue
            if parsed.realm == self.realm:
                return parsed
        return result

    def _precheck(self, resp: DigestResponse, request: SipMessage, now: float) -> str | None:
        """Checks that need no credentials; the failure reason, or None."""
        if resp.qop is None or resp.qop.lower() != "auth" or resp.userhash:
            return "malformed"
        if _algorithm(resp) is None:
            return "unsupported algorithm"
        if resp.uri != request.uri:
            return "uri mismatch"
        if self._nonce_time(resp.nonce, now) is None:
            return "bad nonce"
        if resp.opaque is not None and resp.opaque != self._opaque:
            return "bad nonce"
        return None

    def _check(self, resp: DigestResponse, request: SipMessage, now: float) -> AuthResult:
        reason = self._precheck(resp, request, now)
        if reason is not None:
            return _fail(reason, resp.username)
        algorithm = _algorithm(resp)
        assert algorithm is not None and request.method is not None
        creds = self._lookup(resp.username)
        known = creds is not None and creds.realm == self.realm
        # An unknown user is checked against a dummy credential so that both
        # failures cost the same work and yield the same challenge.
        used = creds if known and creds is not None else self._dummy
        expected = request_digest(algorithm, used.ha1_for(algorithm), request.method, resp)
        if not hmac.compare_digest(expected, resp.response) or not known:
            return _fail("bad password" if known else "unknown user", resp.username)
        return self._check_fresh(resp, now)

    def _check_fresh(self, resp: DigestResponse, now: float) -> AuthResult:
        """Nonce age and nonce count, once the digest is known to be right."""
        issued = self._nonce_time(resp.nonce, now)
        assert issued is not None and resp.nc is not None
        expires = issued + self._ttl
        entry = self._nc.get(resp.nonce)
        if now >= expires or (entry is None and issued <= self._evicted_upto):
            return _fail("stale nonce", resp.username)
        nc = int(resp.nc, 16)
        if entry is not None and nc <= entry[0]:
            return _fail("replayed nonce count", resp.username)
        self._remember(resp.nonce, nc, expires, issued)
        return AuthResult(True, resp.username, "ok")

    def _remember(self, nonce: str, nc: int, expires: float, issued: float) -> None:
        self._nc[nonce] = (nc, expires)
        self._nc.move_to_end(nonce)
        while len(self._nc) > self._max_nonces:
            _, (_, old_expires) = self._nc.popitem(last=False)
            self._evicted_upto = max(self._evicted_upto, old_expires - self._ttl)

    def _reap_oldest(self, now: float) -> None:
        """Cheap per-request reaping: expired entries at the least recently used end."""
        while self._nc:
            nonce, (_, expires) = next(iter(self._nc.items()))
            if expires > now:
                return
            del self._nc[nonce]

    def reap(self, now: float) -> int:
        """Drop every nonce-count entry whose nonce has expired; returns how many.

        Meant for a periodic timer; ``verify`` only trims the least recently used end.
        """
        expired = [n for n, (_, expires) in self._nc.items() if expires <= now]
        for nonce in expired:
            del self._nc[nonce]
        return len(expired)

    @property
    def nonce_entries(self) -> int:
        """Gauge: nonce-count entries held."""
        return len(self._nc)


def _algorithm(resp: DigestResponse) -> str | None:
    """Canonical offered algorithm named by the response (absent means MD5, RFC 7616 §3.3)."""
    if resp.algorithm is None:
        return "MD5"
    for name in ALGORITHMS:
        if resp.algorithm.upper() == name:
            return name
    return None


# -- logging -------------------------------------------------------------------

_LOG_SAFE = frozenset(TOKEN_CHARS | frozenset("@:[]/"))


def _log_word(text: str | None, limit: int = 64) -> str:
    """A value safe to put unquoted in a key=value line: other chars become %XX."""
    if not text:
        return "-"
    out = "".join(c if c in _LOG_SAFE else f"%{ord(c) & 0xFF:02X}" for c in text[:limit])
    return out + ("..." if len(text) > limit else "")


def _log_quoted(text: str | None, limit: int = 100) -> str:
    if not text:
        return '"-"'
    cleaned = "".join(c if " " <= c < "\x7f" and c not in '"\\' else "?" for c in text[:limit])
    return f'"{cleaned}"'


def security_log_line(result: AuthResult, peer_ip: str, user_agent: str | None) -> str:
    """One fail2ban-friendly ``key=value`` line (DESIGN.md, Style rule 10).

    Carries the event, the reason, the claimed user, the peer address and the
    User-Agent; never a password, digest response or nonce. Peer-supplied text
    is escaped so it cannot forge fields or lines.
    """
    event = "auth_ok" if result.ok else "auth_failed"
    reason = result.reason.replace(" ", "_")
    return (
        f"event={event} reason={_log_word(reason)} user={_log_word(result.username)} "
        f"ip={_log_word(peer_ip)} ua={_log_quoted(user_agent)}"
    )

"""The registrar core: REGISTER processing and the location table (RFC 3261 §10.3).

Sans-IO: ``register`` takes the already authenticated user, where the request
came from and ``now``, and returns the status, the headers to add and the events
the ACD needs (an agent's softphone became reachable or not). Bindings live
behind the ``BindingStore`` protocol (memory here, Redis later, DESIGN.md Style
rule 7); every update of one request is computed first and committed with one
``put``, so a request either applies entirely or not at all (§10.3 step 8).

Status choices:

* 400 — '*' with other contacts or without ``Expires: 0`` (§10.3 step 6), a
  bad q value, a non-SIP contact or any header that does not parse;
* 403 — the To user is not the authenticated user (§10.3 step 3: no third-party
  registration) or the request would leave the user with more than
  ``max_contacts`` bindings (a fixed per-user limit: retrying will not help);
* 423 — an interval below ``min_expires`` (§10.3 step 7), with Min-Expires;
* 500 — a Call-ID/CSeq ordering failure: same Call-ID and a CSeq not higher
  than the binding's (§10.3 steps 6-7, "the update MUST be aborted and the
  request fails", committed atomically per step 8);
* 503 — the store is full (too many users), with Retry-After (Style rule 8).
"""

from __future__ import annotations

import email.utils
import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from .errors import SipError, SipUsageError
from .headers import NameAddr, quote_string, unquote_string
from .message import SipMessage
from .uri import SipUri

__all__ = [
    "Binding",
    "BindingStore",
    "BindingStoreFull",
    "MemoryBindingStore",
    "RegisterOutcome",
    "Registrar",
    "RegistrarEvent",
    "same_binding",
    "uri_equal",
]

EventKind = Literal["registered", "refreshed", "unregistered", "expired", "reachable", "unreachable"]
#: §20.19 / §20.10: a malformed interval SHOULD be treated as one hour.
_MALFORMED_EXPIRES = 3600
_MAX_DELTA = 2**32 - 1
_RETRY_AFTER = "60"


@dataclass(frozen=True)
class Binding:
    """One contact address bound to a user (§10.3 step 7 records Call-ID and CSeq).

    ``aor`` is the address-of-record as ``scheme:user@host``; bindings are kept
    per user part (the key passed to the store). ``source`` is (transport, ip,
    port) of the REGISTER as received, for reaching a phone behind NAT.
    ``reg_id`` (RFC 5626 §4.2) and ``updated_at`` extend the brief's fields.
    """

    aor: str
    contact: str
    expires_at: float
    q: float
    call_id: str
    cseq: int
    source: tuple[str, str, int]
    instance: str | None = None
    user_agent: str | None = None
    reg_id: str | None = None
    updated_at: float = 0.0


@dataclass(frozen=True)
class RegistrarEvent:
    """What changed for a user, for the ACD (agent reachable or not)."""

    user: str
    kind: EventKind
    contact: str | None = None


@dataclass(frozen=True)
class RegisterOutcome:
    """The answer to one REGISTER: status, headers to add, reason phrase, events."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    events: tuple[RegistrarEvent, ...] = ()
    reason: str | None = None


class BindingStoreFull(Exception):
    """The store cannot take more users or contacts; the registrar answers 503."""


class BindingStore(Protocol):
    """Where bindings live: memory for one process, Redis for several (DESIGN.md)."""

    def get(self, user: str, now: float) -> list[Binding]:
        """The user's unexpired bindings."""
        ...

    def put(self, user: str, bindings: list[Binding]) -> None:
        """Replace all of the user's bindings (an empty list removes the user).

        Raises BindingStoreFull if that would exceed the store's bounds.
        """
        ...

    def users(self) -> list[str]:
        """Users holding at least one binding (expired ones possibly not yet reaped)."""
        ...

    def reap(self, now: float) -> list[tuple[str, Binding]]:
        """Remove and return every binding with ``expires_at <= now``."""
        ...

    def next_expiry(self) -> float | None:
        """The earliest ``expires_at`` held, or None when empty."""
        ...


class MemoryBindingStore:
    """Bounded in-memory store; a heap of (expiry, user) finds what to reap."""

    def __init__(self, *, max_users: int = 100_000, max_contacts_per_user: int = 32) -> None:
        self.max_users = max_users
        self.max_contacts_per_user = max_contacts_per_user
        self._bindings: dict[str, list[Binding]] = {}
        self._heap: list[tuple[float, str]] = []
        self._first: dict[str, float] = {}  # user: the earliest expiry of its bindings

    def get(self, user: str, now: float) -> list[Binding]:
        return [b for b in self._bindings.get(user, ()) if b.expires_at > now]

    def put(self, user: str, bindings: list[Binding]) -> None:
        if not bindings:
            self._bindings.pop(user, None)
            self._first.pop(user, None)
            return
        if len(bindings) > self.max_contacts_per_user:
            raise BindingStoreFull(f"more than {self.max_contacts_per_user} contacts")
        if user not in self._bindings and len(self._bindings) >= self.max_users:
            raise BindingStoreFull(f"more than {self.max_users} users")
        self._bindings[user] = list(bindings)
        first = self._first[user] = min(b.expires_at for b in bindings)
        heapq.heappush(self._heap, (first, user))
        if len(self._heap) > 4 * len(self._bindings) + 64:
            self._rebuild_heap()

    def _rebuild_heap(self) -> None:
        """Drop superseded heap entries so the heap stays proportional to the users."""
        self._heap = [(min(b.expires_at for b in bs), u) for u, bs in self._bindings.items()]
        heapq.heapify(self._heap)

    def users(self) -> list[str]:
        return list(self._bindings)

    def reap(self, now: float) -> list[tuple[str, Binding]]:
        removed: list[tuple[str, Binding]] = []
        while self._heap and self._heap[0][0] <= now:
            _, user = heapq.heappop(self._heap)
            bindings = self._bindings.get(user)
            if not bindings:
                continue
            keep = [b for b in bindings if b.expires_at > now]
            removed += [(user, b) for b in bindings if b.expires_at <= now]
            if keep:
                self._bindings[user] = keep
                first = self._first[user] = min(b.expires_at for b in keep)
                heapq.heappush(self._heap, (first, user))
            else:
                del self._bindings[user]
                del self._first[user]
        return removed

    def next_expiry(self) -> float | None:
        while self._heap:
            expiry, user = self._heap[0]
            if self._first.get(user) == expiry:  # called per SIP message: no scan
                return expiry
            heapq.heappop(self._heap)  # superseded by a later put
        return None

    @property
    def bindings_held(self) -> int:
        """Gauge: bindings held (not ``__len__``: an empty store must stay truthy)."""
        return sum(len(bs) for bs in self._bindings.values())


# -- URI comparison (§19.1.4) --------------------------------------------------

#: In one URI only, these never match (§19.1.4; transport per its "can resolve to
#: different transports" example, as a component with a default value).
_ALWAYS_COMPARED = ("transport", "user", "ttl", "method", "maddr")


def _params_equal(a: SipUri, b: SipUri) -> bool:
    """§19.1.4: parameters in both must match; those above in one only never match."""
    pa = {n: (v or "").lower() for n, v in a.params}
    pb = {n: (v or "").lower() for n, v in b.params}
    if any(pa[n] != pb[n] for n in pa.keys() & pb.keys()):
        return False
    return all((n in pa) == (n in pb) for n in _ALWAYS_COMPARED)


def uri_equal(a: str, b: str) -> bool:
    """SIP URI equivalence (§19.1.4); other schemes compare as exact text."""
    try:
        ua, ub = SipUri.parse(a), SipUri.parse(b)
    except SipError:
        return a == b
    if (ua.scheme, ua.user, ua.password, ua.host, ua.port) != (
        ub.scheme,
        ub.user,
        ub.password,
        ub.host,
        ub.port,
    ):
        return False
    headers_a = sorted((n.lower(), v) for n, v in ua.headers)
    headers_b = sorted((n.lower(), v) for n, v in ub.headers)
    return headers_a == headers_b and _params_equal(ua, ub)


# -- request parsing -----------------------------------------------------------


def _delta_seconds(text: str | None) -> int | None:
    """delta-seconds, capped at 2**32-1; malformed counts as 3600 (§20.19, §20.10)."""
    if text is None:
        return None
    text = text.strip(" \t")
    if not text or not text.isascii() or not text.isdigit():
        return _MALFORMED_EXPIRES
    digits = text.lstrip("0") or "0"
    return _MAX_DELTA if len(digits) > 10 else min(int(digits), _MAX_DELTA)


def _qvalue(text: str | None) -> float:
    """qvalue = ("0" ["." 0*3DIGIT]) / ("1" ["." 0*3("0")]) (§20.10, §25.1); absent is 1.0."""
    if text is None:
        return 1.0
    whole, dot, frac = text.partition(".")
    ok = (
        whole in ("0", "1")
        and len(frac) <= 3
        and frac.isascii()
        and (frac.isdigit() or not frac)
        and (whole == "0" or not frac.strip("0"))
    )
    if not ok:
        raise SipError(400, "Bad q value")
    return float(text if frac or not dot else whole)


@dataclass(frozen=True)
class _Wanted:
    """One Contact of the request with its requested interval (§10.3 step 7)."""

    uri: str
    expires: int
    q: float
    instance: str | None
    reg_id: str | None


def _param_text(contact: NameAddr, name: str) -> str | None:
    value = contact.param(name)
    if value is not None and value.startswith('"'):
        return unquote_string(value)
    return value


def _wanted(contact: NameAddr, header_expires: int | None, default: int) -> _Wanted:
    if contact.uri.split(":", 1)[0].lower() not in ("sip", "sips"):
        raise SipError(400, "Contact is not a SIP URI")
    expires = _delta_seconds(contact.param("expires"))
    if expires is None:
        expires = default if header_expires is None else header_expires
    return _Wanted(
        contact.uri,
        expires,
        _qvalue(contact.param("q")),
        _param_text(contact, "+sip.instance"),
        contact.param("reg-id"),
    )


def _aor(request: SipMessage) -> tuple[str, str | None]:
    """The To address-of-record as ``scheme:user@host`` and its user part (§10.3 step 5)."""
    uri = request.to.sip_uri()
    user = "" if uri.user is None else f"{uri.user}@"
    return f"{uri.scheme}:{user}{uri.host}", uri.user


def same_binding(binding: Binding, wanted: _Wanted) -> bool:
    """Does this Contact address an existing binding?

    §10.3 step 7 compares URIs (§19.1.4). With RFC 5626 outbound, a Contact
    carrying ``+sip.instance`` and ``reg-id`` names the flow by those two
    instead (RFC 5626 §6), so a softphone whose NAT mapping or IP changed
    replaces its old binding instead of adding a second one.
    """
    if wanted.instance is not None and wanted.reg_id is not None:
        return binding.instance == wanted.instance and binding.reg_id == wanted.reg_id
    return uri_equal(binding.contact, wanted.uri)


class _Abort(Exception):
    """A §10.3 step that ends processing with this outcome."""

    def __init__(self, outcome: RegisterOutcome) -> None:
        super().__init__(outcome.status)
        self.outcome = outcome


def _fail(status: int, reason: str | None = None, *headers: tuple[str, str]) -> _Abort:
    return _Abort(RegisterOutcome(status, tuple(headers), (), reason))


class Registrar:
    """REGISTER processing (§10.3) over a BindingStore; the caller authenticates first."""

    def __init__(
        self,
        store: BindingStore,
        *,
        min_expires: int = 60,
        max_expires: int = 3600,
        default_expires: int = 3600,
        max_contacts: int = 10,
    ) -> None:
        if not 0 < min_expires <= default_expires <= max_expires or max_contacts < 1:
            raise SipUsageError("need 0 < min_expires <= default_expires <= max_expires")
        self.store = store
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.max_contacts = max_contacts

    # -- REGISTER --------------------------------------------------------------

    def register(
        self,
        request: SipMessage,
        user: str,
        source: tuple[str, str, int],
        now: float,
        *,
        wall_time: float | None = None,
    ) -> RegisterOutcome:
        """Process an authenticated REGISTER for ``user`` (§10.3 steps 3 and 5-8).

        ``source`` is (transport, ip, port) the request came from. The Date
        header is made from ``wall_time`` (seconds since the epoch), or from
        ``now`` when that is already wall-clock time. Never raises for peer
        input: a bad header becomes a 400 outcome with a reason.
        """
        if request.method != "REGISTER":
            raise SipUsageError("register() needs a REGISTER request")
        try:
            return self._register(request, user, source, now, wall_time)
        except _Abort as abort:
            return abort.outcome
        except SipError as exc:
            return RegisterOutcome(exc.status, (), (), exc.reason)

    def _register(
        self,
        request: SipMessage,
        user: str,
        source: tuple[str, str, int],
        now: float,
        wall_time: float | None,
    ) -> RegisterOutcome:
        aor, to_user = _aor(request)
        if to_user != user:
            raise _fail(403, "Forbidden")
        old = self.store.get(user, now)
        contacts = request.contact
        header_expires = _delta_seconds(request.get("expires"))
        if contacts and contacts[0].star:
            new = self._remove_all(request, old, header_expires)
        elif contacts:
            wanted = [_wanted(c, header_expires, self.default_expires) for c in contacts]
            self._check_intervals(wanted)
            new = self._apply(request, aor, old, wanted, source, now)
        else:
            new = old  # a query (§10.2.3)
        if new is not old:
            self._commit(user, new)
        events = _diff(user, old, new)
        return RegisterOutcome(200, self._ok_headers(new, now, wall_time), events)

    def _remove_all(
        self, request: SipMessage, old: list[Binding], header_expires: int | None
    ) -> list[Binding]:
        """Contact '*' (§10.3 step 6): only alone, only with Expires: 0."""
        if len(request.contact) != 1 or header_expires != 0 or request.contact[0].params:
            raise _fail(400, "Invalid wildcard Contact")
        call_id, cseq = request.call_id, request.cseq.seq
        for binding in old:
            if binding.call_id == call_id and cseq <= binding.cseq:
                raise _fail(500, "Out of order REGISTER")
        return []

    def _check_intervals(self, wanted: list[_Wanted]) -> None:
        """423 when 0 < interval < min_expires and below one hour (§10.3 step 7)."""
        if any(0 < w.expires < self.min_expires and w.expires < 3600 for w in wanted):
            raise _fail(423, "Interval Too Brief", ("Min-Expires", str(self.min_expires)))

    def _apply(
        self,
        request: SipMessage,
        aor: str,
        old: list[Binding],
        wanted: list[_Wanted],
        source: tuple[str, str, int],
        now: float,
    ) -> list[Binding]:
        """Each Contact in turn (§10.3 step 7), on a tentative copy of the bindings."""
        call_id, cseq = request.call_id, request.cseq.seq
        user_agent = request.get("user-agent")
        current = list(old)
        for w in wanted:
            match = next((b for b in current if same_binding(b, w)), None)
            if match is not None:
                # Only stored bindings are ordered; a repeat of a Contact within
                # this request simply replaces the tentative binding.
                stored = any(match is b for b in old)
                if stored and match.call_id == call_id and cseq <= match.cseq:
                    raise _fail(500, "Out of order REGISTER")
                current.remove(match)
            if w.expires == 0:
                continue
            current.append(
                Binding(
                    aor=aor,
                    contact=w.uri,
                    expires_at=now + min(w.expires, self.max_expires),
                    q=w.q,
                    call_id=call_id,
                    cseq=cseq,
                    source=source,
                    instance=w.instance,
                    user_agent=user_agent,
                    reg_id=w.reg_id,
                    updated_at=now,
                )
            )
        if len(current) > self.max_contacts:
            raise _fail(403, "Too Many Contacts")
        return current

    def _commit(self, user: str, bindings: list[Binding]) -> None:
        """Make every update of the request visible at once (§10.3 step 8)."""
        try:
            self.store.put(user, bindings)
        except BindingStoreFull as exc:
            raise _fail(503, "Registrar Full", ("Retry-After", _RETRY_AFTER)) from exc

    def _ok_headers(
        self, bindings: list[Binding], now: float, wall_time: float | None
    ) -> tuple[tuple[str, str], ...]:
        """One Contact per current binding with its remaining interval, and Date (§10.3 step 8)."""
        headers = [("Contact", _contact_value(b, now)) for b in _ordered(bindings)]
        date = email.utils.formatdate(now if wall_time is None else wall_time, usegmt=True)
        headers.append(("Date", date))
        return tuple(headers)

    # -- location service --------------------------------------------------------

    def contacts(self, user: str, now: float) -> list[Binding]:
        """Current bindings, highest q first, then most recently updated (§16.6 order)."""
        return _ordered(self.store.get(user, now))

    def reap(self, now: float) -> list[RegistrarEvent]:
        """Remove expired bindings: 'expired' each, 'unreachable' when a user has none left."""
        events: list[RegistrarEvent] = []
        touched: list[str] = []
        for user, binding in self.store.reap(now):
            events.append(RegistrarEvent(user, "expired", binding.contact))
            if user not in touched:
                touched.append(user)
        for user in touched:
            if not self.store.get(user, now):
                events.append(RegistrarEvent(user, "unreachable", None))
        return events

    def next_deadline(self) -> float | None:
        """When ``reap`` next has something to do (aioquic style), or None."""
        return self.store.next_expiry()


def _ordered(bindings: Iterable[Binding]) -> list[Binding]:
    return sorted(bindings, key=lambda b: (-b.q, -b.updated_at))


def _contact_value(binding: Binding, now: float) -> str:
    remaining = max(0, math.ceil(binding.expires_at - now))
    params = [f"expires={remaining}"]
    if binding.q != 1.0:
        params.append(f"q={binding.q:g}")
    if binding.instance is not None:
        params.append(f"+sip.instance={quote_string(binding.instance)}")
    if binding.reg_id is not None:
        params.append(f"reg-id={binding.reg_id}")
    return f"<{binding.contact}>;" + ";".join(params)


def _diff(user: str, old: list[Binding], new: list[Binding]) -> tuple[RegistrarEvent, ...]:
    """Events for the change from ``old`` to ``new`` bindings of one user."""
    events: list[RegistrarEvent] = []
    kept = {id(b) for b in new}
    before = {id(b) for b in old}
    for binding in old:
        if id(binding) not in kept and not any(_same_contact(binding, b) for b in new):
            events.append(RegistrarEvent(user, "unregistered", binding.contact))
    for binding in new:
        if id(binding) in before:
            continue
        kind: EventKind = (
            "refreshed" if any(_same_contact(b, binding) for b in old) else "registered"
        )
        events.append(RegistrarEvent(user, kind, binding.contact))
    if old and not new:
        events.append(RegistrarEvent(user, "unreachable", None))
    elif new and not old:
        events.append(RegistrarEvent(user, "reachable", None))
    return tuple(events)


def _same_contact(a: Binding, b: Binding) -> bool:
    if a.instance is not None and a.reg_id is not None:
        if (a.instance, a.reg_id) == (b.instance, b.reg_id):
            return True
    return uri_equal(a.contact, b.contact)


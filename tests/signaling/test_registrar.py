"""Registrar core (RFC 3261 §10.3) and the memory binding store."""

from __future__ import annotations

import itertools
import random

import pytest

from signaling.errors import SipUsageError
from signaling.message import SipMessage, make_request
from signaling.registrar import (
    Binding,
    BindingStoreFull,
    MemoryBindingStore,
    RegisterOutcome,
    Registrar,
    RegistrarEvent,
    uri_equal,
)

SOURCE = ("UDP", "198.51.100.7", 40123)
T0 = 1_000_000.0
_branches = itertools.count(1)


def register(
    *contacts: str,
    expires: str | None = None,
    call_id: str = "cid-1",
    cseq: int = 1,
    to: str = "<sip:1001@switchboard.test>",
    user_agent: str | None = "Zoiper 5.6",
) -> SipMessage:
    headers = [
        ("Via", f"SIP/2.0/UDP 192.168.1.20:5060;rport;branch=z9hG4bK{next(_branches)}"),
        ("From", f"{to};tag=f1"),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} REGISTER"),
        ("Max-Forwards", "70"),
    ]
    headers += [("Contact", c) for c in contacts]
    if expires is not None:
        headers.append(("Expires", expires))
    if user_agent is not None:
        headers.append(("User-Agent", user_agent))
    return make_request("REGISTER", "sip:switchboard.test", headers)


def make_registrar(store: MemoryBindingStore | None = None, **kwargs: int) -> Registrar:
    return Registrar(MemoryBindingStore() if store is None else store, **kwargs)


def contact_headers(outcome: RegisterOutcome) -> list[str]:
    return [v for n, v in outcome.headers if n == "Contact"]


def kinds(outcome: RegisterOutcome | list[RegistrarEvent]) -> list[tuple[str, str | None]]:
    events = outcome.events if isinstance(outcome, RegisterOutcome) else outcome
    return [(e.kind, e.contact) for e in events]


A = "sip:1001@192.168.1.20:5060"
B = "sip:1001@10.0.0.5:5062;transport=tcp"
C = "sip:1001@203.0.113.9:5070"


# -- basic lifecycle -----------------------------------------------------------------


def test_register_one() -> None:
    reg = make_registrar()
    outcome = reg.register(register(f"<{A}>"), "1001", SOURCE, T0)
    assert outcome.status == 200
    assert kinds(outcome) == [("registered", A), ("reachable", None)]
    assert contact_headers(outcome) == [f"<{A}>;expires=3600"]
    (binding,) = reg.contacts("1001", T0)
    assert binding == Binding(
        aor="sip:1001@switchboard.test", contact=A, expires_at=T0 + 3600, q=1.0,
        call_id="cid-1", cseq=1, source=SOURCE, instance=None, user_agent="Zoiper 5.6",
        reg_id=None, updated_at=T0,
    )


def test_refresh_keeps_one_binding() -> None:
    reg = make_registrar()
    reg.register(register(f"<{A}>", expires="600"), "1001", SOURCE, T0)
    outcome = reg.register(register(f"<{A}>", expires="600", cseq=2), "1001", SOURCE, T0 + 300)
    assert outcome.status == 200
    assert kinds(outcome) == [("refreshed", A)]
    (binding,) = reg.contacts("1001", T0 + 300)
    assert (binding.expires_at, binding.cseq) == (T0 + 900, 2)
    assert contact_headers(outcome) == [f"<{A}>;expires=600"]


@pytest.mark.parametrize(
    "contact,expires",
    [(f"<{A}>;expires=0", None), (f"<{A}>", "0"), (f"<{A}>;expires=0", "3600")],
    ids=["param", "header", "param-wins"],
)
def test_unregister_one(contact: str, expires: str | None) -> None:
    reg = make_registrar()
    reg.register(register(f"<{A}>", f"<{C}>"), "1001", SOURCE, T0)
    reg.register(register(f"<{C}>", cseq=2), "1001", SOURCE, T0)
    outcome = reg.register(register(contact, expires=expires, cseq=3), "1001", SOURCE, T0 + 10)
    assert kinds(outcome) == [("unregistered", A)]
    assert [b.contact for b in reg.contacts("1001", T0 + 10)] == [C]


def test_unregister_last_makes_unreachable() -> None:
    reg = make_registrar()
    reg.register(register(f"<{A}>"), "1001", SOURCE, T0)
    outcome = reg.register(register(f"<{A}>;expires=0", cseq=2), "1001", SOURCE, T0 + 1)
    assert kinds(outcome) == [("unregistered", A), ("unreachable", None)]
    assert contact_headers(outcome) == []
    assert reg.contacts("1001", T0 + 1) == [] and reg.next_deadline() is None


def test_unregister_unknown_contact_is_a_no_op() -> None:
    reg = make_registrar()
    outcome = reg.register(register(f"<{A}>;expires=0"), "1001", SOURCE, T0)
    assert (outcome.status, outcome.events) == (200, ())


def test_query_without_contact() -> None:
    reg = make_registrar()
    reg.register(register(f"<{A}>", f"<{B}>;q=0.5"), "1001", SOURCE, T0)
    outcome = reg.register(register(cseq=2), "1001", SOURCE, T0 + 100)
    assert outcome.status == 200 and outcome.events == ()
    assert contact_headers(outcome) == [f"<{A}>;expires=3500", f"<{B}>;expires=3500;q=0.5"]


# -- wildcard (§10.3 step 6) -----------------------------------------------------------------


def test_star_removes_all() -> None:
    reg = make_registrar()
    reg.register(register(f"<{A}>", f"<{B}>"), "1001", SOURCE, T0)
    reg.register(register(f"<{C}>", call_id="other-phone"), "1001", SOURCE, T0)
    outcome = reg.register(register("*", expires="0", cseq=2), "1001", SOURCE, T0 + 5)
    assert outcome.status == 200
    assert kinds(outcome) == [
        ("unregistered", A), ("unregistered", B), ("unregistered", C), ("unreachable", None),
    ]
    assert reg.contacts("1001", T0 + 5) == [] and contact_headers(outcome) == []


@pytest.mark.parametrize(
    "contacts,expires,status",
    [
        (("*",), None, 400),  # no Expires
        (("*",), "60", 400),  # Expires not 0
        (("*",), "junk", 400),  # malformed counts as 3600
        (("*", f"<{A}>"), "0", 400),  # '*' with another contact
        (("*, <sip:x@h>",), "0", 400),  # same, one line
        (("*",), "0", 200),
    ],
)
def test_star_rules(contacts: tuple[str, ...], expires: str | None, status: int) -> None:
    reg = make_registrar()
    reg.register(register(f"<{A}>"), "1001", SOURCE, T0)
    outcome = reg.register(register(*contacts, expires=expires, cseq=2), "1001", SOURCE, T0)
    assert outcome.status == status
    assert len(reg.contacts("1001", T0)) == (0 if status == 200 else 1)


@pytest.mark.parametrize("cseq,status", [(1, 500), (4, 500), (5, 500), (6, 200)])
def test_star_respects_cseq_order(cseq: int, status: int) -> None:
    reg = make_registrar()
    reg.register(register(f"<{A}>", cseq=5), "1001", SOURCE, T0)
    reg.register(register(f"<{C}>", call_id="other"), "1001", SOURCE, T0)
    outcome = reg.register(register("*", expires="0", cseq=cseq), "1001", SOURCE, T0)
    assert outcome.status == status
    assert len(reg.contacts("1001", T0)) == (0 if status == 200 else 2)


# -- several contacts, q and ordering -------------------------------------------------------


def test_q_ordering_then_most_recent() -> None:
    reg = make_registrar()
    reg.register(register(f"<{A}>;q=0.5", f"<{B}>;q=1.0"), "1001", SOURCE, T0)
    reg.register(register(f"<{C}>;q=0.5", call_id="desk"), "1001", SOURCE, T0 + 10)
    assert [b.contact for b in reg.contacts("1001", T0 + 20)] == [B, C, A]
    outcome = reg.register(register(call_id="desk", cseq=2), "1001", SOURCE, T0 + 20)
    assert contact_headers(outcome) == [
        f"<{B}>;expires=3580",
        f"<{C}>;expires=3590;q=0.5",
        f"<{A}>;expires=3580;q=0.5",
    ]


@pytest.mark.parametrize(
    "q,expected",
    [("0", 0.0), ("0.", 0.0), ("0.7", 0.7), ("0.125", 0.125), ("1", 1.0), ("1.000", 1.0)],
)
def test_q_values(q: str, expected: float) -> None:
    reg = make_registrar()
    assert reg.register(register(f"<{A}>;q={q}"), "1001", SOURCE, T0).status == 200
    assert reg.contacts("1001", T0)[0].q == expected


@pytest.mark.parametrize("q", ["2", "1.5", "0.1234", "-0.5", ".5", "abc", "0.5x", "1.001"])
def test_bad_q_values(q: str) -> None:
    outcome = make_registrar().register(register(f"<{A}>;q={q}"), "1001", SOURCE, T0)
    assert (outcome.status, outcome.reason) == (400, "Bad q value")


def test_repeated_contact_in_one_request() -> None:
    reg = make_registrar()
    outcome = reg.register(register(f"<{A}>;expires=100", f"<{A}>;expires=200"), "1001", SOURCE, T0)
    assert outcome.status == 200
    assert contact_headers(outcome) == [f"<{A}>;expires=200"]
    assert kinds(outcome) == [("registered", A), ("reachable", None)]


# -- expiry intervals (§10.3 step 7) -----------------------------------------------------------


@pytest.mark.parametrize(
    "contact,expires,remaining",
    [
        (f"<{A}>", None, 3600),  # default
        (f"<{A}>", "120", 120),  # Expires header
        (f"<{A}>;expires=300", "120", 300),  # the parameter wins
        (f"<{A}>;expires=60", None, 60),  # exactly the minimum
        (f"<{A}>", "86400", 3600),  # capped at max_expires
        (f"<{A}>", "99999999999999999999", 3600),  # beyond 2**32-1
        (f"<{A}>", "junk", 3600),  # malformed counts as 3600 (§20.19)
        (f"<{A}>;expires=soon", None, 3600),  # malformed parameter (§20.10)
    ],
)
def test_expires_choice(contact: str, expires: str | None, remaining: int) -> None:
    reg = make_registrar()
    outcome = reg.register(register(contact, expires=expires), "1001", SOURCE, T0)
    assert contact_headers(outcome) == [f"<{A}>;expires={remaining}"]


def test_default_expires_is_configurable() -> None:
    reg = make_registrar(default_expires=900)
    outcome = reg.register(register(f"<{A}>"), "1001", SOURCE, T0)
    assert contact_headers(outcome) == [f"<{A}>;expires=900"]


@pytest.mark.parametrize(
    "contacts,expires",
    [
        ((f"<{A}>",), "30"),
        ((f"<{A}>;expires=59",), None),
        ((f"<{A}>;expires=1",), "3600"),
        ((f"<{A}>", f"<{B}>;expires=10"), None),  # one brief contact refuses all
    ],
)
def test_interval_too_brief(contacts: tuple[str, ...], expires: str | None) -> None:
    reg = make_registrar()
    outcome = reg.register(register(*contacts, expires=expires), "1001", SOURCE, T0)
    assert outcome.status == 423 and outcome.reason == "Interval Too Brief"
    assert ("Min-Expires", "60") in outcome.headers
    assert outcome.events == () and reg.contacts("1001", T0) == []


def test_no_423_when_minimum_is_an_hour_or_more() -> None:
    """§10.3: 423 only for intervals under one hour."""
    reg = make_registrar(min_expires=7200, default_expires=7200, max_expires=7200)
    assert reg.register(register(f"<{A}>", expires="3600"), "1001", SOURCE, T0).status == 200
    assert reg.register(register(f"<{B}>", expires="3599"), "1001", SOURCE, T0).status == 423


# -- Call-ID / CSeq ordering (§10.3 step 7) ------------------------------------------------------


@pytest.mark.parametrize(
    "call_id,cseq,status,contact_expires",
    [
        ("cid-1", 4, 500, 3600),  # same Call-ID, lower CSeq: out of order
        ("cid-1", 5, 500, 3600),  # same Call-ID, same CSeq: not higher
        ("cid-1", 6, 200, 600),  # higher: update
        ("rebooted", 1, 200, 600),  # another Call-ID: update whatever the CSeq
    ],
)
def test_call_id_cseq_ordering(call_id: str, cseq: int, status: int, contact_expires: int) -> None:
    reg = make_registrar()
    reg.register(register(f"<{A}>", cseq=5), "1001", SOURCE, T0)
    outcome = reg.register(register(f"<{A}>", expires="600", call_id=call_id, cseq=cseq), "1001", SOURCE, T0)
    assert outcome.status == status
    (binding,) = reg.contacts("1001", T0)
    assert binding.expires_at == T0 + contact_expires
    if status == 500:
        assert outcome.reason == "Out of order REGISTER" and outcome.events == ()


def test_other_call_id_with_zero_removes() -> None:
    reg = make_registrar()
    reg.register(register(f"<{A}>", cseq=5), "1001", SOURCE, T0)
    outcome = reg.register(register(f"<{A}>;expires=0", call_id="x", cseq=1), "1001", SOURCE, T0)
    assert kinds(outcome) == [("unregistered", A), ("unreachable", None)]


def test_failed_request_changes_nothing() -> None:
    """§10.3 step 8: every binding update of a request commits, or none does."""
    reg = make_registrar()
    reg.register(register(f"<{A}>", cseq=5), "1001", SOURCE, T0)
    outcome = reg.register(register(f"<{B}>", f"<{A}>", cseq=3), "1001", SOURCE, T0)
    assert outcome.status == 500
    assert [b.contact for b in reg.contacts("1001", T0)] == [A]


# -- URI comparison (§19.1.4) ---------------------------------------------------------------------

EQUAL = [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;newparam=5"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
    ("sip:1001@10.0.0.1:5060;ob", "sip:1001@10.0.0.1:5060;rinstance=abc"),
]
DIFFERENT = [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:bob@biloxi.com", "sips:bob@biloxi.com"),
    ("sip:bob@biloxi.com;maddr=1.2.3.4", "sip:bob@biloxi.com"),
    ("sip:bob@biloxi.com;newparam=1", "sip:bob@biloxi.com;newparam=2"),
]


@pytest.mark.parametrize("a,b", EQUAL)
def test_uri_equal(a: str, b: str) -> None:
    assert uri_equal(a, b) and uri_equal(b, a)


@pytest.mark.parametrize("a,b", DIFFERENT)
def test_uri_different(a: str, b: str) -> None:
    assert not uri_equal(a, b) and not uri_equal(b, a)


def test_equivalent_contact_refreshes() -> None:
    reg = make_registrar()
    reg.register(register("<sip:1001@PC.example.com;transport=TCP;rinstance=1>"), "1001", SOURCE, T0)
    outcome = reg.register(register("<sip:1001@pc.example.com;transport=tcp>", cseq=2), "1001", SOURCE, T0)
    assert [k for k, _ in kinds(outcome)] == ["refreshed"]
    assert len(reg.contacts("1001", T0)) == 1


# -- instances, NAT source, metadata -----------------------------------------------------------

INSTANCE = '"<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"'


def test_outbound_instance_replaces_binding_after_ip_change() -> None:
    reg = make_registrar()
    reg.register(register(f"<{A};ob>;+sip.instance={INSTANCE};reg-id=1"), "1001", SOURCE, T0)
    moved = ("UDP", "198.51.100.99", 1024)
    outcome = reg.register(register(f"<{C};ob>;+sip.instance={INSTANCE};reg-id=1", cseq=2), "1001", moved, T0 + 60)
    assert kinds(outcome) == [("refreshed", f"{C};ob")]
    (binding,) = reg.contacts("1001", T0 + 60)
    assert binding.source == moved
    assert binding.instance == "<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"
    assert binding.reg_id == "1"
    assert contact_headers(outcome) == [f"<{C};ob>;expires=3600;+sip.instance={INSTANCE};reg-id=1"]


def test_instance_without_reg_id_compares_uris() -> None:
    reg = make_registrar()
    reg.register(register(f"<{A}>;+sip.instance={INSTANCE}"), "1001", SOURCE, T0)
    reg.register(register(f"<{C}>;+sip.instance={INSTANCE}", cseq=2), "1001", SOURCE, T0)
    assert len(reg.contacts("1001", T0)) == 2


def test_user_agent_is_optional() -> None:
    reg = make_registrar()
    reg.register(register(f"<{A}>", user_agent=None), "1001", SOURCE, T0)
    assert reg.contacts("1001", T0)[0].user_agent is None


def test_date_header() -> None:
    reg = make_registrar()
    outcome = reg.register(register(f"<{A}>"), "1001", SOURCE, 5.0, wall_time=1_700_000_000.0)
    assert ("Date", "Tue, 14 Nov 2023 22:13:20 GMT") in outcome.headers
    outcome = reg.register(register(cseq=2), "1001", SOURCE, 0.0)
    assert ("Date", "Thu, 01 Jan 1970 00:00:00 GMT") in outcome.headers


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_,status,reason",
    [
        (register(f"<{A}>", to="<sip:1002@switchboard.test>"), 403, "Forbidden"),
        (register(f"<{A}>", to="<sip:switchboard.test>"), 403, "Forbidden"),
        (register("<mailto:agent@example.com>"), 400, "Contact is not a SIP URI"),
        (register("<tel:+15551234>"), 400, "Contact is not a SIP URI"),
        (register("<sip:1001@>"), 400, "Bad Contact header"),
        (register(f"<{A}"), 400, "Bad Contact header"),
        (register(f"<{A}>", to="<tel:+15551234>"), 416, "Unsupported URI Scheme"),
    ],
)
def test_refused_requests(request_: SipMessage, status: int, reason: str) -> None:
    reg = make_registrar()
    outcome = reg.register(request_, "1001", SOURCE, T0)
    assert (outcome.status, outcome.reason, outcome.events) == (status, reason, ())
    assert reg.contacts("1001", T0) == []


def test_register_needs_a_register() -> None:
    request = make_request("OPTIONS", "sip:switchboard.test", [("Call-ID", "x")])
    with pytest.raises(SipUsageError):
        make_registrar().register(request, "1001", SOURCE, T0)


def test_registrar_settings_checked() -> None:
    with pytest.raises(SipUsageError):
        make_registrar(min_expires=0)
    with pytest.raises(SipUsageError):
        make_registrar(min_expires=600, default_expires=300)
    with pytest.raises(SipUsageError):
        make_registrar(max_contacts=0)


# -- limits ------------------------------------------------------------------------------------------


def test_too_many_contacts_is_403_and_changes_nothing() -> None:
    reg = make_registrar(max_contacts=2)
    assert reg.register(register(f"<{A}>", f"<{B}>"), "1001", SOURCE, T0).status == 200
    outcome = reg.register(register(f"<{C}>", cseq=2), "1001", SOURCE, T0)
    assert (outcome.status, outcome.reason) == (403, "Too Many Contacts")
    assert {b.contact for b in reg.contacts("1001", T0)} == {A, B}
    # Replacing one within the limit still works.
    swap = reg.register(register(f"<{A}>;expires=0", f"<{C}>", cseq=3), "1001", SOURCE, T0)
    assert swap.status == 200


def test_full_store_is_503_with_retry_after() -> None:
    reg = make_registrar(MemoryBindingStore(max_users=1))
    assert reg.register(register(f"<{A}>"), "1001", SOURCE, T0).status == 200
    to = "<sip:1002@switchboard.test>"
    outcome = reg.register(register(f"<{C}>", to=to), "1002", SOURCE, T0)
    assert (outcome.status, outcome.reason) == (503, "Registrar Full")
    assert ("Retry-After", "60") in outcome.headers and outcome.events == ()
    # A user already in the store can still refresh.
    assert reg.register(register(f"<{A}>", cseq=2), "1001", SOURCE, T0).status == 200


def test_store_contact_bound() -> None:
    store = MemoryBindingStore(max_contacts_per_user=1)
    reg = make_registrar(store)
    assert reg.register(register(f"<{A}>", f"<{B}>"), "1001", SOURCE, T0).status == 503
    binding = Binding("sip:1@h", A, T0 + 1, 1.0, "c", 1, SOURCE)
    with pytest.raises(BindingStoreFull):
        store.put("1", [binding, binding])


# -- reaping with a fake clock -------------------------------------------------------------------------


def test_reap_expired_and_unreachable() -> None:
    reg = make_registrar()
    reg.register(register(f"<{A}>;expires=100", f"<{B}>;expires=200"), "1001", SOURCE, T0)
    reg.register(register(f"<{C}>;expires=150", to="<sip:1002@switchboard.test>"), "1002", SOURCE, T0)
    assert reg.next_deadline() == T0 + 100
    assert reg.reap(T0 + 99) == []
    assert kinds(reg.reap(T0 + 100)) == [("expired", A)]
    assert reg.next_deadline() == T0 + 150
    assert [(e.user, e.kind) for e in reg.reap(T0 + 150)] == [("1002", "expired"), ("1002", "unreachable")]
    assert kinds(reg.reap(T0 + 1000)) == [("expired", B), ("unreachable", None)]
    assert reg.next_deadline() is None
    assert isinstance(reg.store, MemoryBindingStore)
    assert reg.store.bindings_held == 0 and reg.store.users() == []


def test_expired_binding_is_invisible_before_reap() -> None:
    reg = make_registrar()
    reg.register(register(f"<{A}>;expires=100"), "1001", SOURCE, T0)
    assert reg.contacts("1001", T0 + 100) == []
    outcome = reg.register(register(cseq=2), "1001", SOURCE, T0 + 100)
    assert contact_headers(outcome) == []


def test_refresh_moves_the_deadline() -> None:
    reg = make_registrar()
    reg.register(register(f"<{A}>;expires=100"), "1001", SOURCE, T0)
    reg.register(register(f"<{A}>;expires=300", cseq=2), "1001", SOURCE, T0 + 50)
    assert reg.next_deadline() == T0 + 350
    assert reg.reap(T0 + 100) == []
    assert kinds(reg.reap(T0 + 350)) == [("expired", A), ("unreachable", None)]


def test_remaining_expires_rounds_up() -> None:
    reg = make_registrar()
    reg.register(register(f"<{A}>;expires=100"), "1001", SOURCE, T0)
    outcome = reg.register(register(cseq=2), "1001", SOURCE, T0 + 0.5)
    assert contact_headers(outcome) == [f"<{A}>;expires=100"]


def test_heap_stays_bounded_under_refreshes() -> None:
    store = MemoryBindingStore()
    reg = make_registrar(store)
    for i in range(1, 1000):
        reg.register(register(f"<{A}>", cseq=i), "1001", SOURCE, T0 + i)
    assert len(store._heap) <= 4 + 64 + 1
    assert reg.next_deadline() == T0 + 999 + 3600


def test_reachable_again_after_unreachable() -> None:
    reg = make_registrar()
    reg.register(register(f"<{A}>;expires=100"), "1001", SOURCE, T0)
    reg.reap(T0 + 100)
    outcome = reg.register(register(f"<{A}>", cseq=2), "1001", SOURCE, T0 + 200)
    assert kinds(outcome) == [("registered", A), ("reachable", None)]


def test_next_expiry_is_the_earliest_binding_after_any_puts_and_reaps() -> None:
    rng = random.Random(5)
    store = MemoryBindingStore()
    now = 0.0
    for step in range(2000):
        user = f"u{rng.randrange(40)}"
        if rng.random() < 0.85:
            bindings = [Binding(f"sip:{user}@x", f"sip:{user}@10.0.0.{k}", now + rng.uniform(1, 60),
                                1.0, "c", step, ("UDP", "10.0.0.1", 5060))
                        for k in range(rng.choice([0, 1, 1, 2]))]
            store.put(user, bindings)
        else:
            now += rng.uniform(0, 20)
            store.reap(now)
        held = [b.expires_at for bs in store._bindings.values() for b in bs]
        assert store.next_expiry() == (min(held) if held else None)

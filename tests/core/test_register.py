"""REGISTER through the user-agent core: challenge, authenticated binding, failures, expiry."""

from __future__ import annotations

import hashlib
import logging

import pytest

from signaling.auth import Credentials, DigestAuthenticator
from signaling.events import Peer, RegistrationChanged
from signaling.ids import CountingIds
from signaling.message import SipMessage, parse_message
from signaling.registrar import MemoryBindingStore, Registrar
from signaling.registration import Registration
from signaling.useragent import UserAgent

PHONE = Peer("UDP", "127.0.0.1", 5072)
REALM = "switchboard"
USERS = {"1001": Credentials.from_password("1001", REALM, "demo-1001")}


def make_ua(registration: bool = True) -> UserAgent:
    reg = None
    if registration:
        auth = DigestAuthenticator(REALM, secret=b"0123456789abcdef0123", lookup=USERS.get,
                                   random_bytes=lambda n: b"\x01" * n)
        reg = Registration(auth, Registrar(MemoryBindingStore(), min_expires=60), wall_offset=1.8e9)
    return UserAgent(ids=CountingIds(), local={"UDP": ("127.0.0.1", 5060)}, registration=reg)


def register(user: str = "1001", *, expires: int = 120, cseq: int = 1, auth: str = "") -> bytes:
    return (
        f"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5072;branch=z9hG4bKreg{cseq};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=r1\r\nTo: <sip:{user}@127.0.0.1>\r\n"
        f"Call-ID: reg-{user}\r\nCSeq: {cseq} REGISTER\r\n"
        f"Contact: <sip:{user}@127.0.0.1:5072>;expires={expires}\r\n"
        f"User-Agent: TestPhone/1.0\r\n{auth}Content-Length: 0\r\n\r\n"
    ).encode()


def answer(challenge: str, user: str, password: str, nc: int = 1) -> str:
    """A phone's Authorization header for a SHA-256 challenge (RFC 7616 §3.4.1)."""
    fields = dict(p.strip().split("=", 1) for p in challenge.split(" ", 1)[1].split(","))
    nonce = fields["nonce"].strip('"')

    def h(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    ha1 = h(f"{user}:{REALM}:{password}")
    ha2 = h("REGISTER:sip:127.0.0.1")
    response = h(f"{ha1}:{nonce}:{nc:08x}:abcdef:auth:{ha2}")
    return (f'Authorization: Digest username="{user}", realm="{REALM}", nonce="{nonce}", '
            f'uri="sip:127.0.0.1", algorithm=SHA-256, qop=auth, nc={nc:08x}, cnonce="abcdef", '
            f'response="{response}", opaque={fields["opaque"]}\r\n')


def send(ua: UserAgent, data: bytes, now: float = 0.0) -> SipMessage:
    ua.receive(data, PHONE, now)
    (out,) = ua.take_outgoing()
    return parse_message(out.data)


def test_challenge_then_register_makes_the_agent_reachable() -> None:
    ua = make_ua()
    challenge = send(ua, register())
    assert challenge.status == 401
    www = challenge.get_all("www-authenticate")
    assert [w.split("algorithm=")[1].split(",")[0] for w in www] == ["SHA-256", "MD5"]
    ok = send(ua, register(cseq=2, auth=answer(www[0], "1001", "demo-1001")))
    assert ok.status == 200 and "expires=120" in (ok.get("contact") or "")
    assert (ok.get("date") or "").endswith("GMT")
    kinds = [e.kind for e in ua.take_events() if isinstance(e, RegistrationChanged)]
    assert "reachable" in kinds


def test_wrong_password_and_unknown_user_look_the_same_and_are_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    ua = make_ua()
    www = send(ua, register()).get_all("www-authenticate")[0]
    with caplog.at_level(logging.WARNING, logger="switchboard.security"):
        bad = send(ua, register(cseq=2, auth=answer(www, "1001", "wrong")))
        unknown = send(ua, register("9999", cseq=3, auth=answer(www, "9999", "x")))
    assert bad.status == unknown.status == 401
    assert len(bad.get_all("www-authenticate")) == len(unknown.get_all("www-authenticate")) == 2
    lines = [r.getMessage() for r in caplog.records]
    assert any("event=auth_failed" in line and "ip=127.0.0.1" in line for line in lines)
    assert not any("demo-1001" in line or "wrong" in line for line in lines)
    assert ua.take_events() == []


def test_binding_expiry_makes_the_agent_unreachable() -> None:
    ua = make_ua()
    www = send(ua, register()).get_all("www-authenticate")[0]
    send(ua, register(expires=60, cseq=2, auth=answer(www, "1001", "demo-1001")))
    ua.take_events()
    fired = []
    while (deadline := ua.next_deadline()) is not None and deadline <= 61:
        ua.on_timer(deadline)
        fired += [(deadline, e.kind) for e in ua.take_events() if isinstance(e, RegistrationChanged)]
    assert [k for _, k in fired].count("unreachable") == 1
    assert all(59 <= t <= 61 for t, _ in fired)


def test_register_without_a_registrar_is_405() -> None:
    ua = make_ua(registration=False)
    reply = send(ua, register())
    assert reply.status == 405 and "REGISTER" not in (reply.get("allow") or "")

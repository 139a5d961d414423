"""Digest authentication (RFC 7616, RFC 2617, RFC 3261 §22, RFC 8760)."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.auth import (
    AUTH_REASONS,
    AuthResult,
    Credentials,
    DigestAuthenticator,
    DigestChallenge,
    DigestResponse,
    ha1,
    parse_authorization,
    request_digest,
    security_log_line,
)
from signaling.errors import SipError, SipUsageError
from signaling.message import SipMessage, make_request

REALM = "switchboard.test"
REQUEST_URI = "sip:switchboard.test"
PASSWORD = "correct horse"
USERS = {"1001": Credentials.from_password("1001", REALM, PASSWORD)}
SECRET = b"k" * 32


def counting_random() -> Callable[[int], bytes]:
    counter = itertools.count(1)
    return lambda n: next(counter).to_bytes(n, "big")


def make_auth(**kwargs: object) -> DigestAuthenticator:
    options: dict[str, object] = {
        "secret": SECRET,
        "lookup": USERS.get,
        "random_bytes": counting_random(),
    }
    options.update(kwargs)
    return DigestAuthenticator(REALM, **options)  # type: ignore[arg-type]


# -- a client, as a phone would implement it (RFC 7616 §3.4) ------------------------


def parse_challenge(value: str) -> dict[str, str]:
    scheme, _, rest = value.partition(" ")
    assert scheme == "Digest"
    return {k.lower(): (q if q or v.startswith('"') else v) for k, v, q in
            re.findall(r'([\w-]+)=("([^"]*)"|[^,\s]+)', rest)}


def client_authorization(
    challenge: str,
    *,
    username: str = "1001",
    password: str = PASSWORD,
    method: str = "REGISTER",
    uri: str = REQUEST_URI,
    nc: int = 1,
    cnonce: str = "0a4f113b",
    qop: str = "auth",
    realm: str | None = None,
) -> str:
    c = parse_challenge(challenge)
    algorithm = c["algorithm"]
    hash_fn = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[algorithm]

    def h(text: str) -> str:
        return hash_fn(text.encode()).hexdigest()

    use_realm = c["realm"] if realm is None else realm
    a1 = h(f"{username}:{use_realm}:{password}")
    a2 = h(f"{method}:{uri}")
    response = h(f"{a1}:{c['nonce']}:{nc:08x}:{cnonce}:{qop}:{a2}")
    return (
        f'Digest username="{username}", realm="{use_realm}", nonce="{c["nonce"]}", '
        f'uri="{uri}", response="{response}", algorithm={algorithm}, '
        f'cnonce="{cnonce}", opaque="{c["opaque"]}", qop={qop}, nc={nc:08x}'
    )


def register(*auth_headers: str, uri: str = REQUEST_URI, header: str = "Authorization") -> SipMessage:
    headers = [
        ("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKabc"),
        ("From", "<sip:1001@switchboard.test>;tag=a1"),
        ("To", "<sip:1001@switchboard.test>"),
        ("Call-ID", "reg-1@192.0.2.10"),
        ("CSeq", "2 REGISTER"),
        ("Max-Forwards", "70"),
    ]
    headers += [(header, value) for value in auth_headers]
    return make_request("REGISTER", uri, headers)


def challenge_for(auth: DigestAuthenticator, algorithm: str, now: float = 1000.0) -> str:
    (chosen,) = [c for c in auth.challenges(now) if c.algorithm == algorithm]
    return chosen.header_value()


# -- published test vectors ------------------------------------------------------------

VECTORS = [
    # RFC 7616 §3.9.1, SHA-256 (password "Circle of Life", lower-case "of": erratum 4495)
    ("SHA-256", "Mufasa", "http-auth@example.org", "Circle of Life",
     "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "GET", "/dir/index.html",
     "00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
     "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    # RFC 7616 §3.9.1, MD5
    ("MD5", "Mufasa", "http-auth@example.org", "Circle of Life",
     "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "GET", "/dir/index.html",
     "00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
     "8ca523f5e9506fed4657c9700eebdbec"),
    # RFC 2617 §3.5
    ("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life",
     "dcd98b7102dd2f0e8b11d0f600bfb0c093", "GET", "/dir/index.html",
     "00000001", "0a4f113b", "6629fae49393a05397450978507c4ef1"),
]


@pytest.mark.parametrize(
    "algorithm,username,realm,password,nonce,method,uri,nc,cnonce,expected", VECTORS
)
def test_published_vectors(
    algorithm: str, username: str, realm: str, password: str, nonce: str,
    method: str, uri: str, nc: str, cnonce: str, expected: str,
) -> None:
    resp = DigestResponse(username, realm, nonce, uri, "", algorithm, "auth", nc, cnonce)
    assert request_digest(algorithm, ha1(username, realm, password, algorithm), method, resp) == expected


def test_rfc7616_authorization_header_parses() -> None:
    """The §3.9.1 SHA-256 Authorization header, as printed."""
    value = (
        'Digest username="Mufasa",\t realm="http-auth@example.org", '
        'uri="/dir/index.html", algorithm=SHA-256, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, '
        'cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, '
        'response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    resp = parse_authorization(value)
    assert (resp.username, resp.realm, resp.uri) == ("Mufasa", "http-auth@example.org", "/dir/index.html")
    assert (resp.algorithm, resp.qop, resp.nc) == ("SHA-256", "auth", "00000001")
    assert resp.opaque == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
    expected = VECTORS[0][-1]
    assert request_digest("SHA-256", ha1("Mufasa", resp.realm, "Circle of Life", "SHA-256"), "GET", resp) == expected


def test_ha1_matches_credentials_helper() -> None:
    creds = Credentials.from_password("1001", REALM, PASSWORD)
    assert creds.ha1_md5 == hashlib.md5(f"1001:{REALM}:{PASSWORD}".encode()).hexdigest()
    assert creds.ha1_sha256 == hashlib.sha256(f"1001:{REALM}:{PASSWORD}".encode()).hexdigest()
    with pytest.raises(SipUsageError):
        ha1("u", "r", "p", "SHA-512-256")


# -- challenges ---------------------------------------------------------------------------


def test_challenges_sha256_first_then_md5() -> None:
    challenges = make_auth().challenges(1000.0)
    assert [c.algorithm for c in challenges] == ["SHA-256", "MD5"]
    assert all(c.realm == REALM and c.qop == "auth" and not c.stale for c in challenges)
    value = challenges[0].header_value()
    assert value.startswith(f'Digest realm="{REALM}", nonce="')
    assert "algorithm=SHA-256" in value and 'qop="auth"' in value and "stale" not in value


def test_stale_challenge_header() -> None:
    for challenge in make_auth().challenges(1000.0, stale=True):
        assert challenge.header_value().endswith(", stale=true")


def test_challenge_quotes_realm() -> None:
    value = DigestChallenge('a "b"\\c', "n", "o", "MD5").header_value()
    assert value.startswith('Digest realm="a \\"b\\"\\\\c"')


def test_fresh_nonce_per_challenge_round() -> None:
    auth = make_auth()
    first, second = auth.challenges(1000.0), auth.challenges(1000.0)
    assert first[0].nonce == first[1].nonce != second[0].nonce


# -- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_round_trip(algorithm: str) -> None:
    auth = make_auth()
    header = client_authorization(challenge_for(auth, algorithm))
    assert auth.verify(register(header), 1001.0) == AuthResult(True, "1001", "ok")


def test_round_trip_proxy_authorization() -> None:
    auth = make_auth()
    header = client_authorization(challenge_for(auth, "SHA-256"))
    request = register(header, header="Proxy-Authorization")
    assert auth.verify(request, 1001.0, header="proxy-authorization").ok
    assert auth.verify(request, 1001.0).reason == "no credentials"


def test_missing_algorithm_means_md5() -> None:
    auth = make_auth()
    header = client_authorization(challenge_for(auth, "MD5")).replace(", algorithm=MD5", "")
    assert auth.verify(register(header), 1001.0).ok


def test_credentials_for_another_realm_are_skipped() -> None:
    auth = make_auth()
    other = client_authorization(challenge_for(auth, "MD5"), realm="elsewhere.test")
    ours = client_authorization(challenge_for(auth, "MD5"))
    assert auth.verify(register(other, ours), 1001.0).ok
    assert auth.verify(register(other), 1001.0).reason == "wrong realm"


# -- refusals -------------------------------------------------------------------------------


def test_reason_vocabulary() -> None:
    assert len(AUTH_REASONS) == 11 and "ok" in AUTH_REASONS and "replayed nonce count" in AUTH_REASONS


def test_no_credentials() -> None:
    assert make_auth().verify(register(), 1000.0) == AuthResult(False, None, "no credentials")


def test_stale_nonce_only_with_a_correct_digest() -> None:
    auth = make_auth(nonce_ttl=300)
    good = client_authorization(challenge_for(auth, "SHA-256", now=1000.0))
    bad = client_authorization(challenge_for(auth, "SHA-256", now=1000.0), password="nope")
    late = 1000.0 + 300
    assert auth.verify(register(good), late) == AuthResult(False, "1001", "stale nonce")
    assert auth.verify(register(good), late).stale
    assert auth.verify(register(bad), late).reason == "bad password"
    assert auth.verify(register(good), 1000.0 + 299).ok


def tamper(header: str, old: str, new: str) -> str:
    assert old in header
    return header.replace(old, new, 1)


def nonce_of(header: str) -> str:
    match = re.search(r'nonce="([^"]*)"', header)
    assert match is not None
    return match.group(1)


def flip_first_char(nonce: str) -> str:
    return ("B" if nonce[0] == "A" else "A") + nonce[1:]


NONCE_TAMPERING: list[tuple[str, Callable[[str], str]]] = [
    ("first char flipped", flip_first_char),
    ("truncated", lambda n: n[:-4]),
    ("not base64", lambda n: "!!!" + n[3:]),
    ("non-ascii", lambda n: "é" + n[1:]),
    ("empty", lambda n: ""),
    ("other secret", lambda n: nonce_of(challenge_for(make_auth(secret=b"x" * 32), "MD5"))),
]


@pytest.mark.parametrize("label,mutate", NONCE_TAMPERING, ids=[t[0] for t in NONCE_TAMPERING])
def test_tampered_nonce(label: str, mutate: Callable[[str], str]) -> None:
    auth = make_auth()
    challenge = challenge_for(auth, "MD5")
    forged = tamper(challenge, nonce_of(challenge), mutate(nonce_of(challenge)))
    # The client signs the forged nonce correctly: only the server's MAC can catch it.
    result = auth.verify(register(client_authorization(forged)), 1001.0)
    assert result.reason == "bad nonce" and not result.ok


def test_nonce_from_the_future_is_refused() -> None:
    auth = make_auth()
    header = client_authorization(challenge_for(auth, "MD5", now=2000.0))
    assert auth.verify(register(header), 1000.0).reason == "bad nonce"


def test_opaque_must_come_back_unchanged() -> None:
    auth = make_auth()
    header = client_authorization(challenge_for(auth, "MD5"))
    forged = re.sub(r'opaque="[^"]*"', 'opaque="other"', header)
    assert auth.verify(register(forged), 1001.0).reason == "bad nonce"
    without = re.sub(r', opaque="[^"]*"', "", header)
    assert auth.verify(register(without), 1001.0).ok


def test_nonce_count_replay() -> None:
    auth = make_auth()
    challenge = challenge_for(auth, "SHA-256")
    steps = [(1, "ok"), (1, "replayed nonce count"), (2, "ok"), (1, "replayed nonce count"),
             (5, "ok"), (5, "replayed nonce count"), (4, "replayed nonce count"), (6, "ok")]
    for nc, reason in steps:
        header = client_authorization(challenge, nc=nc, cnonce=f"c{nc}")
        assert auth.verify(register(header), 1001.0).reason == reason, nc


def test_failed_digest_does_not_advance_nonce_count() -> None:
    auth = make_auth()
    challenge = challenge_for(auth, "MD5")
    forged = client_authorization(challenge, nc=99, password="guess")
    assert auth.verify(register(forged), 1001.0).reason == "bad password"
    assert auth.verify(register(client_authorization(challenge, nc=1)), 1001.0).ok


def test_eviction_never_reopens_a_replay_window() -> None:
    auth = make_auth(max_nonces=2)
    challenges = [challenge_for(auth, "MD5", now=1000.0 + i) for i in range(3)]
    for challenge in challenges:
        assert auth.verify(register(client_authorization(challenge)), 1010.0).ok
    assert auth.nonce_entries == 2
    replay = client_authorization(challenges[0], nc=1)
    assert auth.verify(register(replay), 1010.0).reason == "stale nonce"
    again = client_authorization(challenges[0], nc=2)
    assert auth.verify(register(again), 1010.0).reason == "stale nonce"
    assert auth.verify(register(client_authorization(challenges[2], nc=2)), 1010.0).ok


def test_nonce_table_drains_after_ttl() -> None:
    auth = make_auth(nonce_ttl=300)
    for i in range(5):
        assert auth.verify(register(client_authorization(challenge_for(auth, "MD5"))), 1001.0 + i).ok
    assert auth.nonce_entries == 5
    assert auth.reap(1299.0) == 0
    assert auth.reap(1300.0) == 5
    assert auth.nonce_entries == 0


def test_verify_trims_expired_entries() -> None:
    auth = make_auth(nonce_ttl=300)
    assert auth.verify(register(client_authorization(challenge_for(auth, "MD5"))), 1001.0).ok
    late = challenge_for(auth, "MD5", now=2000.0)
    assert auth.verify(register(client_authorization(late)), 2001.0).ok
    assert auth.nonce_entries == 1


def test_wrong_realm() -> None:
    auth = make_auth()
    header = client_authorization(challenge_for(auth, "MD5"), realm="other.test")
    assert auth.verify(register(header), 1001.0) == AuthResult(False, None, "wrong realm")


def test_uri_mismatch() -> None:
    auth = make_auth()
    header = client_authorization(challenge_for(auth, "MD5"), uri="sip:other.test")
    assert auth.verify(register(header), 1001.0).reason == "uri mismatch"


@pytest.mark.parametrize("algorithm", ["MD5-sess", "SHA-256-sess", "SHA-512-256", "md6"])
def test_unsupported_algorithm(algorithm: str) -> None:
    auth = make_auth()
    header = client_authorization(challenge_for(auth, "MD5")).replace("algorithm=MD5", f"algorithm={algorithm}")
    assert auth.verify(register(header), 1001.0).reason == "unsupported algorithm"


def test_algorithm_name_is_case_insensitive() -> None:
    auth = make_auth()
    header = client_authorization(challenge_for(auth, "SHA-256"))
    assert auth.verify(register(header.replace("algorithm=SHA-256", "algorithm=sha-256")), 1001.0).ok


@pytest.mark.parametrize(
    "mutate",
    [
        lambda h: h.replace("qop=auth", "qop=auth-int"),
        lambda h: h + ", userhash=true",
        lambda h: re.sub(r", cnonce=\"[^\"]*\"|, qop=auth|, nc=\w+", "", h),
        lambda h: h.replace('response="', 'response="zz'),
        lambda h: "Basic dXNlcjpwYXNz",
    ],
    ids=["auth-int", "userhash", "no-qop", "non-hex-response", "basic"],
)
def test_refused_as_malformed(mutate: Callable[[str], str]) -> None:
    auth = make_auth()
    header = mutate(client_authorization(challenge_for(auth, "MD5")))
    assert auth.verify(register(header), 1001.0) == AuthResult(False, _claimed(header), "malformed")


def _claimed(header: str) -> str | None:
    """The username verify reports for a refused header: the claimed one once it parsed."""
    try:
        return parse_authorization(header).username
    except SipError:
        return None


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_unknown_user_and_bad_password_look_the_same(algorithm: str) -> None:
    """No user enumeration: same outcome shape, same challenge, same work (a dummy HA1)."""
    calls: list[str] = []

    def lookup(name: str) -> Credentials | None:
        calls.append(name)
        return USERS.get(name)

    auth = make_auth(lookup=lookup)
    unknown = auth.verify(register(client_authorization(challenge_for(auth, algorithm), username="9999")), 1001.0)
    wrong = auth.verify(register(client_authorization(challenge_for(auth, algorithm), password="x")), 1001.0)
    assert (unknown.ok, unknown.stale, wrong.ok, wrong.stale) == (False, False, False, False)
    assert (unknown.reason, wrong.reason) == ("unknown user", "bad password")
    assert calls == ["9999", "1001"]
    shape_unknown = [_shape(c.header_value()) for c in auth.challenges(1002.0, stale=unknown.stale)]
    shape_wrong = [_shape(c.header_value()) for c in auth.challenges(1003.0, stale=wrong.stale)]
    assert shape_unknown == shape_wrong


def _shape(value: str) -> str:
    return re.sub(r'nonce="[^"]*"', 'nonce="N"', value)


def test_credentials_of_another_realm_count_as_unknown() -> None:
    foreign = Credentials.from_password("1001", "other.test", PASSWORD)
    auth = make_auth(lookup=lambda name: foreign)
    header = client_authorization(challenge_for(auth, "MD5"))
    assert auth.verify(register(header), 1001.0).reason == "unknown user"


def test_constructor_checks() -> None:
    with pytest.raises(SipUsageError):
        make_auth(secret=b"short")
    with pytest.raises(SipUsageError):
        make_auth(nonce_ttl=0)
    with pytest.raises(SipUsageError):
        make_auth(random_bytes=lambda n: b"\x00").challenges(0.0)
    response = SipMessage(None, None, 200, "OK", (("Authorization", "Digest x=y"),))
    with pytest.raises(SipUsageError):
        make_auth().verify(response, 0.0)


# -- parsing --------------------------------------------------------------------------------

BASE = 'username="1001", realm="r", nonce="n", uri="sip:r", response="abcdef"'

VALID = [
    (f"Digest {BASE}", {"username": "1001", "qop": None, "algorithm": None}),
    (f"digest   {BASE}", {"username": "1001"}),
    (f"DIGEST {BASE}", {"username": "1001"}),
    (f'Digest {BASE}, qop="auth", nc=0000000a, cnonce="x"', {"qop": "auth", "nc": "0000000a"}),
    (f'Digest {BASE}, qop=auth, nc=00000001, cnonce="x"', {"qop": "auth", "cnonce": "x"}),
    ('Digest USERNAME = "a\\"b" ,Realm="r",nonce="n",uri="sip:r",response="ABCDEF"',
     {"username": 'a"b', "response": "abcdef"}),
    (f'Digest {BASE}, algorithm="SHA-256"', {"algorithm": "SHA-256"}),
    (f'Digest {BASE}, opaque="o p", unknown=thing, other="x,y"', {"opaque": "o p"}),
    (f'Digest {BASE}, userhash=TRUE', {"userhash": True}),
    ('Digest username="Zoë", realm="r", nonce="n", uri="sip:r", response="ab"', {"username": "Zoë"}),
    ('Digest username="", realm="", nonce="", uri="", response="0"', {"username": "", "realm": ""}),
]


@pytest.mark.parametrize("value,fields", VALID)
def test_parse_valid(value: str, fields: dict[str, object]) -> None:
    resp = parse_authorization(value)
    for name, expected in fields.items():
        assert getattr(resp, name) == expected


MALFORMED = [
    "",
    "Digest",
    "Digest ",
    "Basic dXNlcjpwYXNz",
    "Digestusername=\"a\"",
    f"Bearer {BASE}",
    'Digest username="1001", realm="r", nonce="n", uri="sip:r"',  # no response
    'Digest realm="r", nonce="n", uri="sip:r", response="ab"',  # no username
    'Digest username="u", nonce="n", uri="sip:r", response="ab"',  # no realm
    'Digest username="u", realm="r", uri="sip:r", response="ab"',  # no nonce
    'Digest username="u", realm="r", nonce="n", response="ab"',  # no uri
    f'Digest {BASE}, username="again"',  # duplicate
    f'Digest {BASE}, Realm="again"',  # duplicate, other case
    'Digest username="unterminated, realm="r", nonce="n", uri="sip:r", response="ab',
    'Digest username="u\\',  # backslash at the end
    'Digest username=u, realm="r", nonce="n", uri="sip:r", response="ab"',  # unquoted username
    'Digest username="u", realm="r", nonce="n", uri=sip:r, response="ab"',  # unquoted uri
    'Digest username="u", realm="r", nonce="n", uri="sip:r", response=ab',  # unquoted response
    f'Digest {BASE},',  # trailing comma
    f'Digest {BASE},, qop=auth',  # empty element
    f'Digest {BASE} qop=auth',  # missing comma
    f'Digest {BASE}, qop=',  # empty value
    f'Digest {BASE}, =auth',  # empty name
    f'Digest {BASE}, qop',  # no '='
    'Digest username="u", realm="r", nonce="n", uri="sip:r", response="xyz"',  # not hex
    'Digest username="u", realm="r", nonce="n", uri="sip:r", response=""',  # empty response
    f'Digest {BASE}, qop=auth',  # qop without nc/cnonce
    f'Digest {BASE}, qop=auth, nc=00000001',  # qop without cnonce
    f'Digest {BASE}, nc=00000001, cnonce="c"',  # nc/cnonce without qop
    f'Digest {BASE}, qop=auth, nc=1, cnonce="c"',  # nc not 8 hex digits
    f'Digest {BASE}, qop=auth, nc=0000000g, cnonce="c"',
    f'Digest {BASE}, qop="a b", nc=00000001, cnonce="c"',  # quoted qop not a token
    f'Digest {BASE}, algorithm="MD5 "',
    'Digest username="a\x01b", realm="r", nonce="n", uri="sip:r", response="ab"',  # control char
    f'Digest {BASE}, x=a/b',  # '/' is not a token char
]


@pytest.mark.parametrize("value", MALFORMED)
def test_parse_malformed(value: str) -> None:
    with pytest.raises(SipError) as info:
        parse_authorization(value)
    assert info.value.status == 400


@pytest.mark.parametrize("value", [v for v in MALFORMED if v])
def test_verify_reports_malformed(value: str) -> None:
    assert make_auth().verify(register(value), 1000.0) == AuthResult(False, None, "malformed")


FRAGMENTS = ["Digest", " ", ",", "=", '"', "\\", "username", "realm", "nonce", "uri",
             "response", "qop", "nc", "cnonce", "auth", "00000001", "abc", "\t", "é", "x\x00"]


@settings(max_examples=400)
@given(st.one_of(st.text(max_size=200), st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)))
def test_parse_any_text_returns_or_raises_sip_error(value: str) -> None:
    try:
        resp = parse_authorization(value)
    except SipError as exc:
        assert exc.status == 400
    else:
        assert isinstance(resp, DigestResponse)


@settings(max_examples=200)
@given(st.text(max_size=120))
def test_verify_any_header_never_crashes(value: str) -> None:
    if "\r" in value or "\n" in value:
        return
    result = make_auth().verify(register(value), 1000.0)
    assert not result.ok


# -- security log ------------------------------------------------------------------------------


def test_security_log_line_format() -> None:
    result = AuthResult(False, "1001", "bad password")
    line = security_log_line(result, "127.0.0.1", "Zoiper 5.6")
    assert line == 'event=auth_failed reason=bad_password user=1001 ip=127.0.0.1 ua="Zoiper 5.6"'
    ok = security_log_line(AuthResult(True, "1001", "ok"), "::1", None)
    assert ok == 'event=auth_ok reason=ok user=1001 ip=::1 ua="-"'


def test_security_log_line_escapes_peer_text() -> None:
    result = AuthResult(False, "x ip=6.6.6.6\nevent=auth_ok", "unknown user")
    line = security_log_line(result, "192.0.2.1", 'evil"\nua\\')
    assert "\n" not in line and line.count(" ip=") == 1 and line.count("event=") == 1
    assert line.endswith('ua="evil??ua?"')
    assert "user=x%20ip%3D6.6.6.6%0Aevent%3Dauth_ok" in line


def test_security_log_line_never_leaks_secrets() -> None:
    auth = make_auth()
    header = client_authorization(challenge_for(auth, "MD5"), password="hunter2")
    result = auth.verify(register(header), 1001.0)
    line = security_log_line(result, "192.0.2.1", "phone")
    parsed = parse_authorization(header)
    for secret in ("hunter2", parsed.response, parsed.nonce, parsed.cnonce or "?"):
        assert secret not in line
    assert "reason=bad_password user=1001" in line


def test_security_log_line_bounds_length() -> None:
    line = security_log_line(AuthResult(False, "u" * 1000, "unknown user"), "1.2.3.4", "a" * 1000)
    assert len(line) < 300

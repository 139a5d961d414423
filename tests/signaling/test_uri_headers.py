"""SIP URIs (RFC 3261 §19.1) and typed header values (§20, §25.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signaling.errors import SipError, SipUsageError
from signaling.headers import CSeq, NameAddr, Via, parse_params, split_header_values
from signaling.uri import SipUri, parse_uint, uri_scheme

# -- SipUri -------------------------------------------------------------------

# text, scheme, user, password, host, port, params, headers
VALID_URIS = [
    ("sip:alice@atlanta.com", "sip", "alice", None, "atlanta.com", None, (), ()),
    ("SIP:Alice@AtLanTa.CoM", "sip", "Alice", None, "atlanta.com", None, (), ()),
    ("sips:bob@biloxi.com:5061", "sips", "bob", None, "biloxi.com", 5061, (), ()),
    (
        "sip:alice:secretword@atlanta.com;transport=tcp",
        "sip",
        "alice",
        "secretword",
        "atlanta.com",
        None,
        (("transport", "tcp"),),
        (),
    ),
    (
        "sip:+1-212-555-1212:1234@gateway.com;user=phone",
        "sip",
        "+1-212-555-1212",
        "1234",
        "gateway.com",
        None,
        (("user", "phone"),),
        (),
    ),
    ("sip:192.0.2.4", "sip", None, None, "192.0.2.4", None, (), ()),
    (
        "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
        "sip",
        None,
        None,
        "atlanta.com",
        None,
        (("method", "REGISTER"),),
        (("to", "alice%40atlanta.com"),),
    ),
    (
        "sip:alice;day=tuesday@atlanta.com",
        "sip",
        "alice;day=tuesday",
        None,
        "atlanta.com",
        None,
        (),
        (),
    ),
    ("sip:[2001:db8::10]:5070;lr", "sip", None, None, "[2001:db8::10]", 5070, (("lr", None),), ()),
    ("sip:user@[::1]", "sip", "user", None, "[::1]", None, (), ()),
    ("sip:%61lice@example.com", "sip", "alice", None, "example.com", None, (), ()),
    (
        "sip:I%20have%20spaces@example.net",
        "sip",
        "I have spaces",
        None,
        "example.net",
        None,
        (),
        (),
    ),
    (
        "sip:sips%3Auser%40example.com@example.net",
        "sip",
        "sips:user@example.com",
        None,
        "example.net",
        None,
        (),
        (),
    ),
    ("sip:null-%00-null@example.com", "sip", "null-\x00-null", None, "example.com", None, (), ()),
    ("sip:%E2%82%AC@example.com", "sip", "\u20ac", None, "example.com", None, (), ()),
    (
        "sip:p1.example.com;LR;Maddr=239.255.255.1;ttl=15",
        "sip",
        None,
        None,
        "p1.example.com",
        None,
        (("lr", None), ("maddr", "239.255.255.1"), ("ttl", "15")),
        (),
    ),
    ("sip:host:0", "sip", None, None, "host", 0, (), ()),
    ("sip:host:65535", "sip", None, None, "host", 65535, (), ()),
    ("sip:u@host.example.com.", "sip", "u", None, "host.example.com.", None, (), ()),
    ("sip:*97@pbx", "sip", "*97", None, "pbx", None, (), ()),
    ("sip:user:@host", "sip", "user", "", "host", None, (), ()),
]


@pytest.mark.parametrize(
    "text,scheme,user,password,host,port,params,headers", VALID_URIS, ids=[v[0] for v in VALID_URIS]
)
def test_uri_parses(
    text: str,
    scheme: str,
    user: str | None,
    password: str | None,
    host: str,
    port: int | None,
    params: tuple[tuple[str, str | None], ...],
    headers: tuple[tuple[str, str], ...],
) -> None:
    uri = SipUri.parse(text)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        scheme,
        user,
        password,
        host,
        port,
    )
    assert uri.params == params
    assert uri.headers == headers
    assert SipUri.parse(str(uri)) == uri


INVALID_URIS = [
    ("", 400),
    ("sip", 400),
    ("alice@atlanta.com", 400),
    ("sip:", 400),
    ("sip:alice@", 400),
    ("sip:@host", 400),
    ("sip:alice@host@other", 400),
    ("sip:alice@host:port", 400),
    ("sip:alice@host:65536", 400),
    ("sip:alice@host:-1", 400),
    ("sip:alice@host:", 400),
    ("sip:alice@ho st", 400),
    ("sip:alice @host", 400),
    ("sip:alice@host;", 400),
    ("sip:alice@host;=x", 400),
    ("sip:alice@host?", 400),
    ("sip:alice@host?a", 400),
    ("sip:al%ZZice@host", 400),
    ("sip:al%4@host", 400),
    ("sip:al<ice@host", 400),
    ("sip:alice@[::1", 400),
    ("sip:alice@[zz::1]", 400),
    ("sip:alice@-host", 400),
    ("sip:alice@h\u00e9st", 400),
    ("sip:alice@host\x00", 400),
    ("sip:alice@host\t", 400),
    ("tel:+1-201-555-0123", 416),
    ("http://www.example.com", 416),
    ("mailto:alice@example.com", 416),
]


@pytest.mark.parametrize("text,status", INVALID_URIS, ids=[repr(v[0]) for v in INVALID_URIS])
def test_uri_rejects(text: str, status: int) -> None:
    with pytest.raises(SipError) as info:
        SipUri.parse(text)
    assert info.value.status == status


def test_uri_param_lookup_is_case_insensitive() -> None:
    uri = SipUri.parse("sip:proxy.example.com;LR;Transport=TCP")
    assert uri.param("lr") == ""
    assert uri.param("TRANSPORT") == "TCP"
    assert uri.has_param("Lr") and not uri.has_param("maddr")
    assert uri.param("maddr") is None


@pytest.mark.parametrize(
    "uri,text",
    [
        (SipUri("sip", "a b", None, "h", None), "sip:a%20b@h"),
        (SipUri("sip", "a@b", "p:w", "h", 5060, (("lr", None),)), "sip:a%40b:p%3Aw@h:5060;lr"),
        (SipUri("sips", None, None, "[::1]", 5061), "sips:[::1]:5061"),
        (SipUri("sip", "\u20ac", None, "h", None), "sip:%E2%82%AC@h"),
        (SipUri("sip", "u", None, "h", None, (), (("subject", "hi"),)), "sip:u@h?subject=hi"),
    ],
)
def test_uri_str(uri: SipUri, text: str) -> None:
    assert str(uri) == text


@pytest.mark.parametrize(
    "text,scheme",
    [
        ("sip:a@b", "sip"),
        ("SIPS:a@b", "sips"),
        ("tel:+123", "tel"),
        ("urn:service:sos", "urn"),
        ("x-Foo.bar+1:opaque", "x-foo.bar+1"),
    ],
)
def test_uri_scheme(text: str, scheme: str) -> None:
    assert uri_scheme(text) == scheme


@pytest.mark.parametrize("text", ["", ":x", "1sip:a", "<sip:a@b>", "sip", " sip:a"])
def test_uri_scheme_rejects(text: str) -> None:
    with pytest.raises(SipError) as info:
        uri_scheme(text)
    assert info.value.status == 400


@pytest.mark.parametrize(
    "text,limit,ok",
    [
        ("0", 9, 0),
        ("007", 9, 7),
        ("255", 255, 255),
        ("256", 255, None),
        ("", 9, None),
        ("-1", 9, None),
        ("1.5", 9, None),
        ("\u00b2", 9, None),
        ("\u0661", 9, None),
        ("9" * 5000, 2**31, None),
        ("0" * 5000 + "1", 9, 1),
        (" 12 ", 99, 12),
    ],
)
def test_parse_uint(text: str, limit: int, ok: int | None) -> None:
    if ok is None:
        with pytest.raises(SipError):
            parse_uint(text, limit=limit, what="Bad")
    else:
        assert parse_uint(text, limit=limit, what="Bad") == ok


@given(st.text(max_size=200))
def test_uri_parse_is_total(text: str) -> None:
    try:
        uri = SipUri.parse(text)
    except SipError as exc:
        assert exc.status in (400, 416)
    else:
        assert SipUri.parse(str(uri)) == uri


@given(
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=30),
    st.sampled_from(["example.com", "[::1]", "10.0.0.1"]),
)
def test_uri_user_escaping_round_trips(user: str, host: str) -> None:
    uri = SipUri("sip", user, None, host, None)
    assert SipUri.parse(str(uri)) == uri


# -- split_header_values / parse_params ------------------------------------------

SPLITS = [
    ("a, b,c", ["a", "b", "c"]),
    ("", []),
    (" , ,", []),
    ('"Watson, Thomas" <sip:t@x>, <sip:b@y>', ['"Watson, Thomas" <sip:t@x>', "<sip:b@y>"]),
    ('"a \\", b" <sip:x>, c', ['"a \\", b" <sip:x>', "c"]),
    ("<sip:a@b;x=1,2>, <sip:c>", ["<sip:a@b;x=1,2>", "<sip:c>"]),
    ("SIP/2.0/UDP a;branch=1 , SIP/2.0/TCP b", ["SIP/2.0/UDP a;branch=1", "SIP/2.0/TCP b"]),
    ('"unterminated, still one', ['"unterminated, still one']),
    ('x;q="a,b", y', ['x;q="a,b"', "y"]),
]


@pytest.mark.parametrize("value,parts", SPLITS)
def test_split_header_values(value: str, parts: list[str]) -> None:
    assert split_header_values(value) == parts


PARAMS = [
    ("", ()),
    (";tag=abc", (("tag", "abc"),)),
    ("tag=abc", (("tag", "abc"),)),
    (" ; Tag = abc ; LR", (("tag", "abc"), ("lr", None))),
    (
        ';q=0.5;+sip.instance="<urn:uuid:1;2>"',
        (("q", "0.5"), ("+sip.instance", '"<urn:uuid:1;2>"')),
    ),
    (';x="a \\" b"', (("x", '"a \\" b"'),)),
    (";received=2001:db8::1", (("received", "2001:db8::1"),)),
    (";maddr=[2001:db8::1]", (("maddr", "[2001:db8::1]"),)),
]


@pytest.mark.parametrize("text,params", PARAMS)
def test_parse_params(text: str, params: tuple[tuple[str, str | None], ...]) -> None:
    assert parse_params(text) == params


@pytest.mark.parametrize(
    "text", [";;", ";a;;b", ";=x", ";a=", ";a=b c", ';a="x', ";a=<x>", ";a b=c", ";a=b,c", ";é=1"]
)
def test_parse_params_rejects(text: str) -> None:
    with pytest.raises(SipError) as info:
        parse_params(text)
    assert info.value.status == 400


# -- NameAddr ---------------------------------------------------------------------

# text, display, uri, params
NAME_ADDRS = [
    ("<sip:alice@atlanta.com>", None, "sip:alice@atlanta.com", ()),
    ("sip:alice@atlanta.com", None, "sip:alice@atlanta.com", ()),
    ("sip:alice@atlanta.com;tag=88sja8x", None, "sip:alice@atlanta.com", (("tag", "88sja8x"),)),
    (
        "sip:alice@atlanta.com ;  tag = 1918181833n",
        None,
        "sip:alice@atlanta.com",
        (("tag", "1918181833n"),),
    ),
    ("Alice <sip:alice@atlanta.com>;tag=1", "Alice", "sip:alice@atlanta.com", (("tag", "1"),)),
    ("Alice Liddell  <sip:a@b>", "Alice Liddell", "sip:a@b", ()),
    ('"Alice" <sip:alice@atlanta.com>', "Alice", "sip:alice@atlanta.com", ()),
    (
        '"Watson, Thomas" <sip:t.watson@example.org>',
        "Watson, Thomas",
        "sip:t.watson@example.org",
        (),
    ),
    (
        '"J Rosenberg \\\\\\"" <sip:jdrosen@example.com> ; tag = 98asjd8',
        'J Rosenberg \\"',
        "sip:jdrosen@example.com",
        (("tag", "98asjd8"),),
    ),
    ('"a;b<c>" <sip:x@y>', "a;b<c>", "sip:x@y", ()),
    ('""<sip:x@y>', "", "sip:x@y", ()),
    (
        "caller<sip:caller@example.com>;tag=323",
        "caller",
        "sip:caller@example.com",
        (("tag", "323"),),
    ),
    (
        "<sip:a@b;lr;transport=tcp>;expires=60;q=0.5",
        None,
        "sip:a@b;lr;transport=tcp",
        (("expires", "60"), ("q", "0.5")),
    ),
    ("<tel:+1-201-555-0123;phone-context=x>", None, "tel:+1-201-555-0123;phone-context=x", ()),
    ("tel:+12015550123;tag=5", None, "tel:+12015550123", (("tag", "5"),)),
    ("<urn:service:sos>", None, "urn:service:sos", ()),
    ("Zo\u00eb <sip:zoe@example.com>", "Zo\u00eb", "sip:zoe@example.com", ()),
    ('"\u0411\u043e\u0431" <sip:bob@example.com>', "\u0411\u043e\u0431", "sip:bob@example.com", ()),
    (
        "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>",
        None,
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        (),
    ),
    ("<sips:[2001:db8::1]:5061>", None, "sips:[2001:db8::1]:5061", ()),
]


@pytest.mark.parametrize("text,display,uri,params", NAME_ADDRS, ids=[n[0] for n in NAME_ADDRS])
def test_name_addr_parses(
    text: str, display: str | None, uri: str, params: tuple[tuple[str, str | None], ...]
) -> None:
    value = NameAddr.parse(text)
    assert (value.display, value.uri, value.params, value.star) == (display, uri, params, False)
    assert NameAddr.parse(str(value)) == value


INVALID_NAME_ADDRS = [
    "",
    "<>",
    "<sip:a@b",
    "sip:a@b>",
    '"Mr. J. User <sip:j.user@example.com>',
    "< sip:t.watson@example.org >",
    "<sip:a@b >",
    "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
    "Joe sip:joe@example.com",
    "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
    "sip:a@b, sip:c@d",
    "<sip:a@b> junk",
    "<sip:a@b>;;;;",
    "<noscheme>",
    "<sip:a@b:99999>",
    "<sip:a b@c>",
    '"x" "y" <sip:a@b>',
    "Joe <sip:a@b>, Bob <sip:c@d>",
]


@pytest.mark.parametrize("text", INVALID_NAME_ADDRS)
def test_name_addr_rejects(text: str) -> None:
    with pytest.raises(SipError) as info:
        NameAddr.parse(text)
    assert info.value.status == 400


def test_name_addr_star_and_tags() -> None:
    star = NameAddr.parse(" * ")
    assert star.star and str(star) == "*"
    plain = NameAddr.parse("sip:bob@biloxi.com")
    assert plain.tag is None
    tagged = plain.with_tag("a6c85cf")
    assert tagged.tag == "a6c85cf" and str(tagged) == "<sip:bob@biloxi.com>;tag=a6c85cf"
    assert tagged.with_tag("zz").params == (("tag", "zz"),)
    assert NameAddr.parse('"A" <sip:a@b>;Tag=x').param("TAG") == "x"
    assert plain.sip_uri() == SipUri.parse("sip:bob@biloxi.com")
    with pytest.raises(SipError) as info:
        NameAddr.parse("<tel:+1234>").sip_uri()
    assert info.value.status == 416
    with pytest.raises(SipUsageError):
        plain.with_tag("bad tag")


@pytest.mark.parametrize(
    "value,text",
    [
        (NameAddr("Alice", "sip:a@b"), "Alice <sip:a@b>"),
        (NameAddr("Watson, Thomas", "sip:a@b"), '"Watson, Thomas" <sip:a@b>'),
        (NameAddr('say "hi"\\', "sip:a@b"), '"say \\"hi\\"\\\\" <sip:a@b>'),
        (NameAddr(None, "sip:a@b;lr", (("tag", "1"), ("x", None))), "<sip:a@b;lr>;tag=1;x"),
        (NameAddr(None, "sip:a@b"), "<sip:a@b>"),
        (NameAddr("", "sip:a@b"), '"" <sip:a@b>'),
    ],
)
def test_name_addr_str(value: NameAddr, text: str) -> None:
    assert str(value) == text
    assert NameAddr.parse(text) == value


# -- Via --------------------------------------------------------------------------

# text, transport, host, port, params
VIAS = [
    (
        "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds",
        "UDP",
        "pc33.atlanta.com",
        None,
        (("branch", "z9hG4bK776asdhds"),),
    ),
    (
        "SIP/2.0/tcp client.atlanta.example.com:5060;branch=z9hG4bK74b76;rport",
        "TCP",
        "client.atlanta.example.com",
        5060,
        (("branch", "z9hG4bK74b76"), ("rport", None)),
    ),
    (
        "sip / 2.0 / UDP 192.0.2.2;branch=390skdjuw",
        "UDP",
        "192.0.2.2",
        None,
        (("branch", "390skdjuw"),),
    ),
    (
        "SIP/2.0/TLS [2001:db8::9:1]:5061;branch=z9hG4bKas;received=2001:db8::9:255",
        "TLS",
        "[2001:db8::9:1]",
        5061,
        (("branch", "z9hG4bKas"), ("received", "2001:db8::9:255")),
    ),
    (
        "SIP/2.0/UDP host : 5070 ; branch = z9hG4bK30239",
        "UDP",
        "host",
        5070,
        (("branch", "z9hG4bK30239"),),
    ),
    (
        "SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKasudf;rport=5060;received=1.2.3.4",
        "WSS",
        "df7jal23ls0d.invalid",
        None,
        (("branch", "z9hG4bKasudf"), ("rport", "5060"), ("received", "1.2.3.4")),
    ),
    (
        "SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKx",
        "UNKNOWN",
        "t4.example.com",
        None,
        (("branch", "z9hG4bKx"),),
    ),
    (
        "SIP/2.0/UDP h;maddr=224.2.0.1;ttl=16;hidden",
        "UDP",
        "h",
        None,
        (("maddr", "224.2.0.1"), ("ttl", "16"), ("hidden", None)),
    ),
]


@pytest.mark.parametrize("text,transport,host,port,params", VIAS, ids=[v[0] for v in VIAS])
def test_via_parses(
    text: str,
    transport: str,
    host: str,
    port: int | None,
    params: tuple[tuple[str, str | None], ...],
) -> None:
    via = Via.parse(text)
    assert (via.transport, via.host, via.port, via.params) == (transport, host, port, params)
    assert Via.parse(str(via)) == via


INVALID_VIAS = [
    "",
    "SIP/2.0/UDP",
    "SIP/2.0/UDP ",
    "SIP/2.0 UDP host",
    "SIP/3.0/UDP host",
    "HTTP/2.0/UDP host",
    "SIP/2.0/UDPhost",
    "SIP/2.0/UDP host:x",
    "SIP/2.0/UDP host:70000",
    "SIP/2.0/UDP [::1;branch=x",
    "SIP/2.0/UDP 192.0.2.15;;",
    "SIP/2.0/UDP host;branch=",
    "SIP/2.0/UDP host;rport=abc",
    "SIP/2.0/UDP host;ttl=300",
    "SIP/2.0/UDP host name",
    "SIP/2.0/UDP ho<st",
]


@pytest.mark.parametrize("text", INVALID_VIAS)
def test_via_rejects(text: str) -> None:
    with pytest.raises(SipError) as info:
        Via.parse(text)
    assert info.value.status == 400


def test_via_accessors_and_received() -> None:
    via = Via.parse("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc;rport")
    assert via.branch == "z9hG4bKabc"
    assert via.param("RPORT") == "" and via.has_param("rport")
    assert via.param("received") is None and not via.has_param("received")
    marked = via.with_received("192.0.2.7", 61000)
    assert marked.param("received") == "192.0.2.7"
    assert marked.param("rport") == "61000"
    assert (
        str(marked) == "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc;rport=61000;received=192.0.2.7"
    )
    # RFC 3581 §4: rport is only filled when the client asked for it
    plain = Via.parse("SIP/2.0/UDP h;branch=z9hG4bK1").with_received("1.1.1.1", 5)
    assert plain.params == (("branch", "z9hG4bK1"), ("received", "1.1.1.1"))
    again = marked.with_received("192.0.2.8", 1)
    assert again.param("received") == "192.0.2.8" and again.param("rport") == "61000"


# -- CSeq -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,seq,method",
    [
        ("1 INVITE", 1, "INVITE"),
        ("  0009   INVITE ", 9, "INVITE"),
        ("4711\tBYE", 4711, "BYE"),
        ("2147483647 REGISTER", 2**31 - 1, "REGISTER"),
        ("0 ACK", 0, "ACK"),
        (
            "139122385 !interesting-Method0123456789_*+`.%indeed'~",
            139122385,
            "!interesting-Method0123456789_*+`.%indeed'~",
        ),
    ],
)
def test_cseq_parses(text: str, seq: int, method: str) -> None:
    cseq = CSeq.parse(text)
    assert (cseq.seq, cseq.method) == (seq, method)
    assert CSeq.parse(str(cseq)) == cseq


@pytest.mark.parametrize(
    "text",
    [
        "",
        "INVITE",
        "1",
        "1INVITE",
        "-1 INVITE",
        "2147483648 INVITE",
        "36893488147419103232 INVITE",
        "1 INV ITE",
        "1.0 INVITE",
        "x INVITE",
        "1 INVITE;x",
        "\u0661 INVITE",
    ],
)
def test_cseq_rejects(text: str) -> None:
    with pytest.raises(SipError) as info:
        CSeq.parse(text)
    assert info.value.status == 400


# -- totality -----------------------------------------------------------------------

_HEADERISH = st.text(
    alphabet=st.sampled_from(list('sip:SIP/2.0UDP <>;,="\\@ \t[]:ab1%?&*')), max_size=80
)


@given(st.one_of(st.text(max_size=120), _HEADERISH))
def test_header_parsers_are_total(text: str) -> None:
    for parse in (NameAddr.parse, Via.parse, CSeq.parse, parse_params, SipUri.parse):
        try:
            parse(text)
        except SipError:
            pass
    split_header_values(text)

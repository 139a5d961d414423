"""SIP message parsing, framing, editing and construction (RFC 3261 §7, §8.2.6, §18.3)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signaling.errors import SipError, SipUsageError
from signaling.headers import CSeq
from signaling.message import (
    COMPACT,
    MULTI_VALUE,
    REASONS,
    Ping,
    SipMessage,
    StreamParser,
    make_request,
    make_response,
    parse_message,
)

CRLF = "\r\n"

BASE_HEADERS = [
    "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds",
    "Max-Forwards: 70",
    "To: Bob <sip:bob@biloxi.com>",
    "From: Alice <sip:alice@atlanta.com>;tag=1928301774",
    "Call-ID: a84b4c76e66710@pc33.atlanta.com",
    "CSeq: 314159 INVITE",
    "Contact: <sip:alice@pc33.atlanta.com>",
]


def wire(start: str, headers: list[str], body: str = "", eol: str = CRLF) -> bytes:
    """Bytes of a message from its start line, header lines and body."""
    return (eol.join([start, *headers]) + eol + eol + body).encode("utf-8")


def invite(*extra: str, body: str = "", drop: str | None = None) -> bytes:
    """The §24.2 INVITE with ``extra`` header lines, minus headers named ``drop``."""
    headers = [h for h in BASE_HEADERS if drop is None or not h.lower().startswith(drop.lower())]
    return wire("INVITE sip:bob@biloxi.com SIP/2.0", headers + list(extra), body)


RESPONSE = wire(
    "SIP/2.0 200 OK",
    [
        "Via: SIP/2.0/UDP server10.biloxi.com;branch=z9hG4bK4b43c2ff8.1;received=192.0.2.3",
        "Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds;received=192.0.2.1",
        "To: Bob <sip:bob@biloxi.com>;tag=a6c85cf",
        "From: Alice <sip:alice@atlanta.com>;tag=1928301774",
        "Call-ID: a84b4c76e66710@pc33.atlanta.com",
        "CSeq: 314159 INVITE",
        "Contact: <sip:bob@192.0.2.4>",
        "Content-Length: 0",
    ],
)

# -- valid messages ---------------------------------------------------------------


def test_basic_request() -> None:
    msg = parse_message(invite("Content-Length: 0"))
    assert msg.is_request
    assert (msg.method, msg.uri, msg.status, msg.reason) == (
        "INVITE",
        "sip:bob@biloxi.com",
        None,
        None,
    )
    assert msg.via[0].branch == "z9hG4bK776asdhds"
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.com"
    assert msg.cseq == CSeq(314159, "INVITE")
    assert msg.from_.tag == "1928301774" and msg.from_.display == "Alice"
    assert msg.to.tag is None and msg.to.uri == "sip:bob@biloxi.com"
    assert [c.uri for c in msg.contact] == ["sip:alice@pc33.atlanta.com"]
    assert msg.max_forwards == 70
    assert msg.content_type is None and msg.content_length == 0
    assert msg.require == [] and msg.supported == []
    assert msg.body == b""


def test_basic_response() -> None:
    msg = parse_message(RESPONSE)
    assert not msg.is_request
    assert (msg.method, msg.uri, msg.status, msg.reason) == (None, None, 200, "OK")
    assert [v.host for v in msg.via] == ["server10.biloxi.com", "pc33.atlanta.com"]
    assert msg.to.tag == "a6c85cf"
    assert msg.max_forwards is None


COMPACT_FORMS = wire(
    "INVITE sip:bob@biloxi.com SIP/2.0",
    [
        "v: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKa",
        "t: <sip:bob@biloxi.com>",
        "f: <sip:alice@atlanta.com>;tag=1",
        "i: abc@host",
        "CSeq: 1 INVITE",
        "m: <sip:alice@pc33.atlanta.com>",
        "k: timer, 100REL",
        "c: Application/SDP ; charset=utf-8",
        "s: hello",
        "o: presence",
        "x: 1800;refresher=uac",
        "l: 3",
    ],
    "v=0",
)


def test_compact_forms() -> None:
    msg = parse_message(COMPACT_FORMS)
    assert msg.call_id == "abc@host"
    assert msg.get("Call-ID") == msg.get("i") == msg.get("CALL-id") == "abc@host"
    assert msg.get("Subject") == "hello" and msg.get("Event") == "presence"
    assert msg.get("session-expires") == "1800;refresher=uac"
    assert msg.supported == ["timer", "100rel"]
    assert msg.content_type == "application/sdp"
    assert msg.content_length == 3 and msg.body == b"v=0"
    assert msg.has("Content-Type") and msg.has("c") and not msg.has("Require")
    assert msg.via[0].branch == "z9hG4bKa"


def test_compact_table() -> None:
    assert COMPACT["i"] == "Call-ID" and COMPACT["m"] == "Contact" and COMPACT["y"] == "Identity"
    assert {"via", "contact", "route", "record-route", "allow", "supported"} <= MULTI_VALUE
    assert not {"authorization", "www-authenticate", "date", "from", "to"} & MULTI_VALUE
    assert REASONS[200] == "OK" and REASONS[491] == "Request Pending" and REASONS[199]


FOLDED = wire(
    "INVITE sip:bob@biloxi.com SIP/2.0",
    [
        "Via: SIP/2.0/UDP pc33.atlanta.com",
        "  ;branch=z9hG4bKa",
        "To:",
        " <sip:bob@biloxi.com>",
        "From: <sip:alice@atlanta.com>",
        "\t;tag=1",
        "Call-ID: x@y",
        "CSeq: 0009",
        "  INVITE",
        "Subject: I know you're there,",
        "         pick up the phone",
        "         and talk to me!",
    ],
)


def test_folded_headers() -> None:
    msg = parse_message(FOLDED)
    assert msg.get("Subject") == "I know you're there, pick up the phone and talk to me!"
    assert msg.get("to") == "<sip:bob@biloxi.com>"
    assert msg.from_.tag == "1"
    assert msg.cseq == CSeq(9, "INVITE")
    assert msg.via[0].branch == "z9hG4bKa"


def test_multi_value_headers_over_lines() -> None:
    msg = parse_message(
        invite(
            "Via: SIP/2.0/TCP b.example.com;branch=z9hG4bKb, SIP/2.0/UDP c.example.com",
            'Contact: "Watson, Thomas" <sip:tw@example.org>;q=0.5, <sip:x@y>',
            "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
            "Route: <sip:p3.example.com;lr>",
            "Allow: INVITE, ACK,BYE",
            "Require: 100rel",
            "Supported: Timer",
            "Supported: replaces, path",
        )
    )
    assert [v.host for v in msg.via] == ["pc33.atlanta.com", "b.example.com", "c.example.com"]
    assert msg.get("via") == "SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds"
    assert msg.get_all("route") == [
        "<sip:p1.example.com;lr>",
        "<sip:p2.example.com;lr>",
        "<sip:p3.example.com;lr>",
    ]
    assert msg.get("Route") == "<sip:p1.example.com;lr>"
    assert [c.display for c in msg.contact] == [None, "Watson, Thomas", None]
    assert msg.contact[1].param("q") == "0.5"
    assert msg.get_all("allow") == ["INVITE", "ACK", "BYE"]
    assert msg.require == ["100rel"]
    assert msg.supported == ["timer", "replaces", "path"]


def test_single_value_headers_keep_commas() -> None:
    auth = 'Digest username="bob", realm="biloxi.com", nonce="dcd98b", uri="sip:bob@biloxi.com"'
    msg = parse_message(
        invite(f"Authorization: {auth}", "Date: Sat, 13 Nov 2010 23:29:00 GMT", "Subject: a, b")
    )
    assert msg.get("authorization") == auth
    assert msg.get_all("date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert msg.get("subject") == "a, b"
    assert msg.get("X-Missing") is None and msg.get_all("X-Missing") == []


def test_case_insensitive_names_and_method_case_kept() -> None:
    msg = parse_message(
        wire(
            "invite sip:bob@biloxi.com SIP/2.0",
            [
                "VIA: SIP/2.0/UDP h;branch=z9hG4bK1",
                "tO: <sip:bob@biloxi.com>",
                "FROM: <sip:a@b>;TAG=x",
                "call-id: c",
                "cseq: 1 invite",
            ],
        )
    )
    assert msg.method == "invite"  # §7.1: methods are case-sensitive
    assert msg.from_.tag == "x"
    with pytest.raises(SipError) as info:
        parse_message(
            invite("Content-Length: 0").replace(b"CSeq: 314159 INVITE", b"CSeq: 1 invite")
        )
    assert (info.value.status, info.value.reason) == (400, "CSeq method mismatch")


def test_quoted_strings_with_separators() -> None:
    msg = parse_message(
        wire(
            "MESSAGE sip:bob@biloxi.com SIP/2.0",
            [
                "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
                'To: "Bob \\"the, builder\\"; <x>" <sip:bob@biloxi.com>',
                'From: "a,b;c" <sip:a@b>;tag=t;x="q;u,o\\"te"',
                "Call-ID: c",
                "CSeq: 1 MESSAGE",
                'Contact: "x, y" <sip:c@d>, "z" <sip:e@f>;p="1,2"',
            ],
        )
    )
    assert msg.to.display == 'Bob "the, builder"; <x>'
    assert msg.from_.display == "a,b;c" and msg.from_.param("x") == '"q;u,o\\"te"'
    assert [c.display for c in msg.contact] == ["x, y", "z"]
    assert msg.contact[1].param("p") == '"1,2"'


def test_uri_params_escapes_and_ipv6() -> None:
    msg = parse_message(
        wire(
            "INVITE sip:%61lice;day=tue@[2001:db8::1]:5070;transport=TCP;lr SIP/2.0",
            [
                "Via: SIP/2.0/TCP [2001:db8::2]:5070;branch=z9hG4bK1;received=2001:db8::3",
                "To: <sip:alice;day=tue@[2001:db8::1]:5070>",
                "From: <sips:bob@[::1]>;tag=1",
                "Call-ID: c@[::1]",
                "CSeq: 1 INVITE",
            ],
        )
    )
    via = msg.via[0]
    assert (via.host, via.port, via.param("received")) == ("[2001:db8::2]", 5070, "2001:db8::3")
    uri = msg.to.sip_uri()
    assert (uri.user, uri.host, uri.port) == ("alice;day=tue", "[2001:db8::1]", 5070)
    assert msg.from_.sip_uri().scheme == "sips"


def test_display_names() -> None:
    cases = {
        "To: Bob <sip:b@x>": "Bob",
        'To: "Bob" <sip:b@x>': "Bob",
        "To: <sip:b@x>": None,
        "To: sip:b@x": None,
        'To:"Mr. Watson"<sip:b@x>': "Mr. Watson",
        "To: Zo\u00eb Test <sip:b@x>": "Zo\u00eb Test",
        'To: "\u65e5\u672c" <sip:b@x>': "\u65e5\u672c",
    }
    for line, display in cases.items():
        headers = [h for h in BASE_HEADERS if not h.startswith("To:")] + [line]
        assert parse_message(wire("INVITE sip:b@x SIP/2.0", headers)).to.display == display


def test_bare_lf_and_leading_crlf() -> None:
    data = b"\r\n\r\n" + wire("INVITE sip:bob@biloxi.com SIP/2.0", BASE_HEADERS, "body", eol="\n")
    msg = parse_message(data)
    assert msg.body == b"body" and msg.call_id == "a84b4c76e66710@pc33.atlanta.com"
    mixed = invite().replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\n")
    assert parse_message(mixed).max_forwards == 70


@pytest.mark.parametrize(
    "content_length,body,expected",
    [
        (None, "", b""),
        (None, "v=0\r\n", b"v=0\r\n"),
        ("0", "", b""),
        ("0", "trailing junk", b""),
        ("5", "v=0\r\no=extra", b"v=0\r\n"),
        ("11", "hello world", b"hello world"),
        ("  3  ", "abcdef", b"abc"),
        ("0003", "abc", b"abc"),
    ],
)
def test_udp_content_length_framing(content_length: str | None, body: str, expected: bytes) -> None:
    extra = [] if content_length is None else [f"Content-Length: {content_length}"]
    assert parse_message(invite(*extra, body=body)).body == expected


def test_binary_body_kept_exactly() -> None:
    body = bytes(range(256)) * 3
    data = invite(f"Content-Length: {len(body)}", "Content-Type: application/octet-stream")
    msg = parse_message(data + body)
    assert msg.body == body


def test_utf8_reason_and_invalid_utf8_survive() -> None:
    reason = "\u043d\u043e \u0441\u0442\u043e"
    data = RESPONSE.replace(b"200 OK", f"200 {reason}".encode())
    assert parse_message(data).reason == reason
    raw = RESPONSE.replace(b"200 OK", b"200 \xff\xfe bad")
    msg = parse_message(raw)
    assert msg.serialize() == raw


@pytest.mark.parametrize("reason_line", [b"SIP/2.0 100 ", b"SIP/2.0 100"])
def test_empty_reason(reason_line: bytes) -> None:
    assert parse_message(RESPONSE.replace(b"SIP/2.0 200 OK", reason_line)).reason == ""


def test_sip_version_is_case_insensitive() -> None:
    data = invite().replace(b"SIP/2.0\r\n", b"sip/2.0\r\n", 1)
    assert parse_message(data).method == "INVITE"


def test_unknown_method_and_scheme_are_syntax_only() -> None:
    data = wire(
        "FOO nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0",
        [
            "Via: SIP/2.0/UDP h;branch=z9hG4bK1",
            "To: <isbn:2983792873>",
            "From: <http://www.example.com>;tag=1",
            "Call-ID: c",
            "CSeq: 1 FOO",
        ],
    )
    msg = parse_message(data)
    assert msg.method == "FOO" and msg.uri == "nobodyKnowsThisScheme:totallyopaquecontent"
    assert msg.to.uri == "isbn:2983792873"


# -- invalid messages -------------------------------------------------------------

INVALID: list[tuple[str, bytes, int]] = [
    ("no via", invite(drop="Via"), 400),
    ("no from", invite(drop="From"), 400),
    ("no to", invite(drop="To"), 400),
    ("no call-id", invite(drop="Call-ID"), 400),
    ("no cseq", invite(drop="CSeq"), 400),
    ("response no via", RESPONSE.replace(b"Via", b"X-Via"), 400),
    ("response no cseq", RESPONSE.replace(b"CSeq", b"X-CSeq"), 400),
    ("response no call-id", RESPONSE.replace(b"Call-ID", b"X-Call"), 400),
    ("response no from", RESPONSE.replace(b"From", b"X-From"), 400),
    ("response no to", RESPONSE.replace(b"\r\nTo:", b"\r\nX-To:"), 400),
    ("two to", invite("To: <sip:other@x>"), 400),
    ("two call-id", invite("i: other"), 400),
    ("two cseq", invite("CSeq: 314159 INVITE"), 400),
    ("two from", invite("f: <sip:a@b>;tag=2"), 400),
    ("two content-length", invite("Content-Length: 0", "l: 0"), 400),
    ("two max-forwards", invite("Max-Forwards: 70"), 400),
    ("cseq mismatch", invite().replace(b"314159 INVITE", b"314159 OPTIONS"), 400),
    ("cseq not a number", invite().replace(b"314159 INVITE", b"abc INVITE"), 400),
    ("cseq too big", invite().replace(b"314159 INVITE", b"2147483648 INVITE"), 400),
    ("cseq huge", invite().replace(b"314159 INVITE", b"36893488147419103232 INVITE"), 400),
    ("cseq only number", invite().replace(b"314159 INVITE", b"314159"), 400),
    ("SIP/3.0 request", invite().replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505),
    ("SIP/1.0 request", invite().replace(b"SIP/2.0\r\n", b"SIP/1.0\r\n", 1), 505),
    ("SIP/3.0 response", RESPONSE.replace(b"SIP/2.0 200", b"SIP/3.0 200"), 505),
    ("HTTP version", invite().replace(b"SIP/2.0\r\n", b"HTTP/1.1\r\n", 1), 400),
    ("no version", invite().replace(b" SIP/2.0\r\n", b"\r\n", 1), 400),
    ("double space", invite().replace(b"INVITE sip", b"INVITE  sip", 1), 400),
    ("trailing space", invite().replace(b"SIP/2.0\r\n", b"SIP/2.0 \r\n", 1), 400),
    ("tab separator", invite().replace(b"INVITE sip", b"INVITE\tsip", 1), 400),
    ("bad method", invite().replace(b"INVITE sip", b"INV@TE sip", 1), 400),
    ("uri in brackets", invite().replace(b"sip:bob@biloxi.com SIP", b"<sip:bob@x> SIP", 1), 400),
    ("uri without scheme", invite().replace(b"sip:bob@biloxi.com SIP", b"bob SIP", 1), 400),
    ("bad sip uri", invite().replace(b"sip:bob@biloxi.com SIP", b"sip:bob@ SIP", 1), 400),
    ("uri headers", invite().replace(b"biloxi.com SIP", b"biloxi.com?Route=x SIP", 1), 400),
    ("status 99", RESPONSE.replace(b"200 OK", b"099 OK"), 400),
    ("status 700", RESPONSE.replace(b"200 OK", b"700 OK"), 400),
    ("status 4 digits", RESPONSE.replace(b"200 OK", b"2000 OK"), 400),
    ("status huge", RESPONSE.replace(b"200 OK", b"4294967301 better not break"), 400),
    ("status letters", RESPONSE.replace(b"200 OK", b"2x0 OK"), 400),
    ("status missing", RESPONSE.replace(b"200 OK", b""), 400),
    ("negative content-length", invite("Content-Length: -1"), 400),
    ("non-numeric content-length", invite("Content-Length: ten"), 400),
    ("empty content-length", invite("Content-Length:"), 400),
    ("content-length too big", invite("Content-Length: 10", body="short"), 400),
    ("content-length digits", invite("Content-Length: " + "9" * 5000), 400),
    ("header without colon", invite("NoColonHere"), 400),
    ("bad header name", invite("Bad Name: x"), 400),
    ("empty header name", invite(": x"), 400),
    ("non-ascii header name", invite("X-\u00e9: x"), 400),
    ("NUL in header", invite("X-Foo: a\x00b"), 400),
    ("NUL in start line", invite().replace(b"INVITE sip", b"INV\x00TE sip", 1), 400),
    ("bare CR", invite("X-Foo: a\rb"), 400),
    ("escape char", invite("X-Foo: \x1b[31m"), 400),
    ("fold first", wire("INVITE sip:b@x SIP/2.0", [" folded: x", *BASE_HEADERS]), 400),
    ("no blank line", b"\r\n".join(invite().split(b"\r\n")[:-2]) + b"\r\n", 400),
    ("start line only", b"INVITE sip:b@x SIP/2.0", 400),
    ("empty", b"", 400),
    ("only CRLFs", b"\r\n\r\n\r\n", 400),
    ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),
    ("http request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("bad via", invite().replace(b"SIP/2.0/UDP pc33", b"SIP/2.0/UDP pc 33"), 400),
    ("bad via version", invite().replace(b"SIP/2.0/UDP pc33", b"SIP/3.0/UDP pc33"), 400),
    ("bad from", invite().replace(b"From: Alice <sip:", b"From: Alice sip:"), 400),
    ("unbalanced quote", invite().replace(b"From: Alice", b'From: "Alice'), 400),
    ("bad to uri", invite().replace(b"<sip:bob@biloxi.com>", b"<sip:bob@biloxi.com:x>"), 400),
    ("bad contact", invite().replace(b"Contact: <sip:alice", b"Contact: <alice"), 400),
    ("star with others", invite("Contact: *"), 400),
    ("max-forwards 256", invite().replace(b"Max-Forwards: 70", b"Max-Forwards: 256"), 400),
    ("max-forwards text", invite().replace(b"Max-Forwards: 70", b"Max-Forwards: many"), 400),
    ("call-id with space", invite().replace(b"Call-ID: a84b", b"Call-ID: a8 4b"), 400),
    ("empty call-id", invite("i:", drop="Call-ID"), 400),
    ("long line", invite("X-Long: " + "a" * 8200), 400),
    ("too many headers", invite(*[f"X-H{i}: v" for i in range(200)]), 400),
]


@pytest.mark.parametrize("data,status", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_messages(data: bytes, status: int) -> None:
    with pytest.raises(SipError) as info:
        parse_message(data)
    assert info.value.status == status
    assert str(info.value) == f"{info.value.status} {info.value.reason}"


@pytest.mark.parametrize(
    "drop,reason",
    [
        ("Via", "Missing Via header"),
        ("From", "Missing From header"),
        ("To", "Missing To header"),
        ("Call-ID", "Missing Call-ID header"),
        ("CSeq", "Missing CSeq header"),
    ],
)
def test_missing_header_reasons(drop: str, reason: str) -> None:
    with pytest.raises(SipError) as info:
        parse_message(invite(drop=drop))
    assert info.value.reason == reason


def test_version_reason_phrase() -> None:
    with pytest.raises(SipError) as info:
        parse_message(invite().replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1))
    assert (info.value.status, info.value.reason) == (505, "Version Not Supported")


def test_oversize_is_513() -> None:
    data = invite(body="x" * 70000)
    with pytest.raises(SipError) as info:
        parse_message(data)
    assert (info.value.status, info.value.reason) == (513, "Message Too Large")
    assert parse_message(data, max_size=80000).body == b"x" * 70000
    with pytest.raises(SipError) as info:
        parse_message(invite(), max_size=100)
    assert info.value.status == 513


def test_limits_are_inclusive() -> None:
    headers = [f"X-H{i}: v" for i in range(200 - len(BASE_HEADERS))]
    assert parse_message(invite(*headers)).get("X-H0") == "v"
    line = "X-Long: " + "a" * (8192 - len("X-Long: "))
    assert len(parse_message(invite(line)).get("x-long") or "") == 8192 - len("X-Long: ")


def test_stream_mode_requires_content_length() -> None:
    with pytest.raises(SipError) as info:
        parse_message(invite(), stream=True)
    assert info.value.status == 400
    assert parse_message(invite("Content-Length: 2", body="ab"), stream=True).body == b"ab"


def test_typed_views_report_bad_headers_lazily() -> None:
    msg = SipMessage(
        "OPTIONS",
        "sip:a@b",
        None,
        None,
        (("CSeq", "x"), ("Content-Type", "nonsense"), ("Require", "a b"), ("Supported", "ok, b@d")),
    )
    for view, reason in [
        ("cseq", "Bad CSeq header"),
        ("via", "Missing Via header"),
        ("from_", "Missing From header"),
        ("to", "Missing To header"),
        ("call_id", "Missing Call-ID header"),
        ("content_type", "Bad Content-Type header"),
        ("require", "Bad Require header"),
        ("supported", "Bad Supported header"),
    ]:
        with pytest.raises(SipError) as info:
            getattr(msg, view)
        assert (info.value.status, info.value.reason) == (400, reason)
    assert msg.contact == [] and msg.max_forwards is None


def test_response_cseq_syntax_is_checked_lazily() -> None:
    # A 400 that echoes a peer's broken CSeq must still parse; matching it fails later.
    msg = parse_message(RESPONSE.replace(b"CSeq: 314159 INVITE", b"CSeq: abc INVITE"))
    assert msg.status == 200
    with pytest.raises(SipError) as info:
        msg.cseq  # noqa: B018
    assert (info.value.status, info.value.reason) == (400, "Bad CSeq header")


# -- round trip and edits --------------------------------------------------------


ROUND_TRIP = [
    invite("Content-Length: 0"),
    RESPONSE,
    COMPACT_FORMS,
    invite(
        "X-Unknown: keep ;;,, me",
        "P-Asserted-Identity: <sip:a@b>",
        "Content-Length: 4",
        body="abcd",
    ),
    invite("l: 4", body="abcd"),
]


@pytest.mark.parametrize("data", ROUND_TRIP)
def test_round_trip_is_exact(data: bytes) -> None:
    msg = parse_message(data)
    assert msg.serialize() == data
    assert parse_message(msg.serialize()) == msg


def test_serialize_rewrites_or_adds_content_length() -> None:
    msg = parse_message(invite("l: 99", "X-After: 1", body="x" * 99))
    short = SipMessage(msg.method, msg.uri, None, None, msg.headers, b"abc")
    assert b"\r\nl: 3\r\nX-After: 1\r\n\r\nabc" in short.serialize()
    bare = parse_message(invite())
    assert bare.serialize().endswith(
        b"Contact: <sip:alice@pc33.atlanta.com>\r\nContent-Length: 0\r\n\r\n"
    )
    folded = parse_message(FOLDED)
    assert b"\r\nCSeq: 0009 INVITE\r\n" in folded.serialize()


def test_header_edits() -> None:
    msg = parse_message(invite("Route: <sip:p1;lr>", "X-A: 1", "Route: <sip:p2;lr>", "l: 0"))
    first = msg.with_header("Via", "SIP/2.0/UDP proxy;branch=z9hG4bKp", first=True)
    assert first.headers[0] == ("Via", "SIP/2.0/UDP proxy;branch=z9hG4bKp")
    assert [v.host for v in first.via] == ["proxy", "pc33.atlanta.com"]
    assert msg.with_header("X-B", "2").headers[-1] == ("X-B", "2")
    gone = msg.without_header("route").without_header("CONTENT-LENGTH")
    assert not gone.has("Route") and not gone.has("l") and gone.has("X-A")
    replaced = msg.replace_header("Route", ["<sip:q1;lr>", "<sip:q2;lr>"])
    names = [n for n, _ in replaced.headers]
    assert names.index("Route") == names.index("X-A") - 2
    assert replaced.get_all("route") == ["<sip:q1;lr>", "<sip:q2;lr>"]
    added = msg.replace_header("Subject", ["hi"])
    assert added.headers[-1] == ("Subject", "hi")
    assert msg.replace_header("Route", []).get_all("route") == []
    assert msg.via == parse_message(invite()).via  # edits never touch the original
    compact = parse_message(COMPACT_FORMS).without_header("Content-Type")
    assert compact.content_type is None and compact.get("s") == "hello"


def test_with_body() -> None:
    msg = parse_message(invite("Content-Length: 0"))
    sdp = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    with_sdp = msg.with_body(sdp, "application/sdp")
    assert with_sdp.content_type == "application/sdp"
    assert with_sdp.content_length == len(sdp) and with_sdp.body == sdp
    assert parse_message(with_sdp.serialize()) == with_sdp
    cleared = with_sdp.with_body(b"", None)
    assert not cleared.has("Content-Type") and cleared.content_length == 0


@pytest.mark.parametrize(
    "name,value", [("Bad Name", "x"), ("", "x"), ("X-A", "a\r\nInjected: 1"), ("X-A", "a\nb")]
)
def test_header_edits_refuse_bad_lines(name: str, value: str) -> None:
    msg = parse_message(invite())
    with pytest.raises(SipUsageError):
        msg.with_header(name, value)
    with pytest.raises(SipUsageError):
        msg.replace_header(name, [value])


# -- construction ----------------------------------------------------------------


def test_make_response_copies_headers() -> None:
    req = parse_message(
        wire(
            "INVITE sip:bob@biloxi.com SIP/2.0",
            [
                "v: SIP/2.0/UDP proxy;branch=z9hG4bKp, SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK1",
                "Max-Forwards: 69",
                "Via: SIP/2.0/TCP third;branch=z9hG4bK3",
                "t: Bob <sip:bob@biloxi.com>",
                "f: Alice <sip:alice@atlanta.com>;tag=1928301774",
                "i: a84b4c76e66710@pc33.atlanta.com",
                "CSeq: 314159 INVITE",
                "Record-Route: <sip:proxy;lr>",
                "Contact: <sip:alice@pc33.atlanta.com>",
                "Content-Length: 0",
            ],
        )
    )
    resp = make_response(req, 180, to_tag="a6c85cf", headers=[("Contact", "<sip:bob@192.0.2.4>")])
    assert (resp.status, resp.reason, resp.method) == (180, "Ringing", None)
    assert resp.headers[:6] == (
        ("v", "SIP/2.0/UDP proxy;branch=z9hG4bKp, SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK1"),
        ("Via", "SIP/2.0/TCP third;branch=z9hG4bK3"),
        ("t", "Bob <sip:bob@biloxi.com>;tag=a6c85cf"),
        ("f", "Alice <sip:alice@atlanta.com>;tag=1928301774"),
        ("i", "a84b4c76e66710@pc33.atlanta.com"),
        ("CSeq", "314159 INVITE"),
    )
    assert resp.headers[6:] == (("Contact", "<sip:bob@192.0.2.4>"), ("Content-Length", "0"))
    assert not resp.has("Record-Route") and not resp.has("Max-Forwards")
    again = parse_message(resp.serialize())
    assert again == resp and again.to.tag == "a6c85cf"


def test_make_response_tag_rules() -> None:
    req = parse_message(invite())
    assert make_response(req, 100).to.tag is None
    assert make_response(req, 486, "Busy", to_tag="x").reason == "Busy"
    tagged = parse_message(make_response(req, 200, to_tag="first").serialize())
    # A request already in a dialog keeps its To tag (§8.2.6.2).
    in_dialog = make_request("BYE", "sip:alice@pc33.atlanta.com", tagged.headers)
    in_dialog = in_dialog.replace_header("CSeq", ["2 BYE"])
    assert make_response(in_dialog, 200, to_tag="second").to.tag == "first"
    assert make_response(req, 299).reason == "Unknown"
    addr_spec = parse_message(invite().replace(b"To: Bob <sip:bob@biloxi.com>", b"To: sip:b@x"))
    assert make_response(addr_spec, 200, to_tag="t").get("to") == "sip:b@x;tag=t"
    with_body = make_response(req, 200, body=b"abc", headers=[("Content-Type", "text/plain")])
    assert with_body.content_length == 3


@pytest.mark.parametrize("status", [99, 700, 0, -1])
def test_make_response_refuses_bad_status(status: int) -> None:
    with pytest.raises(SipUsageError):
        make_response(parse_message(invite()), status)


def test_make_response_refuses_misuse() -> None:
    with pytest.raises(SipUsageError):
        make_response(parse_message(RESPONSE), 200)
    with pytest.raises(SipUsageError):
        make_response(parse_message(invite()), 200, to_tag="a b")


def test_make_request() -> None:
    headers = [
        ("Via", "SIP/2.0/UDP me;branch=z9hG4bKx"),
        ("From", "<sip:me@x>;tag=1"),
        ("To", "<sip:you@y>"),
        ("Call-ID", "c1"),
        ("CSeq", "1 OPTIONS"),
    ]
    req = make_request("OPTIONS", "sip:you@y", headers)
    assert req.is_request and req.content_length == 0
    assert parse_message(req.serialize()) == req
    msg = make_request("MESSAGE", "sip:you@y", [*headers[:4], ("CSeq", "2 MESSAGE")], b"hi")
    assert msg.serialize().endswith(b"Content-Length: 2\r\n\r\nhi")
    for method, uri in [("BAD METHOD", "sip:a@b"), ("INVITE", "no-scheme"), ("INVITE", "sip:a b")]:
        with pytest.raises(SipUsageError):
            make_request(method, uri, headers)


# -- StreamParser ---------------------------------------------------------------

STREAM_MSGS = [
    invite("Content-Length: 4", body="v=0\n"),
    RESPONSE,
    wire(
        "BYE sip:alice@pc33.atlanta.com SIP/2.0",
        [
            "Via: SIP/2.0/TCP h;branch=z9hG4bK9",
            "To: <sip:a@b>;tag=1",
            "From: <sip:c@d>;tag=2",
            "Call-ID: x",
            "CSeq: 2 BYE",
            "l: 0",
        ],
    ),
]


def test_stream_split_at_every_byte() -> None:
    data = b"".join(STREAM_MSGS)
    expected = [parse_message(m) for m in STREAM_MSGS]
    for cut in range(len(data) + 1):
        parser = StreamParser()
        got = parser.feed(data[:cut]) + parser.feed(data[cut:])
        assert got == expected, cut


def test_stream_byte_by_byte_with_pings() -> None:
    data = b"\r\n\r\n" + STREAM_MSGS[0] + b"\r\n\r\n" + STREAM_MSGS[1] + b"\r\n" + STREAM_MSGS[2]
    parser = StreamParser()
    out: list[SipMessage | Ping] = []
    for i in range(len(data)):
        out += parser.feed(data[i : i + 1])
    assert out == [
        Ping(),
        parse_message(STREAM_MSGS[0]),
        Ping(),
        *map(parse_message, STREAM_MSGS[1:]),
    ]


def test_stream_several_in_one_chunk() -> None:
    parser = StreamParser()
    out = parser.feed(b"".join(STREAM_MSGS) + STREAM_MSGS[0][:10])
    assert len(out) == 3 and all(isinstance(m, SipMessage) for m in out)
    assert parser.feed(STREAM_MSGS[0][10:]) == [parse_message(STREAM_MSGS[0])]
    assert parser.feed(b"") == []
    assert parser.feed(b"\r\n\r\n\r\n\r\n") == [Ping(), Ping()]


def test_stream_body_is_framed_by_content_length() -> None:
    msg = invite("Content-Length: 10", body="0123456789")
    parser = StreamParser()
    assert parser.feed(msg[:-3]) == []
    (got,) = parser.feed(msg[-3:] + b"SIP/2.0 1")
    assert isinstance(got, SipMessage) and got.body == b"0123456789"


@pytest.mark.parametrize(
    "data,status",
    [
        (invite(), 400),  # Content-Length is mandatory on streams
        (invite("Content-Length: abc"), 400),
        (invite("Content-Length: 70000"), 513),
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\n\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"x" * 70000, 400),  # one endless line
        (b"x" * 9000 + b"\n", 400),
        (invite("Content-Length: 0").replace(b"314159 INVITE", b"1 BYE"), 400),
    ],
    ids=["no-cl", "bad-cl", "big-cl", "tls", "http", "huge", "long-line", "mismatch"],
)
def test_stream_errors(data: bytes, status: int) -> None:
    parser = StreamParser()
    with pytest.raises(SipError) as info:
        parser.feed(data)
    assert info.value.status == status
    with pytest.raises(SipError):
        parser.feed(STREAM_MSGS[1])  # a broken stream stays broken


def test_stream_oversize_without_newline_is_noticed() -> None:
    parser = StreamParser(max_size=1000)
    assert parser.feed(b"INVITE ") == []
    with pytest.raises(SipError) as info:
        for _ in range(200):
            parser.feed(b"a" * 10)
    assert info.value.status == 513


# -- properties -------------------------------------------------------------------

VALID_SAMPLES = [invite("Content-Length: 4", body="v=0\n"), RESPONSE, COMPACT_FORMS, FOLDED]


def _check_total(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipError as exc:
        assert 400 <= exc.status <= 599
        return
    again = parse_message(msg.serialize())
    assert again.body == msg.body
    strip = "content-length"
    assert again.without_header(strip).headers == msg.without_header(strip).headers


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_parse_or_sip_error(data: bytes) -> None:
    _check_total(data)


_MUTATION_BYTES = st.sampled_from(
    [
        b"\r\n",
        b"\n",
        b" ",
        b"\t",
        b":",
        b";",
        b",",
        b"<",
        b">",
        b'"',
        b"\\",
        b"/",
        b"@",
        b"%",
        b"=",
        b"\x00",
        b"\xff",
        b"0",
        b"9" * 12,
        b"SIP/2.0",
        b"sip:",
        b"[",
        b"]",
        b"\r\n ",
        b"-1",
    ]
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID_SAMPLES)))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        chunk = draw(st.one_of(_MUTATION_BYTES, st.binary(min_size=1, max_size=4)))
        if action == "insert":
            data[pos:pos] = chunk
        elif action == "delete":
            del data[pos : pos + draw(st.integers(1, 20))]
        elif action == "replace":
            data[pos : pos + len(chunk)] = chunk
        else:
            del data[pos:]
    return bytes(data)


@settings(max_examples=1500)
@given(mutated())
def test_mutated_messages_parse_or_sip_error(data: bytes) -> None:
    _check_total(data)
    parser = StreamParser()
    try:
        for i in range(0, len(data), 37):
            parser.feed(data[i : i + 37])
    except SipError:
        pass


@settings(max_examples=200)
@given(mutated())
def test_typed_views_of_mutants_only_raise_sip_error(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipError:
        return
    for view in ("content_type", "require", "supported", "content_length"):
        try:
            getattr(msg, view)
        except SipError:
            pass
    for contact in msg.contact:
        if not contact.star:
            try:
                contact.sip_uri()
            except SipError:
                pass


_TOKENS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=12)


@given(
    branch=_TOKENS,
    tag=_TOKENS,
    vias=st.integers(1, 4),
    status=st.integers(100, 699),
    to_tag=st.one_of(st.none(), _TOKENS),
)
def test_make_response_property(
    branch: str, tag: str, vias: int, status: int, to_tag: str | None
) -> None:
    via_lines = [f"Via: SIP/2.0/UDP h{i};branch=z9hG4bK{branch}{i}" for i in range(vias)]
    req = parse_message(
        wire(
            "INVITE sip:b@x SIP/2.0",
            [
                *via_lines,
                f"From: <sip:a@x>;tag={tag}",
                "To: <sip:b@x>",
                "Call-ID: c",
                "CSeq: 7 INVITE",
            ],
        )
    )
    resp = parse_message(make_response(req, status, to_tag=to_tag).serialize())
    assert resp.status == status
    assert resp.get_all("via") == req.get_all("via")
    assert resp.from_ == req.from_ and resp.call_id == req.call_id and resp.cseq == req.cseq
    assert resp.to.uri == req.to.uri and resp.to.tag == to_tag

"""Parser cases derived from the RFC 4475 SIP torture tests.

The fixtures are written for this suite after the descriptions in RFC 4475
§3.1 (syntax) and the parts of §3.3/§3.4 a parser can decide; each keeps the
short name RFC 4475 gives the case. Application-level verdicts (416, 420,
406...) belong to the user-agent layer: here such messages must parse.
"""

from __future__ import annotations

import pytest

from signaling.errors import SipError
from signaling.message import SipMessage, parse_message
from signaling.uri import SipUri, uri_scheme

SDP = (
    "v=0\r\n"
    "o=mhandley 29739 7272939 IN IP4 192.0.2.3\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.4\r\n"
    "t=0 0\r\n"
    "m=audio 49217 RTP/AVP 0 12\r\n"
    "m=video 3227 RTP/AVP 31\r\n"
    "a=rtpmap:31 LPC\r\n"
)


def build(lines: list[str], body: str | bytes = "", *, length: str | None = "auto") -> bytes:
    """A message from header lines joined by CRLF; Content-Length computed unless given."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if length == "auto":
        lines = [*lines, f"Content-Length: {len(raw)}"]
    elif length is not None:
        lines = [*lines, f"Content-Length: {length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + raw


# -- §3.1.1 valid messages ------------------------------------------------------

WSINV = build(
    [
        "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0",
        "TO :",
        " sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n",
        'from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>',
        "  ;",
        "  tag = 98asjd8",
        "MaX-fOrWaRdS: 0068",
        "Call-ID: wsinv.ndaksdj@192.0.2.1",
        "cseq: 0009",
        "  INVITE",
        "Via  : SIP  /   2.0",
        " /UDP",
        "    192.0.2.2;branch=390skdjuw",
        "s :",
        "NewFangledHeader:   newfangled value",
        " continued newfangled value",
        "UnknownHeaderWithUnusualValue: ;;,,;;,;",
        "Content-Type: application/sdp",
        "Route:",
        " <sip:services.example.com;lr;unknownwith=value;unknown-no-value>",
        "v:  SIP  / 2.0  / TCP     spindle.example.com   ;",
        "  branch  =   z9hG4bK9ikj8  ,",
        " SIP  /    2.0   / UDP  192.168.255.111   ; branch=",
        " z9hG4bK30239",
        'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =',
        "      newvalue ;",
        "  secondparam ; q = 0.33",
    ],
    SDP,
)


def test_wsinv_short_tortuous_invite() -> None:
    msg = parse_message(WSINV)
    assert msg.method == "INVITE"
    assert msg.uri == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    assert msg.to.uri == "sip:vivekg@chair-dnrc.example.com" and msg.to.tag == "1918181833n"
    assert msg.from_.display == 'J Rosenberg \\"' and msg.from_.tag == "98asjd8"
    assert msg.max_forwards == 68
    assert (msg.cseq.seq, msg.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in msg.via] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert msg.get("Subject") == ""
    assert msg.get("newfangledheader") == "newfangled value continued newfangled value"
    assert msg.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (contact,) = msg.contact
    assert contact.display == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert msg.content_type == "application/sdp" and msg.body == SDP.encode()
    assert parse_message(msg.serialize()) == msg


INTMETH_METHOD = "!interesting-Method0123456789_*+`.%indeed'~"
INTMETH_URI = (
    "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    ":&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com"
)
INTMETH = build(
    [
        f"{INTMETH_METHOD} {INTMETH_URI} SIP/2.0",
        "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~",
        'To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" '
        "<sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>",
        "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>"
        ";fromParam''~+*_!.-%=\"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439\""
        ";tag=_token~1'+`*%!-.",
        "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{",
        f"CSeq: 139122385 {INTMETH_METHOD}",
        "Max-Forwards: 255",
        "extensionHeader-!.%*+_`'~:\ufeff\u5927\u505c\u96fb",
    ],
)


def test_intmeth_wide_range_of_valid_characters() -> None:
    msg = parse_message(INTMETH)
    assert msg.method == INTMETH_METHOD and msg.cseq.method == INTMETH_METHOD
    uri = SipUri.parse(msg.uri or "")
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert msg.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.from_.display == "token1~` token2'+_ token3*%!.-"
    assert msg.from_.tag == "_token~1'+`*%!-."
    assert msg.via[0].branch == "z9hG4bK-.!%66*_+`'~"
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert msg.get("EXTENSIONHEADER-!.%*+_`'~") == "\ufeff\u5927\u505c\u96fb"
    assert msg.max_forwards == 255
    assert parse_message(msg.serialize()) == msg


ESC01 = build(
    [
        "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0",
        "To: sip:%75se%72@example.com",
        "From: <sip:I%20have%20spaces@example.net>;tag=938",
        "Max-Forwards: 87",
        "i: esc01.239409asdfakjkn23onasd0-3234",
        "CSeq: 234234 INVITE",
        "Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw",
        "C: application/sdp",
        "Contact:",
        "  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>",
    ],
    SDP,
)


def test_esc01_escaped_uri_characters() -> None:
    msg = parse_message(ESC01)
    ruri = SipUri.parse(msg.uri or "")
    assert ruri.user == "sips:user@example.com" and ruri.host == "example.net"
    assert str(ruri) == "sip:sips%3Auser%40example.com@example.net"
    assert msg.to.sip_uri().user == "user"
    assert msg.from_.sip_uri().user == "I have spaces"
    contact = msg.contact[0].sip_uri()
    assert contact.user == "caller"
    assert contact.params == (("%6c%72", None), ("n%61me", "v%61lue%25%34%31"))
    assert msg.content_type == "application/sdp"


ESCNULL = build(
    [
        "REGISTER sip:example.com SIP/2.0",
        "To: sip:null-%00-null@example.com",
        "From: sip:null-%00-null@example.com;tag=839923423",
        "Max-Forwards: 70",
        "Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd",
        "CSeq: 14398234 REGISTER",
        "Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw",
        "Contact: <sip:%00@host5.example.com>",
        "Contact: <sip:%00%00@host5.example.com>",
        "L:0",
    ],
    length=None,
)


def test_escnull_escaped_nulls_in_uris() -> None:
    msg = parse_message(ESCNULL)
    assert msg.to.sip_uri().user == "null-\x00-null"
    assert msg.from_.tag == "839923423"
    assert [c.sip_uri().user for c in msg.contact] == ["\x00", "\x00\x00"]
    assert msg.content_length == 0


ESC02 = build(
    [
        "RE%47IST%45R sip:registrar.example.com SIP/2.0",
        'To: "%Z%45" <sip:resource@example.com>',
        'From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23',
        "Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf",
        "Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234",
        "CSeq: 29344 RE%47IST%45R",
        "Max-Forwards: 70",
        "Contact: <sip:alias1@host1.example.com>",
        "C%6Fntact: <sip:alias2@host2.example.com>",
        "Contact: <sip:alias3@host3.example.com>",
        "l: 0",
    ],
    length=None,
)


def test_esc02_percent_is_not_an_escape_outside_uris() -> None:
    msg = parse_message(ESC02)
    assert msg.method == "RE%47IST%45R"  # not REGISTER: methods are never unescaped
    assert msg.to.display == "%Z%45"
    assert msg.via[0].branch == "z9hG4bK209%fzsnel234"
    # "C%6Fntact" is an unknown extension header, not a Contact
    assert [c.uri for c in msg.contact] == [
        "sip:alias1@host1.example.com",
        "sip:alias3@host3.example.com",
    ]
    assert msg.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


LWSDISP = build(
    [
        "OPTIONS sip:user@example.com SIP/2.0",
        "To: sip:user@example.com",
        "From: caller<sip:caller@example.com>;tag=323",
        "Max-Forwards: 70",
        "Call-ID: lwsdisp.1234abcd@funky.example.com",
        "CSeq: 60 OPTIONS",
        "Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw",
        "l: 0",
    ],
    length=None,
)


def test_lwsdisp_no_lws_between_display_name_and_laquot() -> None:
    msg = parse_message(LWSDISP)
    assert (msg.from_.display, msg.from_.uri, msg.from_.tag) == (
        "caller",
        "sip:caller@example.com",
        "323",
    )


LONG = "Long" * 420
LONGREQ = build(
    [
        "INVITE sip:user@example.com SIP/2.0",
        f'To: "I have a user name of {"extreme" * 10} proportion"<sip:user@example.com:6000;'
        f"unknownparam1=very{LONG}value;longparam{LONG}name=shortvalue;"
        f"very{LONG}ParameterNameWithNoValue>",
        f"F: sip:{'amazinglylongcallername' * 20}@example.net"
        f";tag=12{'982' * 180}424;unknownheaderparam{LONG}name=unknowheaderparam{LONG}value"
        f";unknownValueless{LONG}paramname",
        f"Call-ID: longreq.{'one' * 400}really{'long' * 200}callid",
        "CSeq: 3882340 INVITE",
        f"Unknown-{LONG}-Name: unknown-{LONG}-value; unknown-{LONG}-parameter-name ="
        f" unknown-{LONG}-parameter-value",
        *[f"Via: SIP/2.0/TCP sip{i}.example.com:5060;branch=z9hG4bK{i}ab" for i in range(33)],
        "Max-Forwards: 70",
        f"Contact: <sip:amazinglylongcallername{'x' * 300}@host5.example.net>",
        "Content-Type: application/sdp",
    ],
    SDP,
)


def test_longreq_long_values() -> None:
    assert max(len(line) for line in LONGREQ.split(b"\r\n")) > 4000
    msg = parse_message(LONGREQ)
    assert len(msg.via) == 33 and msg.via[-1].host == "sip32.example.com"
    assert msg.to.display is not None and msg.to.display.endswith("proportion")
    assert msg.to.sip_uri().port == 6000
    assert msg.from_.tag is not None and len(msg.from_.tag) == 2 + 540 + 3
    assert len(msg.call_id) > 2000
    assert msg.get(f"unknown-{LONG}-name") is not None
    assert msg.body == SDP.encode()


DBLREQ = build(
    [
        "REGISTER sip:example.com SIP/2.0",
        "To: sip:j.user@example.com",
        "From: sip:j.user@example.com;tag=43251j3j324",
        "Max-Forwards: 8",
        "I: dblreq.0ha0isndaksdj99sdfafnl3lk233412",
        "Contact: sip:j.user@host.example.com",
        "CSeq: 8 REGISTER",
        "Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492",
        "Content-Length: 0",
    ],
    length=None,
) + build(
    [
        "INVITE sip:joe@example.com SIP/2.0",
        "t: sip:joe@example.com",
        "From: sip:caller@example.net;tag=141334",
        "Max-Forwards: 8",
        "Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15",
        "CSeq: 8 INVITE",
        "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234",
        "Content-Type: application/sdp",
    ],
    SDP,
)


def test_dblreq_extra_octets_in_a_datagram_are_dropped() -> None:
    msg = parse_message(DBLREQ)
    assert msg.method == "REGISTER" and msg.body == b""
    assert msg.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"


SEMIURI = build(
    [
        "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0",
        "To: sip:j_user@example.com",
        "From: sip:caller@example.org;tag=33242",
        "Max-Forwards: 3",
        "Call-ID: semiuri.0ha0isndaksdj",
        "CSeq: 8 OPTIONS",
        "Accept: application/sdp, application/pkcs7-mime,",
        "        multipart/mixed, multipart/signed,",
        "        message/sip, message/sipfrag",
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw",
        "l: 0",
    ],
    length=None,
)


def test_semiuri_semicolon_in_user_part() -> None:
    msg = parse_message(SEMIURI)
    uri = SipUri.parse(msg.uri or "")
    assert (uri.user, uri.host, uri.params) == ("user;par=u@example.net", "example.com", ())
    assert len(msg.get_all("accept")) == 6


TRANSPORTS = build(
    [
        "OPTIONS sip:user@example.com SIP/2.0",
        "To: sip:user@example.com",
        "From: <sip:caller@example.com>;tag=323",
        "Max-Forwards: 70",
        "Call-ID:  transports.kijh4akdnaqjkwendsasfdj",
        "Accept: application/sdp",
        "CSeq: 60 OPTIONS",
        "Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw",
        "Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf",
        "Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj",
        "Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en",
        "Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee",
        "l: 0",
    ],
    length=None,
)


def test_transports_unusual_via_transports() -> None:
    msg = parse_message(TRANSPORTS)
    assert [v.transport for v in msg.via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert msg.call_id == "transports.kijh4akdnaqjkwendsasfdj"


MPART_BODY = (
    b"--boundary42\r\n"
    b"Content-Type: application/sdp\r\n\r\n" + SDP.encode() + b"\r\n"
    b"--boundary42\r\n"
    b"Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
    b"Content-Transfer-Encoding: binary\r\n"
    b"Content-Disposition: attachment; handling=required; filename=smime.p7s\r\n\r\n"
    + bytes(range(256))
    + b"\r\n--boundary42--\r\n"
)
MPART01 = build(
    [
        "MESSAGE sip:kumiko@example.org SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport",
        "Max-Forwards: 70",
        "Route: <sip:127.0.0.1:5080>",
        "Identity: r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuLIK0YWVKZhKv9Mj8UeXqkMVbnVq37CD+813gvYjcBUaZngQmXc9WNZSDNGCzA+fWl9MEUHWIZo1CeJebdY/XlgKeTa0Olvq0rt70Q5jiSfbqMJmQFteeivUhkMWYUA=",
        "Contact: <sip:fluffy@127.0.0.1:5070>",
        "To: <sip:kumiko@example.org>",
        "From: <sip:fluffy@example.com>;tag=2fb0dcc9",
        "Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..",
        "CSeq: 1 MESSAGE",
        "Content-Transfer-Encoding: binary",
        "Content-Type: multipart/mixed;boundary=boundary42",
        "Date: Sat, 15 Oct 2005 04:44:56 GMT",
        "User-Agent: SIPimp.org/0.2.5 (curses)",
    ],
    MPART_BODY,
)


def test_mpart01_multipart_binary_body() -> None:
    msg = parse_message(MPART01)
    assert msg.content_type == "multipart/mixed"
    assert msg.body == MPART_BODY
    assert msg.get("date") == "Sat, 15 Oct 2005 04:44:56 GMT"
    assert msg.serialize() == MPART01


UNREASON_TEXT = (
    "= 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f\u043d\u043e\u0441"
    "\u0442\u043e \u0434\u0435\u0432\u044f\u0442\u044c - \u043f\u0440\u043e\u0441\u0442\u043e\u0435"
)
UNREASON = build(
    [
        f"SIP/2.0 200 {UNREASON_TEXT}",
        "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923",
        "Call-ID: unreason.1234ksdfak3j2erwedfsASdf",
        "CSeq: 35 INVITE",
        "From: sip:user@example.com;tag=11141343",
        "To: sip:user@example.edu;tag=2229",
        "Content-Type: application/sdp",
        "Contact: <sip:user@host198.example.com>",
    ],
    SDP,
)


def test_unreason_unusual_reason_phrase() -> None:
    msg = parse_message(UNREASON)
    assert (msg.status, msg.reason) == (200, UNREASON_TEXT)
    assert msg.serialize() == UNREASON


NOREASON = build(
    [
        "SIP/2.0 100 ",
        "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe",
        "Call-ID: noreason.asndj203insdf99223ndf",
        "CSeq: 35 INVITE",
        "From: <sip:user@example.com>;tag=39ansfi3",
        "To: <sip:user@example.edu>;tag=902jndnke3",
        "Contact: <sip:user@host105.example.com>",
    ],
)


def test_noreason_empty_reason_phrase() -> None:
    msg = parse_message(NOREASON)
    assert (msg.status, msg.reason) == (100, "")


def _app_layer(method: str, uri: str, *extra: str, body: str = "") -> bytes:
    """A well-formed request whose oddity is for the application layer (RFC 4475 §3.3)."""
    return build(
        [
            f"{method} {uri} SIP/2.0",
            "To: sip:j.user@example.com",
            "From: sip:caller@example.net;tag=134161461246",
            "Max-Forwards: 7",
            f"Call-ID: {method.lower()}.0ha0isndaksdjasdf3234nas",
            f"CSeq: 8 {method}",
            "Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw",
            *extra,
        ],
        body,
    )


APP_LAYER = {
    "unkscm": _app_layer("OPTIONS", "nobodyKnowsThisScheme:totallyopaquecontent"),
    "novelsc": _app_layer("OPTIONS", "soap.beep://192.0.2.103:3002"),
    "unksm2": _app_layer("REGISTER", "sip:example.com", "Contact: <isbn:2983792873>"),
    "bext01": _app_layer(
        "OPTIONS",
        "sip:user@example.com",
        "Require: nothingSupportsThis, nothingSupportsThisEither",
        "Proxy-Require: noProxiesSupportThis, norDoAnyProxiesSupportThis",
    ),
    "invut": _app_layer(
        "INVITE",
        "sip:user@example.com",
        "Contact: <sip:caller@host5.example.net>",
        "Content-Type: application/unknownformat",
        body='<audio> <pcmu port="443"/> </audio>\r\n',
    ),
    "regaut01": _app_layer(
        "REGISTER",
        "sip:example.com",
        "Contact: sip:j.user@host.example.com",
        "Authorization: NoOneKnowsThisScheme opaque-data=here",
    ),
    "zeromf": _app_layer("OPTIONS", "sip:user@example.com").replace(
        b"Max-Forwards: 7", b"Max-Forwards: 0"
    ),
    "cparam01": _app_layer(
        "REGISTER", "sip:example.com", "Contact: sip:+19725552222@gw1.example.net;unknownparam"
    ),
    "cparam02": _app_layer(
        "REGISTER", "sip:example.com", "Contact: <sip:+19725552222@gw1.example.net;unknownparam>"
    ),
    "regescrt": _app_layer(
        "REGISTER",
        "sip:example.com",
        "Contact: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>",
    ),
    "sdp01": _app_layer(
        "INVITE",
        "sip:user@example.com",
        "Contact: <sip:caller@host5.example.net>",
        "Accept: text/nobodyKnowsThis",
        "Content-Type: application/sdp",
        body=SDP,
    ),
    "baddate": _app_layer(
        "INVITE",
        "sip:user@example.com",
        "Contact: <sip:caller@host5.example.net>",
        "Date: Fri, 01 Jan 2010 16:00:00 EST",
        "Expires: 3600",
    ),
    "badbranch": _app_layer("OPTIONS", "sip:user@example.com").replace(
        b"branch=z9hG4bKkdjuw", b"branch=z9hG4bK"
    ),
    "inv2543": build(
        [
            "INVITE sip:UserB@example.com SIP/2.0",
            "Via: SIP/2.0/UDP iftgw.example.com",
            "From: <sip:+13035551111@ift.client.example.net;user=phone>",
            "Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>",
            "To: sip:+16505552222@ss1.example.net;user=phone",
            "Call-ID: inv2543.1717@ift.client.example.com",
            "CSeq: 56 INVITE",
            "Content-Type: application/sdp",
        ],
        SDP,
    ),
    "bcast": build(
        [
            "SIP/2.0 200 OK",
            "Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923",
            "Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23",
            "Call-ID: bcast.0384840201234ksdfak3j2erwedfsASdf",
            "CSeq: 35 INVITE",
            "From: sip:user@example.com;tag=11141343",
            "To: sip:user@example.edu;tag=2229",
            "Contact: <sip:user@host28.example.com>",
        ]
    ),
}


@pytest.mark.parametrize("name", sorted(APP_LAYER))
def test_application_level_cases_parse(name: str) -> None:
    msg = parse_message(APP_LAYER[name])
    assert isinstance(msg, SipMessage)
    assert parse_message(msg.serialize()) == msg


def test_application_level_details() -> None:
    assert uri_scheme(parse_message(APP_LAYER["unkscm"]).uri or "") == "nobodyknowsthisscheme"
    assert uri_scheme(parse_message(APP_LAYER["novelsc"]).uri or "") == "soap.beep"
    assert parse_message(APP_LAYER["unksm2"]).contact[0].uri == "isbn:2983792873"
    bext = parse_message(APP_LAYER["bext01"])
    assert bext.require == ["nothingsupportsthis", "nothingsupportsthiseither"]
    assert len(bext.get_all("proxy-require")) == 2
    assert parse_message(APP_LAYER["invut"]).content_type == "application/unknownformat"
    assert parse_message(APP_LAYER["zeromf"]).max_forwards == 0
    assert parse_message(APP_LAYER["cparam01"]).contact[0].params == (("unknownparam", None),)
    cparam02 = parse_message(APP_LAYER["cparam02"]).contact[0]
    assert cparam02.params == () and cparam02.sip_uri().has_param("unknownparam")
    regescrt = parse_message(APP_LAYER["regescrt"]).contact[0].sip_uri()
    assert regescrt.headers == (("Route", "%3Csip:sip.example.com%3E"),)
    assert parse_message(APP_LAYER["sdp01"]).get("accept") == "text/nobodyKnowsThis"
    assert parse_message(APP_LAYER["badbranch"]).via[0].branch == "z9hG4bK"
    inv2543 = parse_message(APP_LAYER["inv2543"])
    assert inv2543.max_forwards is None and inv2543.via[0].branch is None
    assert inv2543.from_.tag is None
    assert parse_message(APP_LAYER["bcast"]).via[1].host == "255.255.255.255"


# -- §3.1.2 invalid messages and §3.3 syntax-level rejections --------------------


def _options(*, start: str = "OPTIONS sip:user@example.com SIP/2.0", **swap: str) -> list[str]:
    """An OPTIONS request whose header lines can be swapped by keyword (name -> full line)."""
    lines = {
        "to": "To: sip:user@example.com",
        "from": "From: <sip:caller@example.com>;tag=323",
        "max_forwards": "Max-Forwards: 70",
        "call_id": "Call-ID: torture.kijh4akdnaqjkwendsasfdj",
        "cseq": "CSeq: 60 OPTIONS",
        "via": "Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw",
    }
    lines.update(swap)
    return [start, *[line for line in lines.values() if line]]


INVALID = {
    "badinv01": build(
        _options(
            via="Via: SIP/2.0/UDP 192.0.2.15;;,;,,",
            contact='Contact: "Joe" <sip:joe@example.org>;;;;',
        )
    ),
    "clerr": build(_options(), SDP, length="9999"),
    "ncl": build(_options(), SDP, length="-999"),
    "scalar02": build(
        _options(
            start="REGISTER sip:example.com SIP/2.0",
            cseq="CSeq: 36893488147419103232 REGISTER",
            max_forwards="Max-Forwards: 300",
            contact="Contact: <sip:user@host129.example.com>;expires=280297596632815",
            expires="Expires: 1000000000000000000000000",
        )
    ),
    "scalar02-max-forwards": build(_options(max_forwards="Max-Forwards: 300")),
    "quotbal": build(_options(to='To: "Mr. J. User <sip:j.user@example.com>')),
    "ltgtruri": build(_options(start="OPTIONS <sip:user@example.com> SIP/2.0")),
    "lwsruri": build(_options(start="OPTIONS sip:user@example.com; lr SIP/2.0")),
    "lwsstart": build(_options(start="OPTIONS  sip:user@example.com  SIP/2.0")),
    "trws": build(_options(start="OPTIONS sip:user@example.com SIP/2.0 \t ")),
    "escruri": build(
        _options(start="OPTIONS sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0")
    ),
    "regbadct": build(
        _options(
            start="REGISTER sip:example.com SIP/2.0",
            cseq="CSeq: 9 REGISTER",
            contact="Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E",
        )
    ),
    "badaspec": build(
        _options(
            to='To: "Watson, Thomas" < sip:t.watson@example.org >',
            **{"from": "From: Sam Watson<sip:s.watson@example.org >;tag=ababab"},
        )
    ),
    "baddn": build(_options(**{"from": "From: Bell, Alexander <sip:a.g.bell@example.com>;tag=43"})),
    "badvers": build(_options(start="OPTIONS sip:t.watson@example.org SIP/7.0")),
    "mismatch01": build(_options(cseq="CSeq: 8 INVITE")),
    "mismatch02": build(_options(start="NEWMETHOD sip:user@example.com SIP/2.0")),
    "bigcode": build(
        [
            "SIP/2.0 4294967301 better not break the receiver",
            "Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe",
            "Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i",
            "CSeq: 353494 INVITE",
            "From: <sip:user@example.com>;tag=39ansfi3",
            "To: <sip:user@example.edu>;tag=902jndnke3",
        ]
    ),
    "multi01": build(
        _options(
            start="INVITE sip:user@company.com SIP/2.0",
            cseq="CSeq: 8 INVITE",
            to2="To: sip:other@company.com",
            call_id2="Call-ID: multi01.98asdh@192.0.2.2",
            from2="From: sip:caller@university.edu;tag=3413415",
        )
    ),
    "mcl01": build(_options(cl="Content-Length: 0", cl2="l: 2"), "ab", length=None),
    "insuf": build(_options(call_id="", via="", **{"from": ""})),
    "insuf-cseq": build(_options(cseq="")),
    "insuf-to": build(_options(to="")),
    "insuf-from": build(_options(**{"from": ""})),
}

EXPECTED_STATUS = {"badvers": 505}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_cases_are_rejected(name: str) -> None:
    with pytest.raises(SipError) as info:
        parse_message(INVALID[name])
    assert info.value.status == EXPECTED_STATUS.get(name, 400)


@pytest.mark.parametrize(
    "name,reason",
    [
        ("clerr", "Content-Length larger than body"),
        ("ncl", "Bad Content-Length header"),
        ("scalar02", "Bad CSeq header"),
        ("quotbal", "Bad To header"),
        ("ltgtruri", "Bad Request-URI"),
        ("escruri", "Bad Request-URI"),
        ("regbadct", "Bad Contact header"),
        ("baddn", "Bad From header"),
        ("badvers", "Version Not Supported"),
        ("mismatch01", "CSeq method mismatch"),
        ("mismatch02", "CSeq method mismatch"),
        ("bigcode", "Bad status code"),
        ("mcl01", "Duplicate Content-Length header"),
        ("insuf", "Missing Via header"),
    ],
)
def test_invalid_case_reasons(name: str, reason: str) -> None:
    with pytest.raises(SipError) as info:
        parse_message(INVALID[name])
    assert info.value.reason == reason

"""SDP parsing (RFC 4566) and offer/answer (RFC 3264) against offers of real devices."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.sdp import (
    MediaDescription,
    Negotiated,
    SdpError,
    SdpNegotiationError,
    SessionDescription,
    build_offer,
    negotiate,
    parse_answer,
)


def sdp(text: str) -> bytes:
    """Fixture text to wire bytes with CRLF line ends."""
    return "".join(line.strip() + "\r\n" for line in text.strip().splitlines()).encode()


LINPHONE = sdp("""
v=0
o=alice 1234 567 IN IP4 192.168.1.20
s=Talk
c=IN IP4 192.168.1.20
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
m=audio 7078 RTP/AVP 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
""")

ZOIPER = sdp("""
v=0
o=Z 1700000000000 1 IN IP4 10.0.0.5
s=Z
c=IN IP4 10.0.0.5
t=0 0
m=audio 52000 RTP/AVP 106 9 98 101 0 8 3
a=rtpmap:106 opus/48000/2
a=fmtp:106 sprop-maxcapturerate=16000; minptime=20; useinbandfec=1
a=rtpmap:98 telephone-event/48000
a=fmtp:98 0-16
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=sendrecv
a=rtcp-mux
""")

ASTERISK = sdp("""
v=0
o=- 1836523207 1836523207 IN IP4 203.0.113.10
s=Asterisk
c=IN IP4 203.0.113.10
t=0 0
m=audio 18230 RTP/AVP 8 0 3 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:3 GSM/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
""")

# SIPp's built-in uac scenario after keyword substitution, with telephone-event added
# the way the pcap-playing scenarios offer it.
SIPP = sdp("""
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
""")

# SIPp's plain default: PCMU only, no telephone-event.
SIPP_PLAIN = sdp("""
v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
""")

CISCO = sdp("""
v=0
o=CiscoSystemsSIP-GW-UserAgent 4471 1559 IN IP4 198.51.100.7
s=SIP Call
c=IN IP4 198.51.100.7
t=0 0
m=audio 16898 RTP/AVP 8 0 18 101 19
c=IN IP4 198.51.100.7
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=rtpmap:19 CN/8000
a=ptime:30
""")

HOLD_SENDONLY = sdp("""
v=0
o=alice 1234 568 IN IP4 192.168.1.20
s=Talk
c=IN IP4 192.168.1.20
t=0 0
m=audio 7078 RTP/AVP 0 101
a=rtpmap:101 telephone-event/8000
a=sendonly
""")

HOLD_INACTIVE_SESSION_LEVEL = sdp("""
v=0
o=alice 1234 569 IN IP4 192.168.1.20
s=Talk
c=IN IP4 192.168.1.20
t=0 0
a=inactive
m=audio 7078 RTP/AVP 0
""")

HOLD_ZERO_ADDRESS = sdp("""
v=0
o=oldphone 1 2 IN IP4 10.1.1.1
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 4000 RTP/AVP 0 8
""")

RECVONLY = sdp("""
v=0
o=x 1 2 IN IP4 10.1.1.1
s=-
c=IN IP4 10.1.1.1
t=0 0
m=audio 4000 RTP/AVP 0
a=recvonly
""")

AUDIO_AND_VIDEO = sdp("""
v=0
o=linphone 99 100 IN IP4 192.168.1.21
s=Talk
c=IN IP4 192.168.1.21
t=0 0
m=audio 7078 RTP/AVP 0 8 101
a=rtpmap:101 telephone-event/8000
m=video 9078 RTP/AVP 96 97
a=rtpmap:96 VP8/90000
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=42801F
""")

VIDEO_FIRST_THEN_SAVP_THEN_AVP = sdp("""
v=0
o=x 1 2 IN IP4 10.2.2.2
s=-
c=IN IP4 10.2.2.2
t=0 0
m=video 5000 RTP/AVP 96
a=rtpmap:96 H264/90000
m=audio 5002 RTP/SAVP 0
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
m=audio 5004 RTP/AVP 8 0
c=IN IP4 10.2.2.3
""")

G729_ONLY = sdp("""
v=0
o=x 1 2 IN IP4 10.1.1.1
s=-
c=IN IP4 10.1.1.1
t=0 0
m=audio 4000 RTP/AVP 18 101
a=rtpmap:18 G729/8000
a=rtpmap:101 telephone-event/8000
""")

SAVP_ONLY = sdp("""
v=0
o=x 1 2 IN IP4 10.1.1.1
s=-
c=IN IP4 10.1.1.1
t=0 0
m=audio 4000 RTP/SAVP 0 8
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz
""")

WEBRTC_ONLY = sdp("""
v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8
c=IN IP4 0.0.0.0
a=rtpmap:111 opus/48000/2
""")

AUDIO_PORT_ZERO = sdp("""
v=0
o=x 1 2 IN IP4 10.1.1.1
s=-
c=IN IP4 10.1.1.1
t=0 0
m=audio 0 RTP/AVP 0
""")

IPV6 = sdp("""
v=0
o=x 1 2 IN IP6 2001:db8::5
s=-
c=IN IP6 2001:db8::5
t=0 0
m=audio 30000 RTP/AVP 0
""")

# Bare LF, trailing blanks, a blank line, lower-case encoding names, unknown line types.
SLOPPY = (
    b"v=0\n"
    b"o=sloppy 1 1 IN IP4 10.9.9.9  \n"
    b"s= \n"
    b"c=IN IP4 10.9.9.9\t\n"
    b"t=0 0\n"
    b"\n"
    b"y=unknown line type\n"
    b"b=AS:64\n"
    b"m=audio 9999 RTP/AVP 8 96   \n"
    b"a=rtpmap:8 pcma/8000\n"
    b"a=rtpmap:96 Telephone-Event/8000\n"
    b"a=ptime:20.0\n"
)

OURS: dict[str, Any] = {
    "local_ip": "192.0.2.1",
    "local_port": 20000,
    "session_id": 42,
    "session_version": 7,
}


def answer_of(offer: bytes, **kwargs: Any) -> tuple[Negotiated, SessionDescription]:
    result = negotiate(offer, **{**OURS, **kwargs})
    return result, SessionDescription.parse(result.answer)


# --------------------------------------------------------------------------- negotiation table


@pytest.mark.parametrize(
    ("name", "offer", "codec", "pt", "te", "ptime", "ip", "port"),
    [
        ("linphone", LINPHONE, "PCMU", 0, 100, 20, "192.168.1.20", 7078),
        ("zoiper", ZOIPER, "PCMU", 0, 101, 20, "10.0.0.5", 52000),
        ("asterisk", ASTERISK, "PCMA", 8, 101, 20, "203.0.113.10", 18230),
        ("sipp", SIPP, "PCMU", 0, 101, 20, "127.0.0.1", 6000),
        ("sipp-plain", SIPP_PLAIN, "PCMU", 0, None, 20, "127.0.0.1", 6000),
        ("cisco", CISCO, "PCMA", 8, 101, 30, "198.51.100.7", 16898),
        ("audio+video", AUDIO_AND_VIDEO, "PCMU", 0, 101, 20, "192.168.1.21", 7078),
        ("third m-line", VIDEO_FIRST_THEN_SAVP_THEN_AVP, "PCMA", 8, None, 20, "10.2.2.3", 5004),
        ("ipv6", IPV6, "PCMU", 0, None, 20, "2001:db8::5", 30000),
        ("sloppy", SLOPPY, "PCMA", 8, 96, 20, "10.9.9.9", 9999),
    ],
)
def test_negotiate_real_offers(
    name: str, offer: bytes, codec: str, pt: int, te: int | None, ptime: int, ip: str, port: int
) -> None:
    result, answer = answer_of(offer)
    assert (result.codec, result.payload_type, result.te_payload_type) == (codec, pt, te)
    assert (result.ptime, result.remote_ip, result.remote_port) == (ptime, ip, port)
    assert result.direction == "sendrecv" and not result.on_hold
    offered = SessionDescription.parse(offer)
    assert len(answer.media) == len(offered.media)
    accepted = [m for m in answer.media if m.port != 0]
    assert len(accepted) == 1
    audio = accepted[0]
    assert audio.port == 20000 and audio.proto == "RTP/AVP" and audio.connection == "192.0.2.1"
    assert audio.formats == ((str(pt),) if te is None else (str(pt), str(te)))
    assert audio.rtpmap()[pt] == (codec, 8000, 1)
    if te is not None:
        assert audio.rtpmap()[te] == ("telephone-event", 8000, 1)
        assert audio.fmtp(te) == "0-16"
    assert audio.ptime() == ptime
    assert audio.direction() == "sendrecv"


@pytest.mark.parametrize(
    ("offer", "codecs", "codec", "pt"),
    [
        (LINPHONE, ("PCMA",), "PCMA", 8),
        (LINPHONE, ("PCMA", "PCMU"), "PCMU", 0),  # the offerer's order wins
        (ASTERISK, ("PCMU",), "PCMU", 0),
        (CISCO, ("PCMU", "PCMA"), "PCMA", 8),
    ],
)
def test_codec_choice_follows_offer_order(
    offer: bytes, codecs: tuple[str, ...], codec: str, pt: int
) -> None:
    result, _ = answer_of(offer, codecs=codecs)
    assert (result.codec, result.payload_type) == (codec, pt)


@pytest.mark.parametrize(
    ("offer", "direction", "on_hold"),
    [
        (HOLD_SENDONLY, "recvonly", True),
        (HOLD_INACTIVE_SESSION_LEVEL, "inactive", True),
        (HOLD_ZERO_ADDRESS, "recvonly", True),
        (RECVONLY, "sendonly", False),
        (ZOIPER, "sendrecv", False),
    ],
)
def test_hold_and_direction(offer: bytes, direction: str, on_hold: bool) -> None:
    result, answer = answer_of(offer)
    assert result.direction == direction
    assert result.on_hold is on_hold
    assert answer.media[0].direction() == direction


def test_zero_address_hold_keeps_remote_address() -> None:
    result, _ = answer_of(HOLD_ZERO_ADDRESS)
    assert result.remote_ip == "0.0.0.0"


def test_rejected_streams_have_port_zero_and_keep_their_formats() -> None:
    _, answer = answer_of(VIDEO_FIRST_THEN_SAVP_THEN_AVP)
    assert [(m.media, m.port, m.proto, m.formats) for m in answer.media] == [
        ("video", 0, "RTP/AVP", ("96",)),
        ("audio", 0, "RTP/SAVP", ("0",)),
        ("audio", 20000, "RTP/AVP", ("8",)),
    ]
    _, answer = answer_of(AUDIO_AND_VIDEO)
    assert answer.media[1].media == "video" and answer.media[1].port == 0
    assert answer.media[1].formats == ("96", "97")


def test_answer_origin_and_connection() -> None:
    result, answer = answer_of(SIPP)
    assert answer.origin.split()[1:] == ["42", "7", "IN", "IP4", "192.0.2.1"]
    assert answer.connection == "192.0.2.1"
    assert result.answer.endswith(b"\r\n") and b"\n\n" not in result.answer
    _, v6 = answer_of(SIPP, local_ip="2001:db8::1")
    assert (
        b"c=IN IP6 2001:db8::1\r\n" in negotiate(SIPP, **{**OURS, "local_ip": "2001:db8::1"}).answer
    )
    assert v6.connection == "2001:db8::1"


@pytest.mark.parametrize(
    ("offer", "reason"),
    [
        (G729_ONLY, "codec"),
        (SAVP_ONLY, "RTP/SAVP"),
        (WEBRTC_ONLY, "SAVPF"),
        (AUDIO_PORT_ZERO, "no active audio"),
    ],
)
def test_nothing_acceptable_is_negotiation_error(offer: bytes, reason: str) -> None:
    with pytest.raises(SdpNegotiationError, match=reason):
        negotiate(offer, **OURS)


def test_negotiation_error_is_an_sdp_error() -> None:
    assert issubclass(SdpNegotiationError, SdpError)


@pytest.mark.parametrize(
    ("ptime_line", "expected"),
    [
        ("a=ptime:10", 10),
        ("a=ptime:40", 40),
        ("a=ptime:60", 60),
        ("a=ptime:25", 20),
        ("a=ptime:0", 20),
        ("a=ptime:abc", 20),
        ("a=ptime:", 20),
        ("a=maxptime:60", 20),
    ],
)
def test_ptime_table(ptime_line: str, expected: int) -> None:
    offer = SIPP + ptime_line.encode() + b"\r\n"
    assert negotiate(offer, **OURS).ptime == expected


def test_negotiate_accepts_parsed_description() -> None:
    parsed = SessionDescription.parse(ASTERISK)
    assert negotiate(parsed, **OURS).codec == "PCMA"


def test_negotiate_rejects_codecs_we_do_not_have() -> None:
    with pytest.raises(ValueError):
        negotiate(SIPP, **{**OURS, "codecs": ("G729",)})


def test_media_without_any_connection_is_malformed() -> None:
    offer = sdp("""
    v=0
    o=x 1 2 IN IP4 10.1.1.1
    s=-
    t=0 0
    m=audio 4000 RTP/AVP 0
    """)
    with pytest.raises(SdpError, match="c="):
        negotiate(offer, **OURS)


# --------------------------------------------------------------------------- parsing


def test_parse_linphone_structure() -> None:
    parsed = SessionDescription.parse(LINPHONE)
    assert parsed.origin == "alice 1234 567 IN IP4 192.168.1.20"
    assert parsed.session_name == "Talk"
    assert parsed.connection == "192.168.1.20"
    assert parsed.attributes[0][0] == "rtcp-xr"
    (audio,) = parsed.media
    assert audio.formats == ("96", "97", "98", "0", "8", "18", "101", "99", "100")
    rtpmap = audio.rtpmap()
    assert rtpmap[96] == ("opus", 48000, 2)
    assert rtpmap[0] == ("PCMU", 8000, 1) and rtpmap[8] == ("PCMA", 8000, 1)
    assert rtpmap[18] == ("G729", 8000, 1)
    assert ("rtcp-fb", "* ccm tmmbr") in audio.attributes
    assert audio.ptime() is None and audio.direction() == "sendrecv"


def test_media_level_connection_overrides_session_level() -> None:
    parsed = SessionDescription.parse(VIDEO_FIRST_THEN_SAVP_THEN_AVP)
    assert [m.connection for m in parsed.media] == ["10.2.2.2", "10.2.2.2", "10.2.2.3"]


def test_flag_attribute_has_no_value() -> None:
    parsed = SessionDescription.parse(ZOIPER)
    assert ("rtcp-mux", None) in parsed.media[0].attributes
    assert ("sendrecv", None) in parsed.media[0].attributes


def test_connection_with_ttl() -> None:
    parsed = SessionDescription.parse(
        sdp(
            "v=0\no=x 1 2 IN IP4 1.2.3.4\ns=-\nc=IN IP4 224.2.1.1/127\nt=0 0\nm=audio 5000/2 RTP/AVP 0"
        )
    )
    assert parsed.connection == "224.2.1.1" and parsed.media[0].port == 5000


def test_serialize_round_trip() -> None:
    for fixture in (
        LINPHONE,
        ZOIPER,
        ASTERISK,
        CISCO,
        AUDIO_AND_VIDEO,
        VIDEO_FIRST_THEN_SAVP_THEN_AVP,
    ):
        parsed = SessionDescription.parse(fixture)
        assert SessionDescription.parse(parsed.serialize()) == parsed


def test_media_description_is_frozen() -> None:
    parsed = SessionDescription.parse(SIPP)
    with pytest.raises(AttributeError):
        parsed.media[0].port = 1  # type: ignore[misc]
    assert isinstance(parsed.media[0], MediaDescription)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "v=0"),
        (b"\r\n\r\n", "v=0"),
        (b"hello world", "v=0"),
        (b"INVITE sip:bob@example.com SIP/2.0\r\n", "v=0"),
        (b"v=1\r\no=x 1 2 IN IP4 1.1.1.1\r\n", "v=0"),
        (b"v=0\r\ns=-\r\nt=0 0\r\n", "o="),
        (b"v=0\r\no=x 1 IN IP4 1.1.1.1\r\n", "o="),
        (b"v=0\r\no=x 1 2 IN IP4 1.1.1.1\r\nthis is not sdp\r\n", "line 3"),
        (b"v=0\r\no=x 1 2 IN IP4 1.1.1.1\r\nm=audio\r\n", "m="),
        (b"v=0\r\no=x 1 2 IN IP4 1.1.1.1\r\nm=audio port RTP/AVP 0\r\n", "port"),
        (b"v=0\r\no=x 1 2 IN IP4 1.1.1.1\r\nm=audio 70000 RTP/AVP 0\r\n", "port"),
        (b"v=0\r\no=x 1 2 IN IP4 1.1.1.1\r\nm=audio -1 RTP/AVP 0\r\n", "port"),
        (b"v=0\r\no=x 1 2 IN IP4 1.1.1.1\r\nc=IN IP4\r\n", "c="),
        (b"v=0\r\no=x 1 2 IN IP4 1.1.1.1\r\nc=XX IP4 1.1.1.1\r\n", "c="),
        (b"v=0\r\no=x 1 2 IN IP4 1.1.1.1\r\ns=caf\xe9\r\n", "UTF-8"),
    ],
)
def test_malformed_sdp(data: bytes, message: str) -> None:
    with pytest.raises(SdpError, match=message) as info:
        SessionDescription.parse(data)
    assert not isinstance(info.value, SdpNegotiationError)


def test_malformed_offer_is_not_a_negotiation_error() -> None:
    with pytest.raises(SdpError) as info:
        negotiate(b"garbage", **OURS)
    assert type(info.value) is SdpError


def test_bad_rtpmap_is_ignored_not_fatal() -> None:
    offer = SIPP_PLAIN + b"a=rtpmap:xx PCMU/8000\r\na=rtpmap:0\r\na=rtpmap:0 PCMU/fast\r\n"
    assert negotiate(offer, **OURS).codec == "PCMU"


def test_non_ascii_digits_are_not_numbers() -> None:
    offer = SIPP_PLAIN.replace(b"RTP/AVP 0", "RTP/AVP \u0660 0".encode())
    assert negotiate(offer, **OURS).payload_type == 0


# --------------------------------------------------------------------------- our offers


def test_build_offer_is_negotiable_by_ourselves() -> None:
    offer = build_offer(local_ip="192.0.2.9", local_port=30000, session_id=1, session_version=1)
    parsed = SessionDescription.parse(offer)
    (audio,) = parsed.media
    assert audio.formats == ("0", "8", "101")
    assert audio.fmtp(101) == "0-16" and audio.ptime() == 20 and audio.direction() == "sendrecv"
    result = negotiate(offer, **OURS)
    assert (result.codec, result.te_payload_type, result.remote_port) == ("PCMU", 101, 30000)


@pytest.mark.parametrize(
    ("kwargs", "formats", "direction"),
    [
        ({"codecs": ("PCMA",), "te_payload_type": None}, ("8",), "sendrecv"),
        ({"codecs": ("PCMA", "PCMU"), "te_payload_type": 96}, ("8", "0", "96"), "sendrecv"),
        ({"direction": "sendonly"}, ("0", "8", "101"), "sendonly"),
        ({"direction": "inactive"}, ("0", "8", "101"), "inactive"),
    ],
)
def test_build_offer_variants(
    kwargs: dict[str, Any], formats: tuple[str, ...], direction: str
) -> None:
    offer = build_offer(
        local_ip="192.0.2.9", local_port=30000, session_id=1, session_version=2, **kwargs
    )
    (audio,) = SessionDescription.parse(offer).media
    assert audio.formats == formats and audio.direction() == direction


@pytest.mark.parametrize(
    "kwargs",
    [
        {"codecs": ()},
        {"codecs": ("OPUS",)},
        {"codecs": "PCMU"},
        {"direction": "both"},
        {"te_payload_type": 8},
    ],
)
def test_build_offer_rejects_misuse(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build_offer(local_ip="192.0.2.9", local_port=1, session_id=1, session_version=1, **kwargs)


AGENT_ANSWER = sdp("""
v=0
o=agent 5 6 IN IP4 10.3.3.3
s=-
c=IN IP4 10.3.3.3
t=0 0
m=audio 40000 RTP/AVP 8 101
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
""")


def test_parse_answer() -> None:
    result = parse_answer(AGENT_ANSWER, ("PCMU", "PCMA"), 101)
    assert (result.codec, result.payload_type, result.te_payload_type) == ("PCMA", 8, 101)
    assert (result.remote_ip, result.remote_port, result.direction) == (
        "10.3.3.3",
        40000,
        "sendrecv",
    )
    assert result.answer == b"" and not result.on_hold


def test_parse_answer_without_our_telephone_event() -> None:
    assert parse_answer(AGENT_ANSWER, ("PCMU", "PCMA"), None).te_payload_type is None


def test_parse_answer_hold_and_rejection() -> None:
    held = parse_answer(AGENT_ANSWER.replace(b"a=sendrecv", b"a=sendonly"), ("PCMA",), 101)
    assert held.direction == "recvonly" and held.on_hold
    with pytest.raises(SdpNegotiationError):
        parse_answer(AGENT_ANSWER.replace(b"m=audio 40000", b"m=audio 0"), ("PCMA",), 101)
    with pytest.raises(SdpNegotiationError):
        parse_answer(AGENT_ANSWER, ("PCMU",), 101)


# --------------------------------------------------------------------------- properties


@given(st.binary(max_size=600))
def test_parse_arbitrary_bytes_parses_or_raises_sdp_error(data: bytes) -> None:
    try:
        SessionDescription.parse(data)
    except SdpError:
        pass


LINE = st.one_of(
    st.sampled_from(
        [
            "v=0",
            "o=x 1 2 IN IP4 1.2.3.4",
            "s=-",
            "t=0 0",
            "c=IN IP4 10.0.0.1",
            "c=IN IP4 0.0.0.0",
            "c=IN IP6 ::1",
            "m=audio 4000 RTP/AVP 0 8 101",
            "m=video 0 RTP/AVP 96",
            "m=audio 0 RTP/AVP 0",
            "m=audio 5 RTP/SAVP 0",
            "a=rtpmap:101 telephone-event/8000",
            "a=rtpmap:96 PCMU/8000",
            "a=ptime:30",
            "a=sendonly",
            "a=inactive",
            "a=recvonly",
            "a=fmtp:101 0-16",
            "a=rtpmap:0",
        ]
    ),
    st.text(max_size=30).map(lambda t: t.replace("\n", " ")),
    st.builds(
        lambda k, v: f"{k}={v}",
        st.sampled_from("vosctmab"),
        st.text(max_size=25).map(lambda t: t.replace("\n", "")),
    ),
)


@given(st.lists(LINE, max_size=14))
def test_negotiate_structured_input_gives_result_or_sdp_error(lines: list[str]) -> None:
    data = ("v=0\r\n" + "\r\n".join(lines)).encode("utf-8", "surrogatepass")
    try:
        result = negotiate(data, **OURS)
    except SdpError:
        return
    assert result.codec in ("PCMU", "PCMA")
    assert result.direction in ("sendrecv", "sendonly", "recvonly", "inactive")
    SessionDescription.parse(result.answer)

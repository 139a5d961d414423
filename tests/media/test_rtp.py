"""RTP header parsing (RFC 3550 §5.1, §5.3.1) on byte fixtures."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media import rtp
from media.rtp import RtpError

# A PCMU packet as sent by a softphone: V=2, PT 0, seq 0x1234, ts 0x000000a0, SSRC 0xdeadbeef.
PLAIN = bytes.fromhex("80001234000000a0deadbeef") + b"\xff" * 160
MARKER_TE = bytes.fromhex("80e5000a00001f40cafebabe") + bytes.fromhex("050a00a0")
TWO_CSRC = bytes.fromhex("8208000100000000000000010000000200000003") + b"\xd5" * 4
EXTENSION = (
    bytes.fromhex("9000000100000000000000aa")
    + bytes.fromhex("bede0002")  # RFC 8285 one-byte profile, 2 words
    + bytes.fromhex("1001020300000000")
    + b"\x01\x02"
)
CSRC_AND_EXTENSION = (
    bytes.fromhex("9100000100000000000000aa") + b"\x00" * 4 + bytes.fromhex("10000000") + b"xy"
)
PADDED = bytes.fromhex("a000000100000000000000aa") + b"\x11" * 5 + b"\x00\x00\x03"
PADDED_EMPTY = bytes.fromhex("a000000100000000000000aa") + b"\x00\x00\x00\x04"
EMPTY_PAYLOAD = bytes.fromhex("80000001000000000000000a")


@pytest.mark.parametrize(
    ("packet", "expected"),
    [
        (PLAIN, (0, False, 0x1234, 0xA0, 0xDEADBEEF, 12)),
        (MARKER_TE, (101, True, 10, 8000, 0xCAFEBABE, 12)),
        (TWO_CSRC, (8, False, 1, 0, 1, 20)),
        (EXTENSION, (0, False, 1, 0, 0xAA, 12 + 4 + 8)),
        (CSRC_AND_EXTENSION, (0, False, 1, 0, 0xAA, 16 + 4)),
        (PADDED, (0, False, 1, 0, 0xAA, 12)),
        (EMPTY_PAYLOAD, (0, False, 1, 0, 10, 12)),
        (
            bytes.fromhex("807f ffff ffffffff ffffffff"),
            (127, False, 0xFFFF, 2**32 - 1, 2**32 - 1, 12),
        ),
    ],
)
def test_parse_good_headers(packet: bytes, expected: tuple[int, bool, int, int, int, int]) -> None:
    assert rtp.parse(packet) == expected


@pytest.mark.parametrize(
    ("packet", "why"),
    [
        (b"", "empty"),
        (PLAIN[:11], "truncated fixed header"),
        (b"\x40" + PLAIN[1:], "version 1"),
        (b"\x00" + PLAIN[1:], "version 0"),
        (b"\xc0" + PLAIN[1:], "version 3"),
        (bytes.fromhex("8f00000100000000000000aa") + b"\x00" * 8, "15 CSRCs announced, 2 present"),
        (bytes.fromhex("9000000100000000000000aa") + b"\xbe\xde", "extension header cut"),
        (
            bytes.fromhex("9000000100000000000000aa") + bytes.fromhex("bede0003") + b"\x00" * 8,
            "extension longer than packet",
        ),
    ],
)
def test_parse_bad_headers(packet: bytes, why: str) -> None:
    with pytest.raises(RtpError):
        rtp.parse(packet)


@pytest.mark.parametrize(
    ("packet", "end"),
    [
        (PLAIN, len(PLAIN)),
        (PADDED, len(PADDED) - 3),
        (PADDED_EMPTY, 12),
        (EMPTY_PAYLOAD, 12),
    ],
)
def test_payload_end(packet: bytes, end: int) -> None:
    assert rtp.payload_end(packet) == end
    assert rtp.payload_end(packet, rtp.parse(packet)[5]) == end


@pytest.mark.parametrize(
    "packet",
    [
        bytes.fromhex("a000000100000000000000aa") + b"\x11\x11\x00",  # padding count 0
        bytes.fromhex("a000000100000000000000aa") + b"\x11\x11\x04",  # more padding than payload
        bytes.fromhex("a000000100000000000000aa"),  # P set, no payload at all
    ],
)
def test_payload_end_bogus_padding(packet: bytes) -> None:
    with pytest.raises(RtpError):
        rtp.payload_end(packet)


def test_build_header_round_trips() -> None:
    header = rtp.build_header(8, 65535, 2**32 - 160, 0x01020304, marker=True)
    assert header == bytes.fromhex("8088ffffffffff6001020304")
    assert rtp.parse(header + b"\xd5") == (8, True, 65535, 2**32 - 160, 0x01020304, 12)


def test_build_header_wraps_counters() -> None:
    assert rtp.parse(rtp.build_header(0, 65536 + 5, 2**32 + 7, 2**32 + 9))[2:5] == (5, 7, 9)


@pytest.mark.parametrize("pt", [-1, 128, 200])
def test_build_header_rejects_bad_payload_type(pt: int) -> None:
    with pytest.raises(ValueError):
        rtp.build_header(pt, 0, 0, 0)


@pytest.mark.parametrize(
    ("packet", "expected"),
    [
        (bytes.fromhex("80c8000c"), True),  # SR
        (bytes.fromhex("81c9"), True),  # RR
        (bytes.fromhex("81ca"), True),  # SDES
        (bytes.fromhex("80cb"), True),  # BYE
        (bytes.fromhex("80df"), True),  # top of the RFC 5761 range
        (bytes.fromhex("80e0"), False),  # PT 96 with marker: RTP
        (bytes.fromhex("80bf"), False),
        (PLAIN, False),
        (MARKER_TE, False),
        (b"\x80", False),
        (b"", False),
    ],
)
def test_is_rtcp(packet: bytes, expected: bool) -> None:
    assert rtp.is_rtcp(packet) is expected


def test_header_struct_is_the_fixed_header() -> None:
    assert rtp.HEADER.size == 12 and rtp.HEADER.format == "!BBHII"


@given(st.binary(max_size=200))
def test_parse_arbitrary_bytes_returns_tuple_or_rtp_error(data: bytes) -> None:
    try:
        pt, marker, seq, ts, ssrc, offset = rtp.parse(data)
    except RtpError:
        return
    assert 0 <= pt <= 127 and isinstance(marker, bool)
    assert 0 <= seq <= 0xFFFF and 0 <= ts < 2**32 and 0 <= ssrc < 2**32
    assert 12 <= offset <= len(data)
    try:
        end = rtp.payload_end(data, offset)
    except RtpError:
        return
    assert offset <= end <= len(data)


@given(
    st.integers(0, 127),
    st.booleans(),
    st.integers(0, 0xFFFF),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.lists(st.integers(0, 2**32 - 1), max_size=15),
    st.one_of(st.none(), st.binary(max_size=40).map(lambda b: b + b"\x00" * (-len(b) % 4))),
    st.binary(max_size=200),
    st.integers(0, 255),
)
def test_parse_structured_packets(
    pt: int,
    marker: bool,
    seq: int,
    ts: int,
    ssrc: int,
    csrcs: list[int],
    extension: bytes | None,
    payload: bytes,
    padding: int,
) -> None:
    b0 = 0x80 | len(csrcs) | (0x10 if extension is not None else 0) | (0x20 if padding else 0)
    packet = struct.pack("!BBHII", b0, pt | (0x80 if marker else 0), seq, ts, ssrc)
    packet += b"".join(struct.pack("!I", c) for c in csrcs)
    if extension is not None:
        packet += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    offset = len(packet)
    packet += payload
    if padding:
        packet += b"\x00" * (padding - 1) + bytes([padding])
    assert rtp.parse(packet) == (pt, marker, seq, ts, ssrc, offset)
    assert packet[offset : rtp.payload_end(packet)] == payload

"""RTP fixed header (RFC 3550 §5.1) parsing and building for the per-packet path.

Nothing here allocates objects per packet beyond the returned tuple: `parse` does
one `struct` unpack and a few integer operations, and `build_header` one pack.
Packets are validated only as far as needed to locate the payload safely
(RFC 3550 §5.1 fields, CSRC list, §5.3.1 header extension, padding).
"""

from __future__ import annotations

import struct

__all__ = ["HEADER", "RtpError", "build_header", "is_rtcp", "parse", "payload_end"]

HEADER = struct.Struct("!BBHII")
_HEADER_SIZE = 12
_VERSION_BITS = 0x80  # version 2 in the top two bits


class RtpError(Exception):
    """The datagram is not a usable RTP packet (too short, wrong version, bad lengths)."""


def parse(data: bytes) -> tuple[int, bool, int, int, int, int]:
    """Parse an RTP header (RFC 3550 §5.1).

    Returns ``(payload_type, marker, seq, timestamp, ssrc, payload_offset)``.
    The offset skips the CSRC list (CC field) and a header extension when the X
    bit is set (§5.3.1: 16-bit profile id, 16-bit length in 32-bit words).
    Padding (P bit) is not removed here; see `payload_end`.
    Raises `RtpError` when the packet is shorter than 12 bytes, the version is
    not 2, or the CSRC list/extension runs past the end of the packet.
    """
    size = len(data)
    if size < _HEADER_SIZE:
        raise RtpError(f"RTP packet too short: {size} bytes")
    b0, b1, seq, timestamp, ssrc = HEADER.unpack_from(data)
    if b0 & 0xC0 != _VERSION_BITS:
        raise RtpError(f"RTP version {b0 >> 6}, expected 2")
    offset = _HEADER_SIZE + ((b0 & 0x0F) << 2)
    if b0 & 0x10:
        if offset + 4 > size:
            raise RtpError("RTP header extension runs past the end of the packet")
        offset += 4 + ((data[offset + 2] << 8 | data[offset + 3]) << 2)
    if offset > size:
        raise RtpError(f"RTP header of {offset} bytes exceeds the packet of {size} bytes")
    return b1 & 0x7F, bool(b1 & 0x80), seq, timestamp, ssrc, offset


def payload_end(data: bytes, payload_offset: int | None = None) -> int:
    """End of the payload: ``len(data)`` minus the padding count if P is set (RFC 3550 §5.1).

    The last octet of a padded packet counts the padding octets, itself included.
    `payload_offset` (from `parse`) saves re-parsing the header; without it the
    header is parsed. Raises `RtpError` for a zero or oversized padding count.
    """
    if payload_offset is None:
        payload_offset = parse(data)[5]
    size = len(data)
    if not data[0] & 0x20:
        return size
    padding = data[size - 1]
    if padding == 0 or padding > size - payload_offset:
        raise RtpError(f"RTP padding count {padding} is invalid for this packet")
    return size - padding


def build_header(pt: int, seq: int, ts: int, ssrc: int, marker: bool = False) -> bytes:
    """Build a 12-byte RTP header, version 2, no padding/extension/CSRC (RFC 3550 §5.1).

    `seq`, `ts` and `ssrc` are reduced modulo 2**16 / 2**32 so that callers can
    count freely; a payload type outside 0..127 is a programming error (ValueError).
    """
    if not 0 <= pt <= 0x7F:
        raise ValueError(f"RTP payload type {pt} out of range 0..127")
    return HEADER.pack(
        _VERSION_BITS,
        pt | 0x80 if marker else pt,
        seq & 0xFFFF,
        ts & 0xFFFFFFFF,
        ssrc & 0xFFFFFFFF,
    )


def is_rtcp(data: bytes) -> bool:
    """True when the second octet is 192..223, the RTCP range (RFC 5761 §4).

    Used to demultiplex RTP and RTCP arriving on one port: RTP payload types
    64..95 with the marker bit would collide and are therefore never used.
    """
    return len(data) >= 2 and 192 <= data[1] <= 223

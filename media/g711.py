"""ITU-T G.711 mu-law (PCMU) and A-law (PCMA) codecs as numpy lookup tables.

The tables are built once at import: a 256-entry decode table per law (code ->
int16) and a 65536-entry encode table per law indexed by the uint16 view of an
int16 sample. Encoding and decoding a 20 ms frame is then one fancy-indexing
operation. The quantisation follows G.711 Tables 1a/2a (the same decision levels
as the widely used Sun reference implementation): mu-law works on the 14-bit
magnitude with a bias of 33, A-law on the 13-bit magnitude with even bits
inverted (XOR 0x55).

RTP payload type numbers come from RFC 3551 §6 (Table 4).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "PAYLOAD_TYPES",
    "SILENCE",
    "alaw_decode",
    "alaw_encode",
    "decode",
    "encode",
    "ulaw_decode",
    "ulaw_encode",
]

Int16Array = npt.NDArray[np.int16]

SILENCE: dict[str, bytes] = {"PCMU": b"\xff", "PCMA": b"\xd5"}
PAYLOAD_TYPES: dict[str, int] = {"PCMU": 0, "PCMA": 8}

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159  # 14-bit magnitude ceiling before the bias of 33 is added


def _build_ulaw_decode() -> Int16Array:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _build_alaw_decode() -> Int16Array:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (a >> 4) & 0x07
    t = (a & 0x0F) << 4
    t = np.where(segment == 0, t + 8, t + 0x108)
    t = np.where(segment > 1, t << np.maximum(segment - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


def _all_int16_by_uint16_index() -> npt.NDArray[np.int32]:
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _segment(value: npt.NDArray[np.int32], first_end: int) -> npt.NDArray[np.int32]:
    """Index of the first segment end (first_end, 2*first_end+1, ...) >= value; 8 if none."""
    ends = (first_end + 1) * (1 << np.arange(8, dtype=np.int32)) - 1
    return np.searchsorted(ends, value, side="left").astype(np.int32)


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    pcm = _all_int16_by_uint16_index() >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = _segment(magnitude, 0x3F)
    code = (seg << 4) | ((magnitude >> (seg + 1)) & 0x0F)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    pcm = _all_int16_by_uint16_index() >> 3
    negative = pcm < 0
    mask = np.where(negative, 0x55, 0xD5)
    magnitude = np.where(negative, -pcm - 1, pcm)
    seg = _segment(magnitude, 0x1F)
    shift = np.where(seg < 2, 1, seg)
    code = (seg << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


_ULAW_DEC = _build_ulaw_decode()
_ALAW_DEC = _build_alaw_decode()
_ULAW_ENC = _build_ulaw_encode()
_ALAW_ENC = _build_alaw_encode()
for _table in (_ULAW_DEC, _ALAW_DEC, _ULAW_ENC, _ALAW_ENC):
    _table.flags.writeable = False


def ulaw_decode(data: bytes) -> Int16Array:
    """Decode mu-law bytes (G.711 Table 2a) to int16 samples."""
    return _ULAW_DEC[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> Int16Array:
    """Decode A-law bytes (G.711 Table 1a) to int16 samples."""
    return _ALAW_DEC[np.frombuffer(data, dtype=np.uint8)]


def _as_uint16(pcm: npt.ArrayLike) -> npt.NDArray[np.uint16]:
    arr = np.asarray(pcm)
    if arr.dtype != np.int16:
        arr = arr.astype(np.int16)
    return arr.view(np.uint16)


def ulaw_encode(pcm: npt.ArrayLike) -> bytes:
    """Encode int16 samples to mu-law bytes (G.711 Table 2a)."""
    return _ULAW_ENC[_as_uint16(pcm)].tobytes()


def alaw_encode(pcm: npt.ArrayLike) -> bytes:
    """Encode int16 samples to A-law bytes (G.711 Table 1a)."""
    return _ALAW_ENC[_as_uint16(pcm)].tobytes()


def decode(codec: str, data: bytes) -> Int16Array:
    """Decode a 'PCMU' or 'PCMA' payload; ValueError for any other codec name."""
    if codec == "PCMU":
        return ulaw_decode(data)
    if codec == "PCMA":
        return alaw_decode(data)
    raise ValueError(f"unsupported G.711 codec {codec!r} (expected 'PCMU' or 'PCMA')")


def encode(codec: str, pcm: npt.ArrayLike) -> bytes:
    """Encode int16 samples as a 'PCMU' or 'PCMA' payload; ValueError for any other codec."""
    if codec == "PCMU":
        return ulaw_encode(pcm)
    if codec == "PCMA":
        return alaw_encode(pcm)
    raise ValueError(f"unsupported G.711 codec {codec!r} (expected 'PCMU' or 'PCMA')")

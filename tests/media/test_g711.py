"""G.711 against the recommendation's reference values and a bit-by-bit reference coder."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from media import g711

# --------------------------------------------------------------------------- reference
# Written straight from G.711 Tables 1a/2a, one sample at a time with Python ints
# and explicit loops, sharing nothing with the table construction in media.g711.


def ref_ulaw_decode(code: int) -> int:
    code = ~code & 0xFF
    sign = code & 0x80
    exponent = (code >> 4) & 7
    mantissa = code & 0x0F
    value = ((2 * mantissa + 33) << (exponent + 2)) - 132
    return -value if sign else value


def ref_ulaw_encode(sample: int) -> int:
    value = sample >> 2  # 14-bit, floor like an arithmetic shift
    sign = 0x80 if value < 0 else 0x00
    magnitude = min(-value if value < 0 else value, 8159) + 33
    exponent = 0
    while exponent < 8 and magnitude > (64 << exponent) - 1:
        exponent += 1
    if exponent == 8:  # beyond the last segment: the extreme code
        exponent, mantissa = 7, 0x0F
    else:
        mantissa = (magnitude >> (exponent + 1)) & 0x0F
    return ~(sign | exponent << 4 | mantissa) & 0xFF


def ref_alaw_decode(code: int) -> int:
    code ^= 0x55
    exponent = (code >> 4) & 7
    mantissa = code & 0x0F
    if exponent == 0:
        value = (mantissa << 4) + 8
    else:
        value = ((mantissa << 4) + 0x108) << (exponent - 1)
    return value if code & 0x80 else -value


def ref_alaw_encode(sample: int) -> int:
    value = sample >> 3  # 13-bit
    if value >= 0:
        sign, magnitude = 0x80, value
    else:
        sign, magnitude = 0x00, -value - 1
    exponent = 0
    while exponent < 8 and magnitude > (32 << exponent) - 1:
        exponent += 1
    if exponent == 8:
        return (sign | 0x7F) ^ 0x55
    mantissa = (magnitude >> (1 if exponent < 2 else exponent)) & 0x0F
    return (sign | exponent << 4 | mantissa) ^ 0x55


ALL_CODES = bytes(range(256))
ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)

# --------------------------------------------------------------------------- tables


@pytest.mark.parametrize(
    ("codec", "code", "sample"),
    [
        ("PCMU", 0x00, -32124),  # most negative
        ("PCMU", 0x80, 32124),  # most positive
        ("PCMU", 0xFF, 0),  # +0
        ("PCMU", 0x7F, 0),  # -0
        ("PCMU", 0xFE, 8),
        ("PCMU", 0x7E, -8),
        ("PCMU", 0xF0, 120),  # end of segment 0
        ("PCMU", 0xEF, 132),  # start of segment 1
        ("PCMU", 0x8F, 16764),
        ("PCMA", 0xD5, 8),
        ("PCMA", 0x55, -8),
        ("PCMA", 0xAA, 32256),  # most positive
        ("PCMA", 0x2A, -32256),  # most negative
        ("PCMA", 0xDA, 248),  # end of segment 0
        ("PCMA", 0xC5, 264),  # start of segment 1
    ],
)
def test_reference_values(codec: str, code: int, sample: int) -> None:
    assert g711.decode(codec, bytes([code])).tolist() == [sample]


def test_full_ulaw_decode_table_matches_reference() -> None:
    assert g711.ulaw_decode(ALL_CODES).tolist() == [ref_ulaw_decode(c) for c in ALL_CODES]


def test_full_alaw_decode_table_matches_reference() -> None:
    assert g711.alaw_decode(ALL_CODES).tolist() == [ref_alaw_decode(c) for c in ALL_CODES]


def test_full_ulaw_encode_table_matches_reference() -> None:
    expected = bytes(ref_ulaw_encode(s) for s in range(-32768, 32768))
    assert g711.ulaw_encode(ALL_SAMPLES) == expected


def test_full_alaw_encode_table_matches_reference() -> None:
    expected = bytes(ref_alaw_encode(s) for s in range(-32768, 32768))
    assert g711.alaw_encode(ALL_SAMPLES) == expected


def test_decode_is_odd_symmetric() -> None:
    assert (g711.ulaw_decode(ALL_CODES[:128]) == -g711.ulaw_decode(ALL_CODES[128:])).all()
    assert (g711.alaw_decode(ALL_CODES[:128]) == -g711.alaw_decode(ALL_CODES[128:])).all()


def test_ulaw_round_trip_every_code() -> None:
    # 0x7F is mu-law's negative zero; zero encodes as the positive one.
    for code in ALL_CODES:
        expected = 0xFF if code == 0x7F else code
        assert g711.ulaw_encode(g711.ulaw_decode(bytes([code])))[0] == expected


def test_alaw_round_trip_every_code() -> None:
    assert g711.alaw_encode(g711.alaw_decode(ALL_CODES)) == ALL_CODES


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_quantisation_error_is_within_half_a_step(codec: str) -> None:
    levels = np.unique(g711.decode(codec, ALL_CODES).astype(np.int64))
    steps = np.diff(levels)
    decoded = g711.decode(codec, g711.encode(codec, ALL_SAMPLES)).astype(np.int64)
    error = np.abs(decoded - ALL_SAMPLES.astype(np.int64))
    inside = (ALL_SAMPLES >= levels[0]) & (ALL_SAMPLES <= levels[-1])
    # Decision levels are interval ends; the reconstruction value is mid-interval.
    assert error[inside].max() <= steps.max() // 2 + 4


def test_matches_audioop_when_available() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    raw = ALL_SAMPLES.tobytes()
    assert g711.ulaw_encode(ALL_SAMPLES) == audioop.lin2ulaw(raw, 2)
    assert g711.alaw_encode(ALL_SAMPLES) == audioop.lin2alaw(raw, 2)
    assert g711.ulaw_decode(ALL_CODES).tobytes() == audioop.ulaw2lin(ALL_CODES, 2)
    assert g711.alaw_decode(ALL_CODES).tobytes() == audioop.alaw2lin(ALL_CODES, 2)


# --------------------------------------------------------------------------- API


def test_silence_bytes_decode_to_near_zero() -> None:
    assert g711.SILENCE == {"PCMU": b"\xff", "PCMA": b"\xd5"}
    for codec, byte in g711.SILENCE.items():
        assert abs(int(g711.decode(codec, byte)[0])) <= 8
        assert g711.encode(codec, np.zeros(1, dtype=np.int16)) == byte


def test_payload_types_are_rfc3551_static() -> None:
    assert g711.PAYLOAD_TYPES == {"PCMU": 0, "PCMA": 8}


@pytest.mark.parametrize("codec", ["G729", "pcmu", "", "L16"])
def test_unknown_codec_is_value_error(codec: str) -> None:
    with pytest.raises(ValueError):
        g711.decode(codec, b"\x00")
    with pytest.raises(ValueError):
        g711.encode(codec, np.zeros(1, dtype=np.int16))


def test_decode_returns_int16_of_same_length() -> None:
    out = g711.decode("PCMA", b"\x00" * 160)
    assert out.dtype == np.int16 and out.shape == (160,)
    assert g711.decode("PCMU", b"").shape == (0,)


def test_encode_accepts_wider_int_arrays() -> None:
    pcm = np.array([0, 1000, -1000], dtype=np.int32)
    assert g711.encode("PCMU", pcm) == g711.encode("PCMU", pcm.astype(np.int16))


def test_encode_strided_view() -> None:
    stereo = np.arange(-1000, 1000, dtype=np.int16).reshape(-1, 2)
    assert g711.encode("PCMA", stereo[:, 0]) == g711.encode("PCMA", stereo[:, 0].copy())


def test_tables_are_read_only() -> None:
    decoded = g711.ulaw_decode(b"\x10\x20")
    decoded[0] = 1  # the result is a fresh array, the table is untouched
    assert g711.ulaw_decode(b"\x10")[0] == ref_ulaw_decode(0x10)


@given(st.binary(max_size=400))
def test_decode_encode_is_idempotent(data: bytes) -> None:
    for codec in ("PCMU", "PCMA"):
        once = g711.encode(codec, g711.decode(codec, data))
        assert g711.encode(codec, g711.decode(codec, once)) == once

"""DTMF: RFC 4733 event receiver, in-band Goertzel detector, SIP INFO bodies."""

from __future__ import annotations

import shutil
import struct
import subprocess
import wave
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from media import g711
from media.dtmf import (
    COLUMN_FREQUENCIES,
    EVENT_DIGITS,
    ROW_FREQUENCIES,
    DtmfInfoError,
    GoertzelDetector,
    Rfc4733Receiver,
    dtmf_tone,
    parse_info,
)

RATE = 8000
PROMPTS = Path(__file__).resolve().parents[2] / "prompts"

# --------------------------------------------------------------------------- RFC 4733


def event(code: int, end: bool = False, duration: int = 160, volume: int = 10) -> bytes:
    """RFC 4733 §2.3 payload: event, E|R|volume, duration."""
    return struct.pack("!BBH", code, (0x80 if end else 0) | volume, duration)


def press(
    code: int, ts: int, ssrc: int, start: float, packets: int = 5
) -> list[tuple[bytes, int, int, float]]:
    """How phones send one key: start, continuations every 50 ms, three end packets."""
    out = [
        (event(code, duration=160 * (i + 1)), ts, ssrc, start + 0.05 * i) for i in range(packets)
    ]
    last = start + 0.05 * packets
    out += [(event(code, end=True, duration=160 * (packets + 1)), ts, ssrc, last) for _ in range(3)]
    return out


def run(
    packets: Iterable[tuple[bytes, int, int, float]], receiver: Rfc4733Receiver | None = None
) -> str:
    rx = receiver or Rfc4733Receiver()
    return "".join(d for p in packets if (d := rx.feed(*p)) is not None)


def test_one_press_emits_once() -> None:
    assert run(press(5, 1000, 0xABC, 0.0)) == "5"


@pytest.mark.parametrize("code", range(16))
def test_every_event_code(code: int) -> None:
    assert run(press(code, 4000, 1, 10.0)) == EVENT_DIGITS[code]


def test_sequence_of_presses_with_increasing_timestamps() -> None:
    packets = press(1, 1000, 7, 0.0) + press(2, 3000, 7, 0.5) + press(3, 5000, 7, 1.0)
    assert run(packets) == "123"


def test_end_packet_only_still_emits() -> None:
    # A receiver that missed the start still reports the key (RFC 4733 §2.5.2).
    assert run([(event(9, end=True), 100, 1, 0.0)] * 3) == "9"


def test_retransmitted_end_packets_late_within_window() -> None:
    packets = press(4, 800, 2, 0.0) + [(event(4, end=True, duration=960), 800, 2, 0.9)]
    assert run(packets) == "4"


def test_replayed_pcap_same_digit_twice_more_than_a_second_apart() -> None:
    # SIPp's dtmf_2833_1.pcap replays the same timestamp and SSRC every time.
    packets = press(1, 12345, 0x1234, 0.0) + press(1, 12345, 0x1234, 2.5)
    assert run(packets) == "11"


def test_same_identity_just_within_the_window_is_the_same_event() -> None:
    packets = press(1, 1, 1, 0.0, packets=2)
    last = packets[-1][3]
    assert run([*packets, (event(1), 1, 1, last + 1.0)]) == "1"
    assert run([*packets, (event(1), 1, 1, last + 1.01)]) == "11"


def test_long_press_keeps_refreshing() -> None:
    # A 3 s press: continuations every 50 ms keep the event alive.
    assert run(press(0, 1, 1, 0.0, packets=60)) == "0"


def test_ssrc_change_mid_call() -> None:
    # SIPp play_dtmf uses a fresh SSRC for each digit, same timestamp base.
    packets = press(7, 0, 0x1111, 0.0) + press(7, 0, 0x2222, 0.3) + press(8, 0, 0x3333, 0.6)
    assert run(packets) == "778"


def test_different_digits_with_the_same_timestamp() -> None:
    packets = press(1, 5000, 9, 0.0) + press(2, 5000, 9, 0.4) + press(3, 5000, 9, 0.8)
    assert run(packets) == "123"


def test_interleaved_late_end_of_previous_digit_is_not_a_new_press() -> None:
    packets = press(1, 1000, 9, 0.0) + press(2, 2000, 9, 0.4)
    packets.insert(len(packets) - 2, (event(1, end=True), 1000, 9, 0.8))
    assert run(packets) == "12"


def test_events_above_15_are_ignored() -> None:
    rx = Rfc4733Receiver()
    assert run([(event(16), 1, 1, 0.0), (event(70), 1, 1, 0.0), (event(255), 2, 1, 0.1)], rx) == ""
    assert rx.malformed == 0


@pytest.mark.parametrize("payload", [b"", b"\x01", b"\x01\x80", b"\x01\x80\x00"])
def test_short_payloads_are_counted(payload: bytes) -> None:
    rx = Rfc4733Receiver()
    assert rx.feed(payload, 1, 1, 0.0) is None
    assert rx.malformed == 1
    assert rx.feed(event(3), 1, 1, 0.0) == "3"


def test_tracking_table_is_bounded() -> None:
    rx = Rfc4733Receiver()
    for ts in range(1000):
        rx.feed(event(ts % 16), ts, 1, ts * 0.2)
    assert len(rx._last_seen) <= 8


@given(
    st.lists(
        st.tuples(st.binary(max_size=8), st.integers(0, 3), st.integers(0, 2), st.floats(0, 10))
    )
)
def test_receiver_accepts_anything(packets: list[tuple[bytes, int, int, float]]) -> None:
    rx = Rfc4733Receiver()
    for payload, ts, ssrc, now in packets:
        digit = rx.feed(payload, ts, ssrc, now)
        assert digit is None or digit in EVENT_DIGITS


# --------------------------------------------------------------------------- in-band helpers

rng = np.random.default_rng(20240601)


def to_int16(x: npt.ArrayLike) -> npt.NDArray[np.int16]:
    return np.clip(np.round(np.asarray(x, dtype=np.float64)), -32768, 32767).astype(np.int16)


def silence(ms: float) -> npt.NDArray[np.float64]:
    return np.zeros(int(ms * RATE / 1000))


def pair(
    digit: str, ms: float, twist_db: float = 0.0, amplitude: float = 0.3
) -> npt.NDArray[np.float64]:
    """Tone pair with the column tone `twist_db` above the row tone."""
    r = "123A456B789C*0#D".index(digit)
    row, col = ROW_FREQUENCIES[r // 4], COLUMN_FREQUENCIES[r % 4]
    t = np.arange(int(ms * RATE / 1000)) / RATE
    return (
        amplitude
        * 32767
        * (np.sin(2 * np.pi * row * t) + 10 ** (twist_db / 20) * np.sin(2 * np.pi * col * t))
    )


def detect(signal: npt.ArrayLike, chunk: int = 160) -> str:
    pcm = to_int16(signal)
    detector = GoertzelDetector()
    return "".join(d for i in range(0, len(pcm), chunk) for d in detector.feed(pcm[i : i + chunk]))


def padded(x: npt.NDArray[np.float64], lead: int = 0) -> npt.NDArray[np.float64]:
    return np.concatenate([np.zeros(lead), x, silence(60)])


# --------------------------------------------------------------------------- in-band detection


@pytest.mark.parametrize("ms", [40, 50, 70, 100])
@pytest.mark.parametrize("lead", [0, 17, 51, 103])
def test_every_digit_at_durations_and_alignments(ms: int, lead: int) -> None:
    for digit in EVENT_DIGITS:
        assert detect(padded(pair(digit, ms), lead)) == digit, (digit, ms, lead)


def test_dtmf_tone_helper_is_detected() -> None:
    for digit in EVENT_DIGITS:
        tone = dtmf_tone(digit, 0.05)
        assert tone.dtype == np.int16 and len(tone) == 400
        assert detect(np.concatenate([tone, np.zeros(400)])) == digit


@pytest.mark.parametrize("chunk", [1, 37, 80, 104, 160, 240, 1000])
def test_any_chunk_size(chunk: int) -> None:
    signal = np.concatenate([padded(pair(d, 60), 30) for d in "159#"])
    assert detect(signal, chunk) == "159#"


def test_white_noise_at_20_db_snr() -> None:
    for digit in EVENT_DIGITS:
        tone = pair(digit, 50)
        noise_power = np.mean(tone**2) / 100
        signal = padded(tone, 40)
        assert detect(signal + rng.normal(0, np.sqrt(noise_power), len(signal))) == digit


@pytest.mark.parametrize("twist_db", [3.0, -6.0, 0.0, -3.0])
def test_twist_within_limits(twist_db: float) -> None:
    for digit in EVENT_DIGITS:
        assert detect(padded(pair(digit, 60, twist_db), 20)) == digit


@pytest.mark.parametrize("twist_db", [6.0, 8.0, -10.0, -14.0])
def test_twist_beyond_limits_is_rejected(twist_db: float) -> None:
    for digit in EVENT_DIGITS:
        assert detect(padded(pair(digit, 100, twist_db), 20)) == ""


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_after_g711_round_trip(codec: str) -> None:
    sequence = "0123456789*#ABCD"
    signal = to_int16(
        np.concatenate([np.concatenate([pair(d, 45, -2.0), silence(45)]) for d in sequence])
    )
    assert detect(g711.decode(codec, g711.encode(codec, signal))) == sequence


def test_digits_separated_by_40_ms_gaps_including_repeats() -> None:
    sequence = "11223344556677889900**##AABBCCDD1"
    signal = np.concatenate([np.concatenate([pair(d, 40), silence(40)]) for d in sequence])
    assert detect(signal) == sequence


def test_long_tone_is_one_digit() -> None:
    assert detect(padded(pair("8", 2000))) == "8"


def test_low_level_tones() -> None:
    # -40 dBFS per tone is still a key press; -50 dBFS is line noise.
    assert detect(padded(pair("6", 60, amplitude=0.01))) == "6"
    assert detect(padded(pair("6", 60, amplitude=0.003))) == ""


@pytest.mark.parametrize("deviation", [-0.015, 0.015])
def test_frequency_tolerance_accepted(deviation: float) -> None:
    # ITU-T Q.24: +-1.5 % must be detected.
    t = np.arange(480) / RATE
    for row in ROW_FREQUENCIES:
        for col in COLUMN_FREQUENCIES:
            x = (
                0.3
                * 32767
                * (
                    np.sin(2 * np.pi * row * (1 + deviation) * t)
                    + np.sin(2 * np.pi * col * (1 + deviation) * t)
                )
            )
            assert len(detect(padded(x))) == 1


@pytest.mark.parametrize("deviation", [-0.05, -0.035, 0.035, 0.05])
def test_frequency_deviation_rejected(deviation: float) -> None:
    # ITU-T Q.24: beyond +-3.5 % must not be detected.
    t = np.arange(800) / RATE
    for row in ROW_FREQUENCIES:
        for col in COLUMN_FREQUENCIES:
            x = (
                0.3
                * 32767
                * (np.sin(2 * np.pi * row * (1 + deviation) * t) + np.sin(2 * np.pi * col * t))
            )
            assert detect(padded(x)) == ""


@pytest.mark.parametrize("ms", [10, 15, 20])
@pytest.mark.parametrize("lead", [0, 13, 26, 52, 78, 90, 103])
def test_short_bursts_are_rejected(ms: int, lead: int) -> None:
    for digit in EVENT_DIGITS:
        assert detect(padded(pair(digit, ms), lead)) == ""


def test_white_noise_alone() -> None:
    assert detect(rng.normal(0, 4000, RATE * 5)) == ""


@pytest.mark.parametrize("frequency", ROW_FREQUENCIES + COLUMN_FREQUENCIES + (1000.0, 440.0, 350.0))
def test_single_tone(frequency: float) -> None:
    t = np.arange(RATE) / RATE
    assert detect(0.5 * 32767 * np.sin(2 * np.pi * frequency * t)) == ""


def test_call_progress_tones() -> None:
    # Dial tone 350+440, ringback 440+480, busy 480+620: pairs outside the keypad.
    t = np.arange(RATE) / RATE
    for a, b in ((350, 440), (440, 480), (480, 620)):
        assert detect(0.3 * 32767 * (np.sin(2 * np.pi * a * t) + np.sin(2 * np.pi * b * t))) == ""


def midi(note: int) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


@pytest.mark.parametrize(
    "notes",
    [
        (60, 64, 67),  # C major
        (77, 81, 84),  # F major with F5 near 697 Hz
        (77, 81, 86),  # F5 A5 D6: near 697/852 and 1209
        (65, 69, 72, 77),
        (79, 83, 86, 91),  # G major high up, across the column band
        (78, 85, 90),
    ],
)
def test_music_like_chords(notes: tuple[int, ...]) -> None:
    t = np.arange(RATE) / RATE
    # Each note with three harmonics and a slow attack, like a soft pad.
    x = sum((0.25 / h) * np.sin(2 * np.pi * midi(n) * h * t) for n in notes for h in (1, 2, 3))
    envelope = np.minimum(1.0, t / 0.05)
    assert detect(0.4 * 32767 * envelope * x / len(notes)) == ""


def load_prompt(path: Path) -> npt.NDArray[np.int16]:
    from media.audio import load_wav

    return load_wav(path)


@pytest.mark.parametrize(
    "name", ["menu.wav", "enter_account.wav", "please_hold.wav", "music_on_hold.wav"]
)
def test_recorded_prompts_have_no_digits(name: str) -> None:
    path = PROMPTS / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    pcm = load_prompt(path)
    assert detect(pcm) == ""
    assert detect(g711.decode("PCMU", g711.encode("PCMU", pcm))) == ""


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
@pytest.mark.parametrize("voice", ["en-us", "en-gb+f3", "en-us+m7"])
def test_synthesised_speech_has_no_digits(tmp_path: Path, voice: str) -> None:
    wav_path = tmp_path / "speech.wav"
    text = "One two three. Please hold the line, nine five one pound star, your call is important to us."
    subprocess.run(
        ["espeak-ng", "-v", voice, "-w", str(wav_path), text], check=True, capture_output=True
    )
    with wave.open(str(wav_path), "rb") as wav:
        assert wav.getsampwidth() == 2
        raw = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        rate = wav.getframerate()
    import soxr

    pcm = to_int16(soxr.resample(raw.astype(np.float64), rate, RATE))
    assert detect(pcm) == ""


def test_reset_forgets_partial_state() -> None:
    detector = GoertzelDetector()
    tone = to_int16(pair("3", 100))
    assert detector.feed(tone[:300]) == ["3"]
    detector.reset()
    assert detector.feed(np.zeros(500, dtype=np.int16)) == []
    assert detector.feed(tone) == ["3"]


@given(st.lists(st.integers(-32768, 32767), max_size=700), st.integers(1, 300))
def test_detector_accepts_any_samples(samples: list[int], chunk: int) -> None:
    pcm = np.array(samples, dtype=np.int16)
    detector = GoertzelDetector()
    for i in range(0, len(pcm), chunk):
        assert all(d in EVENT_DIGITS for d in detector.feed(pcm[i : i + chunk]))


def test_dtmf_tone_rejects_bad_digit() -> None:
    with pytest.raises(ValueError):
        dtmf_tone("E", 0.1)
    with pytest.raises(ValueError):
        dtmf_tone("12", 0.1)


# --------------------------------------------------------------------------- SIP INFO


@pytest.mark.parametrize(
    ("content_type", "body", "digit"),
    [
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", "5"),
        ("application/dtmf-relay", b"Signal= *\r\nDuration=100", "*"),
        ("application/dtmf-relay", b"Signal=#\nDuration=250\n", "#"),
        ("application/dtmf-relay", b"Signal=10\r\nDuration=160", "*"),
        ("application/dtmf-relay", b"Signal=11\r\nDuration=160", "#"),
        ("application/dtmf-relay", b"Signal=12\r\n", "A"),
        ("application/dtmf-relay", b"signal = d\r\nduration=160", "D"),
        ("application/dtmf-relay", b"Duration=160\r\nSignal=0\r\n", "0"),
        ("Application/DTMF-Relay; charset=utf-8", b"Signal=9", "9"),
        ("application/dtmf", b"5", "5"),
        ("application/dtmf", b"5\r\n", "5"),
        ("application/dtmf", b"10", "*"),
        ("application/dtmf", b"11", "#"),
        ("application/dtmf", b"#", "#"),
        ("application/dtmf", b" B ", "B"),
    ],
)
def test_info_bodies(content_type: str, body: bytes, digit: str) -> None:
    assert parse_info(content_type, body) == digit


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/dtmf-relay", b""),
        ("application/dtmf-relay", b"Duration=160"),
        ("application/dtmf-relay", b"Signal=\r\nDuration=160"),
        ("application/dtmf-relay", b"Signal=16"),
        ("application/dtmf-relay", b"Signal=55"),
        ("application/dtmf-relay", b"Signal=E"),
        ("application/dtmf-relay", b"Signal=\xff"),
        ("application/dtmf", b""),
        ("application/dtmf", b"12345"),
        ("application/dtmf", b"-1"),
        ("application/dtmf", "\u0663".encode()),
    ],
)
def test_bad_info_bodies(content_type: str, body: bytes) -> None:
    with pytest.raises(DtmfInfoError) as info:
        parse_info(content_type, body)
    assert info.value.status == 400


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/sdp", "", "application/dtmf-relayx"]
)
def test_other_content_types_are_415(content_type: str) -> None:
    with pytest.raises(DtmfInfoError) as info:
        parse_info(content_type, b"Signal=5")
    assert info.value.status == 415


@given(st.text(max_size=40), st.binary(max_size=60))
def test_parse_info_returns_digit_or_raises(content_type: str, body: bytes) -> None:
    for ctype in (content_type, "application/dtmf", "application/dtmf-relay"):
        try:
            assert parse_info(ctype, body) in EVENT_DIGITS
        except DtmfInfoError:
            pass

"""Prompt loading, framing and the shared prompt cache."""

from __future__ import annotations

import struct
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media import g711
from media.audio import FRAME_SAMPLES, PromptCache, frames, load_wav, silence_frame

PROMPTS = Path(__file__).resolve().parents[2] / "prompts"


def write_wav(path: Path, samples: npt.NDArray[np.float64], rate: int, width: int) -> Path:
    """Write float samples in [-1, 1) shaped (frames, channels) as PCM of `width` bytes."""
    frames_, channels = samples.shape
    if width == 1:
        raw = np.clip(np.round(samples * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    elif width == 2:
        raw = np.clip(np.round(samples * 32768), -32768, 32767).astype("<i2").tobytes()
    elif width == 3:
        ints = np.clip(np.round(samples * 2**23), -(2**23), 2**23 - 1).astype("<i4")
        raw = ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        raw = np.clip(np.round(samples * 2**31), -(2**31), 2**31 - 1).astype("<i4").tobytes()
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(raw)
    return path


def sine(
    frequency: float, seconds: float, rate: int, amplitude: float = 0.5
) -> npt.NDArray[np.float64]:
    t = np.arange(int(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * frequency * t)


def dominant_frequency(pcm: npt.NDArray[np.int16], rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[spectrum.argmax()])


def test_load_16k_stereo_24_bit(tmp_path: Path) -> None:
    left = sine(440, 1.5, 16000, 0.5)
    right = sine(440, 1.5, 16000, 0.3)
    path = write_wav(tmp_path / "s.wav", np.stack([left, right], axis=1), 16000, 3)
    pcm = load_wav(path)
    assert pcm.dtype == np.int16
    assert abs(len(pcm) - 12000) <= 1  # 1.5 s at 8 kHz
    assert abs(dominant_frequency(pcm) - 440) < 2
    # Downmix averages the channels: amplitude 0.4 of full scale.
    assert 0.37 * 32768 < np.abs(pcm[1000:-1000]).max() < 0.42 * 32768


def test_load_8k_mono_16_bit_is_exact(tmp_path: Path) -> None:
    samples = np.round(sine(1000, 0.5, 8000, 0.25) * 32768) / 32768
    path = write_wav(tmp_path / "m.wav", samples[:, None], 8000, 2)
    pcm = load_wav(path)
    assert len(pcm) == 4000
    assert (pcm == np.round(samples * 32768).astype(np.int16)).all()


@pytest.mark.parametrize(
    ("rate", "width", "channels"),
    [(8000, 1, 1), (11025, 2, 2), (44100, 4, 1), (48000, 3, 2), (22050, 1, 2)],
)
def test_load_other_formats(tmp_path: Path, rate: int, width: int, channels: int) -> None:
    mono = sine(600, 1.0, rate, 0.5)
    path = write_wav(tmp_path / "x.wav", np.repeat(mono[:, None], channels, axis=1), rate, width)
    pcm = load_wav(path)
    assert abs(len(pcm) - 8000) <= 1
    assert abs(dominant_frequency(pcm) - 600) < 2
    assert 0.45 * 32768 < np.abs(pcm[500:-500]).max() < 0.52 * 32768


def test_load_empty_wav(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "e.wav", np.zeros((0, 1)), 16000, 2)
    assert len(load_wav(path)) == 0


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a wav file at all",
        b"RIFF\x24\x00\x00\x00WAVEfmt ",
        b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x03\x00",
    ],
)
def test_unreadable_files_are_value_errors_naming_the_path(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="broken.wav"):
        load_wav(path)


def test_float_wav_is_unsupported(tmp_path: Path) -> None:
    # WAVE_FORMAT_IEEE_FLOAT (3), 32-bit, mono, 8 kHz.
    fmt = (
        b"fmt "
        + (16).to_bytes(4, "little")
        + bytes.fromhex("0300 0100 401f0000 007d0000 0400 2000")
    )
    data = b"data" + (8).to_bytes(4, "little") + b"\x00" * 8
    path = tmp_path / "float.wav"
    path.write_bytes(
        b"RIFF" + (4 + len(fmt) + len(data)).to_bytes(4, "little") + b"WAVE" + fmt + data
    )
    with pytest.raises(ValueError, match="float.wav"):
        load_wav(path)


def test_missing_file_is_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nope.wav"):
        load_wav(tmp_path / "nope.wav")


@pytest.mark.parametrize(
    ("samples", "count"), [(0, 0), (1, 1), (159, 1), (160, 1), (161, 2), (8000, 50), (8001, 51)]
)
@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_frames_are_160_bytes_and_padded_with_silence(samples: int, count: int, codec: str) -> None:
    pcm = np.full(samples, 1000, dtype=np.int16)
    out = frames(pcm, codec)
    assert len(out) == count
    assert all(len(f) == FRAME_SAMPLES for f in out)
    if count:
        joined = b"".join(out)
        assert joined[:samples] == g711.encode(codec, pcm)
        assert joined[samples:] == g711.SILENCE[codec] * (count * FRAME_SAMPLES - samples)


@pytest.mark.parametrize(("codec", "byte"), [("PCMU", b"\xff"), ("PCMA", b"\xd5")])
def test_silence_frame(codec: str, byte: bytes) -> None:
    assert silence_frame(codec) == byte * 160


def test_silence_frame_unknown_codec() -> None:
    with pytest.raises(ValueError):
        silence_frame("G722")


@pytest.fixture
def prompt_dir(tmp_path: Path) -> Path:
    (tmp_path / "digits").mkdir()
    write_wav(tmp_path / "welcome.wav", sine(500, 1.0, 16000)[:, None], 16000, 2)
    write_wav(tmp_path / "digits" / "5.wav", sine(700, 0.25, 8000)[:, None], 8000, 2)
    (tmp_path / "broken.wav").write_bytes(b"garbage")
    return tmp_path


def test_prompt_cache_shares_tuples(prompt_dir: Path) -> None:
    cache = PromptCache(prompt_dir)
    first = cache.frames("welcome", "PCMU")
    assert cache.frames("welcome", "PCMU") is first
    assert len(first) == 50
    pcma = cache.frames("welcome", "PCMA")
    assert pcma is not first and len(pcma) == 50
    assert cache.frames("welcome", "PCMA") is pcma


def test_prompt_cache_decodes_once_per_name(
    prompt_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import media.audio

    calls: list[Path] = []
    real = media.audio.load_wav

    def counting(path: Path) -> npt.NDArray[np.int16]:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(media.audio, "load_wav", counting)
    cache = PromptCache(prompt_dir)
    cache.preload(["welcome", "digits/5"])
    cache.frames("welcome", "PCMU")
    cache.duration("welcome")
    assert [p.name for p in calls] == ["welcome.wav", "5.wav"]


def test_prompt_cache_subdirectory_and_duration(prompt_dir: Path) -> None:
    cache = PromptCache(prompt_dir)
    assert cache.exists("digits/5") and cache.exists("welcome")
    assert not cache.exists("digits/6") and not cache.exists("../welcome")
    assert cache.duration("digits/5") == pytest.approx(0.25)
    assert cache.duration("welcome") == pytest.approx(1.0, abs=1 / 8000)
    assert len(cache.frames("digits/5", "PCMA")) == 13  # 2000 samples -> 12.5 frames


def test_prompt_cache_missing_file(prompt_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.wav"):
        PromptCache(prompt_dir).frames("nothing", "PCMU")


def test_prompt_cache_broken_file(prompt_dir: Path) -> None:
    with pytest.raises(ValueError, match="broken.wav"):
        PromptCache(prompt_dir).frames("broken", "PCMU")


@pytest.mark.parametrize(
    "name", ["../etc/passwd", "/etc/passwd", "digits/../../x", "", "a//b", "a\\b"]
)
def test_prompt_names_cannot_escape_the_directory(prompt_dir: Path, name: str) -> None:
    with pytest.raises(ValueError):
        PromptCache(prompt_dir).frames(name, "PCMU")


def test_prompt_cache_unknown_codec(prompt_dir: Path) -> None:
    with pytest.raises(ValueError):
        PromptCache(prompt_dir).frames("welcome", "G729")


def test_cached_pcm_is_read_only(prompt_dir: Path) -> None:
    pcm = PromptCache(prompt_dir).pcm("welcome")
    with pytest.raises(ValueError):
        pcm[0] = 1


def test_project_prompts_load() -> None:
    if not (PROMPTS / "welcome.wav").is_file():
        pytest.skip("project prompts not present")
    cache = PromptCache(PROMPTS)
    names = ["welcome", "menu", "digits/0", "music_on_hold"]
    cache.preload(names)
    for name in names:
        assert cache.duration(name) > 0.1
        assert len(cache.frames(name, "PCMU")) == -(-len(cache.pcm(name)) // 160)


def write_extensible_wav(path: Path, samples: npt.NDArray[np.float64], rate: int) -> Path:
    """24-bit PCM in a WAVE_FORMAT_EXTENSIBLE file, as sox writes 24-bit and multichannel audio."""
    frames_, channels = samples.shape
    ints = np.clip(np.round(samples * 2**23), -(2**23), 2**23 - 1).astype("<i4")
    data = ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    block_align = 3 * channels
    guid_pcm = bytes.fromhex("0100000000001000800000aa00389b71")
    fmt = (
        struct.pack(
            "<HHIIHHHHI", 0xFFFE, channels, rate, rate * block_align, block_align, 24, 22, 24, 3
        )
        + guid_pcm
    )
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"LIST" + struct.pack("<I", 5) + b"INFOx\x00"  # odd-sized chunk with its pad byte
    chunks += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    return path


def test_load_extensible_24_bit_stereo(tmp_path: Path) -> None:
    stereo = np.stack([sine(440, 1.0, 16000, 0.5), sine(440, 1.0, 16000, 0.3)], axis=1)
    pcm = load_wav(write_extensible_wav(tmp_path / "ext.wav", stereo, 16000))
    plain = load_wav(write_wav(tmp_path / "plain.wav", stereo, 16000, 3))
    assert len(pcm) == 8000
    assert (pcm == plain).all()


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b[:60],  # ends after the fmt chunk
        lambda b: b[:70],  # no data chunk
        lambda b: b[:44] + b"\x03\x00" + b[46:],  # IEEE float subformat
        lambda b: b[:32] + b"\x05\x00" + b[34:],  # block align not a multiple of channels
    ],
)
def test_broken_extensible_files(tmp_path: Path, mangle: Callable[[bytes], bytes]) -> None:
    stereo = np.stack([sine(440, 0.1, 8000)] * 2, axis=1)
    good = write_extensible_wav(tmp_path / "ext.wav", stereo, 8000).read_bytes()
    path = tmp_path / "bad_ext.wav"
    path.write_bytes(mangle(good))
    with pytest.raises(ValueError, match="bad_ext.wav"):
        load_wav(path)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=300)
@given(
    st.sampled_from([b"", b"RIFF\x00\x00\x00\x00WAVE", b"RIFF\xff\xff\xff\x7fWAVEfmt "]),
    st.binary(max_size=120),
)
def test_load_arbitrary_bytes_gives_pcm_or_value_error(
    tmp_path: Path, prefix: bytes, rest: bytes
) -> None:
    path = tmp_path / "fuzz.wav"
    path.write_bytes(prefix + rest)
    try:
        pcm = load_wav(path)
    except ValueError:
        return
    assert pcm.dtype == np.int16


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=300)
@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 9),
    st.integers(0, 200000),
    st.integers(0, 40),
    st.integers(0, 64),
    st.binary(max_size=64),
)
def test_load_fuzzed_headers(
    tmp_path: Path, tag: int, channels: int, rate: int, align: int, bits: int, body: bytes
) -> None:
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    if tag == 0xFFFE:
        fmt += struct.pack("<HHI", 22, bits, 3) + bytes.fromhex("0100000000001000800000aa00389b71")
    chunks = (
        b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(body)) + body
    )
    path = tmp_path / "fuzz.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    try:
        pcm = load_wav(path)
    except ValueError:
        return
    assert pcm.dtype == np.int16

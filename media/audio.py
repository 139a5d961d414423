"""Prompt audio: WAV files decoded, resampled to 8 kHz and G.711-encoded once.

Every call playing a prompt shares the same tuple of ready 160-byte payloads
(20 ms at 8 kHz, RFC 3551 §4.5 / §4.5.14), so playing is indexing a tuple.
"""

from __future__ import annotations

import struct
import wave
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soxr

from . import g711

__all__ = ["FRAME_SAMPLES", "SAMPLE_RATE", "PromptCache", "frames", "load_wav", "silence_frame"]

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz

_MAX_RATE = 768_000

_SILENCE_FRAMES = {codec: byte * FRAME_SAMPLES for codec, byte in g711.SILENCE.items()}


def silence_frame(codec: str) -> bytes:
    """160 bytes of G.711 silence for 'PCMU' or 'PCMA'."""
    try:
        return _SILENCE_FRAMES[codec]
    except KeyError:
        raise ValueError(f"unsupported G.711 codec {codec!r}") from None


def load_wav(path: Path) -> npt.NDArray[np.int16]:
    """Read a PCM WAV file (8/16/24/32-bit, any channels, any rate) as int16 mono 8 kHz.

    Channels are averaged; other rates are resampled with soxr (quality 'HQ').
    Raises ValueError naming the file when it cannot be read or is not PCM.
    """
    try:
        channels, width, rate, raw = _read_wave(path)
    except (OSError, EOFError, wave.Error, struct.error) as exc:
        raise ValueError(f"{path}: cannot read WAV file: {exc}") from None
    if channels < 1 or rate < 1:
        raise ValueError(f"{path}: invalid WAV header ({channels} channels, {rate} Hz)")
    try:
        samples = _to_float(raw, width)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    usable = len(samples) - len(samples) % channels
    mono = samples[:usable].reshape(-1, channels).mean(axis=1)
    if rate > _MAX_RATE:
        raise ValueError(f"{path}: unsupported sample rate {rate} Hz")
    if rate != SAMPLE_RATE and len(mono):
        try:
            mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"{path}: cannot resample from {rate} Hz: {exc}") from None
    return np.clip(np.round(mono * 32768.0), -32768, 32767).astype(np.int16)


def _read_wave(path: Path) -> tuple[int, int, int, bytes]:
    """(channels, bytes per sample, rate, frames) via the stdlib reader.

    Python 3.11's `wave` refuses WAVE_FORMAT_EXTENSIBLE, which sox writes for
    24-bit and multichannel files; those are read by `_read_extensible`.
    """
    try:
        with wave.open(str(path), "rb") as wav:
            return (
                wav.getnchannels(),
                wav.getsampwidth(),
                wav.getframerate(),
                wav.readframes(wav.getnframes()),
            )
    except wave.Error as exc:
        if "65534" not in str(exc):
            raise
    return _read_extensible(Path(path).read_bytes())


_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_KSDATAFORMAT_SUBTYPE_PCM = 1


def _read_extensible(data: bytes) -> tuple[int, int, int, bytes]:
    """Minimal RIFF walk for an extensible-format PCM file (fmt and data chunks)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise wave.Error("not a RIFF/WAVE file")
    fmt: bytes | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = data[pos + 8 : pos + 8 + size]
        if chunk_id == b"fmt ":
            fmt = body
        elif chunk_id == b"data":
            if fmt is None:
                raise wave.Error("data chunk before fmt chunk")
            return _extensible_format(fmt) + (body,)
        pos += 8 + size + (size & 1)
    raise wave.Error("no data chunk")


def _extensible_format(fmt: bytes) -> tuple[int, int, int]:
    tag, channels, rate, _, block_align, _ = struct.unpack_from("<HHIIHH", fmt)
    if tag != _WAVE_FORMAT_EXTENSIBLE or len(fmt) < 40:
        raise wave.Error(f"unknown format: {tag}")
    subformat = int.from_bytes(fmt[24:26], "little")
    if subformat != _KSDATAFORMAT_SUBTYPE_PCM:
        raise wave.Error(f"extensible WAV with non-PCM subformat {subformat}")
    if channels < 1 or block_align % channels:
        raise wave.Error(f"bad block alignment {block_align} for {channels} channels")
    return channels, block_align // channels, rate


def _to_float(raw: bytes, width: int) -> npt.NDArray[np.float64]:
    """Little-endian PCM of 1-4 bytes per sample to floats in [-1, 1)."""
    if width == 1:
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    if width == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    if width == 3:
        usable = len(raw) - len(raw) % 3
        triplets = np.frombuffer(raw[:usable], dtype=np.uint8).reshape(-1, 3)
        widened = np.zeros((len(triplets), 4), dtype=np.uint8)
        widened[:, 1:] = triplets
        return widened.view("<i4").ravel().astype(np.float64) / 2.0**31
    if width == 4:
        return np.frombuffer(raw, dtype="<i4").astype(np.float64) / 2.0**31
    raise ValueError(f"unsupported sample width of {width} bytes")


def frames(pcm: npt.NDArray[np.int16], codec: str) -> tuple[bytes, ...]:
    """Encode int16 8 kHz PCM into 160-byte payloads; the last is padded with silence."""
    payload = g711.encode(codec, pcm)
    remainder = len(payload) % FRAME_SAMPLES
    if remainder:
        payload += g711.SILENCE[codec] * (FRAME_SAMPLES - remainder)
    return tuple(payload[i : i + FRAME_SAMPLES] for i in range(0, len(payload), FRAME_SAMPLES))


class PromptCache:
    """Prompts by name ('welcome', 'digits/5' -> prompt_dir/'digits/5.wav'), loaded once.

    PCM is kept per name and encoded payloads per (name, codec); repeated calls
    return the very same tuple object, shared by every call playing it.
    """

    def __init__(self, prompt_dir: Path) -> None:
        self.prompt_dir = Path(prompt_dir)
        self._pcm: dict[str, npt.NDArray[np.int16]] = {}
        self._frames: dict[tuple[str, str], tuple[bytes, ...]] = {}

    def path(self, name: str) -> Path:
        """The WAV file for a prompt name; ValueError for names escaping the prompt directory."""
        parts = name.split("/")
        if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"invalid prompt name {name!r}")
        if "\\" in name or "\x00" in name:
            raise ValueError(f"invalid prompt name {name!r}")
        return self.prompt_dir.joinpath(*parts[:-1], parts[-1] + ".wav")

    def exists(self, name: str) -> bool:
        """True when the prompt is cached or its file exists."""
        if name in self._pcm:
            return True
        try:
            return self.path(name).is_file()
        except ValueError:
            return False

    def pcm(self, name: str) -> npt.NDArray[np.int16]:
        """The prompt as int16 mono 8 kHz (read-only array), loaded on first use."""
        cached = self._pcm.get(name)
        if cached is None:
            path = self.path(name)
            if not path.is_file():
                raise FileNotFoundError(f"prompt {name!r} not found: {path}")
            cached = load_wav(path)
            cached.flags.writeable = False
            self._pcm[name] = cached
        return cached

    def frames(self, name: str, codec: str) -> tuple[bytes, ...]:
        """Encoded payloads of a prompt, computed once per (name, codec)."""
        key = (name, codec)
        cached = self._frames.get(key)
        if cached is None:
            cached = frames(self.pcm(name), codec)
            self._frames[key] = cached
        return cached

    def duration(self, name: str) -> float:
        """Length of the prompt in seconds."""
        return len(self.pcm(name)) / SAMPLE_RATE

    def preload(self, names: Iterable[str], codecs: Iterable[str] = ("PCMU", "PCMA")) -> None:
        """Load and encode prompts ahead of the first call (e.g. at startup)."""
        wanted = tuple(codecs)
        for name in names:
            for codec in wanted:
                self.frames(name, codec)

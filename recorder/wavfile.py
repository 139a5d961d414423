"""Minimal RIFF/WAVE (PCM, 16-bit) writer and reader.

Only what the recorder needs: a canonical 44-byte header followed by interleaved
little-endian int16 frames. The streaming writer lets a long call be turned into a
WAV without holding the whole call in memory.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

__all__ = ["read_wav", "stereo_frames", "write_stereo_wav", "write_stereo_wav_chunks"]

Int16Array = npt.NDArray[np.int16]

_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
_MAX_DATA_BYTES = 0xFFFFFFFF - 36  # RIFF sizes are 32-bit


def wav_header(frames: int, channels: int, rate: int) -> bytes:
    """The 44-byte header of a PCM16 WAV holding `frames` frames."""
    block = 2 * channels
    data = frames * block
    if data > _MAX_DATA_BYTES:
        raise ValueError(f"{frames} frames do not fit in a RIFF file")
    return _HEADER.pack(
        b"RIFF",
        36 + data,
        b"WAVE",
        b"fmt ",
        16,
        1,
        channels,
        rate,
        rate * block,
        block,
        16,
        b"data",
        data,
    )


def _interleave(left: Int16Array, right: Int16Array, frames: int) -> bytes:
    out = np.zeros((frames, 2), dtype="<i2")
    n_left = min(len(left), frames)
    n_right = min(len(right), frames)
    out[:n_left, 0] = left[:n_left]
    out[:n_right, 1] = right[:n_right]
    return out.tobytes()


def write_stereo_wav_chunks(
    out: BinaryIO, frames: int, chunks: Iterable[tuple[Int16Array, Int16Array]], rate: int
) -> None:
    """Write a stereo WAV of exactly `frames` frames to an open binary file.

    `chunks` yields (left, right) int16 blocks; a block's shorter side is padded with
    zeros, and if the blocks run out before `frames` the rest is silence, so the header
    always matches the data.
    """
    out.write(wav_header(frames, 2, rate))
    written = 0
    for left, right in chunks:
        n = min(max(len(left), len(right)), frames - written)
        if n <= 0:
            break
        out.write(_interleave(left, right, n))
        written += n
    silence = np.zeros((min(frames - written, rate * 60), 2), dtype="<i2").tobytes()
    while written < frames:
        n = min(frames - written, len(silence) // 4)
        out.write(silence[: n * 4])
        written += n


def stereo_frames(
    left: Int16Array, right: Int16Array, block: int = 8000 * 30
) -> Iterator[tuple[Int16Array, Int16Array]]:
    """Split two in-memory channels into aligned blocks for `write_stereo_wav_chunks`."""
    total = max(len(left), len(right))
    for start in range(0, total, block):
        yield left[start : start + block], right[start : start + block]


def write_stereo_wav(
    path: Path, left: npt.ArrayLike, right: npt.ArrayLike, rate: int = 8000
) -> None:
    """Write two int16 channels as a stereo WAV; the shorter one is padded with zeros."""
    left_arr = np.asarray(left, dtype=np.int16).reshape(-1)
    right_arr = np.asarray(right, dtype=np.int16).reshape(-1)
    frames = max(len(left_arr), len(right_arr))
    with open(path, "wb") as out:
        write_stereo_wav_chunks(out, frames, stereo_frames(left_arr, right_arr), rate)
        out.flush()
        os.fsync(out.fileno())


def _chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    pos = 12
    while pos + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, pos)
        body = data[pos + 8 : pos + 8 + size]
        if len(body) < size:
            raise ValueError(f"truncated {chunk_id!r} chunk")
        yield chunk_id, body
        pos += 8 + size + (size & 1)


def read_wav(path: Path) -> tuple[int, Int16Array]:
    """Read a PCM16 WAV: (rate, int16 array of shape (frames, channels)); ValueError if bad."""
    data = Path(path).read_bytes()
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    fmt: tuple[int, ...] | None = None
    for chunk_id, body in _chunks(data):
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise ValueError(f"{path}: short fmt chunk")
            fmt = struct.unpack_from("<HHIIHH", body)
        elif chunk_id == b"data":
            if fmt is None:
                raise ValueError(f"{path}: data chunk before fmt chunk")
            audio_format, channels, rate, _, _, bits = fmt
            if audio_format != 1 or bits != 16 or channels < 1 or rate < 1:
                raise ValueError(f"{path}: only PCM 16-bit is supported")
            if len(body) % (2 * channels):
                raise ValueError(f"{path}: data is not a whole number of frames")
            samples = np.frombuffer(body, dtype="<i2").astype(np.int16)
            return rate, samples.reshape(-1, channels)
    raise ValueError(f"{path}: no data chunk")

"""Audio helpers for recording tests: pcap payloads as PCM, and finding one signal in another."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt

from media import g711

Float = npt.NDArray[np.float64]


def pcap_audio(path: Path, pt: int = 0, codec: str = "PCMU") -> npt.NDArray[np.int16]:
    """The audio an RTP pcap carries, placed by RTP timestamp (gaps are zeros)."""
    data = path.read_bytes()
    endian = "<" if struct.unpack("<I", data[:4])[0] == 0xA1B2C3D4 else ">"
    off, placed, ts0 = 24, [], None
    while off + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[off + 8:off + 12])[0]
        raw = data[off + 16:off + 16 + incl]
        off += 16 + incl
        rtp = raw[14 + (raw[14] & 0x0F) * 4 + 8:]
        if len(rtp) < 12 or rtp[1] & 0x7F != pt:
            continue
        ts = struct.unpack("!I", rtp[4:8])[0]
        ts0 = ts if ts0 is None else ts0
        placed.append((ts - ts0, g711.decode(codec, rtp[12:])))
    end = max(pos + len(pcm) for pos, pcm in placed)
    out = np.zeros(end, dtype=np.int16)
    for pos, pcm in placed:
        out[pos:pos + len(pcm)] = pcm
    return out


def best_match(haystack: npt.NDArray[np.int16], needle: npt.NDArray[np.int16]) -> tuple[int, float]:
    """(offset, normalised cross-correlation) of the best place of `needle` in `haystack`;
    1.0 means the same samples up to a gain."""
    hay = haystack.astype(np.float64)
    ndl = needle.astype(np.float64)
    ndl -= ndl.mean()
    n = len(ndl)
    if len(hay) < n or not n:
        return 0, 0.0
    size = 1 << int(len(hay) + n).bit_length()
    corr = np.fft.irfft(np.fft.rfft(hay, size) * np.conj(np.fft.rfft(ndl, size)), size)
    corr = corr[: len(hay) - n + 1]
    csum = np.concatenate([[0.0], np.cumsum(hay)])
    csum2 = np.concatenate([[0.0], np.cumsum(hay * hay)])
    window_sum = csum[n:] - csum[:-n]
    window_var = csum2[n:] - csum2[:-n] - window_sum * window_sum / n
    denom = np.sqrt(np.maximum(window_var, 1e-9)) * np.sqrt(max(float(ndl @ ndl), 1e-9))
    ncc: Float = corr / denom
    best = int(np.argmax(ncc))
    return best, float(ncc[best])

"""Pacing analysis on synthetic captures with known timing."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from switchboard.pacing import PcapError, analyse


def write_pcap(path: Path, packets: list[tuple[float, int, int, int, int, int]], ns: bool = True) -> None:
    """packets: (time, sport, dport, ssrc, seq, ts) as Ethernet/IPv4/UDP/RTP frames."""
    magic = 0xA1B23C4D if ns else 0xA1B2C3D4
    out = [struct.pack("<IHHiIII", magic, 2, 4, 0, 0, 65535, 1)]
    for when, sport, dport, ssrc, seq, ts in packets:
        rtp = struct.pack("!BBHII", 0x80, 0, seq, ts, ssrc) + b"\xff" * 160
        udp = struct.pack("!HHHH", sport, dport, 8 + len(rtp), 0) + rtp
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        sec = int(when)
        frac = round((when - sec) * (1e9 if ns else 1e6))
        out.append(struct.pack("<IIII", sec, frac, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(out))


def stream(start: float, n: int, jitter: dict[int, float] | None = None, sport: int = 20000,
           skip: set[int] | None = None) -> list[tuple[float, int, int, int, int, int]]:
    jitter, skip = jitter or {}, skip or set()
    return [(start + i * 0.02 + jitter.get(i, 0.0), sport, 6000, 0x1234, i, 1000 + 160 * i)
            for i in range(n) if i not in skip]


def test_perfect_stream(tmp_path: Path) -> None:
    write_pcap(tmp_path / "a.pcap", stream(100.0, 50))
    s = analyse(tmp_path / "a.pcap").summary()
    assert s["rtp_packets"] == 50 and s["rtp_streams"] == 1
    assert s["rtp_interarrival_err_p99_ms"] == pytest.approx(0, abs=0.01)
    assert s["rtp_late_frames"] == 0


def test_one_late_frame_is_counted_and_measured(tmp_path: Path) -> None:
    write_pcap(tmp_path / "a.pcap", stream(100.0, 200, jitter={100: 0.025}), ns=False)
    s = analyse(tmp_path / "a.pcap").summary()
    assert s["rtp_late_frames"] == 1
    assert s["rtp_interarrival_err_p99_ms"] == pytest.approx(25.0, abs=0.01)
    assert s["rtp_interarrival_err_p50_ms"] == pytest.approx(0.0, abs=0.01)


def test_lateness_is_measured_from_the_earliest_packet(tmp_path: Path) -> None:
    write_pcap(tmp_path / "a.pcap", stream(100.0, 20, jitter={0: -0.030}))
    assert analyse(tmp_path / "a.pcap").summary()["rtp_late_frames"] == 19


def test_gaps_and_port_filter(tmp_path: Path) -> None:
    write_pcap(tmp_path / "a.pcap", stream(1.0, 30, skip={10}) + stream(1.0, 30, sport=40000))
    s = analyse(tmp_path / "a.pcap", src_ports=(20000, 29999)).summary()
    assert s["rtp_streams"] == 1 and s["rtp_seq_gaps"] == 1 and s["rtp_packets"] == 29


def test_not_a_pcap(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"garbage" * 10)
    with pytest.raises(PcapError):
        analyse(tmp_path / "x")

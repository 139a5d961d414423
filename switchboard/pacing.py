"""RTP pacing measured from a packet capture (what the server really sent, with kernel times).

Reads classic pcap files (microsecond or nanosecond, Ethernet or Linux "cooked"
link types) with `struct`, groups RTP by (source port, destination port, SSRC) and
measures each stream against its own ideal schedule:

- inter-arrival error: |(arrival_i - arrival_{i-1}) - (ts_i - ts_{i-1}) / 8000| for
  consecutive packets — what a receiver's jitter buffer sees;
- lateness: (arrival_i - ideal_i) where ideal_i = arrival_0 + (ts_i - ts_0) / 8000,
  shifted so the stream's earliest packet is on time; a frame later than `late_ms`
  counts as late (a jitter buffer of that depth would have dropped it).

With `edges` (ascending epoch times), each packet is also counted in the window
[edges[i], edges[i+1]) its capture time falls in, so a stepped load run gets pacing
figures per step; a stream's schedule is still measured over the whole stream.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .benchreport import percentile

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
LINKTYPE_RAW = 101


class PcapError(ValueError):
    pass


def read_pcap(path: Path) -> Iterator[tuple[float, bytes]]:
    """(timestamp, IPv4 packet) for each captured frame."""
    with open(path, "rb") as f:
        header = f.read(24)
        if len(header) < 24:
            raise PcapError(f"{path}: not a pcap file")
        for endian in ("<", ">"):
            magic, _, _, _, _, _, linktype = struct.unpack(endian + "IHHiIII", header)
            if magic in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
                break
        else:
            raise PcapError(f"{path}: not a classic pcap file (pcapng is not supported)")
        scale = 1e-9 if magic == PCAP_MAGIC_NS else 1e-6
        offset = {LINKTYPE_ETHERNET: 14, LINKTYPE_LINUX_SLL: 16, LINKTYPE_RAW: 0}.get(linktype)
        if offset is None:
            raise PcapError(f"{path}: unsupported link type {linktype}")
        record = struct.Struct(endian + "IIII")
        while True:
            head = f.read(16)
            if len(head) < 16:
                return
            sec, frac, incl, _ = record.unpack(head)
            data = f.read(incl)
            yield sec + frac * scale, data[offset:]


def rtp_packets(path: Path) -> Iterator[tuple[float, int, int, int, int, int]]:
    """(time, src port, dst port, ssrc, seq, timestamp) of every IPv4/UDP RTP packet."""
    for when, ip in read_pcap(path):
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        udp = ip[ihl:]
        if len(udp) < 8 + 12 or udp[8] & 0xC0 != 0x80:
            continue
        sport, dport = struct.unpack_from("!HH", udp)
        seq, ts, ssrc = struct.unpack_from("!HII", udp, 10)
        yield when, sport, dport, ssrc, seq, ts


@dataclass
class PacingReport:
    streams: int = 0
    packets: int = 0
    late: int = 0
    lost_or_skipped: int = 0
    inter_arrival_ms: list[float] = field(default_factory=list)
    lateness_ms: list[float] = field(default_factory=list)
    windows: list[PacingReport] = field(default_factory=list)

    @staticmethod
    def _pct(values: list[float], p: float) -> float:
        return percentile(values, p) or 0.0

    def summary(self) -> dict[str, float | int]:
        return {
            "rtp_streams": self.streams,
            "rtp_packets": self.packets,
            "rtp_interarrival_err_p50_ms": round(self._pct(self.inter_arrival_ms, 50), 3),
            "rtp_interarrival_err_p99_ms": round(self._pct(self.inter_arrival_ms, 99), 3),
            "rtp_lateness_p50_ms": round(self._pct(self.lateness_ms, 50), 3),
            "rtp_lateness_p99_ms": round(self._pct(self.lateness_ms, 99), 3),
            "rtp_late_frames": self.late,
            "rtp_late_pct": round(100.0 * self.late / self.packets, 4) if self.packets else 0.0,
            "rtp_seq_gaps": self.lost_or_skipped,
        }


def analyse(path: Path, *, late_ms: float = 20.0, clock_rate: int = 8000,
            src_ports: tuple[int, int] | None = None,
            edges: Sequence[float] | None = None) -> PacingReport:
    streams: dict[tuple[int, int, int], list[tuple[float, int, int]]] = {}
    for when, sport, dport, ssrc, seq, ts in rtp_packets(path):
        if src_ports is not None and not src_ports[0] <= sport <= src_ports[1]:
            continue
        streams.setdefault((sport, dport, ssrc), []).append((when, seq, ts))
    report = PacingReport(streams=len(streams))
    edges = list(edges or [])
    report.windows = [PacingReport() for _ in edges[1:]]

    def targets(when: float) -> tuple[PacingReport, ...]:
        i = bisect.bisect_right(edges, when) - 1
        return (report, report.windows[i]) if 0 <= i < len(report.windows) else (report,)

    for packets in streams.values():
        for window in _measure(packets, targets, late_ms / 1000.0, clock_rate):
            if window is not report:
                window.streams += 1
    return report


def _measure(packets: list[tuple[float, int, int]],
             targets: Callable[[float], tuple[PacingReport, ...]], late_s: float,
             rate: int) -> list[PacingReport]:
    """Adds each packet's figures to the reports `targets(capture time)` names; returns
    the reports the stream touched."""
    t0, _, ts0 = packets[0]
    offsets = []
    prev: tuple[float, int, int] | None = None
    for when, seq, ts in packets:
        ideal = ((ts - ts0) & 0xFFFFFFFF) / rate
        offsets.append((when - t0) - ideal)
        if prev is not None:
            into = targets(when)
            if (seq - prev[1]) & 0xFFFF == 1:
                expected = ((ts - prev[2]) & 0xFFFFFFFF) / rate
                error = abs((when - prev[0]) - expected) * 1000.0
                for report in into:
                    report.inter_arrival_ms.append(error)
            else:
                for report in into:
                    report.lost_or_skipped += 1
        prev = (when, seq, ts)
    base = min(offsets)
    touched: dict[int, PacingReport] = {}
    for (when, _, _), off in zip(packets, offsets, strict=True):
        lateness = off - base
        for report in targets(when):
            report.lateness_ms.append(lateness * 1000.0)
            report.late += lateness > late_s
            report.packets += 1
            touched[id(report)] = report
    return list(touched.values())

#!/usr/bin/env python3
"""Build the RTP pcaps the SIPp scenarios replay with ``play_pcap_audio``.

SIPp replays the UDP payloads of a pcap with the capture's own timing, from its
media port to the port in the answerer's SDP; the RTP headers are sent as they are
in the file. SIPp's bundled ``dtmf_2833_N.pcap`` files therefore repeat the same
SSRC, sequence numbers and RTP timestamp on every replay, and two equal digits
in a row look like one retransmitted event (RFC 4733 §2.5.1.3 identifies an event
by its timestamp). The files built here avoid that:

* ``pcap/dtmf_<d>.pcap`` and ``pcap/dtmf_<d>_b.pcap``: one RFC 4733 event per
  file, with an SSRC, timestamp and sequence base derived from the digit and the
  variant, so any two different files differ. Scenarios alternate the ``a`` and
  ``b`` variants so repeated digits are still seen as separate key presses.
* ``pcap/dtmf_seq_<digits>.pcap``: a whole digit string in one stream, with
  increasing sequence numbers and timestamps and a gap between events.
* ``pcap/pcmu_noise_<n>s.pcap``: n seconds of quiet PCMU comfort noise, so the
  server sees caller audio.
* ``pcap/ivr_quick_call.pcap``: the same keys for ``switchboard bench --ivr quick``'s
  short flow (account keys from 0.6 s, the menu key at 2.4 s, 10 s in all).
* ``pcap/ivr_load_call.pcap``: a whole demo-IVR call from the caller's side
  for ``ivr_load.xml``: PCMU comfort noise in one RTP stream, with the
  account keys and the menu choice sent as RFC 4733 events in the same
  stream (same SSRC, audio paused during a key) at the times the scenario
  expects them.

In file names ``#`` is written ``p`` (pound) and ``*`` is written ``s`` (star).

Usage::

    python3 sipp_scenarios/make_pcaps.py                 # rebuild the committed set
    python3 sipp_scenarios/make_pcaps.py seq 98765#      # -> pcap/dtmf_seq_98765p.pcap
    python3 sipp_scenarios/make_pcaps.py noise 30        # -> pcap/pcmu_noise_30s.pcap
    python3 sipp_scenarios/make_pcaps.py call 98765# 2   # -> pcap/ivr_load_call.pcap
    python3 sipp_scenarios/make_pcaps.py dump FILE.pcap  # print the RTP headers
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PCAP_DIR = HERE / "pcap"

DTMF_PT = 101
PCMU_PT = 0
SAMPLE_RATE = 8000
PTIME_MS = 20
SAMPLES_PER_PACKET = SAMPLE_RATE * PTIME_MS // 1000

#: Digit strings the committed scenarios and tests use.
DEFAULT_SEQUENCES = ("4711#", "12345678#", "1122#")
DEFAULT_NOISE_SECONDS = 45
DEFAULT_CALL = ("4711#", "1")
# `switchboard bench --ivr quick`: the keys as early as the short bench flow takes them
QUICK_CALL = {"seconds": 10, "welcome_ms": 600, "readback_extra_ms": 600,
              "readback_ms_per_key": 0, "name": "ivr_quick_call.pcap"}

EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11,
               "A": 12, "B": 13, "C": 14, "D": 15}
FILE_CHARS = {"#": "p", "*": "s"}

# Fixed fake endpoints for the capture headers: SIPp rewrites them on replay.
SRC_IP = bytes((10, 0, 0, 1))
DST_IP = bytes((10, 0, 0, 2))
SRC_PORT = 6000
DST_PORT = 6002


@dataclass(frozen=True)
class Packet:
    """One captured UDP datagram: capture time in seconds and the RTP bytes."""

    time: float
    payload: bytes


def file_token(digits: str) -> str:
    """Digit string as used in file names: ``#`` -> ``p``, ``*`` -> ``s``."""
    return "".join(FILE_CHARS.get(c, c) for c in digits.upper())


def check_digits(digits: str) -> str:
    digits = digits.upper()
    bad = [c for c in digits if c not in EVENT_CODES]
    if not digits or bad:
        raise ValueError(f"not a DTMF digit string: {digits!r}")
    return digits


def rtp_header(pt: int, seq: int, ts: int, ssrc: int, marker: bool = False) -> bytes:
    """RFC 3550 §5.1 fixed header, version 2, no padding, extension or CSRCs."""
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt,
                       seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc & 0xFFFFFFFF)


def dtmf_event(code: int, end: bool, duration: int, volume: int = 10) -> bytes:
    """RFC 4733 §2.3 payload: event, E bit, R=0, volume, duration in samples."""
    return struct.pack("!BBH", code, (0x80 if end else 0) | (volume & 0x3F), duration)


def event_packets(code: int, *, start: float, seq: int, ts: int, ssrc: int,
                  tone_ms: int = 100, pt: int = DTMF_PT) -> list[Packet]:
    """One key press: a start packet (M bit), continuations every 20 ms and the
    final packet, with the E bit, sent three times (RFC 4733 §2.5.1.4), all
    carrying the event's start timestamp ``ts``."""
    steps = max(1, tone_ms // PTIME_MS)
    out: list[Packet] = []
    for i in range(steps):
        duration = (i + 1) * SAMPLES_PER_PACKET
        end = i == steps - 1
        repeats = 3 if end else 1
        for _ in range(repeats):
            t = start + len(out) * PTIME_MS / 1000
            body = dtmf_event(code, end, duration)
            out.append(Packet(t, rtp_header(pt, seq + len(out), ts, ssrc, marker=i == 0) + body))
    return out


def sequence_packets(digits: str, *, ssrc: int, seq: int, ts: int, tone_ms: int = 100,
                     gap_ms: int = 200, pt: int = DTMF_PT) -> list[Packet]:
    """A digit string in one RTP stream: each event starts ``tone_ms + gap_ms``
    after the previous one and its timestamp advances by the same amount."""
    out: list[Packet] = []
    step_ms = tone_ms + gap_ms
    for i, ch in enumerate(check_digits(digits)):
        start = i * step_ms / 1000
        ev_ts = ts + i * step_ms * SAMPLE_RATE // 1000
        out += event_packets(EVENT_CODES[ch], start=start, seq=seq + len(out), ts=ev_ts,
                             ssrc=ssrc, tone_ms=tone_ms, pt=pt)
    return out


def linear_to_ulaw(sample: int) -> int:
    """G.711 µ-law encoding of one 16-bit linear sample."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not magnitude & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def noise_packets(seconds: float, *, ssrc: int = 0x5B0A0001, seq: int = 1000,
                  ts: int = 160_000, level: int = 60, seed: int = 8000) -> list[Packet]:
    """Quiet PCMU comfort noise (about -55 dBFS), 20 ms per packet."""
    rng = random.Random(seed)
    out: list[Packet] = []
    for i in range(int(seconds * 1000 // PTIME_MS)):
        body = bytes(linear_to_ulaw(int(rng.gauss(0, level))) for _ in range(SAMPLES_PER_PACKET))
        hdr = rtp_header(PCMU_PT, seq + i, ts + i * SAMPLES_PER_PACKET, ssrc, marker=i == 0)
        out.append(Packet(i * PTIME_MS / 1000, hdr + body))
    return out


def call_packets(account: str, menu: str, *, seconds: float = 30.0, welcome_ms: int = 2500,
                 key_step_ms: int = 300, tone_ms: int = 100, readback_ms_per_key: int = 650,
                 readback_extra_ms: int = 1500, ssrc: int = 0x5BCA0001, seq: int = 2000,
                 ts: int = 80_000, seed: int = 4711) -> list[Packet]:
    """Caller side of a demo-IVR call: comfort noise every 20 ms, the account
    keys from ``welcome_ms`` on, one every ``key_step_ms``, and the menu key
    after the read-back (``readback_extra_ms`` + ``readback_ms_per_key`` per
    account key). A key replaces the audio for its duration, as phones do, and
    carries the RTP timestamp of the audio it interrupts (RFC 4733 §2.5.1.1)."""
    account, menu = check_digits(account), check_digits(menu)
    frame_ms = PTIME_MS
    key_at: dict[int, str] = {}
    for i, ch in enumerate(account):
        key_at[(welcome_ms + i * key_step_ms) // frame_ms] = ch
    menu_ms = (welcome_ms + (len(account) - 1) * key_step_ms
               + readback_extra_ms + readback_ms_per_key * len(account))
    for i, ch in enumerate(menu):
        key_at[(menu_ms + i * key_step_ms) // frame_ms] = ch
    noise = noise_packets(seconds, ssrc=ssrc, seed=seed)
    out: list[Packet] = []
    frame, n_frames = 0, len(noise)
    while frame < n_frames:
        t = frame * frame_ms / 1000
        frame_ts = ts + frame * SAMPLES_PER_PACKET
        if frame in key_at:
            ev = event_packets(EVENT_CODES[key_at[frame]], start=t, seq=seq + len(out),
                               ts=frame_ts, ssrc=ssrc, tone_ms=tone_ms)
            out += ev
            frame += len(ev)
            continue
        body = noise[frame].payload[12:]
        out.append(Packet(t, rtp_header(PCMU_PT, seq + len(out), frame_ts, ssrc,
                                        marker=frame == 0) + body))
        frame += 1
    return out


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(payload: bytes, ident: int) -> bytes:
    """Ethernet II / IPv4 / UDP frame around ``payload`` (UDP checksum 0: optional in IPv4)."""
    udp = struct.pack("!HHHH", SRC_PORT, DST_PORT, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0xB8, 20 + len(udp), ident & 0xFFFF, 0x4000,
                     64, 17, 0, SRC_IP, DST_IP)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    eth = bytes.fromhex("020000000002" "020000000001") + b"\x08\x00"
    return eth + ip + udp


def write_pcap(path: Path, packets: Iterable[Packet], epoch: int = 1_700_000_000) -> None:
    """Classic libpcap file, microsecond timestamps, link type 1 (Ethernet)."""
    chunks = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for n, pkt in enumerate(packets):
        data = frame(pkt.payload, n)
        usec = round(pkt.time * 1_000_000)
        chunks.append(struct.pack("<IIII", epoch + usec // 1_000_000, usec % 1_000_000,
                                  len(data), len(data)))
        chunks.append(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(chunks))


def read_pcap(path: Path) -> Iterator[Packet]:
    """UDP payloads of an Ethernet/IPv4 libpcap file (enough for these captures)."""
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic == 0xA1B2C3D4 else ">"
    off, first = 24, None
    while off + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        raw = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ihl = (raw[14] & 0x0F) * 4
        t = sec + usec / 1_000_000
        first = t if first is None else first
        yield Packet(t - first, raw[14 + ihl + 8:])


def digit_file_params(ch: str, variant: str) -> tuple[int, int, int]:
    """SSRC, first sequence number and timestamp of a one-digit file.

    Derived from the event code and the variant so no two files share them,
    and far from the ranges used by sequence files."""
    code = EVENT_CODES[ch]
    v = 0 if variant == "a" else 1
    ssrc = 0x5B0D0000 | (v << 8) | code
    return ssrc, 10_000 + 1000 * code + 500 * v, 0x40000000 + (2 * code + v) * 0x00100000


def build_digit(ch: str, variant: str = "a") -> Path:
    ch = check_digits(ch)
    suffix = "" if variant == "a" else "_b"
    ssrc, seq, ts = digit_file_params(ch, variant)
    path = PCAP_DIR / f"dtmf_{file_token(ch)}{suffix}.pcap"
    write_pcap(path, event_packets(EVENT_CODES[ch], start=0.0, seq=seq, ts=ts, ssrc=ssrc))
    return path


def build_sequence(digits: str, tone_ms: int = 100, gap_ms: int = 200) -> Path:
    digits = check_digits(digits)
    # a per-string SSRC and timestamp base (stable across runs, unlike hash())
    h = sum((i + 1) * EVENT_CODES[c] for i, c in enumerate(digits)) + len(digits)
    path = PCAP_DIR / f"dtmf_seq_{file_token(digits)}.pcap"
    write_pcap(path, sequence_packets(digits, ssrc=0x5B5E0000 | (h & 0xFFFF), seq=1 + h,
                                      ts=0x10000000 + h * 0x10000, tone_ms=tone_ms,
                                      gap_ms=gap_ms))
    return path


def build_noise(seconds: int) -> Path:
    path = PCAP_DIR / f"pcmu_noise_{seconds}s.pcap"
    write_pcap(path, noise_packets(seconds))
    return path


def build_call(account: str, menu: str, seconds: int = 30,
               name: str = "ivr_load_call.pcap", **timing: int) -> Path:
    path = PCAP_DIR / name
    write_pcap(path, call_packets(account, menu, seconds=seconds, **timing))
    return path


def build_all() -> list[Path]:
    paths = [build_digit(ch, v) for ch in "0123456789*#" for v in ("a", "b")]
    paths += [build_sequence(s) for s in DEFAULT_SEQUENCES]
    paths.append(build_noise(DEFAULT_NOISE_SECONDS))
    paths.append(build_call(*DEFAULT_CALL))
    paths.append(build_call(*DEFAULT_CALL, **QUICK_CALL))  # type: ignore[arg-type]
    return paths


def dump(path: Path) -> None:
    for pkt in read_pcap(path):
        b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", pkt.payload[:12])
        pt, body = b1 & 0x7F, pkt.payload[12:]
        extra = ""
        if pt == DTMF_PT and len(body) >= 4:
            code, flags, duration = struct.unpack("!BBH", body[:4])
            extra = f" event={code} end={flags >> 7} duration={duration}"
        print(f"{pkt.time:8.3f} pt={pt} m={b1 >> 7} seq={seq} ts={ts} ssrc={ssrc:08x}"
              f" len={len(body)}{extra}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd")
    p_seq = sub.add_parser("seq", help="build pcap/dtmf_seq_<digits>.pcap")
    p_seq.add_argument("digits", nargs="+")
    p_seq.add_argument("--tone-ms", type=int, default=100)
    p_seq.add_argument("--gap-ms", type=int, default=200)
    p_noise = sub.add_parser("noise", help="build pcap/pcmu_noise_<n>s.pcap")
    p_noise.add_argument("seconds", type=int)
    p_call = sub.add_parser("call", help="build pcap/ivr_load_call.pcap (whole call)")
    p_call.add_argument("account")
    p_call.add_argument("menu")
    p_call.add_argument("--seconds", type=int, default=30)
    p_call.add_argument("--name", default="ivr_load_call.pcap")
    p_dump = sub.add_parser("dump", help="print the RTP headers of a pcap")
    p_dump.add_argument("pcap", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "dump":
        dump(args.pcap)
        return 0
    if args.cmd == "seq":
        paths = [build_sequence(d, args.tone_ms, args.gap_ms) for d in args.digits]
    elif args.cmd == "call":
        paths = [build_call(args.account, args.menu, args.seconds, args.name)]
    elif args.cmd == "noise":
        paths = [build_noise(args.seconds)]
    else:
        paths = build_all()
    for p in paths:
        print(p.relative_to(Path.cwd()) if p.is_relative_to(Path.cwd()) else p)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""DTMF in its three transports: RFC 4733 events, in-band tones, SIP INFO bodies.

Everything here is sans-IO: the receiver is fed payloads with the arrival time
`now` passed in, the tone detector is fed PCM.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import numpy.typing as npt

__all__ = [
    "EVENT_DIGITS",
    "DtmfInfoError",
    "GoertzelDetector",
    "Rfc4733Receiver",
    "dtmf_tone",
    "parse_info",
]

EVENT_DIGITS = "0123456789*#ABCD"

# ITU-T Q.23 frequency pairs.
ROW_FREQUENCIES = (697.0, 770.0, 852.0, 941.0)
COLUMN_FREQUENCIES = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")


# --------------------------------------------------------------------------- RFC 4733


class Rfc4733Receiver:
    """RFC 4733 §2.5 receiver. Emits each key press once.

    An event is identified by (SSRC, RTP timestamp, event code): all packets of
    one event share the timestamp of its start (RFC 4733 §2.5.1.2), including
    the retransmitted end packets (§2.5.1.4). The same identity seen again more
    than `same_event_window` seconds after its last packet is a new key press:
    replayed captures (SIPp's dtmf_2833_N.pcap) reuse timestamps and SSRC.
    A few recent identities are remembered so that a late end packet of the
    previous digit does not sound a second time; the table is bounded.
    """

    same_event_window = 1.0
    _MAX_TRACKED = 8

    def __init__(self) -> None:
        self.malformed = 0
        self._last_seen: OrderedDict[tuple[int, int, int], float] = OrderedDict()

    def feed(self, payload: bytes, timestamp: int, ssrc: int, now: float) -> str | None:
        """Process one telephone-event payload (RFC 4733 §2.3); the digit on a new event."""
        if len(payload) < 4:
            self.malformed += 1
            return None
        event = payload[0]
        if event > 15:
            return None
        key = (ssrc, timestamp, event)
        last = self._last_seen.get(key)
        self._last_seen[key] = now
        self._last_seen.move_to_end(key)
        if last is not None and now - last <= self.same_event_window:
            return None
        if len(self._last_seen) > self._MAX_TRACKED:
            self._last_seen.popitem(last=False)
        return EVENT_DIGITS[event]


# --------------------------------------------------------------------------- in-band


def dtmf_tone(
    digit: str, duration_s: float, sample_rate: int = 8000, amplitude: float = 0.3
) -> npt.NDArray[np.int16]:
    """The Q.23 tone pair for `digit`, each tone at `amplitude` of full scale, as int16."""
    row, col = _digit_frequencies(digit)
    t = np.arange(int(round(duration_s * sample_rate))) / sample_rate
    tone = amplitude * (np.sin(2 * np.pi * row * t) + np.sin(2 * np.pi * col * t))
    return np.clip(np.round(tone * 32767), -32768, 32767).astype(np.int16)


def _digit_frequencies(digit: str) -> tuple[float, float]:
    for r, keys in enumerate(_KEYPAD):
        c = keys.find(digit) if len(digit) == 1 else -1
        if c >= 0:
            return ROW_FREQUENCIES[r], COLUMN_FREQUENCIES[c]
    raise ValueError(f"not a DTMF digit: {digit!r}")


class GoertzelDetector:
    """In-band DTMF (ITU-T Q.23/Q.24) on 8 kHz PCM, for calls without telephone-event.

    The signal is cut in blocks of 13 ms (104 samples at 8 kHz). For each block
    the power at the eight Q.23 frequencies is computed with exact-frequency
    single-bin DFTs (what the Goertzel recurrence computes), for all complete
    blocks of a chunk at once with one matrix product. A block is a hit for a
    digit when:

    - the strongest row and column tones are each above an absolute level,
    - each is at least 6 dB above the other tones of its group,
    - the twist is within +4 dB (column louder) / -8 dB (row louder),
    - both tones are within 2.5 % of nominal (compared against bins at +-5 %),
    - the two tones hold most (70 %) of the block energy, which rejects speech,
      music and noise,
    - the two halves of the block carry similar energy, so a block only partly
      covered by a tone is not a hit; this is what keeps 20 ms bursts out.

    A digit is reported once after two consecutive hits (26 ms of steady tone,
    always met by a 40 ms tone whatever its alignment) and re-armed after three
    blocks without it (a 40 ms gap always gives three).
    """

    block_seconds = 0.013
    max_frequency_deviation = 0.025  # Q.24: accept +-1.5 %, reject beyond +-3.5 %
    min_tone_amplitude = 250.0  # per tone, int16 scale; about -42 dBFS
    min_dominance = 4.0  # 6 dB over the other tones of the group
    max_normal_twist = 10 ** (4 / 10)  # column over row, power ratio
    max_reverse_twist = 10 ** (8 / 10)  # row over column, power ratio
    min_tone_share = 0.7
    min_half_balance = 0.6
    hits_to_report = 2
    misses_to_rearm = 3

    def __init__(self, sample_rate: int = 8000) -> None:
        if sample_rate < 4000:
            raise ValueError(f"sample rate too low for DTMF: {sample_rate}")
        self.sample_rate = sample_rate
        self.block = int(round(sample_rate * self.block_seconds)) & ~1
        n = np.arange(self.block)
        nominal = np.array(ROW_FREQUENCIES + COLUMN_FREQUENCIES)
        offset = 2 * self.max_frequency_deviation
        freqs = np.concatenate([nominal, nominal * (1 - offset), nominal * (1 + offset)])
        phase = 2 * np.pi * np.outer(n, freqs) / sample_rate
        self._basis = np.concatenate([np.cos(phase), np.sin(phase)], axis=1)
        # |X|^2 of a tone of amplitude A over N samples is (A N / 2)^2.
        self._min_power = (self.min_tone_amplitude * self.block / 2) ** 2
        # Two tones at the minimum amplitude carry N * A^2 / 2 each.
        self._min_energy = self.block * self.min_tone_amplitude**2
        self._remainder = np.zeros(0, dtype=np.float64)
        self._candidate: str | None = None
        self._streak = 0
        self._current: str | None = None
        self._misses = 0

    def feed(self, pcm: npt.ArrayLike) -> list[str]:
        """Feed int16 samples of any length; returns the digits completed, in order."""
        chunk = np.asarray(pcm).ravel()
        samples = np.concatenate((self._remainder, chunk)) if len(self._remainder) else chunk
        count = len(samples) // self.block
        self._remainder = samples[count * self.block :].astype(np.float64)
        if count == 0:
            return []
        blocks = samples[: count * self.block].reshape(count, self.block).astype(np.float64)
        return self._run_state_machine(self._classify(blocks))

    def reset(self) -> None:
        """Forget any partial block and tone state (e.g. after a re-INVITE)."""
        self._remainder = np.zeros(0, dtype=np.float64)
        self._candidate = None
        self._streak = 0
        self._current = None
        self._misses = 0

    def _classify(self, blocks: npt.NDArray[np.float64]) -> list[str | None]:
        """Per block: the digit it carries, or None.

        Half-block energies come from one vectorised call; blocks too quiet to
        hold two tones (most of a call) stop there. The DFT bins of the others
        come from one matrix product, and the decision runs on Python floats,
        which is cheaper than a dozen numpy calls on arrays of a few elements.
        """
        count = len(blocks)
        halves = blocks.reshape(count, 2, self.block // 2)
        half_energy = np.einsum("ijk,ijk->ij", halves, halves).tolist()
        hits: list[str | None] = [None] * count
        loud = [i for i, (a, b) in enumerate(half_energy) if a + b >= self._min_energy]
        if not loud:
            return hits
        projections = blocks[loud] @ self._basis
        squared = projections * projections
        powers = (squared[:, :24] + squared[:, 24:]).tolist()
        for i, power in zip(loud, powers, strict=True):
            hits[i] = self._decide(power, half_energy[i][0], half_energy[i][1])
        return hits

    def _decide(self, power: list[float], first: float, second: float) -> str | None:
        """Q.24-style checks on one block: 8 nominal bins, then 8 below, then 8 above."""
        rows, cols = power[0:4], power[4:8]
        row_peak, col_peak = max(rows), max(cols)
        r, c = rows.index(row_peak), cols.index(col_peak)
        if row_peak < self._min_power or col_peak < self._min_power:
            return None
        if col_peak > row_peak * self.max_normal_twist:
            return None
        if row_peak > col_peak * self.max_reverse_twist:
            return None
        if 2 * (row_peak + col_peak) / self.block < self.min_tone_share * (first + second):
            return None
        if min(first, second) < self.min_half_balance * max(first, second):
            return None
        limit_row, limit_col = row_peak / self.min_dominance, col_peak / self.min_dominance
        if any(p > limit_row for k, p in enumerate(rows) if k != r):
            return None
        if any(p > limit_col for k, p in enumerate(cols) if k != c):
            return None
        # The nominal bin beats bins at +-2x the tolerance only when the tone is
        # within the tolerance (the main lobe is symmetric).
        for k, peak in ((r, row_peak), (c + 4, col_peak)):
            if power[8 + k] > peak or power[16 + k] > peak:
                return None
        return _KEYPAD[r][c]

    def _run_state_machine(self, hits: list[str | None]) -> list[str]:
        digits: list[str] = []
        for hit in hits:
            self._streak = self._streak + 1 if hit is not None and hit == self._candidate else 1
            self._candidate = hit
            if hit is not None and hit == self._current:
                self._misses = 0
                continue
            self._misses += 1
            if self._misses >= self.misses_to_rearm:
                self._current = None
            if hit is not None and self._streak >= self.hits_to_report:
                digits.append(hit)
                self._current = hit
                self._misses = 0
        return digits


# --------------------------------------------------------------------------- SIP INFO


class DtmfInfoError(Exception):
    """A SIP INFO DTMF body that cannot be used; `status` is the SIP response to send."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


_INFO_TYPES = ("application/dtmf-relay", "application/dtmf")


def parse_info(content_type: str, body: bytes) -> str:
    """The digit of a SIP INFO DTMF body.

    'application/dtmf-relay' carries ``Signal=<digit>`` and ``Duration=<ms>`` lines;
    'application/dtmf' carries the digit alone. Both accept the RFC 4733 §3.2 event
    codes 10-15 for * # A-D. Other content types raise `DtmfInfoError` with
    status 415, bad bodies with status 400.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in _INFO_TYPES:
        raise DtmfInfoError(f"unsupported DTMF content type {media_type!r}", status=415)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise DtmfInfoError("DTMF body is not UTF-8") from None
    if media_type == "application/dtmf":
        return _signal_to_digit(text.strip())
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip().lower() == "signal":
            return _signal_to_digit(value.strip())
    raise DtmfInfoError("no Signal= line in application/dtmf-relay body")


def _signal_to_digit(value: str) -> str:
    if len(value) == 1 and value.upper() in EVENT_DIGITS:
        return value.upper()
    if value.isascii() and value.isdigit() and len(value) <= 2 and int(value) < 16:
        return EVENT_DIGITS[int(value)]
    raise DtmfInfoError(f"not a DTMF signal: {value[:20]!r}")

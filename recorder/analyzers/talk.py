"""Talk time, silence and over-talk per leg, and a dead-air alert while bridged.

Each leg runs an `EnergyVad` on 20 ms frames. A talk segment opens at a speech frame and
closes at the last speech frame once `hangover_ms` have passed without speech, so the
gaps between words do not split it but its end is not stretched by the hangover. The
summary, emitted at the end of the call, adds up per leg:

- ``talk_s``: time inside talk segments; ``silence_s``: the rest of the audio received;
- ``overtalk_s``: time both legs were talking that this leg started (it talked over the
  other), and ``interruptions``: how many of its segments began inside the other's.

Dead air: while bridged and not paused, once neither leg has spoken for `dead_air_s`,
an ``alert`` (``state: "started"``) is emitted, and another (``state: "ended"``) when
someone speaks again.

Compiled (the usual case), each chunk goes through media/_analysis.c's `TalkLeg` as it
arrives, one call for the leg's framing, levels, VAD and frame loop, and the dead-air
watch looks after every chunk. Without the native module, chunks are held until
`BATCH` samples of both legs are pending, an event arrives, or the dead-air watch could
change state in what is pending: framing, levels and the VAD
then run once per leg over all of them, and the per-frame state is replayed chunk by
chunk in arrival order where the watch could change state (each leg in one go where it
cannot), so the results are those of handling every chunk on its own, for a fraction of
the numpy calls. An alert leaves with the chunk that holds its ``t``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from recorder.analyzers import (
    RATE,
    EnergyVad,
    LevelFramer,
    Pauses,
    check_positive,
    join_runs,
    parse_options,
)
from recorder.hooks import Analyzer, Emit

__all__ = ["TalkAnalyzer", "overlaps"]

try:  # the leg's framing, VAD and frame loop in one C call per chunk
    from media._engine import TalkLeg as _NativeLeg  # type: ignore[import-not-found]
except ImportError:  # not compiled: `_Leg` and the batching below
    _NativeLeg = None

FRAME = 160  # 20 ms
FRAME_S = FRAME / RATE
VECTOR_MIN = 16  # frames from which numpy beats the frame loop
# Pending samples (both legs) handled together: each of the recorder's 1.4 s hand-overs
# as it comes (one hand-over is more than this). Chunks held back (from `on_audio` one by
# one, or with a larger batch) are flushed at once when the dead-air watch could change
# state in them (`_may_alert`), so an alert leaves with the hand-over its `t` falls in;
# the batch is not larger because what it holds back is memory per call.
BATCH = 2 * RATE
DEFAULTS: dict[str, Any] = {
    "threshold_db": -40.0,  # a frame quieter than this is never speech
    "margin_db": 10.0,  # above the tracked noise floor
    "hangover_ms": 300.0,  # pause that does not end a talk segment
    "dead_air_s": 10.0,  # both legs silent this long while bridged: alert
    "scope": "bridged",  # "bridged": count from the bridge on; "call": the whole call
}

Segment = tuple[float, float]


def overlaps(a: list[Segment], b: list[Segment]) -> list[tuple[float, float, int]]:
    """Intersections of two sorted segment lists: (start, end, who) where `who` is 0 when
    a's segment began later (a talked over b), 1 when b's did, -1 when both began together."""
    out: list[tuple[float, float, int]] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            who = 0 if a[i][0] > b[j][0] else 1 if b[j][0] > a[i][0] else -1
            out.append((start, end, who))
        if a[i][1] <= b[j][1]:
            i += 1
        else:
            j += 1
    return out


@dataclass
class _Leg:
    vad: EnergyVad
    hangover: float
    framer: LevelFramer = field(default_factory=lambda: LevelFramer(FRAME))
    segments: list[Segment] = field(default_factory=list)
    opened: float | None = None  # start of the open segment
    last_speech: float = float("-inf")  # end of the last speech frame
    heard_s: float = 0.0  # audio received while counting
    until: float = 0.0  # end of the last frame processed

    def frames(self, starts: list[float], active: list[bool], counted: list[bool]) -> None:
        """Frames in timeline order (one chunk's, or several chunks' of the leg in a row)."""
        contiguous = starts[-1] - starts[0] < (len(starts) - 0.5) * FRAME_S
        if contiguous and all(counted) and (not any(active) or all(active)):
            self._uniform(starts, active[0])
        elif len(starts) >= VECTOR_MIN:
            self._vector(np.asarray(starts), np.asarray(active, dtype=bool),
                         np.asarray(counted, dtype=bool))
        else:
            self._loop(starts, active, counted)

    def _loop(self, starts: list[float], active: list[bool], counted: list[bool]) -> None:
        """The definition, frame by frame."""
        for start, speech, counts in zip(starts, active, counted, strict=True):
            if start - self.until > FRAME_S / 2:
                self.close()  # audio is missing (a pause, lost packets): not one segment
            self.until = start + FRAME_S
            if not counts:
                self.close()
                continue
            self.heard_s += FRAME_S
            if speech:
                if self.opened is None:
                    self.opened = start
                self.last_speech = self.until
            elif self.opened is not None and self.until - self.last_speech >= self.hangover:
                self.close()

    def _vector(self, starts: npt.NDArray[np.float64], speech: npt.NDArray[np.bool_],
                counted: npt.NDArray[np.bool_]) -> None:
        """`_loop`'s outcome without the loop. A gap before a frame, or an uncounted frame,
        closes the open segment; so does a counted silent frame that ends `hangover` after
        the last speech, and since frames only move on, the last silent frame before the
        next speech (or before the batch ends) decides. Speech frames then group into
        segments: each starts where the one before it closed."""
        until = starts + FRAME_S
        prev = np.concatenate(([self.until], until[:-1]))
        breaks = np.cumsum((starts - prev > FRAME_S / 2) | ~counted)  # breaks up to frame i
        talk = np.flatnonzero(speech & counted)
        n = len(starts)
        self.heard_s += int(np.count_nonzero(counted)) * FRAME_S
        if not len(talk):
            if self.opened is not None and (breaks[-1] or until[-1] - self.last_speech >= self.hangover):
                self.close()
            self.until = float(until[-1])
            return
        # does speech frame talk[m] open a new segment (close what came before it)?
        first = talk[0]
        carried = self.opened is not None and not breaks[first] and not (
            first > 0 and until[first - 1] - self.last_speech >= self.hangover)
        after = talk[1:]
        split = (breaks[after] - breaks[talk[:-1]] > 0) | (
            (after > talk[:-1] + 1) & (until[after - 1] - until[talk[:-1]] >= self.hangover))
        if not carried:
            self.close()
        firsts = np.flatnonzero(np.concatenate(([True], split)))  # where groups begin in `talk`
        lasts = np.concatenate((firsts[1:] - 1, [len(talk) - 1]))
        heads = starts[talk[firsts]].tolist()
        if carried:
            heads[0] = self.opened
        ends = until[talk[lasts]].tolist()
        # every segment but the last is closed inside the batch
        self.segments.extend(zip(heads[:-1], ends[:-1], strict=True))
        last = talk[-1]
        self.opened, self.last_speech = heads[-1], float(until[last])
        if breaks[-1] - breaks[last] > 0 or (n - 1 > last and until[-1] - until[last] >= self.hangover):
            self.close()
        self.until = float(until[-1])

    def _uniform(self, starts: list[float], speech: bool) -> None:
        """`frames` for a chunk that is all speech or all non-speech, all in scope: the
        loop's outcome without the loop (silence can only close the segment, and closes
        it the same whichever frame does)."""
        if starts[0] - self.until > FRAME_S / 2:
            self.close()
        self.until = starts[-1] + FRAME_S
        self.heard_s += len(starts) * FRAME_S
        if speech:
            if self.opened is None:
                self.opened = starts[0]
            self.last_speech = self.until
        elif self.opened is not None and self.until - self.last_speech >= self.hangover:
            self.close()

    def close(self) -> None:
        if self.opened is not None:
            self.segments.append((self.opened, self.last_speech))
            self.opened = None

    def talk_s(self) -> float:
        return sum((end - start for start, end in self.segments), 0.0)

    @property
    def last_segment(self) -> Segment | None:
        return self.segments[-1] if self.segments else None


class TalkAnalyzer(Analyzer):
    """Talk time, silence, over-talk per leg; dead-air alerts. Options: see `DEFAULTS`."""

    name: ClassVar[str] = "talk"
    # It judges a second or more at a time: audio handed over with the recorder's disk
    # flushes (every 1.4 s) costs it nothing and saves the placements in between.
    live_interval: ClassVar[float] = 2.0
    # It judges each leg's stretch as a whole: the recorder's hand-over uncut.
    chunk_s: ClassVar[float | None] = None

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> None:
        opts = parse_options(DEFAULTS, options)
        check_positive(opts, "hangover_ms", "dead_air_s")
        if opts["scope"] not in ("bridged", "call"):
            raise ValueError(f"option 'scope': 'bridged' or 'call', not {opts['scope']!r}")

    def __init__(self, call: dict[str, Any], emit: Emit, options: dict[str, Any]) -> None:
        super().__init__(call, emit, options)
        self.validate_options(options)
        opts = parse_options(DEFAULTS, options)
        self.dead_air_s = float(opts["dead_air_s"])
        self.scope = opts["scope"]
        # Compiled, each chunk is judged as it comes (media/_analysis.c's TalkLeg: the
        # framing, VAD and frame loop of `_Leg` in one call); else chunks are batched.
        self.native = _NativeLeg is not None
        self.legs: dict[str, Any] = {
            leg: _NativeLeg(opts["hangover_ms"] / 1000, opts["threshold_db"], opts["margin_db"])
            if self.native else
            _Leg(EnergyVad(opts["threshold_db"], opts["margin_db"]), opts["hangover_ms"] / 1000)
            for leg in ("caller", "other")
        }
        self.bridged_at: float | None = None
        self.pauses = Pauses()
        self.quiet_since: float | None = None  # dead-air clock start; None when not watching
        self.dead_air_since: float | None = None  # the episode alerted, until speech ends it
        self.dead_air: list[Segment] = []
        self.pending: list[tuple[str, float, npt.NDArray[np.int16]]] = []
        self.pending_samples = 0
        self.pending_until = 0.0  # end of the latest pending chunk (timeline seconds)

    def counting(self, starts: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Which frames (by start) are in scope: after the bridge, not paused."""
        if self.scope == "bridged":
            if self.bridged_at is None:
                return np.zeros(len(starts), dtype=bool)
            return (starts >= self.bridged_at) & ~self.pauses.mask(starts)
        return ~self.pauses.mask(starts)

    def on_event(self, event: dict[str, Any]) -> None:
        self._flush()  # the audio that arrived before the event is handled before it
        kind, t = event["type"], float(event["t"])
        self.pauses.on_event(kind, t)
        if kind == "bridged" and self.bridged_at is None:
            self.bridged_at = t
            self.quiet_since = None if self.pauses.paused else t
        elif kind == "paused":
            self._end_dead_air(t)
            self.quiet_since = None
        elif kind == "resumed" and self.bridged_at is not None:
            self.quiet_since = t
        elif kind == "end":
            self._end_dead_air(t)
            for leg in self.legs.values():
                leg.close()
            self.emit(self.summary(t))

    def on_audio(self, leg: str, t: float, pcm: npt.NDArray[np.int16]) -> None:
        if leg not in self.legs:
            return
        if self.native:
            self._judge(leg, t, pcm)
            return
        self.pending.append((leg, t, pcm))
        self.pending_samples += len(pcm)
        self.pending_until = max(self.pending_until, t + len(pcm) / RATE)
        if self.pending_samples >= BATCH or self._may_alert(self.pending_until):
            self._flush()

    def on_audio_chunks(self, chunks: list[tuple[str, float, npt.NDArray[np.int16]]]) -> None:
        if self.native:
            for leg, t, pcm in chunks:
                if leg in self.legs:
                    self._judge(leg, t, pcm)
            return
        for leg, t, pcm in chunks:
            if leg in self.legs:
                self.pending.append((leg, t, pcm))
                self.pending_samples += len(pcm)
                self.pending_until = max(self.pending_until, t + len(pcm) / RATE)
        if self.pending_samples >= BATCH or self._may_alert(self.pending_until):
            self._flush()

    def _judge(self, leg: str, t: float, pcm: npt.NDArray[np.int16]) -> None:
        """One chunk through the native leg, then the dead-air watch: every chunk on its
        own, the definition the batching below reproduces."""
        if self.scope == "call":
            counts_from = float("-inf")
        else:
            counts_from = float("inf") if self.bridged_at is None else self.bridged_at
        self.legs[leg].push(t, np.ascontiguousarray(pcm, dtype=np.int16), counts_from,
                            self.pauses.spans)
        self._watch_dead_air()

    def _flush(self) -> None:
        """The pending chunks: VAD per leg in one go, then the frame state and the dead-air
        watch: each leg's frames in one go where the watch cannot change state in the
        batch, else chunk by chunk in the order the chunks came."""
        pending, self.pending, self.pending_samples = self.pending, [], 0
        if not pending:
            return
        slices: dict[str, tuple[list[float], list[bool], list[bool], list[int]]] = {}
        for name, state in self.legs.items():
            chunks = [(t, pcm) for leg, t, pcm in pending if leg == name]
            if chunks:
                slices[name] = self._frames(state, chunks)
        ends = [starts[-1] + FRAME_S for starts, _, _, _ in slices.values() if starts]
        if not self._may_alert(max(ends, default=0.0)):
            # No dead-air change anywhere in the batch: each leg's frames in one go (the
            # legs' frame states do not depend on each other), one watch at the end.
            for name, (starts, active, counted, _) in slices.items():
                if starts:
                    self.legs[name].frames(starts, active, counted)
            self._watch_dead_air()
            return
        done = dict.fromkeys(self.legs, 0)
        i = 0
        while i < len(pending):  # one leg's consecutive chunks at a time
            leg = pending[i][0]
            j = i + 1
            while j < len(pending) and pending[j][0] == leg:
                j += 1
            starts, active, counted, cuts = slices[leg]
            chunk_cuts, slices[leg] = cuts[: j - i], (starts, active, counted, cuts[j - i:])
            if self._may_alert(starts[chunk_cuts[-1] - 1] + FRAME_S if chunk_cuts[-1] else 0.0):
                steps = chunk_cuts  # watched after every chunk, as they came
            else:
                steps = chunk_cuts[-1:]  # no dead-air change can happen in between
            for last in steps:
                first, done[leg] = done[leg], last
                if last > first:
                    self.legs[leg].frames(starts[first:last], active[first:last],
                                          counted[first:last])
                    self._watch_dead_air()
            i = j

    def _may_alert(self, until: float) -> bool:
        """Whether the dead-air watch could change state while audio up to `until` is
        handled: an episode is on (it ends at the first segment begun after it), or the
        silence so far plus this audio reaches `dead_air_s`. Otherwise watching once after
        the whole stretch gives what watching after each of its chunks would: speech only
        moves the last-spoken time later."""
        if self.quiet_since is None:
            return False
        if self.dead_air_since is not None:
            return True
        caller, other = self.legs["caller"], self.legs["other"]
        spoke = max(self.quiet_since, caller.last_speech, other.last_speech)
        return max(until, caller.until, other.until) - spoke >= self.dead_air_s

    def _frames(self, state: _Leg, chunks: list[tuple[float, npt.NDArray[np.int16]]]
                ) -> tuple[list[float], list[bool], list[bool], list[int]]:
        """One leg's chunks framed and judged: frame starts, speech, in scope, and for each
        chunk the number of frames complete once it arrived."""
        pushed = [state.framer.push(t, pcm) for t, pcm in join_runs(chunks)]
        pushed = [(s, f) for s, f in pushed if len(s)]
        if not pushed:
            return [], [], [], [0] * len(chunks)
        if len(pushed) == 1:
            starts, levels = pushed[0]
        else:
            starts = np.concatenate([s for s, _ in pushed])
            levels = np.concatenate([lv for _, lv in pushed])
        active = state.vad.active(levels, FRAME_S)
        ends = np.array([t + len(pcm) / RATE for t, pcm in chunks])
        cuts = np.searchsorted(starts + FRAME_S, ends + 1e-6, side="right")
        return (starts.tolist(), active.tolist(), self.counting(starts).tolist(),
                cuts.tolist())

    def _watch_dead_air(self) -> None:
        if self.quiet_since is None:
            return
        if self.dead_air_since is not None:
            resumed = self._speech_since(self.dead_air_since)
            if resumed is not None:
                self._end_dead_air(resumed)
            return
        caller, other = self.legs["caller"], self.legs["other"]
        spoke = max(self.quiet_since, caller.last_speech, other.last_speech)
        # The leg that is ahead sets "now": audio missing from the other leg is silence.
        now = max(caller.until, other.until)
        if now - spoke >= self.dead_air_s:
            self.dead_air_since = spoke
            self.emit({"type": "alert", "kind": "dead_air", "state": "started",
                       "since": round(spoke, 3), "t": round(spoke + self.dead_air_s, 3)})

    def _speech_since(self, since: float) -> float | None:
        """Start of the first talk segment that began after `since`, if any."""
        starts = [leg.opened for leg in self.legs.values() if leg.opened is not None]
        starts += [last[0] for leg in self.legs.values() if (last := leg.last_segment)]
        return min((s for s in starts if s >= since), default=None)

    def _end_dead_air(self, end: float) -> None:
        since = self.dead_air_since
        if since is None:
            return
        self.dead_air.append((since, end))
        self.dead_air_since = None
        self.emit({"type": "alert", "kind": "dead_air", "state": "ended", "since": round(since, 3),
                   "silent_s": round(end - since, 3), "t": round(end, 3)})

    def summary(self, t: float) -> dict[str, Any]:
        caller, other = self.legs["caller"], self.legs["other"]
        both = overlaps(caller.segments, other.segments)
        legs: dict[str, Any] = {}
        for index, (name, leg) in enumerate(self.legs.items()):
            talk = leg.talk_s()
            over = sum(((end - start) * (1.0 if who == index else 0.5)
                        for start, end, who in both if who in (index, -1)), 0.0)
            legs[name] = {
                "talk_s": round(talk, 2),
                "silence_s": round(max(leg.heard_s - talk, 0.0), 2),
                "overtalk_s": round(over, 2),
                "interruptions": len({start for start, _, who in both if who == index}),
                "segments": len(leg.segments),
            }
        return {
            "type": "summary", "t": round(t, 3), "scope": self.scope, "legs": legs,
            "overtalk_s": round(sum((end - start for start, end, _ in both), 0.0), 2),
            "dead_air": {"count": len(self.dead_air),
                         "seconds": round(sum((e - s for s, e in self.dead_air), 0.0), 2)},
        }

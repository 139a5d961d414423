"""A caller stress indicator: pitch and loudness against the caller's own baseline.

An arousal heuristic, not emotion detection (docs/analytics.md says why). Every 20 ms
frame of one leg (the caller by default) that the energy VAD calls speech gets an F0
estimate with YIN (de Cheveigné & Kawahara 2002: difference function, cumulative mean
normalised difference, absolute threshold, parabolic interpolation) and an RMS level.
Frames YIN finds aperiodic are left out.

The first `baseline_s` seconds of voiced speech give the caller's baseline: mean and
spread of F0 in semitones and of the level in dB. After that, every `report_s` seconds
with at least `min_voiced_s` of voiced speech, the window's median F0 and level become
z-scores against that baseline, and their mean is the ``score`` emitted. A score of
`alert_z` or more raises an ``alert`` (at most one per `cooldown_s`).

Compiled, the framing, levels and VAD run in C as chunks arrive (media/_analysis.c's
`FrameVad`, which keeps the speech frames only) and YIN runs in C per frame
(`native_yin`); the numpy code below is the fallback and the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from recorder.analyzers import (
    RATE,
    EnergyVad,
    Framer,
    Pauses,
    check_positive,
    frame_levels,
    join_runs,
    parse_options,
)
from recorder.hooks import Analyzer, Emit

__all__ = ["StressAnalyzer", "native_yin", "yin"]

try:  # framing, levels and the VAD in one C call per chunk; YIN per frame in C
    from media._engine import FrameVad as _NativeFrameVad  # type: ignore[import-not-found]
    from media._engine import yin as _c_yin
except ImportError:  # not compiled: `Framer`, `frame_levels`, `EnergyVad` and `yin`
    _NativeFrameVad = _c_yin = None

FloatArray = npt.NDArray[np.float64]
# One F0 estimate (a 30 ms window) every 80 ms: a report window's median pitch and
# level need tens of estimates (5 s of speech gives 60), not one per 20 ms, and YIN is
# most of this analyzer's cost.
HOP = 640  # 80 ms
FRAME_S = HOP / RATE  # the speech time each frame stands for
WINDOW = 240  # 30 ms integration window of the difference function
F0_MIN, F0_MAX = 70.0, 400.0
TAU_MIN, TAU_MAX = int(RATE / F0_MAX), math.ceil(RATE / F0_MIN)
SPAN = WINDOW + TAU_MAX + 1  # samples one F0 estimate looks at
# Frames analyzed together: 2.56 s, two of the recorder's 1.4 s hand-overs at a time (a
# score leaves at most one batch after its window ends; its `t` is exact). Larger
# batches cost less CPU but hold more audio per call.
BATCH = 32
# Only lags 0..TAU_MAX are read, and head[j] * x[j + lag] never wraps past SPAN samples.
NFFT = 1 << math.ceil(math.log2(SPAN))
# Spreads below these are a too-steady baseline (a monotone reader, a synthetic tone):
# dividing by them would turn any small change into a huge z-score.
MIN_SD_SEMITONES, MIN_SD_DB = 1.0, 2.0

DEFAULTS: dict[str, Any] = {
    "leg": "caller",
    "baseline_s": 6.0,  # seconds of voiced speech that make the baseline
    "report_s": 5.0,  # one score per this many seconds of call time
    "min_voiced_s": 1.0,  # a window with less voiced speech gives no score
    "alert_z": 2.0,
    "cooldown_s": 60.0,
    "yin_threshold": 0.2,
    "threshold_db": -40.0,
    "margin_db": 10.0,
}


_LAGS = np.arange(1, TAU_MAX + 1, dtype=np.float64)


def yin(frames: FloatArray, threshold: float = 0.2) -> tuple[FloatArray, FloatArray]:
    """F0 in Hz of each row of `frames` (rows of at least SPAN samples at 8 kHz), and its
    aperiodicity (the normalised difference at the chosen lag: 0 is perfectly periodic).
    A row with no lag under `threshold` gets F0 = 0."""
    x = frames[:, :SPAN]
    head = x[:, :WINDOW]
    cross = np.fft.irfft(np.fft.rfft(x, NFFT) * np.conj(np.fft.rfft(head, NFFT)), NFFT)
    cross = cross[:, : TAU_MAX + 1]
    energy = np.cumsum(x * x, axis=1)  # energy[:, i] = sum of x[:, :i + 1] ** 2
    # d(lag) = sum over the window of (x[j] - x[j + lag])^2
    #        = e(0..W) + e(lag..lag+W) - 2 cross(lag), e as running sums; slices, no gathers
    shifted = energy[:, WINDOW - 1 : WINDOW + TAU_MAX].copy()
    shifted[:, 1:] -= energy[:, : TAU_MAX]
    diff = np.maximum(energy[:, WINDOW - 1 : WINDOW] + shifted - 2.0 * cross, 0.0)
    running = np.cumsum(diff[:, 1:], axis=1)
    cmnd = np.empty_like(diff)
    cmnd[:, 0] = 1.0
    np.divide(diff[:, 1:] * _LAGS, np.maximum(running, 1e-12), out=cmnd[:, 1:])
    tau = _dips(cmnd, threshold)
    rows = np.flatnonzero(tau > 0)
    f0 = np.zeros(len(x))
    aperiodicity = np.ones(len(x))
    aperiodicity[rows] = cmnd[rows, tau[rows]]
    f0[rows] = RATE / _refine(cmnd[rows], tau[rows])
    return f0, aperiodicity


def native_yin(frames: npt.NDArray[np.int16], threshold: float = 0.2
               ) -> tuple[FloatArray, FloatArray]:
    """`yin` of int16 rows of SPAN samples in C (media/_analysis.c): the difference function
    summed directly (exact for int16 samples, where the FFT rounds), lags only as far as
    the dip; the same F0 to within rounding."""
    if _c_yin is None:
        raise RuntimeError("media._engine is not compiled")
    rows = np.ascontiguousarray(frames, dtype=np.int16)
    if rows.ndim != 2 or rows.shape[1] != SPAN:
        raise ValueError(f"frames must be rows of {SPAN} samples")
    f0, aperiodicity = _c_yin(rows, WINDOW, TAU_MIN, TAU_MAX, threshold)
    return np.frombuffer(f0), np.frombuffer(aperiodicity)


def _dips(cmnd: FloatArray, threshold: float) -> npt.NDArray[np.intp]:
    """Per row, the first lag in range under the threshold, followed down to its local
    minimum; 0 where no lag is under the threshold."""
    search = cmnd[:, TAU_MIN : TAU_MAX + 1]
    below = search < threshold
    first = np.argmax(below, axis=1)
    # The local minimum: the first lag from `first` on where the curve stops falling.
    stops = np.diff(search, axis=1, append=np.inf) >= 0
    stops &= np.arange(search.shape[1]) >= first[:, None]
    tau = TAU_MIN + np.argmax(stops, axis=1)
    return np.where(below.any(axis=1), tau, 0)


def _refine(cmnd: FloatArray, tau: npt.NDArray[np.intp]) -> FloatArray:
    """Parabolic interpolation of each row's minimum around `tau` (1 <= tau < last)."""
    index = np.arange(len(tau))
    a, b, c = cmnd[index, tau - 1], cmnd[index, tau], cmnd[index, np.minimum(tau + 1, TAU_MAX)]
    bend = a - 2 * b + c
    shift = np.where(bend > 0, 0.5 * (a - c) / np.where(bend > 0, bend, 1.0), 0.0)
    return (tau + np.clip(shift, -1.0, 1.0)).astype(np.float64)


def semitones(f0: FloatArray) -> FloatArray:
    return 12.0 * np.log2(f0 / 100.0)


@dataclass
class _Baseline:
    pitch: float  # mean F0, semitones re 100 Hz
    pitch_sd: float
    level: float  # mean level, dBFS
    level_sd: float

    @classmethod
    def of(cls, pitch: list[float], level: list[float]) -> _Baseline:
        return cls(float(np.mean(pitch)), max(float(np.std(pitch)), MIN_SD_SEMITONES),
                   float(np.mean(level)), max(float(np.std(level)), MIN_SD_DB))

    def describe(self, voiced_s: float) -> dict[str, float]:
        return {"f0_hz": round(100.0 * 2 ** (self.pitch / 12), 1),
                "f0_sd_st": round(self.pitch_sd, 2), "level_db": round(self.level, 1),
                "level_sd_db": round(self.level_sd, 1), "voiced_s": round(voiced_s, 2)}


@dataclass
class _Window:
    start: float | None = None
    pitch: list[float] = field(default_factory=list)
    level: list[float] = field(default_factory=list)


class StressAnalyzer(Analyzer):
    """Raised pitch and loudness against the caller's own start. Options: see `DEFAULTS`."""

    name: ClassVar[str] = "stress"
    # It judges a second or more at a time: audio handed over with the recorder's disk
    # flushes (every 1.4 s) costs it nothing and saves the placements in between.
    live_interval: ClassVar[float] = 2.0
    # It frames the caller's stretch as a whole: the recorder's hand-over uncut.
    chunk_s: ClassVar[float | None] = None

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> None:
        opts = parse_options(DEFAULTS, options)
        check_positive(opts, "baseline_s", "report_s", "min_voiced_s", "yin_threshold")
        if opts["leg"] not in ("caller", "other"):
            raise ValueError(f"option 'leg': 'caller' or 'other', not {opts['leg']!r}")
        if opts["min_voiced_s"] > opts["report_s"]:
            raise ValueError("option 'min_voiced_s' cannot exceed 'report_s'")

    def __init__(self, call: dict[str, Any], emit: Emit, options: dict[str, Any]) -> None:
        super().__init__(call, emit, options)
        self.validate_options(options)
        self.opts = parse_options(DEFAULTS, options)
        self.framer = Framer(HOP, SPAN)
        self.vad = EnergyVad(self.opts["threshold_db"], self.opts["margin_db"])
        self.native = None if _NativeFrameVad is None else _NativeFrameVad(
            HOP, SPAN, WINDOW, self.opts["threshold_db"], self.opts["margin_db"])
        self.pauses = Pauses()
        self.chunks: list[tuple[float, npt.NDArray[np.int16]]] = []  # not framed yet
        self.framed: list[tuple[bytes, bytes, bytes, bytes]] = []  # framed by `native`
        self.chunk_samples = 0
        self.baseline: _Baseline | None = None
        self.window = _Window()  # the baseline's frames first, then each report window's
        self.voiced_s = 0.0
        self.scores: list[float] = []
        self.alerts = 0
        self.last_alert = float("-inf")

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        self.pauses.on_event(kind, float(event["t"]))
        if kind == "end":
            self._analyze()
            self.emit(self.summary())

    def on_audio(self, leg: str, t: float, pcm: npt.NDArray[np.int16]) -> None:
        if leg != self.opts["leg"]:
            return
        self._take(t, pcm)
        if self.chunk_samples >= BATCH * HOP:
            self._analyze()

    def on_audio_chunks(self, chunks: list[tuple[str, float, npt.NDArray[np.int16]]]) -> None:
        mine = self.opts["leg"]
        for leg, t, pcm in chunks:
            if leg == mine:
                self._take(t, pcm)
        if self.chunk_samples >= BATCH * HOP:
            self._analyze()

    def _take(self, t: float, pcm: npt.NDArray[np.int16]) -> None:
        """Hold a chunk for the next batch: in C it is framed at once, and only its frames'
        starts, levels, VAD flags and speech frames are held (not the audio)."""
        if self.native is not None:
            framed = self.native.push(t, np.ascontiguousarray(pcm, dtype=np.int16))
            if framed[0]:
                self.framed.append(framed)
        else:
            self.chunks.append((t, pcm))
        self.chunk_samples += len(pcm)

    def _analyze(self) -> None:
        """The chunks gathered so far, framed and analyzed in one batch: numpy's per-call
        cost is paid once per BATCH frames (2.56 s) instead of once per chunk. Frames are judged by
        their own time (pauses), so holding them back changes no result."""
        chunks, self.chunks, self.chunk_samples = self.chunks, [], 0
        pushed, self.framed = self.framed, []
        framed = self._native_frames(pushed) if self.native is not None else self._frames(chunks)
        if framed is None:
            return
        starts, levels, active, frames = framed
        heard = ~self.pauses.mask(starts)
        speech = active & heard
        f0 = np.zeros(len(starts))
        if speech.any():
            # the C path holds the speech frames alone: keep those heard
            f0[speech] = self._yin(frames[heard[active]] if self.native is not None
                                   else frames[speech])
        voiced = f0 > 0
        pitch = semitones(np.where(voiced, f0, 100.0))
        self._windows(starts, voiced, pitch, levels)

    def _windows(self, starts: FloatArray, voiced: npt.NDArray[np.bool_], pitch: FloatArray,
                 levels: FloatArray) -> None:
        """`_frame` for a batch of frames, a window at a time: the frames up to where the
        baseline fills or the report window ends are added in one go, then that frame's
        step (baseline, score) is taken, as `_frame` would at it."""
        i, n = 0, len(starts)
        while i < n:
            window = self.window
            if window.start is None:
                window.start = float(starts[i])
            if self.baseline is None:  # at the voiced frame that fills the baseline
                wanted = self._baseline_frames() - len(window.pitch)
                ahead = np.flatnonzero(voiced[i:])
                j = i if wanted <= 0 else (i + int(ahead[wanted - 1]) if len(ahead) >= wanted
                                           else None)
            else:  # at the frame that ends the report window
                ended = np.flatnonzero(starts[i:] + FRAME_S - window.start >= self.opts["report_s"])
                j = i + int(ended[0]) if len(ended) else None
            stop = n if j is None else j + 1
            heard = np.flatnonzero(voiced[i:stop]) + i
            self.voiced_s += len(heard) * FRAME_S
            window.pitch.extend(pitch[heard].tolist())
            window.level.extend(levels[heard].tolist())
            if j is None:
                return
            if self.baseline is None:
                self.baseline = _Baseline.of(window.pitch, window.level)
            elif len(window.pitch) * FRAME_S >= self.opts["min_voiced_s"]:
                self._score(self.baseline, window, float(starts[j]) + FRAME_S)
            self.window = _Window()
            i = stop

    def _baseline_frames(self) -> int:
        """How many voiced frames fill the baseline: the fewest k with k * FRAME_S at least
        `baseline_s`, as `_frame` tests it."""
        k = max(math.ceil(self.opts["baseline_s"] / FRAME_S) - 1, 1)
        while k * FRAME_S < self.opts["baseline_s"]:
            k += 1
        return k

    def _yin(self, frames: npt.NDArray[Any]) -> FloatArray:
        """F0 of the speech frames: `native_yin` on the C path's int16 rows, else `yin`."""
        if self.native is not None:
            return native_yin(frames, self.opts["yin_threshold"])[0]
        return yin(frames, self.opts["yin_threshold"])[0]

    def _frames(self, chunks: list[tuple[float, npt.NDArray[np.int16]]]
                ) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_], FloatArray] | None:
        """The chunks' complete frames: starts, levels, the VAD's speech flags and the
        frames (float rows of SPAN samples); None when they complete none."""
        pushed = [self.framer.push(t, pcm) for t, pcm in join_runs(chunks)]
        pushed = [(s, f) for s, f in pushed if len(s)]
        if not pushed:
            return None
        if len(pushed) == 1:
            starts, frames = pushed[0]
        else:
            starts = np.concatenate([s for s, _ in pushed])
            frames = np.concatenate([f for _, f in pushed])
        levels = frame_levels(frames[:, :WINDOW])
        return starts, levels, self.vad.active(levels, FRAME_S), frames

    def _native_frames(self, pushed: list[tuple[bytes, bytes, bytes, bytes]]
                       ) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_],
                                  npt.NDArray[np.int16]] | None:
        """`_frames` from media/_analysis.c's FrameVad pushes, except that the frames are
        the speech frames alone (int16 rows)."""
        if not pushed:
            return None
        parts = pushed[0] if len(pushed) == 1 else [b"".join(p[i] for p in pushed)
                                                     for i in range(4)]
        starts, levels = np.frombuffer(parts[0]), np.frombuffer(parts[1])
        active = np.frombuffer(parts[2], dtype=np.bool_)
        frames = np.frombuffer(parts[3], dtype=np.int16).reshape(-1, SPAN)
        return starts, levels, active, frames

    def _frame(self, start: float, voiced: bool, pitch: float, level: float) -> None:
        """One frame: the definition `_windows` follows a batch at a time."""
        window = self.window
        if window.start is None:
            window.start = start
        if voiced:
            self.voiced_s += FRAME_S
            window.pitch.append(pitch)
            window.level.append(level)
        if self.baseline is None:
            if len(window.pitch) * FRAME_S >= self.opts["baseline_s"]:
                self.baseline = _Baseline.of(window.pitch, window.level)
                self.window = _Window()
        elif start + FRAME_S - window.start >= self.opts["report_s"]:
            if len(window.pitch) * FRAME_S >= self.opts["min_voiced_s"]:
                self._score(self.baseline, window, start + FRAME_S)
            self.window = _Window()

    def _score(self, base: _Baseline, window: _Window, t: float) -> None:
        pitch_z = (float(np.median(window.pitch)) - base.pitch) / base.pitch_sd
        level_z = (float(np.median(window.level)) - base.level) / base.level_sd
        score = (pitch_z + level_z) / 2
        self.scores.append(score)
        f0 = 100.0 * 2 ** (float(np.median(window.pitch)) / 12)
        self.emit({"type": "score", "name": "stress", "value": round(score, 2),
                   "f0_z": round(pitch_z, 2), "level_z": round(level_z, 2),
                   "f0_hz": round(f0, 1), "voiced_s": round(len(window.pitch) * FRAME_S, 2),
                   "leg": self.opts["leg"], "t": round(t, 3)})
        if score >= self.opts["alert_z"] and t - self.last_alert >= self.opts["cooldown_s"]:
            self.last_alert = t
            self.alerts += 1
            self.emit({"type": "alert", "kind": "stress", "value": round(score, 2),
                       "leg": self.opts["leg"], "t": round(t, 3)})

    def summary(self) -> dict[str, Any]:
        base = self.baseline
        return {
            "type": "summary", "leg": self.opts["leg"],
            "baseline": base.describe(self.opts["baseline_s"]) if base else None,
            "voiced_s": round(self.voiced_s, 2), "scores": len(self.scores),
            "max": round(max(self.scores), 2) if self.scores else None,
            "mean": round(float(np.mean(self.scores)), 2) if self.scores else None,
            "alerts": self.alerts,
        }

"""Built-in analyzers (talk, stress, keywords) and the framing and energy VAD they share.

Audio reaches an analyzer in chunks of about 100 ms stamped with timeline seconds; the
analyzers work on fixed frames, so `Framer` cuts each leg's chunks into frames that keep
their own timeline position and starts afresh where the stamps show a gap (a PCI pause,
lost packets). `EnergyVad` is the frame-level speech/non-speech decision the talk and
stress analyzers both use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["RATE", "EnergyVad", "Framer", "LevelFramer", "Pauses", "check_positive",
           "frame_levels", "join_runs", "parse_options", "pcm_frame_levels"]

RATE = 8000
FloatArray = npt.NDArray[np.float64]
FULL_SCALE = 32768.0
SILENT_DB = -100.0  # the level given to digital silence


def frame_levels(frames: FloatArray) -> FloatArray:
    """RMS level of each row in dBFS (a full-scale square wave is 0 dB)."""
    power = np.einsum("...i,...i->...", frames, frames) / (frames.shape[-1] * FULL_SCALE**2)
    return np.maximum(10.0 * np.log10(power + 1e-12), SILENT_DB)


try:
    from media._engine import frame_levels as _c_frame_levels  # type: ignore[import-not-found]
except ImportError:  # not compiled
    _c_frame_levels = None


def pcm_frame_levels(pcm: npt.NDArray[np.int16], frame: int) -> FloatArray:
    """`frame_levels` of each whole `frame` samples of int16 `pcm`: in C when compiled
    (no float copy of the audio), else with numpy."""
    if _c_frame_levels is not None:
        return np.frombuffer(_c_frame_levels(np.ascontiguousarray(pcm, dtype=np.int16), frame))
    count = len(pcm) // frame
    return frame_levels(pcm[: count * frame].reshape(count, frame).astype(np.float64))


def join_runs(chunks: list[tuple[float, npt.NDArray[np.int16]]]
              ) -> list[tuple[float, npt.NDArray[np.int16]]]:
    """Consecutive chunks of one leg that follow each other exactly (each starts where the
    previous one ended) joined into one array: a `Framer` cuts a run into the same frames
    as its chunks one by one, for one numpy call per run instead of several per chunk."""
    runs: list[tuple[float, list[npt.NDArray[np.int16]]]] = []
    end = float("nan")
    for t, pcm in chunks:
        if runs and abs(t - end) < 0.5 / RATE:
            runs[-1][1].append(pcm)
        else:
            runs.append((t, [pcm]))
        end = t + len(pcm) / RATE
    return [(t, parts[0] if len(parts) == 1 else np.concatenate(parts)) for t, parts in runs]


@dataclass
class _Run:
    """Where a leg's framing stands: positions are counted in samples from the start of
    the current run of audio (`t0`), so where the chunks are cut, or how many come at
    once, changes no frame and no decision to start afresh."""

    t0: float = 0.0  # timeline seconds of the run's first sample
    next: int = 0  # the next frame's first sample
    end: int = -1  # the end of the audio pushed so far; -1 before any

    def follow(self, t: float, n: int, hop: int) -> int | None:
        """Take a chunk of `n` samples stamped `t`: None when it does not continue the run
        within half a hop (a new run starts with it), else how many of its first samples
        lie before the next frame (a gap between frames when hop > window)."""
        if self.end < 0 or abs(t - (self.t0 + self.end / RATE)) > hop / RATE / 2:
            self.t0, self.next, self.end = t, 0, n
            return None
        skip = min(max(self.next - self.end, 0), n)
        self.end += n
        return skip

    def starts(self, count: int, hop: int) -> FloatArray:
        """The timeline starts of the next `count` frames, which are now taken."""
        out = self.t0 + (self.next + np.arange(count) * hop) / RATE
        self.next += count * hop
        return out


@dataclass
class Framer:
    """Cuts one leg's stamped chunks into frames of `window` samples every `hop` samples
    (positions as `_Run` keeps them)."""

    hop: int
    window: int
    _buf: FloatArray = field(default_factory=lambda: np.zeros(0))  # from the next frame on
    _run: _Run = field(default_factory=_Run)

    def push(self, t: float, pcm: npt.NDArray[np.int16]) -> tuple[FloatArray, FloatArray]:
        """Add a chunk; return ``(starts, frames)``: each complete frame's timeline start
        (seconds) and the frames as float rows. A chunk that does not continue the previous
        one within half a hop drops the unfinished frame."""
        skip = self._run.follow(t, len(pcm), self.hop)
        if skip is None:
            self._buf = pcm.astype(np.float64)
        else:
            self._buf = np.concatenate([self._buf, pcm[skip:]])  # the result is float64
        buf, hop, window = self._buf, self.hop, self.window
        count = (len(buf) - window) // hop + 1
        if count <= 0:
            return np.zeros(0), np.zeros((0, window))
        # Rows are views of `buf`, which is never written in place (each push makes a
        # new one): no copy, and no sliding_window_view, whose checks cost more than
        # the framing of a 100 ms chunk.
        if hop == window:
            frames = buf[: count * hop].reshape(count, window)
        else:
            step = buf.strides[0]
            frames = np.lib.stride_tricks.as_strided(
                buf, shape=(count, window), strides=(hop * step, step), writeable=False)
        # a copy of the unfinished frame: a view would keep the whole batch (seconds of
        # float64 audio per leg) alive until the next push
        self._buf = self._buf[count * hop :].copy()
        return self._run.starts(count, hop), frames


@dataclass
class LevelFramer:
    """A `Framer` with back-to-back frames (hop = window) that gives each frame's level
    (`frame_levels`, to within rounding in C) instead of the frame: it keeps the unfinished
    frame as int16 and never makes a float copy of the audio. Same positions and restarts
    as `Framer`."""

    frame: int
    _rest: npt.NDArray[np.int16] = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    _run: _Run = field(default_factory=_Run)

    def push(self, t: float, pcm: npt.NDArray[np.int16]) -> tuple[FloatArray, FloatArray]:
        """Add a chunk; return ``(starts, levels)`` of the frames it completes."""
        pcm = np.asarray(pcm, dtype=np.int16)
        if self._run.follow(t, len(pcm), self.frame) is None or not len(self._rest):
            buf = pcm  # back-to-back frames: nothing of a continuing chunk is skipped
        else:
            buf = np.concatenate([self._rest, pcm])
        count = len(buf) // self.frame
        self._rest = buf[count * self.frame :].copy()  # not a view: it would keep `buf` alive
        if count <= 0:
            return np.zeros(0), np.zeros(0)
        return (self._run.starts(count, self.frame),
                pcm_frame_levels(buf[: count * self.frame], self.frame))


@dataclass
class EnergyVad:
    """Speech where a frame's level clears both `threshold_db` and the noise floor plus
    `margin_db`. The floor follows quiet frames down at once and creeps up at
    `floor_rise_db_per_s`, so a steady line noise stops counting as speech within
    seconds while the dips between words keep the floor low during speech."""

    threshold_db: float = -40.0
    margin_db: float = 10.0
    floor_rise_db_per_s: float = 3.0
    floor_db: float = -60.0

    def active(self, levels: FloatArray, frame_s: float) -> npt.NDArray[np.bool_]:
        if not len(levels):
            return np.zeros(0, dtype=bool)
        # floor[i] = min(level[i], floor[i-1] + rise), without a Python loop: with
        # g[i] = floor[i] - (i+1)*rise it is g[i] = min(level[i] - (i+1)*rise, g[i-1]),
        # a running minimum that starts from the floor so far.
        rise = self.floor_rise_db_per_s * frame_s
        ramp = np.arange(1, len(levels) + 1) * rise
        g = np.minimum.accumulate(np.concatenate(([self.floor_db], levels - ramp)))[1:]
        floor = g + ramp
        self.floor_db = float(floor[-1])
        return np.asarray(levels > np.maximum(self.threshold_db, floor + self.margin_db))


@dataclass
class Pauses:
    """The call's paused spans, from ``paused``/``resumed`` events.

    Live, the recorder hands audio over a little after it was spoken, so an event can
    arrive before audio older than it: frames are judged by their own timeline position,
    not by the state at the moment they arrive."""

    spans: list[list[float]] = field(default_factory=list)  # [start, end]; end inf while open

    @property
    def paused(self) -> bool:
        return bool(self.spans) and self.spans[-1][1] == float("inf")

    def on_event(self, kind: str, t: float) -> None:
        if kind == "paused" and not self.paused:
            self.spans.append([t, float("inf")])
        elif kind == "resumed" and self.paused:
            self.spans[-1][1] = max(t, self.spans[-1][0])

    def covers(self, t: float) -> bool:
        return any(start <= t < end for start, end in reversed(self.spans))

    def mask(self, starts: FloatArray) -> npt.NDArray[np.bool_]:
        """`covers` for many frame starts at once."""
        out = np.zeros(len(starts), dtype=bool)
        for start, end in self.spans:
            out |= (starts >= start) & (starts < end)
        return out


def parse_options(defaults: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """`defaults` updated with `options`; ValueError for an unknown key or a wrong type.

    A default's type is the option's type: a float takes any number, a list any list, and
    a None default an optional string (a path)."""
    out = dict(defaults)
    for key, value in options.items():
        if key not in defaults:
            raise ValueError(f"unknown option {key!r} (known: {', '.join(sorted(defaults))})")
        default = defaults[key]
        if isinstance(default, bool):
            kind, ok = "true or false", isinstance(value, bool)
        elif isinstance(default, int | float):
            kind = "a number"
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and (isinstance(value, int) or isinstance(default, float))
        elif isinstance(default, list):
            kind, ok = "a list", isinstance(value, list)
        else:
            kind, ok = "a string", isinstance(value, str)
        if not ok:
            raise ValueError(f"option {key!r}: expected {kind}, not {value!r}")
        out[key] = value
    return out


def check_positive(options: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if not options[key] > 0:
            raise ValueError(f"option {key!r}: must be positive, not {options[key]!r}")


# Last: `recorder.hooks` imports the built-ins back, and they need the helpers above
# and `Analyzer` from it, whichever of the two modules is imported first.
from recorder.hooks import Analyzer  # noqa: E402,F401

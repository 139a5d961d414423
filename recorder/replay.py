"""Offline replay: run analyzers over a finished recording as if the call were live.

``<id>.wav`` (stereo 8 kHz PCM16, left the caller, right the other side) and its sidecar
``<id>.json`` go through the same `HookHost` as a live call, synchronously: ``start``,
then the sidecar's events interleaved by time with 100 ms chunks of each channel, then
``end``. Pauses become ``paused``/``resumed`` events and their span sends no audio, as on
a live call; masked DTMF is never delivered. ``switchboard analyze`` is `main_analyze`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import numpy.typing as npt

from recorder.hooks import HookHost, load_factories
from recorder.wavfile import read_wav

__all__ = ["Recording", "ReplayError", "find_recording", "load_recording", "main_analyze", "replay"]

RATE = 8000
CHUNK_S = 0.1
LEGS = ("caller", "other")
DEFAULT_ANALYZERS = ("talk", "stress")  # keywords needs a model directory
# Fed from their own sidecar fields, or made by the replay itself.
OWN_EVENTS = {"start", "end", "dtmf", "paused", "resumed"}
CALL_KEYS = ("call_id", "recording_id", "did", "caller", "flow", "account")


class ReplayError(Exception):
    """A recording that cannot be replayed: missing, not a PCM16 WAV, bad sidecar."""


@dataclass
class Recording:
    wav: Path
    audio: npt.NDArray[np.int16]  # (frames, channels)
    sidecar: dict[str, Any]

    @property
    def duration_s(self) -> float:
        length = len(self.audio) / RATE
        stated = self.sidecar.get("duration_s")
        if isinstance(stated, int | float) and not isinstance(stated, bool):
            return max(length, float(stated))
        return length


def find_recording(name: str, directory: Path) -> tuple[Path, Path]:
    """(wav, sidecar) for a WAV path, a sidecar path or a recording id in `directory`."""
    path = Path(name)
    if path.suffix in (".wav", ".json") or "/" in name:
        if not path.exists():
            raise ReplayError(f"{name}: no such file")
        if path.suffix not in (".wav", ".json"):
            raise ReplayError(f"{name}: expected a .wav or .json file")
        return path.with_suffix(".wav"), path.with_suffix(".json")
    wav = directory / f"{name}.wav"
    if not wav.exists():
        raise ReplayError(f"no recording {name!r} in {directory}")
    return wav, wav.with_suffix(".json")


def load_recording(wav: Path, sidecar_path: Path | None = None) -> Recording:
    """Read the WAV and its sidecar (optional: an empty one stands in)."""
    if not wav.exists():
        raise ReplayError(f"{wav}: no such recording")
    try:
        rate, audio = read_wav(wav)
    except (OSError, ValueError) as exc:
        raise ReplayError(f"{wav}: cannot read: {exc}") from exc
    if rate != RATE or audio.shape[1] > 2:
        raise ReplayError(f"{wav}: expected mono or stereo at {RATE} Hz, "
                          f"got {audio.shape[1]} channels at {rate} Hz")
    sidecar: dict[str, Any] = {}
    if sidecar_path is not None and sidecar_path.exists():
        try:
            sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ReplayError(f"{sidecar_path}: not a readable sidecar: {exc}") from exc
        if not isinstance(sidecar, dict):
            raise ReplayError(f"{sidecar_path}: not a readable sidecar: expected an object")
    sidecar.setdefault("recording_id", wav.stem)
    return Recording(wav, audio, sidecar)


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _pauses(sidecar: dict[str, Any], end: float) -> list[tuple[float, float]]:
    out = []
    for pause in sidecar.get("pauses") or []:
        start = _number(pause.get("start")) if isinstance(pause, dict) else None
        if start is None:
            continue
        stop = _number(pause.get("end"))
        out.append((start, end if stop is None else max(stop, start)))
    return sorted(out)


def _events(sidecar: dict[str, Any], pauses: list[tuple[float, float]], end: float
            ) -> list[dict[str, Any]]:
    """The sidecar's events as hook events, masked DTMF left out."""
    events: list[dict[str, Any]] = []
    for event in sidecar.get("events") or []:
        if isinstance(event, dict) and event.get("type") not in OWN_EVENTS:
            if _number(event.get("t")) is not None and isinstance(event.get("type"), str):
                events.append(dict(event))
    for dtmf in sidecar.get("dtmf") or []:
        if isinstance(dtmf, dict) and not dtmf.get("masked") and "digit" in dtmf:
            t = _number(dtmf.get("t"))
            if t is not None:
                events.append({"type": "dtmf", "t": t, "digit": str(dtmf["digit"]),
                               "leg": dtmf.get("leg", "caller")})
    for start, stop in pauses:
        events.append({"type": "paused", "t": start})
        if stop < end:
            events.append({"type": "resumed", "t": stop})
    return [e for e in events if e["t"] <= end]


def _audible(pauses: list[tuple[float, float]], end: float) -> Iterator[tuple[float, float]]:
    at = 0.0
    for start, stop in pauses:
        if start > at:
            yield at, min(start, end)
        at = max(at, stop)
    if at < end:
        yield at, end


def _chunks(audio: npt.NDArray[np.int16], spans: Iterator[tuple[float, float]]
            ) -> Iterator[tuple[float, str, npt.NDArray[np.int16]]]:
    step = round(CHUNK_S * RATE)
    for start, stop in spans:
        first, last = round(start * RATE), min(round(stop * RATE), len(audio))
        for at in range(first, last, step):
            for index, leg in enumerate(LEGS[: audio.shape[1]]):
                yield at / RATE, leg, audio[at : min(at + step, last), index]


def replay(recording: Recording, factories: Sequence[tuple[str, Any, dict[str, Any]]]
           ) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """Run `factories` over `recording`; return the events they emitted and the host stats."""
    sidecar = recording.sidecar
    call = {key: sidecar.get(key) for key in CALL_KEYS}
    call_id = str(call["call_id"] or call["recording_id"])
    end = recording.duration_s
    pauses = _pauses(sidecar, end)
    events = sorted(_events(sidecar, pauses, end), key=lambda e: e["t"])
    emitted: list[dict[str, Any]] = []
    host = HookHost(factories, lambda _cid, event: emitted.append(event), synchronous=True)
    host.start_call(call_id, call, 0.0)
    pending = iter(events)
    event = next(pending, None)
    for t, leg, pcm in _chunks(recording.audio, _audible(pauses, end)):
        while event is not None and event["t"] <= t:
            host.event(call_id, event)
            event = next(pending, None)
        host.audio(call_id, leg, t, pcm)
    for rest in ([event] if event else []) + list(pending):
        host.event(call_id, rest)
    host.end_call(call_id, end)
    stats = host.stats()
    host.close()
    return emitted, stats


# -- switchboard analyze ----------------------------------------------------------------


def _spec(analyzers: list[str], options: list[str]) -> list[dict[str, Any]]:
    """--analyzer and --option NAME.KEY=VALUE into load_factories items."""
    items: dict[str, dict[str, Any]] = {a: ({"path": a} if ":" in a else {"name": a})
                                        for a in analyzers}
    for option in options:
        target, eq, raw = option.partition("=")
        name, dot, key = target.rpartition(".")
        if not eq or not dot or not key:
            raise ReplayError(f"--option {option!r}: expected NAME.KEY=VALUE")
        if name not in items:
            raise ReplayError(f"--option {option!r}: {name!r} is not an --analyzer of this run")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw  # a bare string
        items[name].setdefault("options", {})[key] = value
    return list(items.values())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="switchboard analyze",
        description="replay a recording through analyzers: one JSON line per event, then a summary")
    p.add_argument("recording", help="a WAV, its sidecar .json, or a recording id in --dir")
    p.add_argument("--analyzer", action="append", metavar="NAME|PATH",
                   help=f"a built-in or entry-point name, or package.module:Class; repeatable "
                        f"(default: {' '.join(DEFAULT_ANALYZERS)})")
    p.add_argument("--option", action="append", default=[], metavar="NAME.KEY=VALUE",
                   help="an analyzer option; VALUE is JSON or a bare string; repeatable")
    p.add_argument("--dir", type=Path, default=Path("var/recordings"),
                   help="where recording ids are looked up (default var/recordings)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    return p


def _summary(recording: Recording, emitted: list[dict[str, Any]],
             stats: dict[str, dict[str, int]]) -> dict[str, Any]:
    counts = {name: sum(1 for e in emitted if e.get("source") == name) for name in stats}
    return {"type": "replay", "recording_id": recording.sidecar.get("recording_id"),
            "duration_s": round(recording.duration_s, 3), "events": len(emitted),
            "analyzers": {name: dict(s, emitted=counts[name]) for name, s in stats.items()}}


def main_analyze(argv: Sequence[str], out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`switchboard analyze`: 0, 1 when an analyzer raised, 2 for a bad file or option."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = _parser().parse_args(list(argv))
    try:
        factories = load_factories(_spec(args.analyzer or list(DEFAULT_ANALYZERS), args.option))
        recording = load_recording(*find_recording(args.recording, args.dir))
    except (ReplayError, ValueError) as exc:
        print(f"switchboard analyze: {exc}", file=err)
        return 2
    emitted, stats = replay(recording, factories)
    for event in emitted:
        print(json.dumps(event), file=out)
    summary = _summary(recording, emitted, stats)
    if args.json:
        print(json.dumps(summary), file=out)
    else:
        print(f"# {summary['recording_id']}: {summary['duration_s']:.1f} s, "
              f"{summary['events']} events", file=out)
        for name, s in summary["analyzers"].items():
            print(f"#   {name}: {s['emitted']} emitted, {s['errors']} errors, "
                  f"{s['dropped']} dropped", file=out)
    return 1 if any(s["errors"] for s in stats.values()) else 0

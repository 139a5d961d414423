"""Analyzer plugins for the end-to-end tests, loaded by config path (`tests.e2e.plugins:Spy`)."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from media.dtmf import GoertzelDetector
from recorder.hooks import Analyzer


class Spy(Analyzer):
    """Writes what it is given to `options.out` (JSON lines), runs the in-band DTMF detector
    over the caller's audio, and emits an alert at the first loud caller audio."""

    name = "spy"

    def __init__(self, call: dict[str, Any], emit: Any, options: dict[str, Any]) -> None:
        super().__init__(call, emit, options)
        self.out = open(options["out"], "a", encoding="utf-8")  # noqa: SIM115 (closed in close)
        self.detector = GoertzelDetector()
        self.heard = ""
        self.loud_at: float | None = None
        self._write({"kind": "start", "call": call})

    def _write(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    def on_event(self, event: dict[str, Any]) -> None:
        self._write({"kind": "event", "event": event})

    def on_audio(self, leg: str, t: float, pcm: np.ndarray) -> None:
        self._write({"kind": "audio", "leg": leg, "t": t, "n": len(pcm)})
        if leg != "caller":
            return
        self.heard += "".join(self.detector.feed(np.array(pcm)))
        if self.loud_at is None:
            loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 20000)
            if len(loud):
                self.loud_at = t + loud[0] / 8000
                self.emit({"type": "alert", "name": "loud", "t": round(self.loud_at, 3)})

    def close(self) -> None:
        self._write({"kind": "close", "heard": self.heard})
        self.out.close()


class Sleepy(Analyzer):
    name = "sleepy"

    def on_audio(self, leg: str, t: float, pcm: np.ndarray) -> None:
        time.sleep(0.5)


class Raiser(Analyzer):
    name = "raiser"

    def on_audio(self, leg: str, t: float, pcm: np.ndarray) -> None:
        raise RuntimeError("analyzer bug")

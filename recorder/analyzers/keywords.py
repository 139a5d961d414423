"""Keyword spotting with Vosk (optional: ``pip install 'switchboard[keywords]'``).

Each configured leg gets a Kaldi recognizer from a Vosk model directory, by default
restricted to a grammar of the keywords plus ``[unk]`` so that everything else is
absorbed as unknown. A final result whose words contain a keyword (a phrase matches as
consecutive words) emits a ``tag`` stamped with the word's place on the call timeline.

`vosk` is imported only when the analyzer is configured; the model is loaded once per
directory and shared by every call. Tests replace `make_recognizer` with a fake.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from recorder.analyzers import RATE, parse_options
from recorder.hooks import Analyzer, Emit

__all__ = ["KeywordAnalyzer", "Recognizer"]

DEFAULTS: dict[str, Any] = {
    "model": None,  # Vosk model directory (required)
    "keywords": [],  # words or phrases (required)
    "legs": ["caller", "other"],
    "grammar": True,  # restrict recognition to the keywords plus [unk]
    "min_conf": 0.0,  # word confidence below this is not a hit
}
INSTALL_HINT = "pip install 'switchboard[keywords]'"
_models: dict[str, Any] = {}  # model directory -> loaded vosk.Model, shared by all calls


class Recognizer(Protocol):
    """The part of vosk.KaldiRecognizer this analyzer uses."""

    def AcceptWaveform(self, data: bytes) -> bool: ...  # noqa: N802 - Vosk's names
    def Result(self) -> str: ...  # noqa: N802
    def FinalResult(self) -> str: ...  # noqa: N802


def _vosk() -> Any:
    try:
        vosk = importlib.import_module("vosk")
    except ImportError as exc:
        raise ValueError(f"the keywords analyzer needs the optional package 'vosk', "
                         f"which is not installed: {INSTALL_HINT}") from exc
    vosk.SetLogLevel(-1)  # Kaldi's own logging goes to stderr, line by line
    return vosk


def _model(directory: str) -> Any:
    if directory not in _models:
        vosk = _vosk()
        try:
            _models[directory] = vosk.Model(directory)
        except Exception as exc:  # vosk raises a bare Exception for a bad model
            raise ValueError(f"option 'model': {directory!r} is not a usable Vosk model "
                             f"directory: {exc}") from exc
    return _models[directory]


@dataclass
class _Stream:
    """What one leg fed its recognizer: stream samples -> timeline seconds across gaps."""

    recognizer: Recognizer
    fed: int = 0  # samples fed
    marks: list[tuple[int, float]] = field(default_factory=list)  # (sample, timeline t)

    def feed(self, t: float, pcm: npt.NDArray[np.int16]) -> bool:
        if not self.marks or abs(self.timeline(self.fed / RATE) - t) > 0.01:
            self.marks.append((self.fed, t))
        self.fed += len(pcm)
        return self.recognizer.AcceptWaveform(pcm.astype("<i2").tobytes())

    def timeline(self, seconds: float) -> float:
        sample = round(seconds * RATE)
        start, t = self.marks[0] if self.marks else (0, 0.0)
        for mark in self.marks:
            if mark[0] > sample:
                break
            start, t = mark
        return t + (sample - start) / RATE


def _phrase(text: str) -> tuple[str, ...]:
    return tuple(text.lower().split())


class KeywordAnalyzer(Analyzer):
    """Tags each keyword heard, per leg. Options: see `DEFAULTS`."""

    name: ClassVar[str] = "keywords"

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> None:
        opts = parse_options(DEFAULTS, options)
        words = opts["keywords"]
        if not words or not all(isinstance(w, str) and _phrase(w) for w in words):
            raise ValueError("option 'keywords': a non-empty list of words or phrases is required")
        if not opts["legs"] or not set(opts["legs"]) <= {"caller", "other"}:
            raise ValueError(f"option 'legs': 'caller' and/or 'other', not {opts['legs']!r}")
        cls.check_engine(opts)

    @classmethod
    def check_engine(cls, opts: dict[str, Any]) -> None:
        """ValueError unless vosk imports and the model directory is there."""
        _vosk()
        model = opts["model"]
        if not model:
            raise ValueError("option 'model': the path of a Vosk model directory is required")
        if not Path(model).is_dir():
            raise ValueError(f"option 'model': Vosk model directory {model!r} does not exist "
                             f"(unpack a model there, e.g. a small English one)")

    def __init__(self, call: dict[str, Any], emit: Emit, options: dict[str, Any]) -> None:
        super().__init__(call, emit, options)
        self.validate_options(options)
        self.opts = parse_options(DEFAULTS, options)
        self.phrases = {_phrase(k): " ".join(_phrase(k)) for k in self.opts["keywords"]}
        self.streams = {leg: _Stream(self.make_recognizer(leg)) for leg in self.opts["legs"]}
        self.hits: dict[str, dict[str, int]] = {}

    def make_recognizer(self, leg: str) -> Recognizer:
        vosk = _vosk()
        model = _model(self.opts["model"])
        if self.opts["grammar"]:
            grammar = json.dumps(sorted(self.phrases.values()) + ["[unk]"])
            recognizer = vosk.KaldiRecognizer(model, RATE, grammar)
        else:
            recognizer = vosk.KaldiRecognizer(model, RATE)
        recognizer.SetWords(True)
        return recognizer  # type: ignore[no-any-return]

    def on_audio(self, leg: str, t: float, pcm: npt.NDArray[np.int16]) -> None:
        stream = self.streams.get(leg)
        if stream is not None and stream.feed(t, pcm):
            self._result(leg, stream, stream.recognizer.Result())

    def on_event(self, event: dict[str, Any]) -> None:
        if event["type"] != "end":
            return
        for leg, stream in self.streams.items():
            self._result(leg, stream, stream.recognizer.FinalResult())
        self.emit({"type": "summary", "hits": sum(sum(n.values()) for n in self.hits.values()),
                   "keywords": self.hits, "t": event["t"]})

    def _result(self, leg: str, stream: _Stream, text: str) -> None:
        words = _words(json.loads(text or "{}"), stream.fed / RATE)
        tokens = [w[0] for w in words]
        for phrase, keyword in self.phrases.items():
            n = len(phrase)
            for i in range(len(tokens) - n + 1):
                if tuple(tokens[i : i + n]) != phrase:
                    continue
                conf = min(w[2] for w in words[i : i + n])
                if conf < self.opts["min_conf"]:
                    continue
                per_leg = self.hits.setdefault(keyword, {})
                per_leg[leg] = per_leg.get(leg, 0) + 1
                self.emit({"type": "tag", "kind": "keyword", "keyword": keyword, "leg": leg,
                           "conf": round(conf, 3), "t": round(stream.timeline(words[i][1]), 3)})


def _words(result: dict[str, Any], fed_s: float) -> list[tuple[str, float, float]]:
    """(word, start seconds in the stream, confidence) of a Vosk result. Without word
    timings (SetWords off) every word is placed at the end of the audio fed so far."""
    timed = result.get("result")
    if isinstance(timed, list) and timed:
        return [(str(w.get("word", "")).lower(), float(w.get("start", fed_s)),
                 float(w.get("conf", 1.0))) for w in timed if isinstance(w, dict)]
    return [(word, fed_s, 1.0) for word in str(result.get("text", "")).lower().split()]

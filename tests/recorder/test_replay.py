"""Offline replay of a WAV + sidecar through the hook host, and `switchboard analyze`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from recorder.hooks import Analyzer, load_factories
from recorder.replay import find_recording, load_recording, main_analyze, replay
from recorder.wavfile import write_stereo_wav

RATE = 8000
ROOT = Path(__file__).resolve().parents[2]
DURATION = 8.0
PAUSE = (4.0, 6.0)
SIDECAR: dict[str, Any] = {
    "recording_id": "rec-1", "call_id": "call-1", "did": "100", "caller": "alice",
    "flow": "main", "account": "****5678", "queue": "support", "agent": "1001",
    "started_at": "2024-05-01T10:00:00Z", "answered_at": "2024-05-01T10:00:00Z",
    "bridged_at": "2024-05-01T10:00:01Z", "ended_at": "2024-05-01T10:00:08Z",
    "duration_s": DURATION, "rate": RATE, "interrupted": False,
    "pauses": [{"start": PAUSE[0], "end": PAUSE[1], "reason": "sensitive"}],
    "dtmf": [{"t": 0.55, "digit": "5", "leg": "caller", "source": "rfc4733"},
             {"t": 4.5, "masked": True}],
    "events": [{"t": 1.0, "type": "bridged", "agent": "1001", "queue": "support"},
               {"t": 0.2, "type": "queued", "queue": "support"},
               {"t": 4.0, "type": "paused", "reason": "sensitive"},
               {"t": 6.0, "type": "resumed", "reason": "sensitive"}],
    "timeline": [{"t": 3.0, "type": "alert", "source": "talk"}],
}


class Tape(Analyzer):
    """Writes down what it gets (the pcm itself too) and emits one tag per event."""

    name: ClassVar[str] = "tape"
    seen: ClassVar[list[tuple[Any, ...]]] = []

    def on_event(self, event: dict[str, Any]) -> None:
        self.seen.append(("event", event["t"], event))
        self.emit({"type": "tag", "saw": event["type"]})

    def on_audio(self, leg: str, t: float, pcm: Any) -> None:
        self.seen.append(("audio", t, leg, np.array(pcm)))


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    """rec-1.wav: the caller's channel counts samples up from 0, the other's down."""
    n = int(DURATION * RATE)
    left = (np.arange(n) % 30000).astype(np.int16)
    right = (-(np.arange(n) % 30000)).astype(np.int16)
    write_stereo_wav(tmp_path / "rec-1.wav", left, right)
    (tmp_path / "rec-1.json").write_text(json.dumps(SIDECAR))
    Tape.seen.clear()
    return tmp_path / "rec-1.wav"


def test_replay_interleaves_events_and_chunks_by_time(recording: Path) -> None:
    emitted, stats = replay(load_recording(recording, recording.with_suffix(".json")),
                            load_factories(["tests.recorder.test_replay:Tape"]))
    events = [entry[2] for entry in Tape.seen if entry[0] == "event"]
    assert [(e["type"], e["t"]) for e in events] == [
        ("start", 0.0), ("queued", 0.2), ("dtmf", 0.55), ("bridged", 1.0),
        ("paused", 4.0), ("resumed", 6.0), ("end", 8.0)]
    assert events[2] == {"type": "dtmf", "t": 0.55, "digit": "5", "leg": "caller"}
    assert events[3]["agent"] == "1001"
    # Every entry comes in timeline order, each event after the chunks that start before it.
    times = [entry[1] for entry in Tape.seen]
    assert times == sorted(times)
    chunks = [entry for entry in Tape.seen if entry[0] == "audio"]
    assert not [c for c in chunks if PAUSE[0] <= c[1] < PAUSE[1]]  # nothing while paused
    assert len(chunks) == 2 * 60  # 6 s of audio in 100 ms chunks, both legs
    for _, t, leg, pcm in chunks:
        first = round(t * RATE)
        assert len(pcm) == 800
        assert pcm[0] == (first % 30000 if leg == "caller" else -(first % 30000))
    assert {leg for _, _, leg, _ in chunks} == {"caller", "other"}
    assert [e["saw"] for e in emitted] == [e["type"] for e in events]
    assert emitted[1] == {"type": "tag", "saw": "queued", "source": "tape",
                          "call_id": "call-1", "t": 0.2}
    assert stats["tape"]["delivered"] == len(Tape.seen) and stats["tape"]["errors"] == 0


def test_call_info_comes_from_the_sidecar(recording: Path) -> None:
    calls: list[dict[str, Any]] = []

    def factory(call: dict[str, Any], emit: Any, options: dict[str, Any]) -> Analyzer:
        calls.append(call)
        return Analyzer(call, emit, options)

    replay(load_recording(recording, recording.with_suffix(".json")), [("f", factory, {})])
    assert calls == [{"call_id": "call-1", "recording_id": "rec-1", "did": "100",
                      "caller": "alice", "flow": "main", "account": "****5678"}]


def test_a_wav_without_sidecar_still_replays(recording: Path) -> None:
    recording.with_suffix(".json").unlink()
    loaded = load_recording(recording, recording.with_suffix(".json"))
    emitted, _ = replay(loaded, load_factories(["tests.recorder.test_replay:Tape"]))
    assert [e["saw"] for e in emitted] == ["start", "end"]
    assert emitted[0]["call_id"] == "rec-1" and emitted[-1]["t"] == DURATION


def test_an_unfinished_pause_runs_to_the_end(recording: Path) -> None:
    sidecar = dict(SIDECAR, pauses=[{"start": 7.0, "end": None}], events=[], dtmf=[])
    recording.with_suffix(".json").write_text(json.dumps(sidecar))
    replay(load_recording(recording, recording.with_suffix(".json")),
           load_factories(["tests.recorder.test_replay:Tape"]))
    kinds = [e[2]["type"] for e in Tape.seen if e[0] == "event"]
    assert kinds == ["start", "paused", "end"]
    assert max(e[1] for e in Tape.seen if e[0] == "audio") == pytest.approx(6.9)


def test_find_recording_by_wav_sidecar_or_id(recording: Path) -> None:
    pair = (recording, recording.with_suffix(".json"))
    assert find_recording(str(recording), Path("elsewhere")) == pair
    assert find_recording(str(recording.with_suffix(".json")), Path("elsewhere")) == pair
    assert find_recording("rec-1", recording.parent) == pair


# -- switchboard analyze -----------------------------------------------------------------


def analyze(*argv: str) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    code = main_analyze(list(argv), out, err)
    return code, out.getvalue().splitlines(), err.getvalue()


def test_analyze_prints_events_then_a_summary(recording: Path) -> None:
    code, lines, err = analyze("rec-1", "--dir", str(recording.parent), "--json")
    assert code == 0 and err == ""
    events = [json.loads(line) for line in lines]
    summary = events.pop()
    assert {e["source"] for e in events} == {"talk", "stress"}
    assert summary["type"] == "replay" and summary["recording_id"] == "rec-1"
    assert summary["duration_s"] == DURATION and summary["events"] == len(events)
    assert summary["analyzers"]["talk"]["errors"] == 0
    assert summary["analyzers"]["talk"]["emitted"] == 1  # its summary


def test_analyze_options_and_analyzers_by_path(recording: Path) -> None:
    code, lines, _ = analyze(str(recording.with_suffix(".json")),
                             "--analyzer", "tests.recorder.test_replay:Tape",
                             "--analyzer", "talk", "--option", "talk.scope=call",
                             "--option", 'talk.threshold_db=-30')
    assert code == 0
    assert lines[-3:] == [
        "# rec-1: 8.0 s, 8 events",
        "#   tape: 7 emitted, 0 errors, 0 dropped",
        "#   talk: 1 emitted, 0 errors, 0 dropped",
    ]
    events = [json.loads(line) for line in lines[:-3]]
    assert [e["source"] for e in events] == ["tape"] * 7 + ["talk"]  # host order at "end"
    # The sawtooth is loud throughout: with scope "call" all 6 s heard count (from the
    # bridge at 1.0 on, the default scope, it would be 5 s).
    summary = events[-1]
    assert summary["scope"] == "call"
    assert 5.8 < summary["legs"]["caller"]["talk_s"] <= 6.0


@pytest.mark.parametrize(("argv", "message"), [
    (["nosuch", "--dir", "{dir}"], "no recording 'nosuch'"),
    (["{dir}/missing.wav"], "missing.wav: no such file"),
    (["{dir}", "--dir", "{dir}"], "expected a .wav or .json file"),
    (["{dir}/rec-1.wav", "--analyzer", "bogus"], "unknown analyzer 'bogus'"),
    (["{dir}/rec-1.wav", "--option", "keywords.model=m"], "'keywords' is not an --analyzer"),
    (["{dir}/rec-1.wav", "--analyzer", "talk", "--option", "talk=1"], "expected NAME.KEY=VALUE"),
    (["{dir}/rec-1.wav", "--analyzer", "talk", "--option", "talk.nope=1"],
     "unknown option 'nope'"),
])
def test_analyze_refuses_with_exit_2(recording: Path, argv: list[str], message: str) -> None:
    code, lines, err = analyze(*(a.replace("{dir}", str(recording.parent)) for a in argv))
    assert (code, lines) == (2, [])
    assert err.startswith("switchboard analyze: ") and message in err


def test_analyze_refuses_corrupt_files(recording: Path) -> None:
    recording.with_suffix(".json").write_text("{not json")
    code, _, err = analyze(str(recording))
    assert code == 2 and "rec-1.json: not a readable sidecar" in err
    recording.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    code, _, err = analyze(str(recording))
    assert code == 2 and "rec-1.wav: cannot read" in err


def test_analyze_exits_1_when_an_analyzer_fails(recording: Path) -> None:
    code, lines, _ = analyze(str(recording), "--analyzer", "tests.recorder.test_replay:Broken")
    assert code == 1
    assert "#   broken: 0 emitted, 3 errors, 0 dropped" in lines


class Broken(Analyzer):
    name: ClassVar[str] = "broken"

    def on_event(self, event: dict[str, Any]) -> None:
        if event["type"] in ("start", "bridged", "end"):
            raise RuntimeError("broken plugin")


def test_switchboard_analyze_command(recording: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "switchboard", "analyze", str(recording), "--analyzer", "talk",
         "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert lines[0]["source"] == "talk" and lines[-1]["type"] == "replay"
    missing = subprocess.run(
        [sys.executable, "-m", "switchboard", "analyze", str(recording.with_name("x.wav"))],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "switchboard analyze: " in missing.stderr

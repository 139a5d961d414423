"""The built-in analyzers on synthetic calls with known answers, run through the offline
replay (the same host and interleaving a recording gets)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import pytest

from recorder.analyzers import keywords
from recorder.analyzers.keywords import KeywordAnalyzer
from recorder.analyzers.stress import SPAN, StressAnalyzer, yin
from recorder.analyzers.talk import TalkAnalyzer, overlaps
from recorder.hooks import HookHost, load_factories
from recorder.replay import Recording, replay

RATE = 8000
FloatArray = npt.NDArray[np.float64]


def voice(seconds: float, f0: float = 140.0, level: float = 0.2, wobble_st: float = 0.0,
          phase: float = 0.0) -> FloatArray:
    """A voiced burst: harmonics 1/k up to 3.5 kHz, 15 ms raised-cosine edges, and an F0
    that swings +-`wobble_st` semitones at 0.7 Hz (intonation). Peak = `level` of full scale."""
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    inst = f0 * 2 ** (wobble_st * np.sin(2 * np.pi * 0.7 * t + phase) / 12)
    cycles = np.cumsum(inst) / RATE
    x = sum(np.sin(2 * np.pi * k * cycles) / k for k in range(1, int(3500 / f0) + 1))
    ramp = min(round(0.015 * RATE), n // 2)
    edge = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
    x[:ramp] *= edge
    x[n - ramp :] *= edge[::-1]
    return np.asarray(level * 32767 * x / np.max(np.abs(x)), dtype=np.float64)


def track(total_s: float, bursts: list[tuple[float, float, dict[str, Any]]],
          noise_db: float = -65.0, seed: int = 1) -> npt.NDArray[np.int16]:
    """Background noise at `noise_db` dBFS RMS with voiced bursts at (start, end, voice args)."""
    rng = np.random.default_rng(seed)
    out = rng.normal(0.0, 32768 * 10 ** (noise_db / 20), round(total_s * RATE))
    for start, end, args in bursts:
        at = round(start * RATE)
        burst = voice(end - start, **args)
        out[at : at + len(burst)] += burst
    return np.clip(out, -32768, 32767).astype(np.int16)


def run(analyzer: str | dict[str, Any], caller: npt.NDArray[np.int16],
        other: npt.NDArray[np.int16] | None = None, **sidecar: Any) -> list[dict[str, Any]]:
    other = np.zeros_like(caller) if other is None else other
    recording = Recording(Path("synthetic.wav"), np.stack([caller, other], axis=1),
                          {"recording_id": "r1", "call_id": "c1", **sidecar})
    emitted, stats = replay(recording, load_factories([analyzer]))
    assert all(s["errors"] == 0 and s["dropped"] == 0 for s in stats.values()), stats
    return emitted


def only(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


# -- talk -------------------------------------------------------------------------------

BRIDGED = [{"t": 0.0, "type": "bridged", "agent": "1001", "queue": "support"}]
CALLER_TALK = [(0.5, 3.5, {}), (6.0, 9.0, {}), (22.0, 24.0, {})]
OTHER_TALK = [(3.0, 5.0, {"f0": 210.0}), (8.5, 10.0, {"f0": 210.0})]


def test_overlaps_say_who_talked_over_whom() -> None:
    assert overlaps([(0, 3), (6, 9)], [(2, 5), (8, 10), (12, 13)]) == [(2, 3, 1), (8, 9, 1)]
    assert overlaps([(4, 6)], [(1, 5)]) == [(4, 5, 0)]
    assert overlaps([(1, 2)], [(1, 3)]) == [(1, 2, -1)]
    assert overlaps([(0, 1)], [(1, 2)]) == []


def test_talk_silence_overtalk_and_dead_air() -> None:
    caller, other = track(25, CALLER_TALK), track(25, OTHER_TALK, seed=2)
    events = run({"name": "talk", "options": {"dead_air_s": 5}}, caller, other,
                 events=BRIDGED, duration_s=25.0)
    alerts = only(events, "alert")
    assert [(a["state"], a["kind"]) for a in alerts] == [("started", "dead_air"),
                                                         ("ended", "dead_air")]
    assert alerts[0]["since"] == pytest.approx(10.0, abs=0.05)
    assert alerts[0]["t"] == pytest.approx(15.0, abs=0.05)
    assert alerts[1]["t"] == pytest.approx(22.0, abs=0.05)
    assert alerts[1]["silent_s"] == pytest.approx(12.0, abs=0.1)
    (summary,) = only(events, "summary")
    assert summary["source"] == "talk" and summary["t"] == 25.0
    legs = summary["legs"]
    assert legs["caller"]["talk_s"] == pytest.approx(8.0, abs=0.15)
    assert legs["caller"]["silence_s"] == pytest.approx(17.0, abs=0.15)
    assert legs["caller"]["segments"] == 3
    assert legs["other"]["talk_s"] == pytest.approx(3.5, abs=0.15)
    assert legs["other"]["silence_s"] == pytest.approx(21.5, abs=0.15)
    # The agent started both overlaps: the over-talk is theirs.
    assert summary["overtalk_s"] == pytest.approx(1.0, abs=0.1)
    assert legs["other"]["overtalk_s"] == pytest.approx(1.0, abs=0.1)
    assert legs["other"]["interruptions"] == 2
    assert legs["caller"]["overtalk_s"] == 0 and legs["caller"]["interruptions"] == 0
    assert summary["dead_air"]["count"] == 1
    assert summary["dead_air"]["seconds"] == pytest.approx(12.0, abs=0.1)


def test_hangover_bridges_pauses_between_words_but_not_longer_ones() -> None:
    words = [(1.0, 1.6, {}), (1.8, 2.4, {}), (2.6, 3.0, {}), (4.0, 5.0, {})]  # 0.2 s gaps
    events = run({"name": "talk", "options": {"scope": "call"}}, track(6, words))
    legs = only(events, "summary")[0]["legs"]
    assert legs["caller"]["segments"] == 2
    assert legs["caller"]["talk_s"] == pytest.approx(3.0, abs=0.1)  # 1.0-3.0 and 4.0-5.0


def test_a_pause_is_neither_silence_nor_dead_air() -> None:
    caller, other = track(25, CALLER_TALK), track(25, OTHER_TALK, seed=2)
    events = run({"name": "talk", "options": {"dead_air_s": 5}}, caller, other,
                 events=BRIDGED, duration_s=25.0, pauses=[{"start": 12.0, "end": 20.0}])
    assert only(events, "alert") == []  # quiet 10-12, then 20-22: never 5 s
    legs = only(events, "summary")[0]["legs"]
    assert legs["caller"]["talk_s"] == pytest.approx(8.0, abs=0.15)
    assert legs["caller"]["silence_s"] == pytest.approx(9.0, abs=0.15)  # 25 - 8 talk - 8 paused


def test_bridged_scope_counts_from_the_bridge_on() -> None:
    caller = track(25, CALLER_TALK)
    events = run("talk", caller, events=[{"t": 5.0, "type": "bridged"}], duration_s=25.0)
    legs = only(events, "summary")[0]["legs"]
    assert legs["caller"]["talk_s"] == pytest.approx(5.0, abs=0.15)  # 6-9 and 22-24
    assert legs["caller"]["silence_s"] == pytest.approx(15.0, abs=0.15)
    assert len(only(events, "alert")) == 2  # nobody spoke from 9 to 22 (default 10 s)


def test_steady_line_noise_stops_counting_as_talk() -> None:
    noise_only = run({"name": "talk", "options": {"scope": "call"}}, track(30, [], noise_db=-35))
    talk_noise = only(noise_only, "summary")[0]["legs"]["caller"]["talk_s"]
    assert talk_noise < 6.0  # the floor adapts within the first seconds
    speech = run({"name": "talk", "options": {"scope": "call"}},
                 track(30, [(20.0, 23.0, {"level": 0.5})], noise_db=-35))
    talk_speech = only(speech, "summary")[0]["legs"]["caller"]["talk_s"]
    assert talk_speech - talk_noise == pytest.approx(3.0, abs=0.2)


# -- stress -----------------------------------------------------------------------------


@pytest.mark.parametrize("f0", [75.0, 110.0, 150.0, 220.0, 330.0])
def test_yin_finds_the_fundamental(f0: float) -> None:
    x = voice(1.0, f0=f0, wobble_st=0.0)[RATE // 10 :]
    frames = np.lib.stride_tricks.sliding_window_view(x, SPAN)[::160][:20]
    estimate, aperiodicity = yin(frames)
    assert np.all(np.abs(estimate - f0) < 0.01 * f0)
    assert np.all(aperiodicity < 0.1)


def test_yin_leaves_noise_unvoiced() -> None:
    noise = np.random.default_rng(3).normal(0, 3000, RATE)
    frames = np.lib.stride_tricks.sliding_window_view(noise, SPAN)[::160][:40]
    estimate, _ = yin(frames)
    assert np.mean(estimate > 0) < 0.1


def speech(start: float, end: float, **args: Any) -> list[tuple[float, float, dict[str, Any]]]:
    """Bursts of 1.6 s with 0.4 s gaps, each with its own intonation phase."""
    starts = np.arange(start, end - 1.6 + 1e-9, 2.0)
    return [(s, s + 1.6, dict(args, phase=float(s))) for s in starts]


def test_stress_score_rises_with_pitch_and_loudness() -> None:
    calm = speech(0.0, 20.0, f0=120.0, level=0.1, wobble_st=1.5)
    raised = speech(20.0, 40.0, f0=190.0, level=0.25, wobble_st=1.5)  # +8 st, +8 dB
    events = run("stress", track(40, calm + raised), duration_s=40.0)
    scores = only(events, "score")
    early = [s["value"] for s in scores if s["t"] <= 20.0]
    late = [s["value"] for s in scores if s["t"] >= 25.0]
    assert len(early) >= 2 and len(late) >= 3
    assert max(abs(v) for v in early) < 1.0
    assert min(late) > 2.0
    assert all(s["f0_z"] > 3 and s["level_z"] > 1.5 for s in scores if s["t"] >= 25.0)
    alerts = only(events, "alert")
    assert len(alerts) == 1 and alerts[0]["kind"] == "stress" and alerts[0]["t"] > 20.0
    (summary,) = only(events, "summary")
    assert summary["baseline"]["f0_hz"] == pytest.approx(120.0, rel=0.05)
    assert summary["alerts"] == 1 and summary["max"] > 2.0


def test_steady_caller_scores_near_zero_and_other_leg_is_ignored() -> None:
    calm = track(40, speech(0.0, 40.0, f0=120.0, level=0.1, wobble_st=1.5))
    shouting_agent = track(40, speech(20.0, 40.0, f0=250.0, level=0.8), seed=5)
    events = run("stress", calm, shouting_agent, duration_s=40.0)
    scores = [s["value"] for s in only(events, "score")]
    assert len(scores) >= 5 and max(abs(v) for v in scores) < 1.0
    assert only(events, "alert") == []


def test_no_baseline_without_enough_speech() -> None:
    events = run("stress", track(10, [(1.0, 3.0, {})]), duration_s=10.0)
    (summary,) = only(events, "summary")
    assert summary["baseline"] is None and summary["scores"] == 0
    assert summary["voiced_s"] == pytest.approx(2.0, abs=0.1)


# -- keywords ---------------------------------------------------------------------------


class FakeRecognizer:
    """Vosk's recognizer interface, answering from a script: after `at` seconds of audio
    fed, AcceptWaveform returns True once and Result gives that result."""

    def __init__(self, script: list[tuple[float, dict[str, Any]]], final: dict[str, Any]) -> None:
        self.script = list(script)
        self.final = final
        self.fed = 0
        self.ready: dict[str, Any] = {}

    def AcceptWaveform(self, data: bytes) -> bool:  # noqa: N802
        self.fed += len(data) // 2
        if self.script and self.fed >= self.script[0][0] * RATE:
            self.ready = self.script.pop(0)[1]
            return True
        return False

    def Result(self) -> str:  # noqa: N802
        return json.dumps(self.ready)

    def FinalResult(self) -> str:  # noqa: N802
        return json.dumps(self.final)


def word(text: str, start: float, conf: float = 0.9) -> dict[str, Any]:
    return {"word": text, "start": start, "end": start + 0.3, "conf": conf}


class FakeKeywords(KeywordAnalyzer):
    scripts: ClassVar[dict[str, FakeRecognizer]] = {}

    @classmethod
    def check_engine(cls, opts: dict[str, Any]) -> None:
        pass

    def make_recognizer(self, leg: str) -> FakeRecognizer:  # type: ignore[override]
        return self.scripts[leg]


def test_keywords_are_tagged_on_the_call_timeline_across_a_pause() -> None:
    FakeKeywords.scripts = {
        # Stream second 4.0 is timeline 6.0: 0-3 s were fed, then 3-5 s were paused.
        "caller": FakeRecognizer([(6.0, {"text": "cancel my account refund", "result": [
            word("cancel", 4.0), word("my", 4.3), word("account", 4.6, 0.8),
            word("refund", 5.5, 0.3)]})], final={"text": ""}),
        # No word timings: placed at the end of what was fed.
        "other": FakeRecognizer([], final={"text": "a Refund please"}),
    }
    options = {"keywords": ["Cancel my account", "refund"], "min_conf": 0.5}
    events = run({"path": "tests.recorder.test_analyzers:FakeKeywords", "options": options},
                 track(10, []), duration_s=10.0, pauses=[{"start": 3.0, "end": 5.0}])
    tags = only(events, "tag")
    assert tags == [
        {"type": "tag", "kind": "keyword", "keyword": "cancel my account", "leg": "caller",
         "conf": 0.8, "t": 6.0, "source": "keywords", "call_id": "c1"},
        {"type": "tag", "kind": "keyword", "keyword": "refund", "leg": "other",
         "conf": 1.0, "t": 10.0, "source": "keywords", "call_id": "c1"},
    ]  # "refund" on the caller's side was below min_conf
    (summary,) = only(events, "summary")
    assert summary["keywords"] == {"cancel my account": {"caller": 1}, "refund": {"other": 1}}
    assert summary["hits"] == 2
    assert FakeKeywords.scripts["caller"].fed == 8 * RATE  # the paused 2 s never reached it


@pytest.fixture
def fake_vosk(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    made: list[Any] = []

    class Model:
        def __init__(self, path: str) -> None:
            if Path(path, "broken").exists():
                raise Exception("Failed to create a model")
            made.append(("model", path))

    class KaldiRecognizer:
        def __init__(self, *args: Any) -> None:
            self.args = args
            self.words = False
            made.append(("recognizer", args[1:]))

        def SetWords(self, on: bool) -> None:  # noqa: N802
            self.words = on

    module = types.SimpleNamespace(Model=Model, KaldiRecognizer=KaldiRecognizer,
                                   SetLogLevel=lambda level: None, made=made)
    monkeypatch.setitem(sys.modules, "vosk", module)
    monkeypatch.setattr(keywords, "_models", {})
    return module


def test_vosk_glue_loads_the_model_once_and_uses_a_grammar(
        fake_vosk: types.SimpleNamespace, tmp_path: Path) -> None:
    options = {"model": str(tmp_path), "keywords": ["refund", "Cancel  my account"],
               "legs": ["caller"]}
    first = KeywordAnalyzer({"call_id": "c1"}, lambda e: None, options)
    KeywordAnalyzer({"call_id": "c2"}, lambda e: None, options)
    grammar = json.dumps(["cancel my account", "refund", "[unk]"])
    assert fake_vosk.made == [("model", str(tmp_path)), ("recognizer", (8000, grammar)),
                              ("recognizer", (8000, grammar))]
    assert first.streams["caller"].recognizer.words is True  # type: ignore[attr-defined]


def test_keywords_errors_are_clear(fake_vosk: types.SimpleNamespace, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def error(options: dict[str, Any]) -> str:
        with pytest.raises(ValueError) as info:
            load_factories([{"name": "keywords", "options": options}])
        return str(info.value)

    ok = {"model": str(tmp_path), "keywords": ["refund"]}
    assert load_factories([{"name": "keywords", "options": ok}])[0][1] is KeywordAnalyzer
    assert "Vosk model directory '/no/such/model' does not exist" in error(
        dict(ok, model="/no/such/model"))
    assert "the path of a Vosk model directory is required" in error({"keywords": ["refund"]})
    assert "a non-empty list of words or phrases" in error(dict(ok, keywords=[]))
    assert "a non-empty list of words or phrases" in error(dict(ok, keywords=["  "]))
    assert "'legs': 'caller' and/or 'other'" in error(dict(ok, legs=["agent"]))
    (tmp_path / "broken").touch()
    with pytest.raises(ValueError, match="is not a usable Vosk model directory"):
        KeywordAnalyzer({"call_id": "c1"}, lambda e: None, ok)
    monkeypatch.setitem(sys.modules, "vosk", None)  # as if it were not installed
    message = error(ok)
    assert message.startswith("analyzer 'keywords': the keywords analyzer needs the optional "
                              "package 'vosk', which is not installed")
    assert "pip install 'switchboard[keywords]'" in message


def test_builtin_names() -> None:
    assert (TalkAnalyzer.name, StressAnalyzer.name, KeywordAnalyzer.name) == (
        "talk", "stress", "keywords")


def live_talk(options: dict[str, Any], caller: npt.NDArray[np.int16],
              other: npt.NDArray[np.int16], events: list[dict[str, Any]],
              lost: tuple[float, float] = (0.0, 0.0), other_chunk: int = 800
              ) -> list[dict[str, Any]]:
    """`talk` as a live call feeds it: 100 ms chunks of both legs, events 0.3 s ahead of
    the audio, nothing in the `lost` span; what it emitted."""
    out: list[dict[str, Any]] = []
    host = HookHost(load_factories([{"name": "talk", "options": options}]),
                    lambda _cid, event: out.append(event), synchronous=True)
    host.start_call("c1", {})
    pending = list(events)
    end = len(caller) / RATE
    for at in range(0, len(caller), 800):
        while pending and pending[0]["t"] <= at / RATE + 0.3:  # events 0.3 s ahead
            host.event("c1", pending.pop(0))
        if lost[0] <= at / RATE < lost[1]:
            continue
        host.audio("c1", "caller", at / RATE, caller[at : at + 800])
        host.audio("c1", "other", at / RATE, other[at : at + other_chunk])
    host.end_call("c1", end)
    return out


def test_talk_judges_frames_by_their_time_when_audio_lags_the_events() -> None:
    """Live, audio reaches the hooks ~0.3 s after it was spoken, so `paused` arrives
    before the audio that preceded it, and the paused span arrives as silence."""
    caller = track(25, [*CALLER_TALK, (10.5, 11.9, {})])  # talking up to the pause
    other = track(25, OTHER_TALK, seed=2)
    for pcm in (caller, other):
        pcm[12 * RATE : 20 * RATE] = 0  # the recorder silences a paused span
    events = [{"t": 0.0, "type": "bridged"}, {"t": 12.0, "type": "paused"},
              {"t": 20.0, "type": "resumed"}]
    out = live_talk({"dead_air_s": 5}, caller, other, events)
    lagged = only(out, "summary")[0]
    replayed = only(run({"name": "talk", "options": {"dead_air_s": 5}}, caller, other,
                        events=BRIDGED, duration_s=25.0, pauses=[{"start": 12.0, "end": 20.0}]),
                    "summary")[0]
    assert only(out, "alert") == []
    for key in ("caller", "other"):
        for figure in ("talk_s", "silence_s", "overtalk_s"):
            assert lagged["legs"][key][figure] == pytest.approx(
                replayed["legs"][key][figure], abs=0.05)
    assert lagged["legs"]["caller"]["talk_s"] == pytest.approx(9.4, abs=0.15)
    assert lagged["legs"]["caller"]["silence_s"] == pytest.approx(7.6, abs=0.15)


def test_energy_vad_running_minimum_matches_the_frame_by_frame_definition() -> None:
    """`EnergyVad.active` computes floor[i] = min(level[i], floor[i-1] + rise) without a
    loop; it must agree with the definition, frame by frame and across calls."""
    from recorder.analyzers import EnergyVad

    rng = np.random.default_rng(3)
    for _ in range(200):
        vad = EnergyVad()
        floor = vad.floor_db = float(rng.uniform(-80, -20))
        rise = vad.floor_rise_db_per_s * 0.02
        for _ in range(3):  # consecutive chunks carry the floor over
            levels = rng.uniform(-90, 0, int(rng.integers(0, 40)))
            expected = []
            for level in levels:
                floor = min(level, floor + rise)
                expected.append(level > max(vad.threshold_db, floor + vad.margin_db))
            assert vad.active(levels, 0.02).tolist() == expected
            assert vad.floor_db == pytest.approx(floor, abs=1e-9)


def test_talk_batches_chunks_without_changing_a_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """`talk` holds chunks back and judges them together; what it emits must be what it
    emits handling every chunk on its own, including across a gap and lagging events."""
    from recorder.analyzers import talk

    caller, other = track(30, CALLER_TALK), track(30, OTHER_TALK, seed=2)
    events = [{"t": 0.0, "type": "bridged"}, {"t": 12.0, "type": "paused"},
              {"t": 14.0, "type": "resumed"}]

    def live(batch: int) -> list[dict[str, Any]]:
        monkeypatch.setattr(talk, "BATCH", batch)
        # 0.3 s lost on both legs, and the other leg's chunks shorter than 100 ms
        return live_talk({"dead_air_s": 4}, caller, other, events, lost=(17.0, 17.3),
                         other_chunk=720)

    native = talk._NativeLeg
    monkeypatch.setattr(talk, "_NativeLeg", None)  # the batching is the Python path's
    one_by_one = live(1)
    assert len(only(one_by_one, "alert")) >= 2
    assert live(talk.BATCH) == one_by_one
    assert live(10 * RATE) == one_by_one
    if native is not None:  # the C leg judges every chunk on its own: the same events
        monkeypatch.setattr(talk, "_NativeLeg", native)
        assert live(talk.BATCH) == one_by_one


def test_talk_leg_shortcut_for_uniform_chunks_matches_the_frame_loop() -> None:
    """A chunk that is all speech or all silence skips the per-frame loop; the state it
    leaves must be the loop's, frame for frame."""
    from recorder.analyzers import EnergyVad
    from recorder.analyzers.talk import FRAME_S, _Leg

    def reference(leg: _Leg, starts: list[float], active: list[bool], counted: list[bool]
                  ) -> None:
        for start, speech, counts in zip(starts, active, counted, strict=True):
            if start - leg.until > FRAME_S / 2:
                leg.close()
            leg.until = start + FRAME_S
            if not counts:
                leg.close()
                continue
            leg.heard_s += FRAME_S
            if speech:
                if leg.opened is None:
                    leg.opened = start
                leg.last_speech = leg.until
            elif leg.opened is not None and leg.until - leg.last_speech >= leg.hangover:
                leg.close()

    rng = np.random.default_rng(11)
    for _ in range(100):
        fast, slow = _Leg(EnergyVad(), 0.3), _Leg(EnergyVad(), 0.3)
        t = 0.0
        for _ in range(40):
            n = int(rng.integers(1, 8))
            t += float(rng.choice([0.0, 0.0, 0.0, 0.06]))  # now and then a gap
            starts = [round(t + i * FRAME_S, 6) for i in range(n)]
            t = starts[-1] + FRAME_S
            kind = rng.integers(0, 3)
            active = [bool(kind)] * n if kind < 2 else rng.random(n).round().astype(bool).tolist()
            counted = [True] * n if rng.random() < 0.8 else rng.random(n).round().astype(bool).tolist()
            fast.frames(starts, active, counted)
            reference(slow, starts, active, counted)
        fast.close()
        slow.close()
        assert fast.segments == slow.segments
        assert fast.heard_s == pytest.approx(slow.heard_s)
        assert fast.until == pytest.approx(slow.until)


def test_chunks_handed_over_together_give_what_chunks_one_by_one_give() -> None:
    """The built-ins take a hand-over's chunks in one `on_audio_chunks` call; the host
    uses it for `audio_chunks` and `on_audio` for `audio`: the same events either way."""
    caller = track(30, speech(0.0, 12.0, f0=120.0, level=0.1, wobble_st=1.5)
                   + speech(14.0, 30.0, f0=190.0, level=0.25, wobble_st=1.5))
    other = track(30, OTHER_TALK, seed=3)

    def events(batched: bool) -> list[dict[str, Any]]:
        emitted: list[dict[str, Any]] = []
        host = HookHost(load_factories(["talk", "stress"]),
                        lambda _cid, event: emitted.append(event), synchronous=True)
        host.start_call("c1", {"call_id": "c1"}, 0.0)
        host.event("c1", {"type": "bridged", "t": 0.0, "agent": "1001", "queue": "q"})
        step = 800  # 100 ms chunks, 14 per leg per hand-over as the recorder makes them
        for first in range(0, len(caller), 14 * step):
            chunks = [(leg, i / RATE, pcm[i:i + step])
                      for leg, pcm in (("caller", caller), ("other", other))
                      for i in range(first, min(first + 14 * step, len(caller)), step)]
            if batched:
                host.audio_chunks("c1", chunks)
            else:
                for leg, t, pcm in chunks:
                    host.audio("c1", leg, t, pcm)
        host.end_call("c1", 30.0)
        stats = host.stats()
        assert all(s["errors"] == 0 and s["delivered"] > 500 for s in stats.values()), stats
        return emitted

    def by_source(emitted: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        return {name: [e for e in emitted if e["source"] == name] for name in ("talk", "stress")}

    together = events(True)
    assert by_source(together) == by_source(events(False))  # each analyzer's, in order
    assert only(together, "score") and len(only(together, "summary")) == 2


def test_framer_keeps_only_the_unfinished_frame_between_pushes() -> None:
    """What a Framer holds between pushes is the unfinished frame alone, not a view that
    keeps the whole pushed batch (seconds of float64 audio per leg and call) alive."""
    from recorder.analyzers import Framer

    framer = Framer(hop=640, window=356)
    pushed = 64 * 640 + 300
    starts, frames = framer.push(0.0, np.zeros(pushed, dtype=np.int16))
    assert len(starts) == 64
    held = framer._buf
    assert held.base is None and len(held) == 300
    more, _ = framer.push(pushed / RATE, np.zeros(RATE, dtype=np.int16))  # continues
    assert more[0] == pytest.approx(starts[-1] + 640 / RATE) and framer._buf.base is None


@pytest.mark.parametrize("seed", range(6))
def test_talk_handles_a_legs_chunks_in_a_row_as_one_chunk_by_chunk(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorder hands over 1.4 s of one leg, then the same 1.4 s of the other, in 100 ms
    chunks. `talk` judges each leg's chunks in a row as one stretch unless the dead-air
    watch could change state inside it; the events must be those of watching after every
    chunk: alerts that start and end inside a stretch, lost audio, a pause."""
    from recorder.analyzers import talk

    rng = np.random.default_rng(seed)
    total = 40.0

    def bursts() -> list[tuple[float, float, dict[str, Any]]]:
        out, t = [], float(rng.uniform(0, 2))
        while t < total - 1:
            end = min(t + float(rng.uniform(0.3, 3.0)), total - 0.5)
            out.append((t, end, {"f0": float(rng.uniform(100, 220))}))
            t = end + float(rng.choice([0.2, 0.5, 1.5, 4.5, 6.0]))
        return out

    caller, other = track(total, bursts(), seed=seed), track(total, bursts(), seed=seed + 50)
    lost = float(rng.uniform(5, 30))
    paused = float(rng.uniform(5, 30))
    events = [{"t": 0.0, "type": "bridged"}, {"t": paused, "type": "paused"},
              {"t": paused + 1.0, "type": "resumed"}]

    def emitted(batch: int, together: bool) -> list[dict[str, Any]]:
        monkeypatch.setattr(talk, "BATCH", batch)
        out: list[dict[str, Any]] = []
        host = HookHost(load_factories([{"name": "talk", "options": {"dead_air_s": 4}}]),
                        lambda _cid, event: out.append(event), synchronous=True)
        host.start_call("c1", {})
        pending, step = list(events), 800
        for first in range(0, len(caller), 14 * step):
            while pending and pending[0]["t"] <= first / RATE + 1.6:
                host.event("c1", pending.pop(0))
            chunks = [(leg, i / RATE, pcm[i:i + step])
                      for leg, pcm in (("caller", caller), ("other", other))
                      for i in range(first, min(first + 14 * step, len(pcm)), step)
                      if not lost <= i / RATE < lost + 0.3]
            if together:
                host.audio_chunks("c1", chunks)
            else:
                for leg, t, pcm in chunks:
                    host.audio("c1", leg, t, pcm)
        host.end_call("c1", total)
        return out

    native = talk._NativeLeg
    monkeypatch.setattr(talk, "_NativeLeg", None)  # the batching is the Python path's
    one_by_one = emitted(1, False)
    assert only(one_by_one, "summary")
    assert emitted(talk.BATCH, True) == one_by_one
    assert emitted(20 * RATE, True) == one_by_one
    if native is not None:  # the C leg, chunk by chunk or handed over together
        monkeypatch.setattr(talk, "_NativeLeg", native)
        assert emitted(talk.BATCH, False) == one_by_one
        assert emitted(talk.BATCH, True) == one_by_one


def test_talk_leg_vector_path_matches_the_frame_loop() -> None:
    """Long stretches (a leg's 1.4 s hand-over) take numpy instead of the frame loop:
    the segments, the open segment and the last speech must be the loop's."""
    from recorder.analyzers import EnergyVad
    from recorder.analyzers.talk import FRAME_S, VECTOR_MIN, _Leg

    rng = np.random.default_rng(5)
    for case in range(300):
        fast, slow = _Leg(EnergyVad(), 0.3), _Leg(EnergyVad(), 0.3)
        t = 0.0
        for _ in range(12):
            n = int(rng.integers(VECTOR_MIN, 90))
            starts: list[float] = []
            for _ in range(n):
                t += float(rng.choice([0.0] * 30 + [0.06, 0.5]))  # now and then a gap
                starts.append(round(t, 6))
                t += FRAME_S
            runs = rng.integers(1, 25, size=n)  # speech in runs of frames, of any length
            active = (np.repeat(rng.random(n) < case % 5 / 5, runs)[:n]).tolist()
            counted = ([True] * n if rng.random() < 0.7
                       else (rng.random(n) < 0.9).tolist())
            fast.frames(starts, active, counted)
            slow._loop(starts, active, counted)
            assert (fast.opened, fast.last_speech) == (slow.opened, slow.last_speech)
        fast.close()
        slow.close()
        assert fast.segments == slow.segments
        assert fast.heard_s == pytest.approx(slow.heard_s)
        assert fast.until == slow.until


def test_talk_holds_audio_back_but_not_a_dead_air_alert(monkeypatch: pytest.MonkeyPatch) -> None:
    """`talk` judges several hand-overs at a time, except where the dead-air watch could
    change state: each alert leaves with the 1.4 s hand-over its `t` falls in, and in a
    stretch of conversation nothing is judged until a batch is full."""
    from recorder.analyzers import talk

    monkeypatch.setattr(talk, "BATCH", 10 * RATE)  # a batch of several hand-overs
    monkeypatch.setattr(talk, "_NativeLeg", None)  # the C leg holds nothing back
    total, step = 40.0, round(1.4 * RATE)
    caller = track(total, [(0.5, 3.0, {}), (19.0, 21.0, {}), (22.0, 26.0, {})])
    other = track(total, [(3.5, 5.0, {"f0": 210.0}), (21.5, 23.0, {"f0": 210.0})], seed=2)
    out: list[dict[str, Any]] = []
    host = HookHost(load_factories([{"name": "talk", "options": {"dead_air_s": 8}}]),
                    lambda _cid, event: out.append(event), synchronous=True)
    host.start_call("c1", {})
    host.event("c1", {"t": 0.0, "type": "bridged"})
    (instance, _), = host._plugins[0].instances.values()
    seen: list[tuple[float, list[str]]] = []
    for first in range(0, len(caller), step):
        host.audio_chunks("c1", [(leg, first / RATE, pcm[first:first + step])
                                 for leg, pcm in (("caller", caller), ("other", other))])
        end = min(first + step, len(caller)) / RATE
        seen.append((end, [e["state"] for e in only(out, "alert")]))
        if 2 * end * RATE < talk.BATCH:  # no alert possible yet: nothing judged
            assert instance.pending_samples == round(2 * end * RATE)
    alerts = only(out, "alert")
    assert [a["state"] for a in alerts] == ["started", "ended", "started"]
    assert alerts[0]["t"] == pytest.approx(13.0, abs=0.05)  # 5.0 + 8
    assert alerts[1]["t"] == pytest.approx(19.0, abs=0.05)
    assert alerts[2]["t"] == pytest.approx(34.0, abs=0.05)
    for i, alert in enumerate(alerts):
        # emitted by the end of the hand-over that holds its `t`
        handed = next(end for end, states in seen if len(states) > i)
        assert alert["t"] <= handed < alert["t"] + 1.4 + 0.3  # + the hangover's end
    host.end_call("c1", total)
    assert only(out, "summary")


@pytest.mark.parametrize("native", [True, False])
def test_level_framer_gives_the_framers_frames_levels(native: bool,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`LevelFramer` (talk's) gives what `Framer` + `frame_levels` give for back-to-back
    frames: the same starts, restarts at gaps, and levels, in C and with numpy."""
    import recorder.analyzers as analyzers
    from recorder.analyzers import Framer, LevelFramer, frame_levels

    if native and analyzers._c_frame_levels is None:
        pytest.skip("media._engine is not compiled")
    if not native:
        monkeypatch.setattr(analyzers, "_c_frame_levels", None)
    rng = np.random.default_rng(3)
    framer, levels = Framer(160, 160), LevelFramer(160)
    t = 0.0
    for _ in range(60):
        size = int(rng.choice([0, 1, 80, 159, 160, 161, 800, 11200, 11203]))
        scale = float(rng.choice([0.0, 3.0, 300.0, 32767.0]))
        pcm = np.clip(rng.normal(0, scale, size), -32768, 32767).astype(np.int16)
        if rng.random() < 0.15:
            t += float(rng.choice([0.005, 0.3, 2.0]))  # a gap: both start afresh
        want_starts, frames = framer.push(t, pcm)
        starts, got = levels.push(t, pcm)
        assert starts.tolist() == pytest.approx(want_starts.tolist(), abs=1e-12)
        assert got.tolist() == pytest.approx(frame_levels(frames).tolist(), abs=1e-9)
        assert levels._rest.base is None and len(levels._rest) < 160
        t += size / RATE
    silent = levels.push(t + 1.0, np.zeros(320, dtype=np.int16))[1]  # afresh
    assert silent.tolist() == [-100.0, -100.0]

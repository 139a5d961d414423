"""media/_analysis.c against the Python definitions it stands in for: the talk leg (framing,
energy VAD, segments), the stress analyzer's framing front end, and YIN."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from recorder.analyzers import EnergyVad, Framer, LevelFramer, Pauses, frame_levels, stress, talk
from recorder.analyzers.stress import SPAN, TAU_MAX, TAU_MIN, WINDOW, native_yin, yin
from recorder.hooks import HookHost, load_factories

engine = pytest.importorskip("media._engine")
RATE = 8000


def chunks(rng: np.random.Generator, count: int) -> list[tuple[float, npt.NDArray[np.int16]]]:
    """Stamped chunks of noise and tone bursts at varied levels and sizes, now and then
    after a gap (lost audio, a pause) or a small misalignment inside half a frame."""
    out, t = [], float(rng.uniform(0, 3))
    for _ in range(count):
        size = int(rng.choice([0, 1, 80, 159, 160, 161, 800, 1600, 11200, 11203]))
        level = float(rng.choice([0.0, 10.0, 300.0, 3000.0, 20000.0]))
        x = rng.normal(0, level, size)
        if rng.random() < 0.4:
            x += level * np.sin(2 * np.pi * float(rng.uniform(90, 300)) * np.arange(size) / RATE)
        out.append((t, np.clip(x, -32768, 32767).astype(np.int16)))
        t += size / RATE
        t += float(rng.choice([0.0] * 8 + [0.004, 0.06, 0.7, 3.0]))
    return out


def reference_talk(leg: talk._Leg, framer: LevelFramer, t: float, pcm: npt.NDArray[np.int16],
                   counts_from: float, pauses: Pauses) -> None:
    """The Python definition of one chunk: framing, levels, VAD, scope, frame loop."""
    starts, levels = framer.push(t, pcm)
    if not len(starts):
        return
    active = leg.vad.active(levels, talk.FRAME_S)
    counted = (starts >= counts_from) & ~pauses.mask(starts)
    leg._loop(starts.tolist(), active.tolist(), counted.tolist())


@pytest.mark.parametrize("seed", range(8))
def test_talk_leg_is_the_python_leg(seed: int) -> None:
    rng = np.random.default_rng(seed)
    hangover = float(rng.choice([0.0, 0.1, 0.3, 1.0]))
    native = engine.TalkLeg(hangover, -40.0, 10.0)
    leg, framer = talk._Leg(EnergyVad(-40.0, 10.0), hangover), LevelFramer(talk.FRAME)
    pauses = Pauses()
    bridged = float("inf")
    for t, pcm in chunks(rng, 120):
        if bridged == float("inf") and rng.random() < 0.05:
            bridged = t + float(rng.uniform(-1, 1))
        if rng.random() < 0.05:
            pauses.on_event("resumed" if pauses.paused else "paused", t + float(rng.uniform(-1, 1)))
        counts_from = bridged if seed % 2 else float("-inf")  # "bridged" and "call" scopes
        native.push(t, pcm, counts_from, pauses.spans)
        reference_talk(leg, framer, t, pcm, counts_from, pauses)
        assert (native.opened, native.last_speech, native.until) == (
            leg.opened, leg.last_speech, leg.until)
        assert native.heard_s == pytest.approx(leg.heard_s, abs=1e-9)
        assert native.floor_db == pytest.approx(leg.vad.floor_db, abs=1e-9)
    native.close()
    leg.close()
    assert native.segments == leg.segments
    assert native.last_segment == (leg.segments[-1] if leg.segments else None)
    assert native.talk_s() == pytest.approx(leg.talk_s(), abs=1e-9)
    assert len(native.segments) > 3  # the case is not trivial


@pytest.mark.parametrize(("hop", "window", "level_window"), [(640, SPAN, WINDOW), (160, 160, 160),
                                                              (80, 200, 120)])
def test_frame_vad_is_framer_levels_and_vad(hop: int, window: int, level_window: int) -> None:
    rng = np.random.default_rng(hop)
    native = engine.FrameVad(hop, window, level_window, -40.0, 10.0)
    framer, vad = Framer(hop, window), EnergyVad(-40.0, 10.0)
    total = 0
    for t, pcm in chunks(rng, 150):
        starts_b, levels_b, active_b, frames_b = native.push(t, pcm)
        want_starts, frames = framer.push(t, pcm)
        starts = np.frombuffer(starts_b)
        assert starts.tolist() == want_starts.tolist()
        want_levels = frame_levels(frames[:, :level_window]) if len(starts) else np.zeros(0)
        levels = np.frombuffer(levels_b)
        assert levels.tolist() == pytest.approx(want_levels.tolist(), abs=1e-9)
        active = np.frombuffer(active_b, dtype=np.bool_)
        assert active.tolist() == vad.active(levels, hop / RATE).tolist()
        speech = np.frombuffer(frames_b, dtype=np.int16).reshape(-1, window)
        assert (speech == frames[active]).all()  # the speech frames alone
        assert native.floor_db == pytest.approx(vad.floor_db, abs=1e-9)
        assert native.held == len(framer._buf)
        total += len(starts)
    assert total > 100


def test_native_yin_is_yin() -> None:
    rng = np.random.default_rng(4)
    t = np.arange(SPAN) / RATE
    rows = []
    for f0 in np.linspace(72.0, 395.0, 120):
        x = sum(a * np.sin(2 * np.pi * k * f0 * t + k) for k, a in ((1, 8000), (2, 3000), (3, 2000)))
        rows.append(x + rng.normal(0, 600, SPAN))
    rows += list(rng.normal(0, 3000, (30, SPAN)))  # noise: no F0
    rows.append(np.zeros(SPAN))  # digital silence
    frames = np.clip(np.array(rows), -32768, 32767).astype(np.int16)
    for threshold in (0.1, 0.2, 0.35):
        want_f0, want_ap = yin(frames.astype(np.float64), threshold)
        f0, ap = native_yin(frames, threshold)
        assert f0.tolist() == pytest.approx(want_f0.tolist(), abs=1e-6)
        assert ap.tolist() == pytest.approx(want_ap.tolist(), abs=1e-9)
    assert (f0[:120] > 0).all() and not (f0[120:150] > 0).any()  # the VAD keeps silence out
    assert np.abs(f0[:120] / np.linspace(72.0, 395.0, 120) - 1).max() < 0.01


def test_native_cores_refuse_bad_input() -> None:
    leg = engine.TalkLeg(0.3)
    with pytest.raises(TypeError, match="int16"):
        leg.push(0.0, np.zeros(160), 0.0, [])  # float64 samples
    with pytest.raises(TypeError, match="int16"):
        leg.push(0.0, b"\x00" * 161, 0.0, [])  # half a sample
    with pytest.raises(ValueError, match="finite"):
        leg.push(float("nan"), np.zeros(160, dtype=np.int16), 0.0, [])
    with pytest.raises(TypeError, match="pairs"):
        leg.push(0.0, np.zeros(160, dtype=np.int16), 0.0, [1.0])
    with pytest.raises(TypeError):
        leg.push(0.0, np.zeros(160, dtype=np.int16), 0.0, [["a", 2.0]])
    assert leg.push(0.0, b"\x00" * 320, 0.0, [(0.0, float("inf"))]) == 1  # bytes are int16
    assert leg.heard_s == 0.0  # paused: not heard
    with pytest.raises(ValueError):
        engine.TalkLeg(-1.0)
    with pytest.raises(ValueError):
        engine.FrameVad(0, 160, 160)
    with pytest.raises(ValueError):
        engine.FrameVad(160, 160, 200)  # levels over more than the window
    with pytest.raises(ValueError):
        engine.FrameVad(160, 160, 160, float("nan"))
    with pytest.raises(ValueError, match="rows"):
        engine.yin(np.zeros(SPAN + 1, dtype=np.int16), WINDOW, TAU_MIN, TAU_MAX, 0.2)
    with pytest.raises(ValueError):
        engine.yin(np.zeros(SPAN, dtype=np.int16), WINDOW, 0, TAU_MAX, 0.2)
    with pytest.raises(ValueError):
        native_yin(np.zeros((2, SPAN - 1), dtype=np.int16))
    f0, ap = engine.yin(b"", WINDOW, TAU_MIN, TAU_MAX, 0.2)  # no rows: nothing
    assert f0 == ap == b""


def speechy(seconds: float, seed: int) -> npt.NDArray[np.int16]:
    """Voiced bursts of drifting pitch and loudness between quiet noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    envelope = (np.sin(2 * np.pi * 0.25 * t + seed) > 0.2) * (1 + 0.5 * np.sin(2 * np.pi * t / 17))
    f0 = 120 + 60 * t / seconds + 15 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    x = envelope * 5000 * (np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.2 * np.sin(3 * phase))
    return np.clip(x + rng.normal(0, 40, len(t)), -32768, 32767).astype(np.int16)


def live(monkeypatch: pytest.MonkeyPatch, native: bool) -> list[dict[str, Any]]:
    if not native:
        monkeypatch.setattr(stress, "_NativeFrameVad", None)
        monkeypatch.setattr(talk, "_NativeLeg", None)
    out: list[dict[str, Any]] = []
    host = HookHost(load_factories(["talk", {"name": "stress", "options": {"baseline_s": 4}}]),
                    lambda _cid, event: out.append(event), synchronous=True)
    host.start_call("c1", {})
    host.event("c1", {"t": 1.0, "type": "bridged"})
    caller, other = speechy(60, 1), speechy(60, 2)
    step = round(1.4 * RATE)
    for first in range(0, len(caller), step):
        if first == 20 * RATE:
            host.event("c1", {"t": 20.5, "type": "paused"})
        if first == 28 * RATE:
            host.event("c1", {"t": 27.5, "type": "resumed"})
        lost = 40 * RATE <= first < 42 * RATE  # the caller's audio lost for a while
        host.audio_chunks("c1", [(leg, first / RATE, pcm[first:first + step])
                                 for leg, pcm in (("caller", caller), ("other", other))
                                 if not (lost and leg == "caller")])
    host.end_call("c1", 60.0)
    monkeypatch.undo()
    return out


def test_the_analyzers_emit_the_same_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    fast, slow = live(monkeypatch, True), live(monkeypatch, False)
    assert [(e["source"], e["type"]) for e in fast] == [(e["source"], e["type"]) for e in slow]
    assert len([e for e in fast if e["type"] == "score"]) >= 5
    for a, b in zip(fast, slow, strict=True):
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, float):
                assert value == pytest.approx(b[key], abs=0.011), (key, a, b)
            elif key != "legs":
                assert value == b[key], (key, a, b)


@pytest.mark.parametrize("seed", range(4))
def test_stress_windows_a_batch_as_frame_by_frame(seed: int) -> None:
    """`_windows` adds a batch's frames a window at a time; the baseline, scores, alerts
    and summary must be those of `_frame` applied frame by frame."""
    rng = np.random.default_rng(seed)
    options = {"baseline_s": float(rng.choice([0.5, 1.0, 2.0])), "report_s": 2.0,
               "min_voiced_s": 0.4, "alert_z": 1.0, "cooldown_s": 3.0}
    runs: list[list[dict[str, Any]]] = [[], []]
    bulk, single = (stress.StressAnalyzer({}, out.append, dict(options)) for out in runs)
    t = 0.0
    for _ in range(60):
        n = int(rng.integers(0, 40))
        starts = t + np.arange(n) * stress.FRAME_S
        t += n * stress.FRAME_S + float(rng.choice([0.0, 0.0, 0.5]))
        voiced = rng.random(n) < float(rng.choice([0.0, 0.3, 0.9]))
        pitch = rng.normal(3.0 + t / 20, 1.5, n)
        levels = rng.normal(-25.0 + t / 10, 3.0, n)
        bulk._windows(starts, voiced, pitch, levels)
        for args in zip(starts.tolist(), voiced.tolist(), pitch.tolist(), levels.tolist(),
                        strict=True):
            single._frame(*args)
    for analyzer in (bulk, single):
        analyzer.emit(analyzer.summary())
    assert len(runs[0]) > 5 and any(e["type"] == "alert" for e in runs[0])
    assert runs[0] == runs[1]

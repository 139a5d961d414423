"""The recordings index: ids, retention and deletion (no event loop needed)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from switchboard.config import RecordingConfig
from switchboard.recording import Recordings, _summary, new_id, valid_id


def make(directory: Path, ended_at: str, account: str = "4711") -> str:
    rid = new_id(time.time())
    (directory / f"{rid}.wav").write_bytes(b"RIFF")
    sidecar = {"recording_id": rid, "call_id": "c", "account": account, "ended_at": ended_at,
               "started_at": ended_at}
    (directory / f"{rid}.json").write_text(json.dumps(sidecar))
    return rid


def recordings(tmp_path: Path, days: float) -> Recordings:
    rec = Recordings(RecordingConfig(retention_days=days), tmp_path)
    rec.directory.mkdir(parents=True)
    return rec


def test_ids_are_sortable_and_checked() -> None:
    rid = new_id(0.0)
    assert rid.startswith("19700101T000000-") and valid_id(rid)
    for bad in ("../x", "", "19700101T000000-XYZ", rid + "/", rid[:-1]):
        assert not valid_id(bad)


def test_retention_deletes_only_old_recordings(tmp_path: Path) -> None:
    rec = recordings(tmp_path, days=30)
    old = make(rec.directory, "2020-01-01T00:00:00+00:00")
    new = make(rec.directory, time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()))
    for sidecar in rec._load_index():
        rec.index[sidecar["recording_id"]] = _summary(sidecar)
    assert rec.apply_retention() == 1
    assert not (rec.directory / f"{old}.wav").exists()
    assert not (rec.directory / f"{old}.json").exists()
    assert (rec.directory / f"{new}.wav").exists() and list(rec.index) == [new]
    assert rec.stats["deleted"] == 1


def test_zero_retention_keeps_everything(tmp_path: Path) -> None:
    rec = recordings(tmp_path, days=0)
    old = make(rec.directory, "2001-01-01T00:00:00+00:00")
    rec.index[old] = _summary(json.loads((rec.directory / f"{old}.json").read_text()))
    assert rec.apply_retention() == 0 and (rec.directory / f"{old}.wav").exists()


def test_delete_refuses_unknown_and_unsafe_ids(tmp_path: Path) -> None:
    rec = recordings(tmp_path, days=0)
    (tmp_path / "cdr.jsonl").write_text("keep me")
    assert not rec.delete("../cdr") and not rec.delete(new_id(0.0))
    assert (tmp_path / "cdr.jsonl").exists()
    assert rec.sidecar("../cdr") is None and rec.path("../cdr", "wav") is None


def test_index_skips_meta_files_and_sidecars_without_audio(tmp_path: Path) -> None:
    rec = recordings(tmp_path, days=0)
    kept = make(rec.directory, "2026-01-01T00:00:00+00:00")
    orphan = make(rec.directory, "2026-01-01T00:00:00+00:00")
    (rec.directory / f"{orphan}.wav").unlink()
    (rec.directory / f"{kept}.meta.json").write_text("{}")
    (rec.directory / "garbage.json").write_text("{not json")
    assert [s["recording_id"] for s in rec._load_index()] == [kept]


def test_live_audio_is_handed_over_in_chunks_of_about_100_ms(tmp_path: Path) -> None:
    """Placement runs every 200 ms; consumers get ~100 ms chunks, views of one frozen
    array, on the timeline; a consumer with `audio_chunks` (the analytics hooks) gets each
    leg's stretch whole, in one call."""
    import types

    import numpy as np

    from switchboard.recording import CHUNK

    rec = recordings(tmp_path, days=0)
    got: list[tuple[str, float, int, bool]] = []
    batches: list[int] = []

    class One:
        def audio(self, leg: str, t: float, pcm: np.ndarray) -> None:
            got.append((leg, t, len(pcm), pcm.flags.writeable))

    class Many(One):
        def audio_chunks(self, chunks: list[tuple[str, float, np.ndarray]]) -> None:
            batches.append(len(chunks))

    frames = np.arange(2 * 1700, dtype="<i2").reshape(-1, 2)
    legs = [(leg, 8000, np.frombuffer(frames[:, i].tobytes(), dtype="<i2"))
            for i, leg in enumerate(("caller", "other"))]  # as `advance_legs` gives them
    writer = types.SimpleNamespace(rate=8000, advance_legs=lambda now: legs)
    call = types.SimpleNamespace(consumers=[One(), Many()], writer=writer, id="r")
    rec._advance(call, 1.2)  # type: ignore[arg-type]
    assert [(leg, round(t, 4), n) for leg, t, n, _ in got] == [
        ("caller", 1.0, 566), ("caller", 1.0708, 567), ("caller", 1.1416, 567),
        ("other", 1.0, 566), ("other", 1.0708, 567), ("other", 1.1416, 567)]
    assert not any(writeable for *_, writeable in got)
    assert batches == [2] and CHUNK == 0.1  # the hooks: each leg's stretch, cut per plugin


def test_live_audio_waits_for_the_flush_when_every_consumer_allows_it(tmp_path: Path) -> None:
    """A consumer with `live_interval` >= 1.4 s gets the call's audio with the disk
    flushes only (once per 280 sub-ticks); one without it every 40 sub-ticks (200 ms).
    Either way the same audio arrives, each leg's stretch whole (`audio_chunks`)."""
    import types

    from switchboard.recording import SLOTS

    class Clock:
        now = 100.0

        def time(self) -> float:
            return self.now

    class Consumer:
        def __init__(self, interval: float | None) -> None:
            if interval is not None:
                self.live_interval = interval
            self.handovers = 0
            self.samples = 0
            self.longest = 0

        def audio_chunks(self, chunks: list[tuple[str, float, object]]) -> None:
            self.handovers += 1
            self.samples += sum(len(pcm) for _, _, pcm in chunks)  # type: ignore[arg-type]
            self.longest = max(self.longest, *(len(pcm) for _, _, pcm in chunks))  # type: ignore[arg-type]

        def audio(self, leg: str, t: float, pcm: object) -> None:
            raise AssertionError("audio_chunks is there")

        def event(self, event: dict[str, object]) -> None:
            pass

        def close(self, t: float) -> None:
            pass

    got = {}
    for interval in (None, 2.0):
        recs = recordings(tmp_path / str(interval), days=0)
        clock = Clock()
        recs.loop = clock  # type: ignore[assignment]
        consumer = Consumer(interval)
        recs.consumer_factories.append(lambda rec, c=consumer: c)
        call = types.SimpleNamespace(
            call_id="c1", did="100", caller="alice", flow=None, recording=None, recording_id=None,
            session=types.SimpleNamespace(tap_in=None, tap_out=None),
            collected_vars=lambda: {}, end_reason="caller_hangup")
        rec = recs.begin(call, store=False)  # type: ignore[arg-type]
        assert rec.live is (interval is None)
        for subtick in range(1, 2 * SLOTS + 1):  # 2.8 s of both legs, 20 ms packets
            clock.now += 0.005
            if subtick % 4 == 0:
                ts = (subtick // 4) * 160
                call.session.tap_in(b"\xff" * 160, "PCMU", ts, 1)
                call.session.tap_out(b"\xff" * 160, "PCMU", ts, 2)
            recs.on_subtick(subtick)
        got[interval] = (consumer.handovers, consumer.samples, consumer.longest)
        assert sum(map(len, recs.live_buckets)) == (interval is None)
        recs.end(call)  # type: ignore[arg-type]
        assert not any(recs.live_buckets) and not any(recs._buckets)
    assert got[2.0][0] == 2  # one per flush
    assert got[None][0] >= 12  # every 200 ms
    assert got[2.0][1] == got[None][1] > 2 * 8000 * 2  # the same audio, over 2 s per leg
    assert got[None][2] <= 0.2 * 8000 and got[2.0][2] >= 1.3 * 8000


def test_call_events_within_one_flush_cost_one_meta_sidecar_write(tmp_path: Path) -> None:
    """The meta sidecar (what a crash leaves of the call's details) is rewritten with the
    recording's next flush, once for all the events since the last one."""
    import types

    from switchboard.recording import SLOTS

    class Clock:
        now = 100.0

        def time(self) -> float:
            return self.now

    recs = recordings(tmp_path, days=0)
    recs.loop = Clock()  # type: ignore[assignment]
    writes: list[str] = []

    def run_jobs() -> None:  # the I/O thread's work, here
        while not recs._jobs.empty():
            for job in recs._jobs.get() or ():
                writes.append(getattr(job, "__qualname__", ""))
                job()

    call = types.SimpleNamespace(
        call_id="c1", did="100", caller="alice", flow=None, recording=None, recording_id=None,
        session=types.SimpleNamespace(tap_in=None, tap_out=None), collected_vars=lambda: {},
        cdr=lambda: {"flow": "main", "vars": {"account": "4711"}}, queue="support",
        agent="1001", answered_at=time.time(), bridged_at=None, ended_at=None, end_reason=None)
    rec = recs.begin(call)  # type: ignore[arg-type]
    for digit in "4711":
        rec.on_dtmf(digit, "rfc4733")
    rec.event("queued", queue="support")
    rec.pause("collect")
    rec.resume("collect")
    rec.event("bridged", agent="1001", queue="support")
    run_jobs()
    meta = recs.directory / f"{rec.id}.meta.json"
    assert not meta.exists()  # nothing written yet: the flush is not due
    for subtick in range(1, SLOTS + 1):
        recs.loop.now += 0.005  # type: ignore[attr-defined]
        recs.on_subtick(subtick)
    run_jobs()
    sidecar = json.loads(meta.read_text())
    assert [e["type"] for e in sidecar["events"]] == ["start", "queued", "paused", "resumed",
                                                      "bridged"]
    assert len(sidecar["dtmf"]) == 4 and sidecar["account"] == "4711"
    metas = len(writes)
    for subtick in range(SLOTS + 1, 2 * SLOTS + 1):  # no event since: no rewrite
        recs.on_subtick(subtick)
    run_jobs()
    assert len(writes) == metas + 1  # the audio flush only


def test_a_live_recording_never_fsyncs_until_it_is_finished(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Creating a live recording and 30 flushes of it (42 s) write audio and journal but
    never fsync: a process crash keeps what was written and the kernel's writeback bounds
    a power loss. Finishing fsyncs the WAV before its rename, the directory and the
    sidecar."""
    import os
    import types

    from recorder.writer import AUDIO
    from switchboard.recording import SLOTS

    class Clock:
        now = 100.0

        def time(self) -> float:
            return self.now

        def call_later(self, delay: float, callback: Any, *args: Any) -> None:
            callback(*args)

        def call_soon_threadsafe(self, callback: Any, *args: Any) -> None:
            callback(*args)

    synced: list[str] = []
    real_fsync, real_fdatasync = os.fsync, os.fdatasync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def fdatasync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    recs = recordings(tmp_path, days=0)
    recs.loop = Clock()  # type: ignore[assignment]

    def run_jobs() -> None:  # the I/O thread's work, here
        while not recs._jobs.empty():
            for job in recs._jobs.get() or ():
                job()

    call = types.SimpleNamespace(
        call_id="c1", did="100", caller="alice", flow=None, recording=None, recording_id=None,
        session=types.SimpleNamespace(tap_in=None, tap_out=None), collected_vars=lambda: {},
        cdr=lambda: {"flow": "main", "vars": {}}, queue="support", agent="1001",
        answered_at=time.time(), bridged_at=None, ended_at=None, end_reason="hangup")
    rec = recs.begin(call)  # type: ignore[arg-type]
    for subtick in range(1, 30 * SLOTS + 1):
        recs.loop.now += 0.005  # type: ignore[attr-defined]
        if subtick % 4 == 0:
            call.session.tap_in(b"\x7f" * 160, "PCMU", subtick * 40, 1)
        recs.on_subtick(subtick)
        if subtick % 200 == 0:
            run_jobs()
    run_jobs()
    assert synced == []
    assert (recs.directory / f"{rec.id}.part" / AUDIO).stat().st_size > 40 * 8000 * 4
    recs.end(call)  # type: ignore[arg-type]
    run_jobs()
    wav = recs.directory / f"{rec.id}.wav"
    assert wav.exists() and (recs.directory / f"{rec.id}.json").exists()
    assert synced[0].endswith(f"{rec.id}.part/{AUDIO}")  # the WAV, before its rename
    assert str(recs.directory) in synced and any(p.endswith(".json.tmp") for p in synced)
    assert len(synced) == 3

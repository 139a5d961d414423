"""Network recording of calls: the RTP Switchboard relays, into one stereo WAV per call.

What the caller sends is the left channel, what the caller hears (IVR prompts, then the
agent) the right, placed on the call's timeline (`recorder.timeline`): by the native
media thread itself (`EngineSession.record`), or through per-packet taps on the Python
plane (`RecordingWriter.attach`). In slices after the media clock's sub-ticks, what
became final is taken from the timeline every 1.4 s, or every 200 ms when analytics or
a media stream listen; media streams get it in ~100 ms chunks, analyzers each leg's
stretch cut to their `chunk_s`. The disk writes go to one I/O thread, in order, handed
to it every 100 ms. Files per recording, in the recordings directory:

- ``<id>.part/``: the WAV being written in place and the journal while the call is up
  (``recorder.writer``);
- ``<id>.meta.json``: the sidecar so far, rewritten with the next disk write after a
  call event (events within one 1.4 s flush cost one rewrite), so that a crash still
  knows whose call it was;
- ``<id>.wav`` and ``<id>.json`` (the sidecar) once the call ends; a crash leaves the
  first two, which `Recordings.start` turns into the last two, marked interrupted.

PCI pauses fail closed: the recording is paused while *any* reason holds (a sensitive
collect, a flow node, an API call), and a failure while changing the pause state
leaves it paused. DTMF keyed while paused is written to the sidecar as masked, and is
neither logged nor passed to analytics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from media.osthread import name_os_thread
from recorder.hooks import CHUNK, split_chunks
from recorder.wavfile import read_wav
from recorder.writer import (
    PART_SUFFIX,
    OpenFiles,
    RecordingWriter,
    recover,
    write_batch,
)

from .cdr import iso

if TYPE_CHECKING:
    from .call import Call
    from .config import RecordingConfig

log = logging.getLogger("switchboard.recording")

# The work runs in slices after the media clock's 5 ms sub-ticks: a recording belongs to
# one of SLOTS sub-ticks (1.4 s); it is written to disk once per SLOTS (its own slot)
# and, with analytics or streams, its audio is placed every LIVE sub-ticks (200 ms), or
# less often when every consumer of the call asks for it (`live_interval`), and handed
# over in chunks of about CHUNK seconds.
# A kill -9 loses at most what is not written yet: 1.4 s plus the 0.2 s reorder holdback.
SLOTS = 280
LIVE = 40  # SLOTS is a multiple of it
# A consumer whose `live_interval` (seconds, default 0.2) is at least FLUSH_INTERVAL
# takes its audio from the disk flushes only: no placement in between for its sake.
FLUSH_INTERVAL = 1.4  # SLOTS sub-ticks of 5 ms
DEFAULT_LIVE_INTERVAL = 0.2
# Jobs for the I/O thread (disk writes, sidecars, finishing) go to it together every
# IO_EVERY sub-ticks (100 ms), in order: one wake-up of the thread instead of one per job.
IO_EVERY = 20
# No fsync while a call is up: a crash of the process loses nothing written (the page
# cache survives it), and the kernel writes dirty pages back within
# vm.dirty_expire_centisecs (30 s by default), which bounds what a power loss can take,
# as an fsync every ~30 s would, without the writeback's CPU in the server's I/O thread.
# Finishing fsyncs the WAV and the sidecar before they are renamed into place.
RETENTION_CHECK = 3600.0
HOOK_GRACE = 0.5  # seconds the sidecar waits for analyzers' end-of-call summaries
_ID = re.compile(r"[0-9]{8}T[0-9]{6}-[0-9a-f]{12}")


class AudioConsumer(Protocol):
    """Live analytics or a media stream: gets final audio and call events. An optional
    `live_interval` attribute (seconds, default 0.2) says how often it wants audio: at
    FLUSH_INTERVAL or more, it is placed for it only when it is written to disk."""

    def audio(self, leg: str, t: float, pcm: np.ndarray) -> None: ...
    def event(self, event: dict[str, Any]) -> None: ...
    def close(self, t: float) -> None: ...


class StreamConsumer:
    """A media stream out (recorder.mediastream) as a consumer of the call's audio. Call
    milestones (queued, bridged) go out as `mark` messages named after them."""

    def __init__(self, call: Call, setting: dict[str, Any], queue: str | None = None) -> None:
        from recorder.mediastream import MediaStreamClient

        info = {"call_id": call.call_id, "did": call.did, "caller": call.caller,
                "flow": call.flow.name if call.flow else None, "queue": queue or call.queue}
        self.client = MediaStreamClient(setting["url"], call=info, tracks=setting["tracks"],
                                        custom_parameters=setting["parameters"],
                                        account_sid=setting["account_sid"])
        self.client.start()

    def audio(self, leg: str, t: float, pcm: np.ndarray) -> None:
        self.client.audio(leg, t, pcm)

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "dtmf" and event.get("digit"):
            self.client.dtmf(str(event["digit"]))
        elif kind in ("queued", "bridged", "paused", "resumed"):
            self.client.mark(str(kind))

    def close(self, t: float) -> None:
        self.client.stop()


class HookConsumer:
    """The analytics hooks (recorder.hooks.HookHost) as a consumer of one call's audio."""

    def __init__(self, host: Any, rec: CallRecording) -> None:
        self.host = host
        self.live_interval = getattr(host, "live_interval", DEFAULT_LIVE_INTERVAL)
        self.call_id = rec.call.call_id
        call = rec.call
        host.start_call(self.call_id, {
            "call_id": call.call_id, "recording_id": rec.id if rec.store else None,
            "did": call.did, "caller": call.caller, "flow": call.flow.name if call.flow else None,
            "account": call.collected_vars().get("account")}, rec.t())

    def audio(self, leg: str, t: float, pcm: np.ndarray) -> None:
        self.host.audio(self.call_id, leg, t, pcm)

    def audio_chunks(self, chunks: list[tuple[str, float, np.ndarray]]) -> None:
        self.host.audio_chunks(self.call_id, chunks)

    def event(self, event: dict[str, Any]) -> None:
        if event.get("type") not in ("start", "end"):
            self.host.event(self.call_id, event)

    def close(self, t: float) -> None:
        self.host.end_call(self.call_id, t)


def valid_id(recording_id: str) -> bool:
    return bool(_ID.fullmatch(recording_id))


def new_id(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + "-" + uuid.uuid4().hex[:12]


def _write_json(path: Path, data: dict[str, Any], durable: bool = True) -> None:
    """Atomically (a temp file, then a rename); fsynced unless `durable` is false."""
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps(data, separators=(",", ":"), default=str)  # the C encoder, at once
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(text)
        if durable:
            out.flush()
            os.fsync(out.fileno())
    os.replace(tmp, path)


class CallRecording:
    """One call's recording: the writer, the pause state and the sidecar being built."""

    def __init__(self, owner: Recordings, call: Call, recording_id: str, started: float,
                 store: bool = True) -> None:
        self.owner = owner
        self.store = store  # False: live audio for analytics/streams only, nothing on disk
        self.call = call
        self.id = recording_id
        self.started = started  # loop time of the timeline's zero (the answer)
        self.wall_started = time.time()
        self.writer = RecordingWriter(owner.directory, recording_id, started=started,
                                      create=False, clock=owner.loop.time)
        self.reasons: set[str] = set()
        self.pauses: list[dict[str, Any]] = []
        self.dtmf: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.timeline: list[dict[str, Any]] = []
        self.consumers: list[AudioConsumer] = []
        self.live = False  # a consumer wants audio more often than the flushes
        self.meta_dirty = False  # events since the meta sidecar was last written
        self.phase = 0  # which of the SLOTS sub-ticks this recording writes on
        self.stopped: str | None = None

    def add_consumer(self, consumer: AudioConsumer) -> None:
        self.consumers.append(consumer)
        interval = getattr(consumer, "live_interval", DEFAULT_LIVE_INTERVAL)
        if not isinstance(interval, int | float) or interval < FLUSH_INTERVAL:
            self.live = True
            self.owner.live_buckets[self.phase][self] = None

    # -- timeline ------------------------------------------------------------------------

    def t(self) -> float:
        return round(max(self.owner.loop.time() - self.started, 0.0), 3)

    @property
    def paused(self) -> bool:
        return bool(self.reasons)

    def event(self, kind: str, **data: Any) -> None:
        event = {"t": self.t(), "type": kind, **data}
        self.events.append(event)
        self._tell(event)
        self.owner.save_meta(self)

    def _tell(self, event: dict[str, Any]) -> None:
        for consumer in self.consumers:
            try:
                consumer.event(event)
            except Exception:  # a consumer never takes the recording down
                log.exception("event=recording_consumer_failed recording=%s", self.id)

    # -- PCI pause -------------------------------------------------------------------------

    def pause(self, reason: str) -> None:
        was = self.paused
        self.reasons.add(reason)
        if not was:
            self.writer.pause(self.owner.loop.time())
            self.pauses.append({"start": self.t(), "end": None, "reason": reason})
            self.event("paused", reason=reason)

    def resume(self, reason: str) -> None:
        if reason not in self.reasons:
            return
        self.reasons.discard(reason)
        if not self.reasons:
            self.writer.resume(self.owner.loop.time())
            if self.pauses:
                self.pauses[-1]["end"] = self.t()
            self.event("resumed", reason=reason)

    def on_dtmf(self, digit: str, source: str) -> None:
        if self.paused:
            self.dtmf.append({"t": self.t(), "masked": True})
            return
        entry = {"t": self.t(), "digit": digit, "leg": "caller", "source": source}
        self.dtmf.append(entry)
        self._tell({"type": "dtmf", **entry})

    # -- sidecar ---------------------------------------------------------------------------

    def sidecar(self, *, ended: bool) -> dict[str, Any]:
        call = self.call
        record = call.cdr()
        return {
            "recording_id": self.id,
            "call_id": call.call_id,
            "did": call.did,
            "caller": call.caller,
            "flow": record["flow"],
            "account": record["vars"].get("account"),
            "vars": record["vars"],
            "queue": call.queue,
            "agent": call.agent,
            "started_at": iso(self.wall_started),
            "answered_at": iso(call.answered_at),
            "bridged_at": iso(call.bridged_at),
            "ended_at": iso(call.ended_at) if ended else None,
            "end_reason": call.end_reason if ended else None,
            "duration_s": self.t(),
            "rate": self.writer.rate,
            "channels": {"left": "caller", "right": "other"},
            "wav": f"{self.id}.wav",
            "interrupted": False,
            "stopped": self.stopped,
            "pauses": [dict(p) for p in self.pauses],
            "dtmf": list(self.dtmf),
            "events": list(self.events),
            "timeline": list(self.timeline),
        }


class Recordings:
    """Every live recording of the process, the I/O thread and the finished index."""

    def __init__(self, cfg: RecordingConfig, data_dir: Path) -> None:
        self.cfg = cfg
        self.directory = Path(cfg.directory or Path(data_dir) / "recordings")
        self.active: dict[str, CallRecording] = {}  # by call id
        self.index: dict[str, dict[str, Any]] = {}  # finished, by recording id
        self.files = OpenFiles()  # used by the I/O thread only
        self._jobs: queue.SimpleQueue[list[Callable[[], Any]] | None] = queue.SimpleQueue()
        self._pending: list[Callable[[], Any]] = []  # for the I/O thread with the next batch
        self._batching = False  # True while a media clock's sub-ticks hand the jobs over
        self._io_thread: threading.Thread | None = None
        self._submitted = 0  # written by the event loop's thread only
        self._done = 0  # written by the I/O thread only
        self.stats = {"started": 0, "finished": 0, "recovered": 0, "io_errors": 0,
                      "dropped_packets": 0, "deleted": 0}
        self.consumer_factories: list[Callable[[CallRecording], AudioConsumer | None]] = []
        self._buckets: list[dict[CallRecording, None]] = [{} for _ in range(SLOTS)]
        # the recordings of each bucket that are also `live`: the slices between two
        # flushes look at these only (none, when every consumer waits for the flushes)
        self.live_buckets: list[dict[CallRecording, None]] = [{} for _ in range(SLOTS)]
        self._next_phase = 0
        self._next_retention = 0.0
        self.closing: dict[str, tuple[CallRecording, asyncio.TimerHandle, Any, str | None]] = {}

    # -- life cycle ------------------------------------------------------------------------

    async def start(self, clock: Any = None) -> None:
        """`clock`: the media clock whose sub-ticks drive placement and disk writes."""
        self.loop = asyncio.get_running_loop()
        self.directory.mkdir(parents=True, exist_ok=True)
        recovered = await self.loop.run_in_executor(None, self._recover)
        self.stats["recovered"] += len(recovered)
        self._io_thread = threading.Thread(target=self._io_worker, name="recorder-io",
                                           daemon=True)
        self._io_thread.start()
        for sidecar in await self.loop.run_in_executor(None, self._load_index):
            self.index[sidecar["recording_id"]] = _summary(sidecar)
        if clock is not None:
            clock.background.append(self.on_subtick)
            self._batching = True
        log.info("event=recordings_ready dir=%s finished=%d recovered=%d", self.directory,
                 len(self.index), len(recovered))

    async def stop(self) -> None:
        for rec in list(self.active.values()):
            self.end(rec.call)
        await asyncio.sleep(HOOK_GRACE if self.closing else 0)
        for rec, handle, job, ended in list(self.closing.values()):
            handle.cancel()
            self._write_final(rec, job, ended)
        self._batching = False
        self._hand_over()
        self._jobs.put(None)  # after everything queued so far
        if self._io_thread is not None:
            await self.loop.run_in_executor(None, self._io_thread.join, 30.0)

    # -- per call --------------------------------------------------------------------------

    def begin(self, call: Call, *, store: bool = True) -> CallRecording:
        """At answer (or at queue entry, for a queue that records when the DID did not).
        With ``store=False`` the call's audio only feeds analytics and media streams."""
        rec = self.active.get(call.call_id)
        if rec is not None:
            if store and not rec.store:  # a queue that records: from now on, to disk
                rec.store = rec.meta_dirty = True
                self._submit(partial(rec.writer.create, durable=False))
                self._start_storing(call, rec)
            return rec
        rec = CallRecording(self, call, new_id(time.time()), self.loop.time(), store)
        rec.phase = self._next_phase
        self._next_phase = (self._next_phase + 1) % SLOTS
        self._buckets[rec.phase][rec] = None
        self.active[call.call_id] = rec
        if store:
            self._submit(partial(rec.writer.create, durable=False))
            self._start_storing(call, rec)
        for factory in self.consumer_factories:
            try:
                consumer = factory(rec)
            except Exception:
                log.exception("event=recording_consumer_failed recording=%s", rec.id)
                consumer = None
            if consumer is not None:
                rec.add_consumer(consumer)
        if call.session is not None:
            rec.writer.attach(call.session)
        call.recording = rec
        rec.event("start", did=call.did, caller=call.caller)
        return rec

    def _start_storing(self, call: Call, rec: CallRecording) -> None:
        call.recording_id = rec.id
        self.stats["started"] += 1
        log.info("event=recording_start call=%s recording=%s", call.call_id, rec.id)

    def attach(self, call: Call, consumer: AudioConsumer) -> None:
        """A consumer that joins mid-call (a queue's media stream)."""
        rec = self.active.get(call.call_id) or self.begin(call, store=False)
        rec.add_consumer(consumer)

    def get(self, call_id: str) -> CallRecording | None:
        return self.active.get(call_id)

    def end(self, call: Call, stopped: str | None = None) -> str | None:
        """The call ended (or a queue that is not recorded took it): finish the WAV."""
        rec = self.active.pop(call.call_id, None)
        if rec is None:
            return None
        self._buckets[rec.phase].pop(rec, None)
        self.live_buckets[rec.phase].pop(rec, None)
        call.recording = None
        if call.session is not None:
            rec.writer.detach(call.session)
        rec.stopped = stopped
        rec.event("end", reason=call.end_reason or stopped)
        self._advance(rec, self.loop.time())
        for consumer in rec.consumers:
            try:
                consumer.close(rec.t())
            except Exception:
                log.exception("event=recording_consumer_failed recording=%s", rec.id)
        self.stats["dropped_packets"] += rec.writer.dropped
        if not rec.store:
            return None
        job = rec.writer.prepare_finish(self.loop.time())
        ended = iso(time.time())
        # analyzers emit their summaries when they hear "end": give them a moment to
        # land in the sidecar's timeline (events later than that are only logged)
        hooks = any(isinstance(c, HookConsumer) for c in rec.consumers)
        handle = self.loop.call_later(HOOK_GRACE if hooks else 0.0, self._write_final, rec, job,
                                      ended)
        self.closing[call.call_id] = (rec, handle, job, ended)
        log.info("event=recording_end call=%s recording=%s", call.call_id, rec.id)
        return rec.id

    def _write_final(self, rec: CallRecording, job: Any, ended: str | None) -> None:
        self.closing.pop(rec.call.call_id, None)
        sidecar = rec.sidecar(ended=rec.stopped is None)
        if rec.stopped is not None:
            sidecar["ended_at"] = ended
        directory = self.directory

        def finish() -> None:
            try:
                job.run(self.files)
                _write_json(directory / f"{rec.id}.json", sidecar)
                (directory / f"{rec.id}.meta.json").unlink(missing_ok=True)
            except Exception as exc:
                self.loop.call_soon_threadsafe(self._finished, rec, None, exc)
                raise
            self.loop.call_soon_threadsafe(self._finished, rec, sidecar, None)

        self._submit(finish)

    def _finished(self, rec: CallRecording, sidecar: dict[str, Any] | None,
                  error: Exception | None) -> None:
        if sidecar is None:
            log.error("event=recording_finish_failed recording=%s error=%r", rec.id, error)
            return
        self.index[rec.id] = _summary(sidecar)
        self.stats["finished"] += 1

    def recording_of(self, call_id: str) -> CallRecording | None:
        """The call's recording, live or finishing (within HOOK_GRACE of its end)."""
        rec = self.active.get(call_id)
        if rec is None:
            closing = self.closing.get(call_id)
            rec = closing[0] if closing is not None else None
        return rec

    def add_timeline(self, call_id: str, event: dict[str, Any]) -> None:
        rec = self.recording_of(call_id)
        if rec is not None:
            event.setdefault("t", rec.t())
            rec.timeline.append(event)
        else:
            log.info("event=analytics_after_end call=%s source=%s type=%s", call_id,
                     event.get("source"), event.get("type"))

    def save_meta(self, rec: CallRecording) -> None:
        """The meta sidecar is rewritten with the recording's next flush."""
        rec.meta_dirty = rec.store

    def _write_meta(self, rec: CallRecording) -> None:
        rec.meta_dirty = False
        sidecar = rec.sidecar(ended=False)
        path = self.directory / f"{rec.id}.meta.json"
        # Not fsynced: a crash of the process keeps it (the page cache survives), and
        # recovery copes without it; the final sidecar is fsynced.
        self._submit(lambda: _write_json(path, sidecar, durable=False))

    # -- slices after the media clock's sub-ticks ---------------------------------------------

    def on_subtick(self, subtick: int) -> None:
        slot = subtick % SLOTS
        now = self.loop.time()
        for rec in list(self._buckets[slot]):
            try:
                self._advance(rec, now)
                batch = rec.writer.take_io(now, durable=False)
                if rec.store:
                    self._submit(lambda b=batch: write_batch(b, self.files))  # type: ignore[misc]
                if rec.meta_dirty:
                    self._write_meta(rec)
            except Exception:  # keep recording the other calls
                log.exception("event=recording_flush_failed recording=%s", rec.id)
        for live in range(slot % LIVE, SLOTS, LIVE):
            bucket = self.live_buckets[live]
            if live == slot or not bucket:
                continue
            for rec in list(bucket):
                try:
                    self._advance(rec, now)
                except Exception:
                    log.exception("event=recording_advance_failed recording=%s", rec.id)
        if subtick % IO_EVERY == 0:
            self._hand_over()
        if slot == 0 and now >= self._next_retention:
            self._next_retention = now + RETENTION_CHECK
            self.apply_retention()

    def _advance(self, rec: CallRecording, now: float) -> None:
        """Audio older than the holdback becomes final: queued for the recording's next
        disk write, and handed to the call's consumers."""
        if not rec.consumers:
            rec.writer.advance(now)
            return
        legs = rec.writer.advance_legs(now)
        if not legs:
            return
        rate = rec.writer.rate
        self._deliver(rec, [(leg, first / rate, pcm) for leg, first, pcm in legs])

    def _deliver(self, rec: CallRecording, chunks: list[tuple[str, float, Any]]) -> None:
        """Newly final audio, ``(leg, t, pcm)`` per leg, to the call's consumers: the
        analytics hooks take each leg's stretch whole (each plugin gets it cut to its
        `chunk_s`), the others in chunks of about CHUNK seconds."""
        pieces: list[tuple[str, float, Any]] | None = None
        for consumer in rec.consumers:
            try:
                many = getattr(consumer, "audio_chunks", None)
                if many is not None:  # one hand-over for all of them (analytics hooks)
                    many(chunks)
                    continue
                if pieces is None:
                    pieces = split_chunks(chunks, CHUNK)
                for leg, t, piece in pieces:
                    consumer.audio(leg, t, piece)
            except Exception:
                log.exception("event=recording_consumer_failed recording=%s", rec.id)

    def _submit(self, job: Callable[[], Any]) -> None:
        """To the I/O thread, in order, with the next hand-over; no future, no wake-up of
        the event loop per job."""
        self._submitted += 1
        self._pending.append(job)
        if not self._batching:
            self._hand_over()

    def _hand_over(self) -> None:
        if self._pending:
            jobs, self._pending = self._pending, []
            self._jobs.put(jobs)

    def _io_worker(self) -> None:
        name_os_thread("sb-recorder-io")
        while True:
            jobs = self._jobs.get()
            if jobs is None:
                self.files.close()
                return
            for job in jobs:
                try:
                    job()
                except Exception as exc:
                    self.stats["io_errors"] += 1
                    log.error("event=recording_io_failed error=%r", exc)
                self._done += 1

    @property
    def io_backlog(self) -> int:
        return self._submitted - self._done

    # -- finished recordings -----------------------------------------------------------------

    def path(self, recording_id: str, kind: str) -> Path | None:
        if not valid_id(recording_id) or recording_id not in self.index:
            return None
        return self.directory / f"{recording_id}.{kind}"

    def sidecar(self, recording_id: str) -> dict[str, Any] | None:
        path = self.path(recording_id, "json")
        if path is None:
            return None
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data

    def delete(self, recording_id: str) -> bool:
        if self.path(recording_id, "wav") is None:
            return False
        self.index.pop(recording_id, None)
        for suffix in ("wav", "json"):
            (self.directory / f"{recording_id}.{suffix}").unlink(missing_ok=True)
        self.stats["deleted"] += 1
        log.info("event=recording_deleted recording=%s", recording_id)
        return True

    def apply_retention(self) -> int:
        days = self.cfg.retention_days
        if days <= 0:
            return 0
        cutoff = time.time() - days * 86400
        old = [rid for rid, summary in self.index.items()
               if summary.get("_ended", cutoff + 1) < cutoff]
        for rid in old:
            self.delete(rid)
        if old:
            log.info("event=recording_retention deleted=%d days=%g", len(old), days)
        return len(old)

    # -- start-up (I/O thread) ------------------------------------------------------------------

    def _recover(self) -> list[Path]:
        wavs = recover(self.directory)
        for wav in wavs:
            rid = wav.name[: -len(".wav")]
            meta_path = self.directory / f"{rid}.meta.json"
            try:
                sidecar = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                sidecar = {"recording_id": rid, "timeline": [], "events": [], "dtmf": [],
                           "pauses": []}
            try:
                rate, frames = read_wav(wav)
                duration = round(len(frames) / rate, 3)
            except (OSError, ValueError):
                duration = 0.0
            sidecar.update(recording_id=rid, interrupted=True, duration_s=duration,
                           wav=wav.name, end_reason="interrupted")
            sidecar.setdefault("ended_at", None)
            if not sidecar.get("ended_at"):
                sidecar["ended_at"] = iso(wav.stat().st_mtime)
            for pause in sidecar.get("pauses", []):
                if pause.get("end") is None:
                    pause["end"] = duration
            _write_json(self.directory / f"{rid}.json", sidecar)
            meta_path.unlink(missing_ok=True)
            log.warning("event=recording_interrupted recording=%s duration=%.1f", rid, duration)
        for meta in self.directory.glob("*.meta.json"):  # a crash before any audio
            rid = meta.name[: -len(".meta.json")]
            if not (self.directory / f"{rid}{PART_SUFFIX}").exists():
                meta.unlink(missing_ok=True)
        return wavs

    def _load_index(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.directory.glob("*.json")):
            if path.name.endswith(".meta.json") or not valid_id(path.stem):
                continue
            try:
                sidecar = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                log.warning("event=recording_sidecar_unreadable file=%s", path.name)
                continue
            if isinstance(sidecar, dict) and (self.directory / f"{path.stem}.wav").exists():
                sidecar["recording_id"] = path.stem
                out.append(sidecar)
        return out


SUMMARY_FIELDS = ("recording_id", "call_id", "did", "caller", "account", "flow", "queue",
                  "agent", "started_at", "ended_at", "duration_s", "interrupted", "end_reason")


def _summary(sidecar: dict[str, Any]) -> dict[str, Any]:
    from datetime import datetime

    summary = {key: sidecar.get(key) for key in SUMMARY_FIELDS}
    summary["id"] = summary["recording_id"]
    ended = sidecar.get("ended_at") or sidecar.get("started_at")
    try:
        summary["_ended"] = datetime.fromisoformat(str(ended)).timestamp()
    except ValueError:
        summary["_ended"] = time.time()
    return summary


"""Crash-safe per-call recording: RTP payloads in, one stereo WAV out.

A call's recording lives in ``<id>.part/`` until it is finished:

- ``audio.wav``: the stereo WAV itself, written in place while the call is up. It starts
  as a 44-byte header; each flush writes (``pwrite``) the newly final frames, caller and
  other interleaved, at their offset, so there is one write per flush and nothing to
  rebuild at the end: `FinishJob` pads it to the call length, writes the real header,
  fsyncs and renames it to ``<id>.wav``. Bytes left by a failed or torn write are
  overwritten by the next flush (it writes at the offset the journal vouches for) or
  cut off by recovery.
- ``journal.jsonl``: append-only JSON lines. The first is the header (id, rate,
  started, ``"layout": "wav"``); each flush appends ``{"t": "flush", "now": ...,
  "samples": [frames, frames]}`` after the audio it counts was written. The journal is
  the only thing recovery trusts: a crash between an audio write and its journal line
  loses that batch instead of producing audio nobody vouched for.

Recordings started by an older version keep raw per-leg segments (``caller.pcm`` /
``other.pcm``) instead of ``audio.wav``; `recover` still turns those into a WAV.

Placement on the call's timeline is `recorder.timeline`'s (in C when compiled: on the
native plane the media thread places every packet itself, see `RecordingWriter.attach`);
``advance`` takes the frames that became final, ``take_io`` turns them into one
`WriteBatch`, and the I/O runs off the event loop. The newest ``HOLDBACK_SECONDS`` of
placed audio stay in memory so that a packet reordered across a flush boundary still
finds its slot.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from recorder.timeline import (
    HOLDBACK_SECONDS,
    MAX_SKEW_SECONDS,
    PyTimeline,
    Tap,
    new_timeline,
    tap_for,
)
from recorder.wavfile import read_wav, wav_header, write_stereo_wav_chunks

__all__ = ["LEFT", "RIGHT", "FinishJob", "OpenFiles", "RecordingWriter", "WriteBatch", "recover",
           "write_batch"]

log = logging.getLogger("switchboard.recorder")

LEFT, RIGHT = "caller", "other"

JOURNAL = "journal.jsonl"
AUDIO = "audio.wav"  # the WAV being written in place, inside the .part directory
WAV_HEADER = 44
FRAME_BYTES = 4  # stereo PCM16
PART_SUFFIX = ".part"
_BLOCK = 8000 * 30  # samples per leg read at once when building a WAV

Int16Array = npt.NDArray[np.int16]


def _segment_path(part: Path, leg: str) -> Path:
    return part / f"{leg}.pcm"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still done
    finally:
        os.close(fd)


def _append_journal(part: Path, record: dict[str, Any], durable: bool = True) -> None:
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    with open(part / JOURNAL, "ab") as journal:
        journal.write(line)
        journal.flush()
        if durable:
            os.fsync(journal.fileno())


@dataclass
class WriteBatch:
    """Interleaved frames for the in-place WAV plus the journal line that vouches for
    them (no writer state)."""

    part: Path
    offset: int  # first frame of `data`
    data: bytes  # interleaved little-endian int16 frames, caller then other
    record: dict[str, Any]
    durable: bool  # fsync; without it the data still survives a crash of the process


class OpenFiles:
    """File descriptors kept open between batches, for the one thread that writes: a
    batch is then one ``pwrite`` and one journal ``write``, instead of opening, seeking
    and closing files every flush of every call. Kept per recording directory."""

    def __init__(self) -> None:
        self._fds: dict[Path, dict[str, int]] = {}

    def fd(self, part: Path, name: str, append: bool = False) -> int:
        files = self._fds.get(part)
        if files is None:
            files = self._fds[part] = {}
        fd = files.get(name)
        if fd is None:
            flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else 0)
            fd = files[name] = os.open(part / name, flags, 0o640)
        return fd

    def close_under(self, part: Path) -> None:
        for fd in self._fds.pop(part, {}).values():
            os.close(fd)

    def close(self) -> None:
        for part in list(self._fds):
            self.close_under(part)

    def __len__(self) -> int:
        return sum(len(files) for files in self._fds.values())


def write_batch(batch: WriteBatch, files: OpenFiles | None = None) -> None:
    """Audio first, then the journal line: the journal never vouches for audio that is
    not in the file yet."""
    if files is None:  # one batch on its own: open, write, close
        files = OpenFiles()
        try:
            write_batch(batch, files)
        finally:
            files.close()
        return
    if batch.data:
        audio = files.fd(batch.part, AUDIO)
        os.pwrite(audio, batch.data, WAV_HEADER + batch.offset * FRAME_BYTES)
        if batch.durable:
            os.fdatasync(audio)
    journal = files.fd(batch.part, JOURNAL, append=True)
    os.write(journal, (json.dumps(batch.record, separators=(",", ":")) + "\n").encode())
    if batch.durable:
        os.fdatasync(journal)


def _seal(fd: int, vouched: int, frames: int, rate: int) -> None:
    """Make an in-place WAV final: cut what nobody vouched for, pad with silence to
    `frames` (a sparse extension reads as zeros), write the real header, fsync."""
    os.ftruncate(fd, WAV_HEADER + vouched * FRAME_BYTES)
    if frames > vouched:
        os.ftruncate(fd, WAV_HEADER + frames * FRAME_BYTES)
    os.pwrite(fd, wav_header(frames, 2, rate), 0)
    os.fsync(fd)


@dataclass
class FinishJob:
    """The I/O half of `RecordingWriter.finish`: the last frames, the header, the rename."""

    batch: WriteBatch
    part: Path
    path: Path
    rate: int
    frames: int

    def run(self, files: OpenFiles | None = None) -> Path:
        own = files is None
        opened = OpenFiles() if files is None else files
        try:
            write_batch(self.batch, opened)
            written = self.batch.offset + len(self.batch.data) // FRAME_BYTES
            _seal(opened.fd(self.part, AUDIO), written, max(self.frames, written), self.rate)
        finally:
            if own:
                opened.close()
            else:
                opened.close_under(self.part)
        os.replace(self.part / AUDIO, self.path)
        try:  # what a recording leaves in its .part directory: the journal
            (self.part / JOURNAL).unlink(missing_ok=True)
            self.part.rmdir()
        except OSError:  # anything else in it (an older layout's segments)
            shutil.rmtree(self.part, ignore_errors=True)
        _fsync_dir(self.path.parent)
        return self.path


class RecordingWriter:
    """Turns one call's RTP payloads into ``<directory>/<recording_id>.wav``.

    Left channel: the caller; right: everything else (IVR prompts, then the agent). The
    placement is the call's `Timeline` (`core`); this class adds the files around it.
    Time is passed in as `now` (monotonic seconds, same clock as `started`).
    """

    def __init__(
        self,
        directory: Path,
        recording_id: str,
        *,
        started: float,
        rate: int = 8000,
        create: bool = True,
        clock: Callable[[], float] | None = None,
        native: bool | None = None,
    ) -> None:
        """With ``create=False`` nothing touches the disk yet: call `create` (from the
        same worker that later runs this writer's batches) before the first batch.
        `native`: the C timeline (default: whenever it is compiled)."""
        if not recording_id or "/" in recording_id or recording_id.startswith("."):
            raise ValueError(f"bad recording id {recording_id!r}")
        if rate <= 0:
            raise ValueError(f"bad sample rate {rate}")
        self.directory = Path(directory)
        self.recording_id = recording_id
        self.started = started
        self.rate = rate
        self.clock = clock
        self.core = new_timeline(started, rate, native=native)
        self.part = self.directory / f"{recording_id}{PART_SUFFIX}"
        self.path = self.directory / f"{recording_id}.wav"
        self._finished = False
        self._bad_leg = 0  # packets for a leg that is not LEFT or RIGHT
        self._ready: list[bytes] = []  # final frames not yet handed to the I/O side
        self._on_disk = 0  # frames handed to the I/O side
        if create:
            self.create()

    def create(self, durable: bool = True) -> None:
        """The ``.part`` directory, the WAV's provisional header and the journal header
        (I/O); fsynced, with the directory entry, unless `durable` is false (the server's
        live recordings: a crash of the process keeps them, see switchboard.recording)."""
        self.part.mkdir(parents=True)
        fd = os.open(self.part / AUDIO, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            os.write(fd, wav_header(0, 2, self.rate))
        finally:
            os.close(fd)
        header = {"t": "header", "v": 2, "layout": "wav", "id": self.recording_id,
                  "rate": self.rate, "started": self.started}
        _append_journal(self.part, header, durable)
        if durable:
            _fsync_dir(self.directory)

    @property
    def dropped(self) -> int:
        """Packets refused: late, duplicate, off the timeline, bad leg or codec."""
        return int(self.core.dropped) + self._bad_leg

    # -- packets in ---------------------------------------------------------------------

    def add(self, leg: str, payload: bytes, codec: str, rtp_ts: int, ssrc: int, now: float) -> None:
        """Place one RTP payload (no I/O, no logging)."""
        channel = _CHANNEL.get(leg)
        if channel is None:
            self._bad_leg += 1
        else:
            self.core.feed(channel, payload, codec, rtp_ts, ssrc, now)

    def tap(self, leg: str) -> Tap:
        """The per-packet entry for one leg, ``(payload, codec, rtp_ts, ssrc)``; arrival
        times come from the writer's `clock`."""
        if self.clock is None:
            raise ValueError("a tap needs the writer's clock")
        return tap_for(self.core, _CHANNEL[leg], self.clock)

    def attach(self, session: Any) -> None:
        """Record what `session` (the caller's leg) hears and sends: the native plane places
        its packets on the C timeline in the media thread, any other session taps them."""
        record = getattr(session, "record", None)
        if record is not None and not isinstance(self.core, PyTimeline):
            record(self.core)
        else:
            session.tap_in, session.tap_out = self.tap(LEFT), self.tap(RIGHT)

    @staticmethod
    def detach(session: Any) -> None:
        record = getattr(session, "record", None)
        if record is not None:
            record(None)
        else:
            session.tap_in = session.tap_out = None

    # -- PCI pause ------------------------------------------------------------------

    def pause(self, now: float) -> None:
        """Stop recording audio; the span until `resume` becomes silence."""
        self.core.pause(now)

    def resume(self, now: float) -> None:
        self.core.resume(now)

    # -- batches off the packet path --------------------------------------------------

    @property
    def samples(self) -> tuple[int, int]:
        """Samples per leg that are final (handed to `take_io`, on disk or about to be)."""
        written = int(self.core.written)
        return written, written

    def flush(self, now: float) -> None:
        """Place and durably append what came since the last flush."""
        if self._finished:
            raise RuntimeError(f"recording {self.recording_id} is already finished")
        self.advance(now)
        write_batch(self.take_io(now, durable=True))

    def finish(self, now: float) -> Path:
        """Flush everything, pad to the call length, write the WAV atomically."""
        if self._finished:
            return self.path
        self.prepare_finish(now).run()
        return self.path

    def prepare_finish(self, now: float) -> FinishJob:
        """The event-loop half of `finish`: place the last packets. The returned job does
        the I/O (journal, WAV) and may run in a worker thread."""
        if self._finished:
            raise RuntimeError(f"recording {self.recording_id} is already finished")
        self.core.close()
        self.advance(now, final=True)
        batch = self.take_io(now, durable=False)  # the seal fsyncs
        frames = max(self.core.position(now), *self.samples)
        self._finished = True
        return FinishJob(batch, self.part, self.path, self.rate, frames)

    def advance(self, now: float, *, final: bool = False) -> tuple[int, bytes]:
        """Audio older than the holdback becomes final (all of it with `final`). Returns the
        newly final audio, ``(first frame, interleaved frames)`` with paused spans already
        silenced (`advance_legs` adds each leg, for live analytics). No I/O: runs on the
        event loop."""
        start, data = self.core.take(now, final)
        if data:
            self._ready.append(data)
        return start, data

    def advance_legs(self, now: float, *, final: bool = False
                     ) -> list[tuple[str, int, Int16Array]]:
        """`advance` for a call with live consumers: the newly final audio as ``(leg,
        first_sample, pcm)`` per leg (read-only arrays over memory of their own; none when
        nothing became final), each leg decoded in the same pass as the disk's frames."""
        start, data, left, right = self.core.take_legs(now, final)
        if not data:
            return []
        self._ready.append(data)
        return [(LEFT, start, np.frombuffer(left, dtype="<i2")),
                (RIGHT, start, np.frombuffer(right, dtype="<i2"))]

    def take_io(self, now: float, *, durable: bool) -> WriteBatch:
        """The disk write for audio made final since the last call, both legs interleaved;
        `write_batch` runs it (in a worker thread if the caller likes: the batch shares
        no state)."""
        data = self._ready[0] if len(self._ready) == 1 else b"".join(self._ready)
        self._ready = []
        offset = self._on_disk
        self._on_disk += len(data) // FRAME_BYTES
        record = {"t": "flush", "now": now, "samples": [self._on_disk, self._on_disk]}
        return WriteBatch(self.part, offset, data, record, durable)


_CHANNEL = {LEFT: 0, RIGHT: 1}


# -- building WAVs from raw segments (recordings begun by an older version) --------------------------------------------------------


def _read_blocks(path: Path, count: int) -> Generator[Int16Array, None, None]:
    """`count` samples from a raw segment in blocks; zeros where the file is short."""
    handle: BinaryIO | None
    try:
        handle = open(path, "rb")
    except OSError:
        handle = None
    try:
        done = 0
        while done < count:
            n = min(_BLOCK, count - done)
            raw = handle.read(n * 2) if handle is not None else b""
            block = np.zeros(n, dtype=np.int16)
            got = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2")
            block[: len(got)] = got
            done += n
            yield block
    finally:
        if handle is not None:
            handle.close()


def _build_wav(part: Path, final: Path, rate: int, frames: int, counts: tuple[int, int]) -> None:
    """Write `final` atomically: a temp file inside the .part directory, fsync, rename."""
    tmp = part / f"{final.name}.tmp"
    left = _read_blocks(_segment_path(part, LEFT), counts[0])
    right = _read_blocks(_segment_path(part, RIGHT), counts[1])
    empty = np.zeros(0, dtype=np.int16)

    def pairs() -> Iterator[tuple[Int16Array, Int16Array]]:
        while True:
            a, b = next(left, empty), next(right, empty)
            if not len(a) and not len(b):
                return
            yield a, b

    try:
        with open(tmp, "wb") as out:
            write_stereo_wav_chunks(out, frames, pairs(), rate)
            out.flush()
            os.fsync(out.fileno())
    finally:
        left.close()
        right.close()
    os.replace(tmp, final)
    _fsync_dir(final.parent)


# -- crash recovery ---------------------------------------------------------------------


@dataclass
class _JournalState:
    rate: int = 8000
    started: float | None = None
    samples: tuple[int, int] = (0, 0)
    last_now: float | None = None
    problems: list[str] = field(default_factory=list)


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise ValueError(f"bad sample count {value!r}")
    return value


def _read_journal(part: Path) -> _JournalState:
    """What the journal vouches for; a torn last line or a garbled line is skipped."""
    state = _JournalState()
    try:
        data = (part / JOURNAL).read_bytes()
    except OSError as exc:
        state.problems.append(f"journal unreadable: {exc.__class__.__name__}")
        return state
    lines = data.split(b"\n")
    if lines[-1]:
        state.problems.append("torn last journal line")
    for number, line in enumerate(lines[:-1], 1):
        try:
            record = json.loads(line)
            _apply_record(state, record, first=number == 1)
        except Exception:  # any garbage, including absurdly nested JSON, is just a bad line
            state.problems.append(f"bad journal line {number}")
    return state


def _apply_record(state: _JournalState, record: dict[str, Any], *, first: bool) -> None:
    kind = record["t"]
    if kind == "header" and first:
        rate = record["rate"]
        if isinstance(rate, int) and not isinstance(rate, bool) and 0 < rate <= 384000:
            state.rate = rate
        started = record["started"]
        if isinstance(started, int | float) and not isinstance(started, bool):
            state.started = float(started)
    elif kind == "flush":
        left, right = record["samples"]
        state.samples = (_count(left), _count(right))
        now = record.get("now")
        if isinstance(now, int | float) and not isinstance(now, bool):
            state.last_now = float(now)


def _segment_samples(part: Path, leg: str) -> int:
    try:
        return _segment_path(part, leg).stat().st_size // 2
    except OSError:
        return 0


def _vouched_samples(part: Path, journal: _JournalState) -> tuple[int, int]:
    """Journal counts, but never more than the segment holds: a lying journal must not
    turn into hours of made-up silence."""
    left, right = journal.samples
    counts = (min(left, _segment_samples(part, LEFT)), min(right, _segment_samples(part, RIGHT)))
    if counts != journal.samples:
        journal.problems.append(f"segments shorter than journal {journal.samples} -> {counts}")
    return counts


def _call_frames(journal: _JournalState, counts: tuple[int, int]) -> int:
    """Pad to the call length the last flush saw, within the holdback and skew margins."""
    frames = max(counts)
    if journal.started is not None and journal.last_now is not None:
        call = round((journal.last_now - journal.started) * journal.rate)
        margin = round((HOLDBACK_SECONDS + MAX_SKEW_SECONDS) * journal.rate)
        if frames < call <= frames + margin:
            frames = call
    return frames


def _recover_in_place(part: Path, final: Path, journal: _JournalState) -> None:
    """An ``audio.wav`` written in place: keep what the journal vouches for (never more
    than the file holds), pad to the call length, fix the header, rename."""
    audio = part / AUDIO
    fd = os.open(audio, os.O_RDWR)
    try:
        held = max(os.fstat(fd).st_size - WAV_HEADER, 0) // FRAME_BYTES
        vouched = min(*journal.samples, held)
        if (vouched, vouched) != journal.samples:
            journal.problems.append(f"audio shorter than journal {journal.samples} -> {vouched}")
        _seal(fd, vouched, _call_frames(journal, (vouched, vouched)), journal.rate)
    finally:
        os.close(fd)
    os.replace(audio, final)
    _fsync_dir(final.parent)


def _recover_one(part: Path) -> Path:
    final = part.parent / f"{part.name[: -len(PART_SUFFIX)]}.wav"
    if final.exists():
        try:
            read_wav(final)
        except (OSError, ValueError):
            pass  # torn or foreign file: rebuild it from the part
        else:
            return final  # finish() renamed it but died before removing the .part
    journal = _read_journal(part)
    try:
        if (part / AUDIO).exists():
            _recover_in_place(part, final, journal)
        else:  # raw segments per leg, from before the WAV was written in place
            counts = _vouched_samples(part, journal)
            _build_wav(part, final, journal.rate, _call_frames(journal, counts), counts)
    except Exception as exc:  # a hopeless .part still becomes a valid (empty) WAV
        journal.problems.append(f"audio unreadable: {exc.__class__.__name__}")
        _build_wav(part, final, journal.rate, 0, (0, 0))
    if journal.problems:
        log.warning(
            "event=recording_recovered_with_problems part=%s problems=%s",
            part.name,
            ";".join(journal.problems),
        )
    return final


def recover(directory: Path) -> list[Path]:
    """Complete every ``<id>.part`` left by a crash into ``<id>.wav``; never raises."""
    recovered: list[Path] = []
    try:
        parts = sorted(p for p in Path(directory).iterdir() if p.name.endswith(PART_SUFFIX))
    except OSError as exc:
        log.error(
            "event=recording_recovery_failed dir=%s error=%s", directory, exc.__class__.__name__
        )
        return recovered
    for part in parts:
        try:
            if not part.is_dir() or part.name == PART_SUFFIX:
                continue
            final = _recover_one(part)
        except Exception as exc:  # one bad .part must not stop the others or the server
            log.error(
                "event=recording_recovery_failed part=%s error=%s",
                part.name,
                exc.__class__.__name__,
            )
            continue
        shutil.rmtree(part, ignore_errors=True)
        log.info("event=recording_recovered part=%s wav=%s", part.name, final.name)
        recovered.append(final)
    return recovered

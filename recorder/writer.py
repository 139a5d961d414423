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

``add`` (or a leg's `tap`) runs for every RTP packet and only appends to that leg's
intake (contiguous payload joins one bytearray); placement, decoding and I/O happen in
``advance``/``take_io`` off the packet path. The newest ``HOLDBACK_SECONDS`` of placed
audio stay in memory so that a packet reordered across a flush boundary still finds
its slot.
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

from media import g711
from media.session import Tap
from recorder.wavfile import read_wav, wav_header, write_stereo_wav_chunks

__all__ = ["LEFT", "RIGHT", "FinishJob", "OpenFiles", "RecordingWriter", "WriteBatch", "recover",
           "write_batch"]

log = logging.getLogger("switchboard.recorder")

LEFT, RIGHT = "caller", "other"
LEGS = (LEFT, RIGHT)

G711 = ("PCMU", "PCMA")
JOURNAL = "journal.jsonl"
AUDIO = "audio.wav"  # the WAV being written in place, inside the .part directory
WAV_HEADER = 44
FRAME_BYTES = 4  # stereo PCM16
PART_SUFFIX = ".part"
HOLDBACK_SECONDS = 0.2
# A stream whose RTP timestamps drift this far from arrival time has jumped (a
# device reset its clock without changing SSRC): re-anchor instead of leaving a
# huge gap or dropping the rest of the call as "late".
MAX_SKEW_SECONDS = 2.0
_BLOCK = 8000 * 30  # samples per leg read at once when building a WAV

Int16Array = npt.NDArray[np.int16]
_EMPTY: Int16Array = np.zeros(0, dtype=np.int16)


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
    and closing files every flush of every call."""

    def __init__(self) -> None:
        self._fds: dict[Path, int] = {}

    def fd(self, path: Path, append: bool = False) -> int:
        fd = self._fds.get(path)
        if fd is None:
            flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else 0)
            fd = self._fds[path] = os.open(path, flags, 0o640)
        return fd

    def close_under(self, part: Path) -> None:
        for path in [p for p in self._fds if p.parent == part]:
            os.close(self._fds.pop(path))

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __len__(self) -> int:
        return len(self._fds)


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
        audio = files.fd(batch.part / AUDIO)
        os.pwrite(audio, batch.data, WAV_HEADER + batch.offset * FRAME_BYTES)
        if batch.durable:
            os.fdatasync(audio)
    journal = files.fd(batch.part / JOURNAL, append=True)
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
            _seal(opened.fd(self.part / AUDIO), written, max(self.frames, written), self.rate)
        finally:
            if own:
                opened.close()
            else:
                opened.close_under(self.part)
        os.replace(self.part / AUDIO, self.path)
        shutil.rmtree(self.part, ignore_errors=True)
        _fsync_dir(self.path.parent)
        return self.path


@dataclass
class _Stream:
    """Where one (leg, SSRC) stream sits on the call timeline."""

    ssrc: int
    anchor_pos: int
    anchor_ts: int  # unwrapped RTP timestamp of the anchor packet
    last_ts: int  # raw 32-bit timestamp of the newest packet
    last_unwrapped: int
    suspect: tuple[int, int] | None = None  # (ts, arrival) of a packet far off its slot


@dataclass
class _Leg:
    """One channel: `written` samples are on disk, `tail` is placed but not yet written.

    `filled` marks the samples of `tail` some packet has set; None means all of them, the
    usual case of a stream that arrives in order, where placing a run is one append."""

    written: int = 0
    tail: Int16Array = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    filled: npt.NDArray[np.bool_] | None = None
    stream: _Stream | None = None

    @property
    def end(self) -> int:
        return self.written + len(self.tail)

    def _holes(self) -> npt.NDArray[np.bool_]:
        if self.filled is None:
            self.filled = np.ones(len(self.tail), dtype=bool)
        return self.filled

    def grow(self, end: int) -> None:
        extra = end - self.end
        if extra > 0:
            filled = self._holes()
            self.tail = np.concatenate([self.tail, np.zeros(extra, dtype=np.int16)])
            self.filled = np.concatenate([filled, np.zeros(extra, dtype=bool)])

    def place(self, pos: int, pcm: Int16Array) -> None:
        """First packet wins: a duplicate never overwrites audio already placed."""
        if pos == self.end and self.filled is None:
            self.tail = np.concatenate([self.tail, pcm]) if len(self.tail) else pcm
            return
        self.grow(pos + len(pcm))
        filled = self._holes()
        start = pos - self.written
        stop = start + len(pcm)
        free = ~filled[start:stop]
        self.tail[start:stop][free] = pcm[free]
        filled[start:stop] = True

    def silence(self, start: int, stop: int | None) -> None:
        lo = max(start - self.written, 0)
        hi = len(self.tail) if stop is None else min(stop - self.written, len(self.tail))
        if hi > lo:
            self.tail[lo:hi] = 0
            self._holes()[lo:hi] = True

    def commit(self, n: int) -> Int16Array:
        """The first `n` samples of the tail, now final (an array of their own)."""
        chunk = self.tail[:n].copy()
        self.written += n
        self.tail = self.tail[n:]  # a view: nothing outside this leg shares its memory
        if self.filled is not None:
            self.filled = self.filled[n:]
            if self.filled.all():
                self.filled = None
        return chunk


class _Intake:
    """One leg's packets as they arrive: runs of contiguous payload (the same stream, each
    packet's timestamp where the previous one ended) appended to one bytearray. The next
    packet of a run costs two comparisons and an append; only a run's first packet asks
    the clock for its arrival time, which places the run when no earlier audio of its
    stream does."""

    __slots__ = ("runs", "buf", "next_ts", "ssrc", "codec", "accepting", "clock")

    def __init__(self, clock: Callable[[], float] | None) -> None:
        self.runs: list[tuple[int, int, str, float, bytearray]] = []
        self.buf: bytearray | None = None
        self.next_ts = -1
        self.ssrc = -1
        self.codec = ""
        self.accepting = True
        self.clock = clock

    def feed(self, payload: bytes, codec: str, ts: int, ssrc: int, now: float | None = None, /
             ) -> None:
        """The session's tap (hot path): the run's arrival time is `now` when the caller
        knows it (the native engine hands over whole runs), else the clock's."""
        if ts == self.next_ts and ssrc == self.ssrc and codec == self.codec:
            self.buf += payload  # type: ignore[operator]  # a buffer whenever next_ts >= 0
            self.next_ts = (ts + len(payload)) & 0xFFFFFFFF
        elif self.accepting and self.clock is not None:
            self.add(payload, codec, ts, ssrc, self.clock() if now is None else now)

    def add(self, payload: bytes, codec: str, ts: int, ssrc: int, now: float) -> None:
        if not self.accepting:
            return
        ts &= 0xFFFFFFFF
        if ts == self.next_ts and ssrc == self.ssrc and codec == self.codec:
            self.buf += payload  # type: ignore[operator]
        else:
            self.buf = bytearray(payload)
            self.runs.append((ts, ssrc, codec, now, self.buf))
            self.ssrc, self.codec = ssrc, codec
        self.next_ts = (ts + len(payload)) & 0xFFFFFFFF

    def stop(self) -> None:
        """Close the open run: the next packet starts a new one (or is refused)."""
        self.buf, self.next_ts = None, -1

    def take(self) -> list[tuple[int, int, str, float, bytearray]]:
        runs, self.runs = self.runs, []
        self.stop()
        return runs


class RecordingWriter:
    """Turns one call's RTP payloads into ``<directory>/<recording_id>.wav``.

    Left channel: the caller; right: everything else (IVR prompts, then the agent).
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
    ) -> None:
        """With ``create=False`` nothing touches the disk yet: call `create` (from the
        same worker that later runs this writer's batches) before the first batch."""
        if not recording_id or "/" in recording_id or recording_id.startswith("."):
            raise ValueError(f"bad recording id {recording_id!r}")
        if rate <= 0:
            raise ValueError(f"bad sample rate {rate}")
        self.directory = Path(directory)
        self.recording_id = recording_id
        self.started = started
        self.rate = rate
        self.dropped = 0  # packets refused at flush: late, duplicate, bad leg or codec
        self.part = self.directory / f"{recording_id}{PART_SUFFIX}"
        self.path = self.directory / f"{recording_id}.wav"
        self._intake = {leg: _Intake(clock) for leg in LEGS}
        self._accepting = True
        self._paused = False
        self._finished = False
        self._pauses: list[tuple[int, int | None]] = []
        self._legs = {leg: _Leg() for leg in LEGS}
        self._ready: dict[str, list[Int16Array]] = {leg: [] for leg in LEGS}
        self._on_disk = 0  # frames handed to the I/O side
        if create:
            self.create()

    def create(self) -> None:
        """The ``.part`` directory, the WAV's provisional header and the journal header
        (I/O)."""
        self.part.mkdir(parents=True)
        fd = os.open(self.part / AUDIO, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            os.write(fd, wav_header(0, 2, self.rate))
        finally:
            os.close(fd)
        header = {"t": "header", "v": 2, "layout": "wav", "id": self.recording_id,
                  "rate": self.rate, "started": self.started}
        _append_journal(self.part, header)
        _fsync_dir(self.directory)

    # -- hot path -------------------------------------------------------------------

    def add(self, leg: str, payload: bytes, codec: str, rtp_ts: int, ssrc: int, now: float) -> None:
        """Buffer one RTP payload. Called per packet: no decoding, no I/O, no logging."""
        intake = self._intake.get(leg)
        if intake is None or not payload:
            self.dropped += 1
        else:
            intake.add(payload, codec, rtp_ts, ssrc, now)

    def tap(self, leg: str) -> Tap:
        """The per-packet entry for one leg, ``(payload, codec, rtp_ts, ssrc)``; arrival
        times come from the writer's `clock`."""
        if self._intake[leg].clock is None:
            raise ValueError("a tap needs the writer's clock")
        return self._intake[leg].feed

    def _set_accepting(self, accepting: bool) -> None:
        self._accepting = accepting
        for intake in self._intake.values():
            intake.accepting = accepting
            intake.stop()

    # -- PCI pause ------------------------------------------------------------------

    def pause(self, now: float) -> None:
        """Stop recording audio; the span until `resume` becomes silence."""
        if self._finished or self._paused:
            return
        self._paused = True
        self._set_accepting(False)
        self._pauses.append((self._pos(now), None))

    def resume(self, now: float) -> None:
        if self._finished or not self._paused:
            return
        start, _ = self._pauses[-1]
        self._pauses[-1] = (start, max(start, self._pos(now)))
        self._paused = False
        self._set_accepting(True)

    # -- batches off the packet path --------------------------------------------------

    @property
    def samples(self) -> tuple[int, int]:
        """Samples per leg that are final (handed to `take_io`, on disk or about to be)."""
        return self._legs[LEFT].written, self._legs[RIGHT].written

    def flush(self, now: float) -> None:
        """Place, decode and durably append what `add` buffered since the last flush."""
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
        the I/O (segments, journal, WAV) and may run in a worker thread."""
        if self._finished:
            raise RuntimeError(f"recording {self.recording_id} is already finished")
        self._set_accepting(False)
        self.advance(now, final=True)
        batch = self.take_io(now, durable=False, final=True)  # the seal fsyncs
        frames = max(self._pos(now), *self.samples)
        self._finished = True
        return FinishJob(batch, self.part, self.path, self.rate, frames)

    def advance(self, now: float, *, final: bool = False) -> list[tuple[str, int, Int16Array]]:
        """Decode and place what `add` buffered; audio older than the holdback becomes
        final. Returns the newly final audio as ``(leg, first_sample, pcm)`` (paused spans
        already silenced) for live analytics. No I/O: runs on the event loop."""
        limit = max(self._pos(now) - round(HOLDBACK_SECONDS * self.rate), 0)
        for leg in LEGS:
            state = self._legs[leg]
            for pos, pcm in self._runs(leg, self._intake[leg].take()):
                state.place(pos, pcm)  # in arrival order: the first packet wins
            if not final:
                state.grow(limit)  # nothing came for the audio before the limit: silence
        for start, stop in self._pauses:
            for state in self._legs.values():
                state.silence(start, stop)
        out: list[tuple[str, int, Int16Array]] = []
        for leg in LEGS:
            state = self._legs[leg]
            n = self._commit_len(state, limit, final)
            if n:
                start = state.written
                chunk = state.commit(n)
                out.append((leg, start, chunk))
                self._ready[leg].append(chunk)
        self._pauses = [(a, b) for a, b in self._pauses if b is None or b > self._written_min()]
        return out

    def take_io(self, now: float, *, durable: bool, final: bool = False) -> WriteBatch:
        """The disk write for audio made final since the last call, both legs interleaved;
        `write_batch` runs it (in a worker thread if the caller likes: the batch shares
        no state). Frames one leg has and the other not yet wait for the next batch,
        except with `final`, where the shorter leg is padded with silence."""
        pcm = {}
        for leg in LEGS:
            ready = self._ready[leg]
            pcm[leg] = (ready[0] if len(ready) == 1 else np.concatenate(ready)) if ready else _EMPTY
        left, right = pcm[LEFT], pcm[RIGHT]
        n = max(len(left), len(right)) if final else min(len(left), len(right))
        if n == len(left) == len(right):
            frames = np.empty((n, 2), dtype="<i2")
        else:
            frames = np.zeros((n, 2), dtype="<i2")
        frames[: min(n, len(left)), 0] = left[:n]
        frames[: min(n, len(right)), 1] = right[:n]
        for leg in LEGS:
            rest = pcm[leg][n:]
            self._ready[leg] = [rest] if len(rest) else []
        offset = self._on_disk
        self._on_disk += n
        record = {"t": "flush", "now": now, "samples": [self._on_disk, self._on_disk]}
        return WriteBatch(self.part, offset, frames.tobytes(), record, durable)

    def _written_min(self) -> int:
        return min(state.written for state in self._legs.values())

    @staticmethod
    def _commit_len(state: _Leg, limit: int, final: bool) -> int:
        if final:
            return len(state.tail)
        return max(min(state.end, limit) - state.written, 0)

    def _pos(self, now: float) -> int:
        return max(round((now - self.started) * self.rate), 0)

    def _runs(self, leg: str, runs: list[tuple[int, int, str, float, bytearray]]
              ) -> list[tuple[int, Int16Array]]:
        """One leg's runs placed on the timeline, each decoded with one numpy call: per-packet
        numpy calls would cost more than the rest of the recording together. A run is
        placed by its first packet (RTP timestamp within its stream, arrival time for a new
        stream); G.711 has one sample per byte."""
        state = self._legs[leg]
        out: list[tuple[int, Int16Array]] = []
        for ts, ssrc, codec, now, buf in runs:
            n = len(buf)
            if codec not in G711:
                self.dropped += n // 160 or 1
                continue
            arrival = max(round((now - self.started) * self.rate), 0)
            pos = self._timeline_pos(state, ts, ssrc, arrival)
            if pos is None:
                self.dropped += n // 160 or 1
                continue
            stream = state.stream
            if stream is not None and stream.ssrc == ssrc and n > 1:
                last = (ts + n - 1) & 0xFFFFFFFF  # the run's last sample moves the stream on
                delta = _ts_delta(last, stream.last_ts)
                if delta > 0:
                    stream.last_ts, stream.last_unwrapped = last, stream.last_unwrapped + delta
            skip = state.written - pos
            if skip >= n:
                self.dropped += n // 160 or 1  # late or duplicate of audio already on disk
                continue
            out.append((max(pos, state.written), _decode(codec, buf, max(skip, 0))))
        return out

    def _timeline_pos(self, state: _Leg, ts: int, ssrc: int, arrival_pos: int) -> int | None:
        """Sample index for a packet: by RTP timestamp within a stream, by arrival for a
        new stream; None to drop it."""
        stream = state.stream
        if stream is None or stream.ssrc != ssrc:
            state.stream = _Stream(ssrc, arrival_pos, ts, ts, ts)
            return arrival_pos
        delta = _ts_delta(ts, stream.last_ts)
        unwrapped = stream.last_unwrapped + delta
        pos = stream.anchor_pos + unwrapped - stream.anchor_ts
        skew = MAX_SKEW_SECONDS * self.rate
        if abs(pos - arrival_pos) <= skew:
            stream.suspect = None
            if delta > 0:
                stream.last_ts, stream.last_unwrapped = ts, unwrapped
            return pos
        # One packet far off its slot is a straggler: drop it. Two in a row that agree
        # with each other mean the sender's clock jumped: re-anchor at the first of them.
        if stream.suspect is not None and 0 < _ts_delta(ts, stream.suspect[0]) <= skew:
            first_ts, first_pos = stream.suspect
            state.stream = _Stream(
                ssrc, first_pos, first_ts, ts, first_ts + _ts_delta(ts, first_ts)
            )
            return first_pos + _ts_delta(ts, first_ts)
        stream.suspect = (ts, arrival_pos)
        return None


def _table(codec: str) -> Int16Array:
    table = g711.decode(codec, bytes(range(256)))
    table.flags.writeable = False
    return table


# 512 bytes per law: stays in the L1 cache (a table of byte pairs would halve the lookups,
# but at 256 KiB it misses the cache on a busy event loop and ends up slower)
_TABLES = {codec: _table(codec) for codec in G711}


def _decode(codec: str, buf: bytearray, skip: int) -> Int16Array:
    """G.711 bytes from `skip` on, decoded straight from the intake's buffer (no copy)."""
    return _TABLES[codec].take(np.frombuffer(buf, dtype=np.uint8, offset=skip))


def _ts_delta(ts: int, ref: int) -> int:
    """Signed difference of two 32-bit RTP timestamps (RFC 3550 §5.1: they wrap)."""
    return ((ts - ref + 0x80000000) & 0xFFFFFFFF) - 0x80000000


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

"""RecordingWriter, recover() and the WAV helpers, driven by a fake clock."""

from __future__ import annotations

import builtins
import functools
import os
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media import g711
from recorder import timeline
from recorder.wavfile import read_wav, wav_header, write_stereo_wav
from recorder.writer import (
    AUDIO,
    JOURNAL,
    LEFT,
    RIGHT,
    OpenFiles,
    RecordingWriter,
    recover,
    write_batch,
)

RATE = 8000
FRAME = 160  # 20 ms


@pytest.fixture(autouse=True, params=["native", "python"])
def core(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both timelines: the C one (media/_timeline.c) and `PyTimeline`."""
    if request.param == "python":
        monkeypatch.setattr(timeline, "NativeTimeline", None)
    elif timeline.NativeTimeline is None:
        pytest.skip("media._engine is not compiled")
    return str(request.param)


STARTED = 1000.0  # monotonic seconds; anything but zero
CALLER_HZ, OTHER_HZ = 440.0, 1000.0

Int16Array = npt.NDArray[np.int16]


def tone(hz: float, start: int, n: int = FRAME, amplitude: float = 8000.0) -> Int16Array:
    t = (start + np.arange(n)) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


@dataclass(frozen=True)
class Pkt:
    arrival: float  # seconds after STARTED
    leg: str
    payload: bytes
    codec: str
    ts: int
    ssrc: int


def stream(
    leg: str,
    frames: Iterable[int],
    *,
    hz: float,
    codec: str = "PCMU",
    ssrc: int = 0x1234,
    ts0: int = 0,
    offset: float = 0.0,
    jitter: Callable[[int], float] = lambda k: 0.0,
) -> list[Pkt]:
    """Frame k carries samples [k*160, (k+1)*160) of the tone and arrives at the end of
    its 20 ms, plus `offset` and jitter."""
    return [
        Pkt(
            offset + (k + 1) * 0.02 + jitter(k),
            leg,
            g711.encode(codec, tone(hz, k * FRAME)),
            codec,
            (ts0 + k * FRAME) & 0xFFFFFFFF,
            ssrc,
        )
        for k in frames
    ]


def run(
    writer: RecordingWriter,
    packets: Iterable[Pkt],
    *,
    end: float,
    flush_every: float = 1.0,
    finish: bool = True,
    hooks: Mapping[float, Callable[[RecordingWriter, float], None]] | None = None,
) -> Path | None:
    """Feed packets in arrival order, flushing every `flush_every` seconds of fake time;
    `hooks` run at the given times (pause/resume)."""
    events: list[tuple[float, int, Callable[[float], None]]] = []
    for p in packets:
        events.append((p.arrival, 2, _adder(writer, p)))
    t = flush_every
    while t <= end + 1e-9:
        events.append((t, 1, writer.flush))
        t += flush_every
    for when, hook in (hooks or {}).items():
        events.append((when, 0, functools.partial(hook, writer)))
    events.sort(key=lambda e: (e[0], e[1]))
    for when, _, action in events:
        action(STARTED + when)
    return writer.finish(STARTED + end) if finish else None


def _adder(writer: RecordingWriter, p: Pkt) -> Callable[[float], None]:
    return lambda now: writer.add(p.leg, p.payload, p.codec, p.ts, p.ssrc, now)


def new_writer(tmp_path: Path, rid: str = "call-1") -> RecordingWriter:
    return RecordingWriter(tmp_path, rid, started=STARTED)


def peak_hz(channel: npt.NDArray[np.int16]) -> float:
    spectrum = np.abs(np.fft.rfft(channel.astype(np.float64)))
    return float(np.argmax(spectrum) * RATE / len(channel))


def nonzero_span(channel: Int16Array) -> tuple[int, int]:
    idx = np.flatnonzero(channel)
    return int(idx[0]), int(idx[-1]) + 1


def decoded(codec: str, pcm: Int16Array) -> Int16Array:
    return g711.decode(codec, g711.encode(codec, pcm))


# -- a whole call ----------------------------------------------------------------------


def test_sixty_seconds_both_legs(tmp_path: Path) -> None:
    frames = range(3000)
    packets = stream(LEFT, frames, hz=CALLER_HZ, codec="PCMU", ssrc=1) + stream(
        RIGHT, frames, hz=OTHER_HZ, codec="PCMA", ssrc=2, ts0=123456
    )
    wav = run(new_writer(tmp_path), packets, end=60.0)
    assert wav == tmp_path / "call-1.wav"
    rate, audio = read_wav(wav)
    assert rate == RATE
    assert audio.shape[1] == 2
    assert abs(len(audio) - 60 * RATE) <= FRAME
    assert peak_hz(audio[:, 0]) == pytest.approx(CALLER_HZ, abs=1.0)
    assert peak_hz(audio[:, 1]) == pytest.approx(OTHER_HZ, abs=1.0)
    assert not (tmp_path / "call-1.part").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call-1.wav"]


def test_silent_call_is_padded_to_call_length(tmp_path: Path) -> None:
    wav = run(new_writer(tmp_path), [], end=3.0)
    assert wav is not None
    rate, audio = read_wav(wav)
    assert audio.shape == (3 * RATE, 2)
    assert not audio.any()


# -- placement on the timeline ---------------------------------------------------------


def reference(tmp_path: Path, name: str, packets: list[Pkt], end: float = 3.0) -> Int16Array:
    wav = run(new_writer(tmp_path, name), packets, end=end)
    assert wav is not None
    return read_wav(wav)[1]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_jitter_does_not_move_audio(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    offsets = [rng.uniform(-0.015, 0.015) for _ in range(150)]
    offsets[0] = 0.0  # the anchor is the first packet's arrival
    steady = stream(LEFT, range(150), hz=CALLER_HZ)
    jittered = stream(LEFT, range(150), hz=CALLER_HZ, jitter=lambda k: offsets[k])
    np.testing.assert_array_equal(
        reference(tmp_path, "jitter", jittered), reference(tmp_path, "steady", steady)
    )


def test_first_packet_anchors_by_arrival(tmp_path: Path) -> None:
    audio = reference(tmp_path, "late-start", stream(LEFT, range(10), hz=CALLER_HZ, offset=0.5))
    # frame 0 arrives at 0.52 s: its samples start there
    first, last = nonzero_span(audio[:, 0])
    assert first == pytest.approx(round(0.52 * RATE), abs=2)
    assert last == pytest.approx(round(0.52 * RATE) + 10 * FRAME, abs=2)
    assert not audio[:, 1].any()


@pytest.mark.parametrize(
    ("name", "frames", "zero_frames"),
    [
        ("one second gap", [*range(50), *range(100, 150)], range(50, 100)),
        ("two lost packets", [k for k in range(150) if k not in (10, 11)], [10, 11]),
        ("lost at a flush boundary", [k for k in range(150) if k != 49], [49]),
    ],
)
def test_gaps_and_loss_are_zeros(
    tmp_path: Path, name: str, frames: list[int], zero_frames: Iterable[int]
) -> None:
    audio = reference(tmp_path, "gap", stream(LEFT, frames, hz=CALLER_HZ))[:, 0]
    anchor = round(0.02 * RATE)  # frame 0 arrives at 20 ms
    full = decoded("PCMU", tone(CALLER_HZ, 0, 150 * FRAME))
    expected = full.copy()
    for k in zero_frames:
        expected[k * FRAME : (k + 1) * FRAME] = 0
    np.testing.assert_array_equal(audio[anchor : anchor + 150 * FRAME], expected)
    assert not audio[:anchor].any()
    assert not audio[anchor + 150 * FRAME :].any()


def test_duplicates_and_late_packets_are_dropped(tmp_path: Path) -> None:
    good = stream(LEFT, range(150), hz=CALLER_HZ)
    loud = g711.encode("PCMU", np.full(FRAME, 20000, dtype=np.int16))
    duplicate = Pkt(0.25, LEFT, loud, "PCMU", 5 * FRAME, 0x1234)  # frame 5 again, other bytes
    too_late = Pkt(2.5, LEFT, loud, "PCMU", 20 * FRAME, 0x1234)  # frame 20, long after its flush
    writer = new_writer(tmp_path, "dup")
    wav = run(writer, [*good, duplicate, too_late], end=3.0)
    assert wav is not None
    np.testing.assert_array_equal(read_wav(wav)[1], reference(tmp_path, "clean", good))
    assert writer.dropped == 1  # the late one; the in-memory duplicate lost to the first copy


def test_packet_reordered_across_a_flush_is_kept(tmp_path: Path) -> None:
    # frame 48 belongs before the flush at 1.0 s but arrives 60 ms after it
    packets = stream(LEFT, range(150), hz=CALLER_HZ, jitter=lambda k: 0.07 if k == 48 else 0.0)
    writer = new_writer(tmp_path, "reorder")
    wav = run(writer, packets, end=3.0)
    assert wav is not None
    np.testing.assert_array_equal(
        read_wav(wav)[1], reference(tmp_path, "ordered", stream(LEFT, range(150), hz=CALLER_HZ))
    )
    assert writer.dropped == 0


def test_new_ssrc_reanchors_by_arrival(tmp_path: Path) -> None:
    first = stream(RIGHT, range(50), hz=OTHER_HZ, ssrc=1)  # IVR prompt, ends at 1.0 s
    # the agent's stream: its timestamps say nothing about the call timeline
    agent = stream(RIGHT, range(50), hz=CALLER_HZ, ssrc=2, ts0=0xFFFFFF00, offset=1.48)
    audio = reference(tmp_path, "ssrc", first + agent)[:, 1]
    agent_start = round(1.5 * RATE)  # arrival of the agent's first packet
    assert not audio[round(1.0 * RATE) + FRAME : agent_start].any()
    np.testing.assert_array_equal(
        audio[agent_start : agent_start + 50 * FRAME],
        decoded("PCMU", tone(CALLER_HZ, 0, 50 * FRAME)),  # also across the ts wrap
    )


def test_timestamp_jump_within_a_stream_reanchors(tmp_path: Path) -> None:
    before = stream(LEFT, range(50), hz=CALLER_HZ)
    after = stream(LEFT, range(50), hz=CALLER_HZ, ts0=0x40000000, offset=1.0)
    audio = reference(tmp_path, "jump", before + after)
    assert len(audio) == 3 * RATE  # no hours of silence
    assert nonzero_span(audio[:, 0])[1] == pytest.approx(2.0 * RATE + FRAME, abs=2)


@pytest.mark.parametrize(
    ("leg", "codec", "payload"),
    [("nobody", "PCMU", b"\xff" * FRAME), (LEFT, "G729", b"\x00" * 20), (LEFT, "PCMU", b"")],
)
def test_bad_packets_are_counted_not_fatal(
    tmp_path: Path, leg: str, codec: str, payload: bytes
) -> None:
    writer = new_writer(tmp_path, "bad")
    writer.add(leg, payload, codec, 0, 1, STARTED + 0.02)
    wav = writer.finish(STARTED + 1.0)
    assert writer.dropped == 1
    assert read_wav(wav)[1].shape == (RATE, 2)


# -- PCI pause ---------------------------------------------------------------------------


@pytest.mark.parametrize(("pause_at", "resume_at"), [(1.0, 2.0), (1.3, 1.9), (0.5, 2.5)])
def test_pause_writes_silence_of_the_same_length(
    tmp_path: Path, pause_at: float, resume_at: float
) -> None:
    both = stream(LEFT, range(150), hz=CALLER_HZ, ssrc=1) + stream(
        RIGHT, range(150), hz=OTHER_HZ, codec="PCMA", ssrc=2
    )
    secret = [  # card digits read out while paused: a tone no one else uses
        Pkt(t, leg, g711.encode("PCMU", tone(2400.0, 0)), "PCMU", 0, 99)
        for t in np.arange(pause_at + 0.01, resume_at, 0.02)
        for leg in (LEFT, RIGHT)
    ]
    # the real streams keep flowing during the pause and must be silenced too
    hooks = {pause_at: RecordingWriter.pause, resume_at: RecordingWriter.resume}
    paused = run(new_writer(tmp_path, "paused"), both + secret, end=3.0, hooks=hooks)
    assert paused is not None
    audio = read_wav(paused)[1]
    expected = reference(tmp_path, "open", both).copy()
    lo, hi = round(pause_at * RATE), round(resume_at * RATE)
    expected[lo:hi] = 0
    assert len(audio) == len(expected) == 3 * RATE + FRAME  # the last frame ends at 3.02 s
    np.testing.assert_array_equal(audio, expected)


def test_pause_until_the_end(tmp_path: Path) -> None:
    hooks = {1.0: RecordingWriter.pause}
    wav = run(new_writer(tmp_path), stream(LEFT, range(150), hz=CALLER_HZ), end=3.0, hooks=hooks)
    assert wav is not None
    audio = read_wav(wav)[1]
    assert len(audio) == 3 * RATE
    assert not audio[RATE:].any()
    assert audio[: RATE - FRAME].any()


# -- no I/O on the packet path -----------------------------------------------------------


def test_add_does_no_io(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = new_writer(tmp_path)
    packets = stream(LEFT, range(50), hz=CALLER_HZ)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("I/O on the packet path")

    with monkeypatch.context() as patched:
        for name in ("write", "open", "fsync", "read"):
            patched.setattr(os, name, refuse)
        patched.setattr(builtins, "open", refuse)
        for p in packets:
            writer.add(p.leg, p.payload, p.codec, p.ts, p.ssrc, STARTED + p.arrival)
    writer.flush(STARTED + 1.0)
    assert writer.samples[0] > 0
    assert peak_hz(read_wav(writer.finish(STARTED + 1.0))[1][:, 0]) == pytest.approx(
        CALLER_HZ, abs=10
    )


# -- crash safety --------------------------------------------------------------------------


def crashed_call(tmp_path: Path, rid: str = "crash") -> Path:
    """Five seconds of both legs with a flush every second, then the process dies."""
    writer = new_writer(tmp_path, rid)
    packets = stream(LEFT, range(250), hz=CALLER_HZ, ssrc=1) + stream(
        RIGHT, range(250), hz=OTHER_HZ, codec="PCMA", ssrc=2
    )
    run(writer, packets, end=5.0, finish=False)
    assert writer.samples[0] >= round(4.5 * RATE)
    del writer
    return tmp_path / f"{rid}.part"


def tear_last_journal_line(part: Path) -> None:
    data = (part / JOURNAL).read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    (part / JOURNAL).write_bytes(data[: last + (len(data) - last) // 2])


@pytest.mark.parametrize("torn", [False, True])
def test_recover_after_crash(tmp_path: Path, torn: bool) -> None:
    part = crashed_call(tmp_path)
    if torn:
        tear_last_journal_line(part)
    assert recover(tmp_path) == [tmp_path / "crash.wav"]
    assert not part.exists()
    rate, audio = read_wav(tmp_path / "crash.wav")
    assert rate == RATE and audio.shape[1] == 2
    assert len(audio) >= 4 * RATE
    assert peak_hz(audio[:, 0]) == pytest.approx(CALLER_HZ, abs=2)
    assert peak_hz(audio[:, 1]) == pytest.approx(OTHER_HZ, abs=2)
    before = (tmp_path / "crash.wav").read_bytes()
    assert recover(tmp_path) == []
    assert (tmp_path / "crash.wav").read_bytes() == before


def test_recover_trusts_only_the_journal(tmp_path: Path) -> None:
    part = crashed_call(tmp_path)
    vouched = (part / AUDIO).stat().st_size
    with open(part / AUDIO, "ab") as audio:  # a write the journal never vouched for
        audio.write(b"\x10\x27" * RATE * 10 + b"\x01")  # ... ending in a torn frame
    recover(tmp_path)
    audio = read_wav(tmp_path / "crash.wav")[1]
    assert len(audio) <= 5 * RATE
    assert not np.any(audio == 0x2710)
    assert (tmp_path / "crash.wav").stat().st_size <= vouched + 4 * round(0.2 * RATE)


def test_the_wav_is_written_in_place_during_the_call(tmp_path: Path) -> None:
    """Each flush writes interleaved frames into the .part's WAV, and finishing renames
    that very file: no second copy of the audio is written at the end."""
    writer = new_writer(tmp_path)
    part = tmp_path / "call-1.part"
    assert sorted(p.name for p in part.iterdir()) == sorted([AUDIO, JOURNAL])
    packets = stream(LEFT, range(100), hz=CALLER_HZ, ssrc=1) + stream(
        RIGHT, range(100), hz=OTHER_HZ, ssrc=2
    )
    run(writer, packets, end=2.0, finish=False)
    data = (part / AUDIO).read_bytes()
    assert data[:44] == wav_header(0, 2, RATE)  # provisional until finished or recovered
    frames = np.frombuffer(data[44:], dtype="<i2").reshape(-1, 2)
    assert len(frames) == writer.samples[0] == writer.samples[1] >= round(1.7 * RATE)
    assert peak_hz(frames[:, 0]) == pytest.approx(CALLER_HZ, abs=5)
    assert peak_hz(frames[:, 1]) == pytest.approx(OTHER_HZ, abs=5)
    inode = (part / AUDIO).stat().st_ino
    wav = writer.finish(STARTED + 2.5)
    assert wav.stat().st_ino == inode
    rate, audio = read_wav(wav)
    assert abs(len(audio) - round(2.5 * RATE)) <= FRAME
    assert np.array_equal(audio[: len(frames)], frames)


def test_recover_fixes_a_torn_header_and_a_torn_last_write(tmp_path: Path) -> None:
    part = crashed_call(tmp_path)
    size = (part / AUDIO).stat().st_size
    with open(part / AUDIO, "r+b") as audio:
        audio.write(b"\xff" * 20)  # the header half overwritten
        audio.truncate(size - 4 * 1000 - 2)  # the last write landed only in part
    recover(tmp_path)
    rate, audio = read_wav(tmp_path / "crash.wav")
    assert rate == RATE and audio.shape[1] == 2
    held = (size - 44) // 4 - 1001
    assert len(audio) >= held  # what the file holds, padded up to the call's length
    assert peak_hz(audio[:held, 0]) == pytest.approx(CALLER_HZ, abs=2)


def test_recover_keeps_a_wav_finish_already_renamed(tmp_path: Path) -> None:
    part = crashed_call(tmp_path)
    write_stereo_wav(tmp_path / "crash.wav", np.ones(7 * RATE), np.ones(7 * RATE))
    assert recover(tmp_path) == [tmp_path / "crash.wav"]
    assert len(read_wav(tmp_path / "crash.wav")[1]) == 7 * RATE
    assert not part.exists()


def _write(files: dict[str, bytes]) -> Callable[[Path], None]:
    def make(part: Path) -> None:
        part.mkdir()
        for name, data in files.items():
            (part / name).write_bytes(data)

    return make


HEADER = b'{"t":"header","v":1,"id":"x","rate":8000,"started":0}\n'
HEADER2 = b'{"t":"header","v":2,"layout":"wav","id":"x","rate":8000,"started":0}\n'
WAV0 = wav_header(0, 2, RATE)
GARBAGE_PARTS: list[tuple[str, Callable[[Path], None], int]] = [
    ("empty directory", _write({}), 0),
    ("binary journal", _write({JOURNAL: os.urandom(300) + b"\n\xff\n"}), 0),
    ("header only", _write({JOURNAL: HEADER}), 0),
    ("torn header", _write({JOURNAL: HEADER[:20]}), 0),
    ("nested json", _write({JOURNAL: b"[" * 100000 + b"\n"}), 0),
    ("wrong types", _write({JOURNAL: HEADER + b'{"t":"flush","samples":["a",-1]}\n'}), 0),
    (
        "flush without segments",
        _write({JOURNAL: HEADER + b'{"t":"flush","now":9,"samples":[80000,80000]}\n'}),
        0,
    ),
    (
        "lying journal",
        _write(
            {
                JOURNAL: HEADER + b'{"t":"flush","samples":[2147483000,5]}\n',
                f"{LEFT}.pcm": b"\x01\x00" * 100,
            }
        ),
        100,
    ),
    (
        "odd segment",
        _write(
            {JOURNAL: HEADER + b'{"t":"flush","samples":[3,3]}\n', f"{RIGHT}.pcm": b"\x01\x00\x02"}
        ),
        1,
    ),
    ("in-place audio without a header", _write({JOURNAL: HEADER2 + b'{"t":"flush","samples":[5,5]}\n',
                                                  AUDIO: b"RIFF"}), 0),
    ("in-place audio, torn last frame",
     _write({JOURNAL: HEADER2 + b'{"t":"flush","samples":[9,9]}\n', AUDIO: WAV0 + b"\x01" * 14}), 3),
    ("in-place audio beyond the journal",
     _write({JOURNAL: HEADER2 + b'{"t":"flush","samples":[2,2]}\n', AUDIO: WAV0 + b"\x01" * 20}), 2),
    ("in-place audio, garbage header",
     _write({JOURNAL: HEADER2 + b'{"t":"flush","samples":[4,4]}\n', AUDIO: os.urandom(60)}), 4),
    ("in-place audio, no journal", _write({AUDIO: WAV0 + b"\x01" * 400}), 0),
    (
        "bad rate",
        _write(
            {JOURNAL: b'{"t":"header","rate":-5,"started":"x"}\n{"t":"flush","samples":[0,0]}\n'}
        ),
        0,
    ),
]


@pytest.mark.parametrize(
    ("name", "make", "frames"), GARBAGE_PARTS, ids=[case[0] for case in GARBAGE_PARTS]
)
def test_recover_garbage_gives_a_valid_wav(
    tmp_path: Path, name: str, make: Callable[[Path], None], frames: int
) -> None:
    make(tmp_path / "junk.part")
    assert recover(tmp_path) == [tmp_path / "junk.wav"]
    rate, audio = read_wav(tmp_path / "junk.wav")
    assert rate == RATE and audio.shape == (frames, 2)
    assert not (tmp_path / "junk.part").exists()


def test_recover_ignores_other_files_and_missing_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "file.part").write_text("not a directory")
    assert recover(tmp_path) == []
    assert recover(tmp_path / "nowhere") == []


def test_recover_leaves_running_recordings_of_others_alone_when_finished(tmp_path: Path) -> None:
    crashed_call(tmp_path, "a")
    crashed_call(tmp_path, "b")
    assert recover(tmp_path) == [tmp_path / "a.wav", tmp_path / "b.wav"]


# -- API misuse and the WAV helpers ---------------------------------------------------------


def test_finish_twice_returns_the_same_file_and_flush_after_finish_raises(tmp_path: Path) -> None:
    writer = new_writer(tmp_path)
    wav = writer.finish(STARTED + 1.0)
    assert writer.finish(STARTED + 2.0) == wav
    with pytest.raises(RuntimeError):
        writer.flush(STARTED + 2.0)


def test_same_recording_id_twice_is_refused(tmp_path: Path) -> None:
    new_writer(tmp_path)
    with pytest.raises(FileExistsError):
        new_writer(tmp_path)


def test_wav_round_trip_pads_the_shorter_channel(tmp_path: Path) -> None:
    left = np.array([1, -2, 32767, -32768], dtype=np.int16)
    right = np.array([5], dtype=np.int16)
    write_stereo_wav(tmp_path / "x.wav", left, right, rate=16000)
    rate, audio = read_wav(tmp_path / "x.wav")
    assert rate == 16000
    np.testing.assert_array_equal(audio, [[1, 5], [-2, 0], [32767, 0], [-32768, 0]])
    assert (tmp_path / "x.wav").stat().st_size == 44 + 16


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty", b""),
        ("not riff", b"RIFX" + b"\x00" * 40),
        ("no data chunk", b"RIFF\x04\x00\x00\x00WAVE"),
        (
            "truncated data",
            b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x02\x00"
            b"@\x1f\x00\x00\x00}\x00\x00\x04\x00\x10\x00data\x10\x00\x00\x00\x00\x00",
        ),
        (
            "float format",
            b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x03\x00\x01\x00"
            b"@\x1f\x00\x00\x00}\x00\x00\x04\x00\x20\x00data\x00\x00\x00\x00",
        ),
    ],
)
def test_read_wav_refuses_bad_files(tmp_path: Path, name: str, data: bytes) -> None:
    (tmp_path / "bad.wav").write_bytes(data)
    with pytest.raises(ValueError):
        read_wav(tmp_path / "bad.wav")


def _run_with_open_files(writer: RecordingWriter, packets: list[Pkt], end: float,
                         files: OpenFiles, finish: bool) -> Path | None:
    """The server's way: taps with the writer's clock, advance + take_io, batches written
    through kept-open descriptors."""
    clock = [STARTED]
    writer.clock = lambda: clock[0]
    taps = {LEFT: writer.tap(LEFT), RIGHT: writer.tap(RIGHT)}
    next_flush = 1.0
    for p in sorted(packets, key=lambda p: p.arrival):
        while p.arrival >= next_flush:
            writer.advance(STARTED + next_flush)
            write_batch(writer.take_io(STARTED + next_flush, durable=False), files)
            next_flush += 1.0
        clock[0] = STARTED + p.arrival
        taps[p.leg](p.payload, p.codec, p.ts, p.ssrc)
    if not finish:
        return None
    return writer.prepare_finish(STARTED + end).run(files)


def test_open_files_and_taps_write_what_flush_writes(tmp_path: Path) -> None:
    packets = [*stream(LEFT, range(150), hz=CALLER_HZ), *stream(RIGHT, range(150), hz=OTHER_HZ,
                                                               ssrc=0x99, offset=0.005)]
    expected = run(new_writer(tmp_path / "a"), packets, end=3.0)
    files = OpenFiles()
    got = _run_with_open_files(RecordingWriter(tmp_path / "b", "call-1", started=STARTED),
                               packets, 3.0, files, finish=True)
    assert expected is not None and got is not None
    assert np.array_equal(read_wav(expected)[1], read_wav(got)[1])
    assert len(files) == 0  # finishing closed the recording's descriptors


def test_open_files_survive_a_crash_then_recover(tmp_path: Path) -> None:
    packets = list(stream(LEFT, range(200), hz=CALLER_HZ))
    files = OpenFiles()
    writer = RecordingWriter(tmp_path, "crashed", started=STARTED)
    _run_with_open_files(writer, packets, 4.0, files, finish=False)  # no finish: "kill -9"
    (wav,) = recover(tmp_path)
    rate, frames = read_wav(wav)
    # every batch written before the crash is there: 3 flushes, minus the holdback
    assert len(frames) >= round((3.0 - 0.2) * RATE)
    assert peak_hz(frames[RATE:2 * RATE, 0]) == pytest.approx(CALLER_HZ, abs=5)
    files.close()

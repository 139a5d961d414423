"""The two recording timelines, media/_timeline.c and `recorder.timeline.PyTimeline`, fed
the same packets, hand over the same audio: in order, with jitter, loss, duplicates,
reordering across hand-overs, SSRC changes, clock jumps, codec switches, unknown codecs
and PCI pauses. Plus the C one's own contract: decode tables, argument errors, bounds."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import pytest

from media import g711
from recorder.timeline import NativeTimeline, PyTimeline, as_channels

pytestmark = pytest.mark.skipif(NativeTimeline is None, reason="media._engine is not compiled")

STARTED = 500.0
RATE = 8000


@dataclass
class Op:
    at: float  # seconds after STARTED
    kind: str  # "pkt", "take", "pause", "resume"
    channel: int = 0
    payload: bytes = b""
    codec: str = "PCMU"
    ts: int = 0
    ssrc: int = 0


def _scenario(seed: int) -> list[Op]:
    rnd = random.Random(seed)
    sizes = [160] if seed % 2 == 0 else [160, 160, 160, 80, 240]
    ops: list[Op] = []
    for channel in (0, 1):
        ssrc, ts0, offset = rnd.getrandbits(32), rnd.getrandbits(32), rnd.uniform(0, 0.5)
        codec = rnd.choice(["PCMU", "PCMA"])
        frames = 150 + rnd.randrange(100)
        for k in range(frames):
            roll = rnd.random()
            if roll < 0.05:
                continue  # lost
            if roll < 0.07 and k > 10:  # the sender restarts: a new SSRC, a new clock
                ssrc, ts0 = rnd.getrandbits(32), rnd.getrandbits(32)
            elif roll < 0.08 and k > 10:  # a clock jump within the stream
                ts0 = (ts0 + rnd.choice([-1, 1]) * rnd.randrange(20000, 90000)) & 0xFFFFFFFF
            if rnd.random() < 0.03:
                codec = rnd.choice(["PCMU", "PCMA", "G729"])
            jitter = rnd.uniform(0, 0.06) if rnd.random() < 0.2 else rnd.uniform(0, 0.004)
            payload = bytes(rnd.getrandbits(8) for _ in range(rnd.choice(sizes)))
            ts = (ts0 + k * 160) & 0xFFFFFFFF
            op = Op(offset + (k + 1) * 0.02 + jitter, "pkt", channel, payload, codec, ts, ssrc)
            ops.append(op)
            if rnd.random() < 0.04:  # a duplicate, later
                ops.append(Op(op.at + rnd.uniform(0, 0.3), "pkt", channel, payload, codec, ts, ssrc))
    end = max(op.at for op in ops) + 0.5
    t = rnd.uniform(0.1, 0.5)
    while t < end:
        ops.append(Op(t, "take"))
        t += rnd.choice([0.2, 0.2, 1.4, 0.05, 6.0])  # 6 s: the ring grows, audio moved
    if seed % 4 < 2:
        start = rnd.uniform(0.5, end / 2)
        ops.append(Op(start, "pause"))
        ops.append(Op(start + rnd.uniform(0.1, 2.0), "resume"))
        ops.append(Op(start + 0.3, "pause"))  # while paused: nothing changes
    ops.sort(key=lambda op: op.at)
    ops.append(Op(end, "final"))
    return ops


def _play(timeline: object, ops: list[Op]) -> tuple[bytes, int, int]:
    out: list[bytes] = []
    for op in ops:
        now = STARTED + op.at
        if op.kind == "pkt":
            timeline.feed(op.channel, op.payload, op.codec, op.ts, op.ssrc, now)  # type: ignore[attr-defined]
        elif op.kind in ("take", "final"):
            if op.kind == "final":
                timeline.close()  # type: ignore[attr-defined]
            if len(out) % 2:  # every other hand-over with each leg on its own too
                start, data, left, right = timeline.take_legs(now, op.kind == "final")  # type: ignore[attr-defined]
                channels = as_channels(data)
                assert left == channels[0].tobytes() and right == channels[1].tobytes()
            else:
                start, data = timeline.take(now, op.kind == "final")  # type: ignore[attr-defined]
            assert start == sum(len(d) for d in out) // 4
            out.append(data)
        else:
            getattr(timeline, op.kind)(now)
    return b"".join(out), timeline.written, timeline.dropped  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", range(40))
def test_both_timelines_hand_over_the_same_audio(seed: int) -> None:
    ops = _scenario(seed)
    native = _play(NativeTimeline(STARTED), ops)
    python = _play(PyTimeline(STARTED), ops)
    assert native[1] == python[1] and native[1] > RATE  # frames
    left_n, right_n = as_channels(native[0])
    left_p, right_p = as_channels(python[0])
    assert np.array_equal(left_n, left_p) and np.array_equal(right_n, right_p)
    if seed % 2 == 0:  # 20 ms packets: the Python one counts runs of them as packets
        assert native[2] == python[2] > 0  # the same packets refused


def test_decoding_matches_g711_for_every_code() -> None:
    codes = bytes(range(256)) * 2  # 512 samples: 64 ms
    for codec in ("PCMU", "PCMA"):
        t = NativeTimeline(STARTED, holdback=0.0)
        t.feed(0, codes, codec, 0, 1, STARTED)
        _, data = t.take(STARTED + 1.0)
        left, right = as_channels(data)
        assert np.array_equal(left[:512], g711.decode(codec, codes)) and not right.any()


def test_pause_is_silence_and_refuses_audio_until_resumed() -> None:
    for make in (NativeTimeline, PyTimeline):
        t = make(STARTED)
        loud = g711.encode("PCMU", np.full(160, 5000, dtype=np.int16))
        for k in range(100):  # 2 s
            now = STARTED + (k + 1) * 0.02
            if k == 25:
                t.pause(now)
                assert t.paused
            if k == 50:
                t.resume(now)
            t.feed(0, loud, "PCMU", k * 160, 7, now)
        t.close()
        _, data = t.take(STARTED + 2.1, True)
        left, _ = as_channels(data)
        assert not left[26 * 160 + 10: 50 * 160].any()  # the paused half second
        assert left[60 * 160:61 * 160].all() and left[10 * 160:11 * 160].all()
        t.resume(STARTED + 3)  # closed: stays refused
        assert not t.accepting


def test_bad_arguments_raise_and_a_far_packet_is_refused() -> None:
    t = NativeTimeline(STARTED, max_seconds=1.0)
    with pytest.raises(ValueError):
        t.feed(2, b"\xff" * 160, "PCMU", 0, 1, STARTED)
    with pytest.raises(TypeError):
        t.feed(0, "text", "PCMU", 0, 1, STARTED)
    with pytest.raises(ValueError):
        NativeTimeline(STARTED, rate=0)
    t.feed(0, b"\xff" * 160, "PCMU", 0, 1, STARTED + 0.5)
    t.feed(0, b"\xff" * 160, "PCMU", 16000, 1, STARTED + 2.5)  # within skew, 1.5 s ahead
    assert t.dropped == 1  # beyond max_seconds of unhanded audio: bounded, counted
    t.feed(0, b"", "PCMU", 0, 1, STARTED)
    t.feed(0, b"\xff" * 160, "G722", 0, 1, STARTED)
    assert t.dropped == 3
    assert t.take(STARTED + 0.1) == (0, b"")


def test_take_legs_gives_each_channel_of_the_same_frames() -> None:
    """`take_legs` hands over what `take` would, plus each channel on its own, from both
    timelines; with nothing final, three empty bytes."""
    loud = g711.encode("PCMU", (np.arange(160) * 97 % 2000 - 1000).astype(np.int16))
    for make in (NativeTimeline, PyTimeline):
        t = make(STARTED)
        assert t.take_legs(STARTED + 0.1) == (0, b"", b"", b"")
        for k in range(100):
            now = STARTED + (k + 1) * 0.02
            t.feed(0, loud, "PCMU", k * 160, 7, now)
            if k % 3 == 0:
                t.feed(1, loud[::-1], "PCMA", k * 160, 8, now)
        start, data, left, right = t.take_legs(STARTED + 2.0)
        assert start == 0 and len(data) == 4 * (2.0 - 0.2) * RATE
        frames = np.frombuffer(data, dtype="<i2").reshape(-1, 2)
        assert np.frombuffer(left, "<i2").tolist() == frames[:, 0].tolist()
        assert np.frombuffer(right, "<i2").tolist() == frames[:, 1].tolist()
        assert frames[:, 0].any() and frames[:, 1].any() and not frames[320:640, 1].any()
        t.close()
        start, data, left, right = t.take_legs(STARTED + 2.0, True)
        assert start == 14400 and len(left) == len(right) == len(data) // 2 > 0

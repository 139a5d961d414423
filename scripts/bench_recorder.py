"""In-process benchmark of the recorder: CPU seconds per call-minute.

Drives N simulated calls' worth of RTP payloads (both legs, 50 packets a second,
G.711 mu-law, speech-like audio that alternates between the legs) through the real
path: each leg's `RecordingWriter` tap, the `Recordings` slices after every 5 ms
sub-tick, its I/O thread and files, and with ``--analytics`` the analyzers through a
threaded `HookHost`. Time on the recording's timeline comes from a fake loop clock
that advances 5 ms per sub-tick; by default the driver paces it to the wall clock
(``--speed 1``), so that the hook workers and the I/O thread wake as they would in
the server.

It runs three modes one after the other and prints, per mode, CPU seconds (the whole
process, and per thread from /proc/self/task) and the same per call-minute:

- ``off``: the driver alone (the packets go nowhere), the floor to subtract;
- ``record``: recording to disk;
- ``record+analytics``: recording plus the analyzers (default ``talk,stress``).

    python scripts/bench_recorder.py --calls 100 --seconds 30
    python scripts/bench_recorder.py --calls 200 --seconds 60 --modes record --profile

The call ends (sidecar, WAV finished on the I/O thread) are part of the measurement.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from media import g711  # noqa: E402
from switchboard.config import RecordingConfig  # noqa: E402
from switchboard.recording import HookConsumer, Recordings  # noqa: E402

RATE = 8000
PACKET = 160  # 20 ms of G.711
SUBTICK = 0.005


# -- audio --------------------------------------------------------------------------------


def speech_like(seconds: float, f0: float, seed: int, talk: tuple[float, float]) -> bytes:
    """Mu-law bytes: voiced spurts (harmonics of a wandering F0, a syllable envelope)
    `talk[0]` seconds long every `talk[0] + talk[1]` seconds, line noise in between."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    pitch = f0 * (1 + 0.08 * np.sin(2 * np.pi * 0.7 * t) + 0.03 * rng.standard_normal(n).cumsum() / np.sqrt(n))
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    syllables = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t) ** 2
    period = talk[0] + talk[1]
    on = (t % period) < talk[0]
    pcm = np.where(on, 4000 * voice * syllables, 0) + 30 * rng.standard_normal(n)
    return g711.encode("PCMU", np.clip(pcm, -32768, 32767).astype(np.int16))


# -- stand-ins for the server's objects ---------------------------------------------------


class FakeLoop:
    """`time()` is the simulated clock; callbacks run on the driver's thread."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._timers: list[tuple[float, Callable[..., Any], tuple[Any, ...]]] = []
        self._soon: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._lock = threading.Lock()

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> Any:
        self._timers.append((self.now + delay, fn, args))
        return _Handle()

    def call_soon_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            self._soon.append((fn, args))

    def run_due(self) -> None:
        with self._lock:
            soon, self._soon = self._soon, []
        for fn, args in soon:
            fn(*args)
        due = [item for item in self._timers if item[0] <= self.now]
        if due:
            self._timers = [item for item in self._timers if item[0] > self.now]
            for _, fn, args in due:
                fn(*args)


class _Handle:
    def cancel(self) -> None:
        pass


class FakeSession:
    tap_in: Callable[[bytes, str, int, int], None] | None = None
    tap_out: Callable[[bytes, str, int, int], None] | None = None


class FakeCall:
    def __init__(self, index: int) -> None:
        self.call_id = f"bench-{index}@127.0.0.1"
        self.did, self.caller, self.flow = "100", f"caller{index}", None
        self.queue: str | None = "sales"
        self.agent: str | None = f"{1000 + index}"
        self.session = FakeSession()
        self.recording: Any = None
        self.recording_id: str | None = None
        self.answered_at = time.time()
        self.bridged_at: float | None = None
        self.ended_at: float | None = None
        self.end_reason: str | None = None

    def collected_vars(self) -> dict[str, str]:
        return {"account": "4711"}

    def cdr(self) -> dict[str, Any]:
        return {"flow": None, "vars": {"account": "4711"}}


# -- per-thread CPU -----------------------------------------------------------------------


def thread_cpu() -> dict[str, tuple[float, float]]:
    """(user, system) CPU seconds per thread name, summed over threads of the same name."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, tuple[float, float]] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        user, system = int(fields[11]) / tick, int(fields[12]) / tick
        name = "main" if int(task.name) == os.getpid() else names.get(int(task.name), "other")
        u, s = out.get(name, (0.0, 0.0))
        out[name] = (u + user, s + system)
    return out


def delta(after: dict[str, tuple[float, float]], before: dict[str, tuple[float, float]]
          ) -> dict[str, tuple[float, float]]:
    return {name: (u - before.get(name, (0.0, 0.0))[0], s - before.get(name, (0.0, 0.0))[1])
            for name, (u, s) in after.items()}


# -- one run ------------------------------------------------------------------------------


def run(mode: str, args: argparse.Namespace, audio: tuple[bytes, bytes]) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="bench-rec-", dir=args.dir))
    loop = FakeLoop()
    recs = Recordings(RecordingConfig(directory=directory, retention_days=0), directory)
    recs.loop = loop  # type: ignore[assignment]
    recs.directory.mkdir(parents=True, exist_ok=True)
    host = None
    if mode != "off":
        recs._io_thread = threading.Thread(target=recs._io_worker, name="recorder-io",
                                           daemon=True)
        recs._io_thread.start()
    if mode == "record+analytics":
        from recorder.hooks import HookHost, load_factories

        # mailboxes sized as the server sizes them (a second of audio of every call)
        host = HookHost(load_factories(args.analytics.split(",")), lambda c, e: None,
                        loop=loop, queue_size=max(256, 20 * args.calls))
        recs.consumer_factories.append(lambda rec: HookConsumer(host, rec))
    calls = [FakeCall(i) for i in range(args.calls)]
    rng = np.random.default_rng(7)
    offsets = rng.integers(0, len(audio[0]) // PACKET, size=(args.calls, 2)) * PACKET
    ts = rng.integers(0, 2**32, size=(args.calls, 2)).tolist()
    ssrc = rng.integers(1, 2**31, size=(args.calls, 2)).tolist()
    def nowhere(payload: bytes, codec: str, ts: int, ssrc: int) -> None:
        pass

    # "off" calls a tap that does nothing: the floor includes the driver's own per-packet
    # work (slicing, timestamps, the call), so "over off" is what recording adds
    taps = [(nowhere, nowhere)] * args.calls
    if mode != "off":
        taps = []
        for call in calls:
            recs.begin(call)
            taps.append((call.session.tap_in, call.session.tap_out))
    subticks = int(args.seconds / SUBTICK)
    length = len(audio[0])
    bridged_at = min(2.0, args.seconds / 4)
    gc_before = thread_cpu()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for subtick in range(1, subticks + 1):
        loop.now += SUBTICK
        if subtick == int(bridged_at / SUBTICK) and mode != "off":
            for call in calls:
                call.bridged_at = time.time()
                call.recording.event("bridged", agent=call.agent, queue=call.queue)
        phase = subtick % 4
        frame = subtick // 4
        for index in range(phase, args.calls, 4):  # a quarter of the calls per sub-tick
            for leg in (0, 1):
                start = (offsets[index][leg] + frame * PACKET) % length
                payload = audio[leg][start : start + PACKET]
                taps[index][leg](payload, "PCMU", (ts[index][leg] + frame * PACKET) & 0xFFFFFFFF,
                                 ssrc[index][leg])
        if mode != "off":
            recs.on_subtick(subtick)
        loop.run_due()
        if args.speed > 0:
            ahead = subtick * SUBTICK / args.speed - (time.perf_counter() - wall0)
            if ahead > 0.002:
                time.sleep(ahead)
        elif host is not None and subtick % 20 == 0:  # as fast as the analyzers keep up
            for _ in range(10_000):
                if not any(s["queued"] for s in host.stats().values()):
                    break
                time.sleep(0.001)
    if mode != "off":
        for call in calls:
            call.ended_at, call.end_reason = time.time(), "caller_hangup"
            recs.end(call)
        for _ in range(200):  # the hook grace, then the finishing jobs on the I/O thread
            loop.now += SUBTICK
            loop.run_due()
            time.sleep(SUBTICK / max(args.speed, 1e-3) if args.speed > 0 else 0)
        deadline = time.monotonic() + 120
        while (recs.io_backlog or recs.closing) and time.monotonic() < deadline:
            loop.run_due()
            time.sleep(0.005)
        if host is not None:
            while any(s["queued"] or s["calls"] for s in host.stats().values()) and time.monotonic() < deadline:
                time.sleep(0.005)
    threads = delta(thread_cpu(), gc_before)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    stats = host.stats() if host is not None else {}
    if host is not None:
        host.close()
    if mode != "off":
        recs._jobs.put(None)
        assert recs._io_thread is not None
        recs._io_thread.join(30)
    wavs = len(list(directory.glob("*.wav")))
    shutil.rmtree(directory, ignore_errors=True)
    return {"mode": mode, "cpu": cpu, "wall": wall, "threads": threads, "wavs": wavs,
            "hooks": stats, "io_errors": recs.stats["io_errors"]}


def report(result: dict[str, Any], floor: dict[str, Any] | None, minutes: float) -> None:
    extra = result["cpu"] - (floor["cpu"] if floor else 0.0)
    print(f"== {result['mode']}: {result['cpu']:.2f} s CPU in {result['wall']:.1f} s wall, "
          f"{result['cpu'] / minutes * 1000:.1f} ms per call-minute"
          + (f"; over 'off': {extra:.2f} s = {extra / minutes * 1000:.1f} ms per call-minute"
             if floor else ""))
    for name, (user, system) in sorted(result["threads"].items(), key=lambda kv: -sum(kv[1])):
        if user + system >= 0.005:
            print(f"   {name:<16} user {user:7.2f} s  sys {system:6.2f} s  "
                  f"({(user + system) / minutes * 1000:6.1f} ms per call-minute)")
    if result["mode"] != "off":
        print(f"   wavs {result['wavs']}, io_errors {result['io_errors']}")
    for name, stat in result["hooks"].items():
        print(f"   hook {name}: {stat}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0, help="call length")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="simulated seconds per wall second (0: as fast as possible, "
                        "waiting every 100 ms for the analyzers to drain their mailboxes)")
    parser.add_argument("--modes", default="off,record,record+analytics")
    parser.add_argument("--analytics", default="talk,stress")
    parser.add_argument("--dir", default=None, help="where the recordings go (a temp dir)")
    args = parser.parse_args()
    caller = speech_like(20.0, 130.0, 1, (2.5, 2.0))
    other = np.roll(np.frombuffer(speech_like(20.0, 200.0, 2, (2.0, 2.5)), np.uint8),
                    int(2.25 * RATE)).tobytes()
    minutes = args.calls * args.seconds / 60
    print(f"# {args.calls} calls x {args.seconds:g} s = {minutes:.1f} call-minutes, "
          f"speed {args.speed:g}, load {os.getloadavg()[0]:.2f}")
    floor = None
    for mode in args.modes.split(","):
        result = run(mode, args, (caller, other))
        report(result, floor, minutes)
        if mode == "off":
            floor = result


if __name__ == "__main__":
    main()

"""In-process benchmark of the recorder's flushes on the event loop: CPU microseconds per
call and flush.

Every recording is flushed once per 280 media-clock sub-ticks (1.4 s): its timeline
hands over the audio now final (decoded, both legs interleaved for the WAV and, with
analytics, each leg on its own), the audio goes to the analyzers' mailboxes and the disk
write to the I/O thread. This script times exactly that: N calls with the analyzers
(default ``talk,stress``, in their own threads) get 1.4 s of speech-like audio on both
legs through their taps, untimed; then one full cycle of 280 `Recordings.on_subtick`
calls, which flushes every call once, is timed with the event loop thread's CPU clock
(`time.thread_time`). That repeats ``--cycles`` times; the first cycle is a warm-up.

    python scripts/bench_flush.py --calls 200 --cycles 6

Run it on an idle core (``taskset -c 0``); the figure moves by a few microseconds from
run to run, so compare builds with several runs each.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_recorder import FakeCall, FakeLoop, speech_like  # noqa: E402

from recorder.hooks import HookHost, load_factories  # noqa: E402
from switchboard.config import RecordingConfig  # noqa: E402
from switchboard.recording import SLOTS, HookConsumer, Recordings  # noqa: E402

PACKET = 160
SUBTICK = 0.005


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=6, help="flush cycles (the first is a warm-up)")
    parser.add_argument("--analytics", default="talk,stress", help="analyzers ('' for none)")
    args = parser.parse_args()
    if args.calls < 1 or args.cycles < 2:
        parser.error("--calls must be at least 1 and --cycles at least 2")
    directory = Path(tempfile.mkdtemp(prefix="bench-flush-"))
    loop = FakeLoop()
    recs = Recordings(RecordingConfig(directory=directory, retention_days=0), directory)
    recs.loop = loop  # type: ignore[assignment]
    recs._io_thread = threading.Thread(target=recs._io_worker, name="recorder-io", daemon=True)
    recs._io_thread.start()
    host = None
    if args.analytics:
        host = HookHost(load_factories(args.analytics.split(",")), lambda c, e: None,
                        loop=loop, queue_size=max(256, 20 * args.calls))
        recs.consumer_factories.append(lambda rec: HookConsumer(host, rec))
    caller = speech_like(20.0, 130.0, 1, (2.5, 2.0))
    other = speech_like(20.0, 200.0, 2, (2.0, 2.5))
    calls = [FakeCall(i) for i in range(args.calls)]
    for call in calls:
        recs.begin(call)
        call.recording.event("bridged", agent=call.agent, queue=call.queue)
    frame = 0
    per_cycle = []
    try:
        for cycle in range(args.cycles):
            for sub in range(SLOTS):  # 1.4 s of packets for every call, untimed
                loop.now += SUBTICK
                if sub % 4:
                    continue
                for i, call in enumerate(calls):
                    at = (frame * PACKET + i * 800) % (len(caller) - PACKET)
                    ts = (frame * PACKET) & 0xFFFFFFFF
                    call.session.tap_in(caller[at:at + PACKET], "PCMU", ts, 1000 + i)
                    call.session.tap_out(other[at:at + PACKET], "PCMU", ts, 5000 + i)
                frame += 1
            started = time.thread_time()
            for sub in range(SLOTS):  # every call's bucket comes round once
                recs.on_subtick(cycle * SLOTS + sub)
            used = time.thread_time() - started
            loop.run_due()
            if cycle:
                per_cycle.append(used)
            time.sleep(0.5)  # the analyzers and the I/O thread catch up, off the clock
    finally:
        if host is not None:
            host.close()
        recs._jobs.put(None)
        recs._io_thread.join(30)
        shutil.rmtree(directory, ignore_errors=True)
    us = [used / args.calls * 1e6 for used in per_cycle]
    print(f"# {args.calls} calls, analytics {args.analytics or 'none'}, {len(us)} timed cycles")
    print(f"event loop per call and flush: median {statistics.median(us):.1f} us, "
          f"min {min(us):.1f}, max {max(us):.1f}")


if __name__ == "__main__":
    main()

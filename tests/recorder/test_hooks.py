"""HookHost: delivery, defaults added to emitted events, isolation of slow, failing and
stuck plugins, bounded mailboxes, and loading analyzers from config."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from recorder import hooks
from recorder.analyzers.stress import StressAnalyzer
from recorder.analyzers.talk import TalkAnalyzer
from recorder.hooks import Analyzer, HookHost, load_factories

CHUNK = np.zeros(800, dtype=np.int16)


class Recorder(Analyzer):
    """Keeps everything it is given, in order, in `log` (shared by the instances)."""

    name: ClassVar[str] = "recorder"
    log: ClassVar[list[tuple[Any, ...]]] = []

    def __init__(self, call: dict[str, Any], emit: Any, options: dict[str, Any]) -> None:
        super().__init__(call, emit, options)
        self.log.append(("init", call["call_id"], dict(options)))

    def on_event(self, event: dict[str, Any]) -> None:
        self.log.append(("event", self.call["call_id"], event))
        if event["type"] == "dtmf":
            self.emit({"type": "tag", "digit": event["digit"], "value": np.float32(0.5)})

    def on_audio(self, leg: str, t: float, pcm: Any) -> None:
        self.log.append(("audio", self.call["call_id"], leg, t, len(pcm)))

    def close(self) -> None:
        self.log.append(("close", self.call["call_id"]))


class Counter(Analyzer):
    name: ClassVar[str] = "counter"

    def on_audio(self, leg: str, t: float, pcm: Any) -> None:
        pass


class Slow(Analyzer):
    name: ClassVar[str] = "slow"

    def on_audio(self, leg: str, t: float, pcm: Any) -> None:
        time.sleep(0.004)


class Raising(Analyzer):
    name: ClassVar[str] = "raising"

    def on_audio(self, leg: str, t: float, pcm: Any) -> None:
        raise RuntimeError("plugin bug")


class BadInit(Analyzer):
    name: ClassVar[str] = "badinit"

    def __init__(self, call: dict[str, Any], emit: Any, options: dict[str, Any]) -> None:
        if call["call_id"] == "c1":
            raise RuntimeError("cannot start")
        super().__init__(call, emit, options)


class Stuck(Analyzer):
    name: ClassVar[str] = "stuck"
    release = threading.Event()

    def on_audio(self, leg: str, t: float, pcm: Any) -> None:
        self.release.wait(30)


class Chatty(Analyzer):
    name: ClassVar[str] = "chatty"

    def on_audio(self, leg: str, t: float, pcm: Any) -> None:
        for _ in range(300):
            self.emit({"type": "score", "value": 1})


@pytest.fixture(autouse=True)
def _clear_log() -> None:
    Recorder.log.clear()


def emitted_into(out: list[tuple[str, dict[str, Any]]]) -> Any:
    return lambda call_id, event: out.append((call_id, event))


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


# -- delivery -------------------------------------------------------------------------


def test_synchronous_host_delivers_in_order_and_completes_emitted_events() -> None:
    out: list[tuple[str, dict[str, Any]]] = []
    host = HookHost([("rec", Recorder, {"k": 1})], emitted_into(out), synchronous=True)
    host.start_call("c1", {"did": "100", "caller": "alice"}, t=0.0)
    host.audio("c1", "caller", 0.0, CHUNK)
    host.event("c1", {"type": "dtmf", "t": 0.25, "digit": "5", "leg": "caller"})
    host.audio("c1", "other", 0.1, CHUNK[:400])
    host.end_call("c1", 2.0)
    assert Recorder.log == [
        ("init", "c1", {"k": 1}),
        ("event", "c1", {"type": "start", "t": 0.0}),
        ("audio", "c1", "caller", 0.0, 800),
        ("event", "c1", {"type": "dtmf", "t": 0.25, "digit": "5", "leg": "caller"}),
        ("audio", "c1", "other", 0.1, 400),
        ("event", "c1", {"type": "end", "t": 2.0}),
        ("close", "c1"),
    ]
    # source, call_id and t were added; the numpy scalar became a plain float
    assert out == [("c1", {"type": "tag", "digit": "5", "value": 0.5, "source": "rec",
                           "call_id": "c1", "t": 0.25})]
    assert type(out[0][1]["value"]) is float
    assert host.stats() == {"rec": {"delivered": 5, "dropped": 0, "errors": 0, "queued": 0,
                                    "calls": 0}}


def test_audio_given_to_plugins_is_a_read_only_copy() -> None:
    seen: list[Any] = []

    class Mutator(Analyzer):
        def on_audio(self, leg: str, t: float, pcm: Any) -> None:
            seen.append(pcm)
            pcm[0] = 1  # must not reach the caller's buffer or another plugin

    buf = np.full(800, 7, dtype=np.int16)
    host = HookHost([("m", Mutator, {})], lambda c, e: None, synchronous=True)
    host.start_call("c1", {})
    host.audio("c1", "caller", 0.0, buf)
    assert host.stats()["m"]["errors"] == 1
    assert buf[0] == 7 and seen[0][0] == 7


def test_a_frozen_array_of_its_own_is_shared_without_a_copy() -> None:
    """The recorder hands over chunks it froze and no longer touches, whole or as views
    of a frozen chunk: no copy per chunk. A frozen view of someone else's writable buffer
    is still copied (its owner may change it)."""
    seen: list[Any] = []

    class Keeper(Analyzer):
        def on_audio(self, leg: str, t: float, pcm: Any) -> None:
            seen.append(pcm)

    host = HookHost([("k", Keeper, {})], lambda c, e: None, synchronous=True)
    host.start_call("c1", {})
    frozen = np.full(800, 3, dtype=np.int16)
    frozen.flags.writeable = False
    host.audio("c1", "caller", 0.0, frozen)
    owner = np.full(1600, 5, dtype=np.int16)
    view = owner[:800]
    view.flags.writeable = False
    host.audio("c1", "caller", 0.1, view)
    assert seen[0] is frozen
    assert seen[1] is not view and not seen[1].flags.writeable
    owner[0] = 9
    assert seen[1][0] == 5
    frozen_owner = np.full(1600, 6, dtype=np.int16)
    frozen_owner.flags.writeable = False
    piece = frozen_owner[800:]
    host.audio("c1", "caller", 0.2, piece)
    assert seen[2] is piece
    # a channel of the recorder's interleaved frames: views down to a bytes object
    left = np.frombuffer(np.arange(1600, dtype="<i2").tobytes(), dtype="<i2").reshape(-1, 2)[:, 0]
    host.audio("c1", "caller", 0.3, left[100:])
    assert np.shares_memory(seen[3], left) and seen[3][0] == 200  # no copy
    mutable = np.frombuffer(bytearray(3200), dtype="<i2")  # read-only view, writable memory
    mutable.flags.writeable = False
    host.audio("c1", "caller", 0.4, mutable)
    assert not np.shares_memory(seen[4], mutable)  # copied


def test_masked_dtmf_never_reaches_a_plugin() -> None:
    host = HookHost([("rec", Recorder, {})], lambda c, e: None, synchronous=True)
    host.start_call("c1", {})
    host.event("c1", {"type": "dtmf", "t": 1.0, "masked": True})
    host.event("c1", {"type": "dtmf", "t": 1.5, "leg": "caller"})  # no digit: masked too
    host.event("c1", {"type": "bridged", "t": 2.0, "agent": "1001", "queue": "support"})
    kinds = [entry[2]["type"] for entry in Recorder.log if entry[0] == "event"]
    assert kinds == ["start", "bridged"]


def test_host_calls_never_raise(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="switchboard.hooks")

    def broken_sink(call_id: str, event: dict[str, Any]) -> None:
        raise RuntimeError("sink down")

    host = HookHost([("rec", Recorder, {})], broken_sink, synchronous=True)
    host.start_call("c1", None)  # type: ignore[arg-type]
    host.start_call("c1", {})
    host.audio("c1", "caller", 0.0, ["not", "audio"])  # type: ignore[list-item]
    host.event("c1", {"type": "bridged"})  # no t
    host.event("c1", "nonsense")  # type: ignore[arg-type]
    host.event("c1", {"type": "dtmf", "t": 1.0, "digit": "1", "leg": "caller"})  # emit fails
    host.end_call("c1", "never")  # type: ignore[arg-type]
    host.end_call("c1", 3.0)
    host.audio("unknown-call", "caller", 0.0, CHUNK)
    assert host.stats()["rec"]["calls"] == 0
    assert host.stats()["rec"]["dropped"] == 1  # the unknown call's chunk
    # Five bad inputs and one failing sink, each kind logged once per interval.
    assert [r.message.split(" ")[0] for r in caplog.records] == [
        "event=hook_bad_input", "event=hook_emit_failed"]


def test_emitted_events_reach_the_loop_thread() -> None:
    seen: list[tuple[str, int]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def on_emit(call_id: str, event: dict[str, Any]) -> None:
            seen.append((call_id, threading.get_ident()))
            done.set()

        host = HookHost([("rec", Recorder, {})], on_emit, loop=loop)
        host.start_call("c1", {})
        host.event("c1", {"type": "dtmf", "t": 1.0, "digit": "2", "leg": "caller"})
        await asyncio.wait_for(done.wait(), 5)
        host.close()

    asyncio.run(main())
    assert seen == [("c1", threading.get_ident())]


def test_emits_beyond_the_per_call_cap_are_dropped() -> None:
    out: list[tuple[str, dict[str, Any]]] = []
    host = HookHost([("chatty", Chatty, {})], emitted_into(out), synchronous=True)
    host.start_call("c1", {})
    for k in range(5):
        host.audio("c1", "caller", k * 0.1, CHUNK)
    assert len(out) == hooks.MAX_EMITS_PER_CALL
    assert host.stats()["chatty"]["dropped"] == 5 * 300 - hooks.MAX_EMITS_PER_CALL


# -- isolation ------------------------------------------------------------------------


def test_slow_plugin_drops_its_own_audio_only_and_host_calls_stay_cheap() -> None:
    host = HookHost([("slow", Slow, {}), ("counter", Counter, {})], lambda c, e: None,
                    queue_size=64)
    calls, chunks = 10, 60
    worst = 0.0
    for k in range(chunks):
        time.sleep(0.002)  # a round of chunks from 10 calls; live, a round is 100 ms apart
        for c in range(calls):
            t0 = time.perf_counter()
            if k == 0:
                host.start_call(f"c{c}", {})
            host.audio(f"c{c}", "caller", k * 0.1, CHUNK)
            if k == chunks - 1:
                host.end_call(f"c{c}", 6.0)
            worst = max(worst, time.perf_counter() - t0)
    wait_until(lambda: all(s["queued"] == 0 for s in host.stats().values()))
    stats = host.stats()
    host.close()
    items = calls * (chunks + 2)  # start + audio + end per call
    assert stats["counter"] == {"delivered": items, "dropped": 0, "errors": 0, "queued": 0,
                                "calls": 0}
    slow = stats["slow"]
    assert slow["dropped"] > 0
    assert slow["delivered"] + slow["dropped"] == items
    assert slow["calls"] == 0  # every end got through, so no instance is left behind
    # Each call only appends to two mailboxes; even with the workers busy it stays far
    # below a 20 ms media tick.
    assert worst < 0.01, f"worst host call took {worst * 1000:.1f} ms"


def test_chunks_handed_over_together_arrive_one_by_one_and_drop_together() -> None:
    Recorder.log.clear()
    host = HookHost([("rec", Recorder, {})], lambda c, e: None, synchronous=True)
    host.start_call("c1", {})
    pieces = [("caller", 0.0, CHUNK), ("caller", 0.1, CHUNK[:400]), ("other", 0.0, [1, 2, 3])]
    host.audio_chunks("c1", pieces)
    host.audio_chunks("c1", [])
    host.audio_chunks("c1", [("caller", "not a time", CHUNK)])  # bad input: never raises
    assert [e for e in Recorder.log if e[0] == "audio"] == [
        ("audio", "c1", "caller", 0.0, 800), ("audio", "c1", "caller", 0.1, 400),
        ("audio", "c1", "other", 0.0, 3)]
    assert host.stats()["rec"]["delivered"] == 4  # start and three chunks

    class Stuck(Analyzer):
        def on_audio(self, leg: str, t: float, pcm: Any) -> None:
            time.sleep(0.5)

    threaded = HookHost([("stuck", Stuck, {})], lambda c, e: None, queue_size=2)
    threaded.start_call("c1", {})
    for k in range(6):
        threaded.audio_chunks("c1", [("caller", k * 0.2, CHUNK), ("other", k * 0.2, CHUNK)])
    dropped = threaded.stats()["stuck"]["dropped"]
    threaded.close(timeout=0.1)
    assert dropped % 2 == 0 and dropped >= 6  # per chunk, whole hand-overs at a time


def test_what_a_worker_drained_still_counts_against_its_mailbox_bound() -> None:
    """Workers take their mailbox in batches; a slow one must still drop, not hoard: at a
    live pace (a chunk every 10 ms, slower than the worker's 20 ms look) the audio it holds
    never exceeds the mailbox size."""

    class VerySlow(Analyzer):
        def on_audio(self, leg: str, t: float, pcm: Any) -> None:
            time.sleep(0.05)

    host = HookHost([("very_slow", VerySlow, {})], lambda c, e: None, queue_size=8)
    host.start_call("c1", {})
    most = 0
    for k in range(60):
        host.audio("c1", "caller", k * 0.1, CHUNK)
        most = max(most, host.stats()["very_slow"]["queued"])
        time.sleep(0.01)
    stats = host.stats()["very_slow"]
    host.close(timeout=0.2)
    assert stats["dropped"] > 30 and most <= 8, (stats, most)


def test_control_events_have_a_reserve_over_audio() -> None:
    Stuck.release.clear()
    host = HookHost([("stuck", Stuck, {})], lambda c, e: None, queue_size=4)
    host.start_call("c0", {})
    for k in range(20):
        host.audio("c0", "caller", k * 0.1, CHUNK)
    # The mailbox is full of audio, yet new calls still start and end.
    for c in range(1, 6):
        host.start_call(f"c{c}", {})
        host.end_call(f"c{c}", 1.0)
    host.end_call("c0", 2.0)
    Stuck.release.set()
    wait_until(lambda: host.stats()["stuck"]["queued"] == 0)
    stats = host.stats()["stuck"]
    host.close()
    assert stats["calls"] == 0
    assert stats["dropped"] >= 15
    assert stats["delivered"] == 6 * 2 + (20 - stats["dropped"])  # starts, ends, audio kept


def test_raising_plugin_is_counted_logged_once_and_harms_nobody(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="switchboard.hooks")
    host = HookHost([("raising", Raising, {}), ("rec", Recorder, {})], lambda c, e: None)
    for c in range(3):
        host.start_call(f"c{c}", {})
        for k in range(10):
            host.audio(f"c{c}", "caller", k * 0.1, CHUNK)
        host.end_call(f"c{c}", 1.0)
    wait_until(lambda: all(s["queued"] == 0 for s in host.stats().values()))
    stats = host.stats()
    host.close()
    assert stats["raising"]["errors"] == 30
    assert stats["raising"]["delivered"] == 6  # the starts and ends went through
    assert stats["rec"] == {"delivered": 36, "dropped": 0, "errors": 0, "queued": 0, "calls": 0}
    assert [r.message for r in caplog.records].count(
        "event=hook_error analyzer=raising call_id=c0 in=on_audio suppressed=0") == 1
    assert len(caplog.records) == 1  # the other 29 wait for the next log interval


def test_plugin_whose_init_fails_is_skipped_for_that_call() -> None:
    host = HookHost([("badinit", BadInit, {}), ("rec", Recorder, {})], lambda c, e: None,
                    synchronous=True)
    for c in ("c1", "c2"):
        host.start_call(c, {})
        host.audio(c, "caller", 0.0, CHUNK)
        host.end_call(c, 1.0)
    stats = host.stats()
    assert stats["badinit"] == {"delivered": 3, "dropped": 2, "errors": 1, "queued": 0,
                                "calls": 0}
    assert stats["rec"]["delivered"] == 6


def test_close_returns_within_its_timeout_with_a_stuck_plugin() -> None:
    Stuck.release.clear()
    host = HookHost([("stuck", Stuck, {}), ("rec", Recorder, {})], lambda c, e: None)
    host.start_call("c1", {})
    host.audio("c1", "caller", 0.0, CHUNK)
    wait_until(lambda: host.stats()["stuck"]["queued"] == 0)  # it is inside on_audio now
    t0 = time.monotonic()
    host.close(timeout=0.3)
    took = time.monotonic() - t0
    Stuck.release.set()
    assert took < 1.0
    assert ("close", "c1") in Recorder.log  # the healthy plugin closed its open call
    host.audio("c1", "caller", 0.1, CHUNK)  # after close: ignored, no error
    host.close()


# -- loading --------------------------------------------------------------------------


def test_load_factories_by_name_mapping_and_path() -> None:
    factories = load_factories([
        "talk",
        {"name": "stress", "options": {"alert_z": 2.5}},
        {"path": "tests.recorder.test_hooks:Recorder", "options": {"k": 1}},
        "tests.recorder.test_hooks:Counter",
        {"name": "rec2", "path": "tests.recorder.test_hooks:Recorder"},
    ])
    assert factories == [
        ("talk", TalkAnalyzer, {}),
        ("stress", StressAnalyzer, {"alert_z": 2.5}),
        ("recorder", Recorder, {"k": 1}),
        ("counter", Counter, {}),
        ("rec2", Recorder, {}),
    ]


@pytest.mark.parametrize(("item", "message"), [
    ("nosuch", "unknown analyzer 'nosuch': known are keywords, stress, talk"),
    ("nomodule.here:Thing", "cannot import nomodule.here"),
    ("tests.recorder.test_hooks:Missing", "tests.recorder.test_hooks has no Missing"),
    ({"path": "tests.recorder.test_hooks"}, "expected 'package.module:Class'"),
    ({"path": "tests.recorder.test_hooks:CHUNK"}, "is not a class or a callable"),
    ({"name": "talk", "options": {"hangover": 1}}, "analyzer 'talk': unknown option 'hangover'"),
    ({"name": "talk", "options": {"dead_air_s": "10"}}, "expected a number, not '10'"),
    ({"name": "talk", "options": {"dead_air_s": 0}}, "must be positive"),
    ({"name": "stress", "options": {"leg": "agent"}}, "'caller' or 'other', not 'agent'"),
    ({"name": "talk", "options": []}, "options must be a mapping"),
    ({"name": "talk", "opts": {}}, "unknown keys opts"),
    ({"options": {}}, "needs a 'name' or a 'path'"),
    (42, "expected a name, a path or a mapping"),
])
def test_load_factories_errors_say_what_is_wrong(item: Any, message: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        load_factories([item])
    assert message in str(info.value)


def test_the_same_name_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="talk configured twice"):
        load_factories(["talk", {"name": "talk", "options": {"dead_air_s": 5}}])


def test_builtins_are_registered_as_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    points = {ep.name: ep.value for ep in metadata.entry_points(group=hooks.ENTRY_POINT_GROUP)}
    assert points["talk"] == "recorder.analyzers.talk:TalkAnalyzer"
    assert points["keywords"] == "recorder.analyzers.keywords:KeywordAnalyzer"
    # Without the built-in table, the name resolves through the entry point.
    monkeypatch.setattr(hooks, "BUILTIN", {})
    assert load_factories(["stress"]) == [("stress", StressAnalyzer, {})]


def test_the_example_plugin_in_the_docs_works() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "analytics.md").read_text()
    section = docs.split("## Writing an analyzer", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(code, "docs/analytics.md", "exec"), namespace)
    clipping = namespace["ClippingAlert"]
    with pytest.raises(ValueError, match="'ratio': a fraction"):
        clipping.validate_options({"ratio": 2})
    out: list[tuple[str, dict[str, Any]]] = []
    host = HookHost([("clipping", clipping, {"ratio": 0.05})], emitted_into(out),
                    synchronous=True)
    loud = np.full(800, 32767, dtype=np.int16)
    loud[::2] = 0  # half the samples at full scale
    host.start_call("c1", {})
    host.audio("c1", "caller", 0.0, CHUNK)
    host.audio("c1", "caller", 0.1, loud)
    host.audio("c1", "caller", 0.2, loud)
    host.audio("c1", "other", 0.2, CHUNK)
    host.end_call("c1", 0.3)
    assert [event for _, event in out] == [
        {"type": "alert", "kind": "clipping", "leg": "caller", "t": 0.1, "source": "clipping",
         "call_id": "c1"},
        {"type": "summary", "clipped_samples": {"caller": 800, "other": 0},
         "source": "clipping", "call_id": "c1", "t": 0.3},
    ]


def test_live_interval_is_what_the_most_impatient_plugin_allows() -> None:
    """The built-ins take audio up to 2 s late; a plugin that says nothing (or something
    that is not a positive number) gets the default 0.2 s, and the host asks for the least."""
    def factory(call: dict[str, Any], emit: Any, options: dict[str, Any]) -> Analyzer:
        return Counter(call, emit, options)

    odd: Any = lambda call, emit, options: Counter(call, emit, options)  # noqa: E731
    odd.live_interval = "soon"
    cases = [
        ([("talk", TalkAnalyzer, {}), ("stress", StressAnalyzer, {})], 2.0),
        ([("talk", TalkAnalyzer, {}), ("count", Counter, {})], 0.2),
        ([("talk", TalkAnalyzer, {}), ("plain", factory, {})], 0.2),
        ([("talk", TalkAnalyzer, {}), ("odd", odd, {})], 0.2),
        ([], 0.2),
    ]
    for factories, expected in cases:
        host = HookHost(factories, lambda call_id, event: None, synchronous=True)
        assert host.live_interval == expected, factories
        host.close()


def test_each_plugin_gets_the_chunk_size_it_asks_for() -> None:
    """The recorder hands each leg's stretch over whole; a plugin gets it cut to about
    100 ms (the default `chunk_s`), whole (None), or to its own size."""
    got: dict[str, list[tuple[str, float, int]]] = {"default": [], "whole": [], "half": []}

    def keeper(key: str, size: float | None) -> type[Analyzer]:
        class Keeper(Analyzer):
            chunk_s = size

            def on_audio(self, leg: str, t: float, pcm: Any) -> None:
                got[key].append((leg, round(t, 4), len(pcm)))
        return Keeper

    class Bad(Analyzer):
        chunk_s = -1.0  # type: ignore[assignment]

    host = HookHost([("d", keeper("default", 0.1), {}), ("w", keeper("whole", None), {}),
                     ("h", keeper("half", 0.5), {}), ("b", Bad, {})],
                    lambda c, e: None, synchronous=True)
    host.start_call("c1", {})
    stretch = np.zeros(11200, dtype=np.int16)  # 1.4 s
    host.audio_chunks("c1", [("caller", 2.0, stretch), ("other", 2.0, stretch)])
    assert len(got["default"]) == 28 and {n for *_, n in got["default"]} == {800}
    assert got["default"][1] == ("caller", 2.1, 800) and got["default"][14][0] == "other"
    assert got["whole"] == [("caller", 2.0, 11200), ("other", 2.0, 11200)]
    assert [n for *_, n in got["half"]] == [3733, 3733, 3734] * 2
    stats = host.stats()
    assert stats["d"]["delivered"] == stats["w"]["delivered"] == 1 + 28  # start, 100 ms units
    assert stats["b"]["errors"] == 0

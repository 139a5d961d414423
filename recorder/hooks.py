"""Analytics hooks: in-process plugins that hear a call's events and audio while it is live.

A plugin is an `Analyzer` subclass. The `HookHost` makes one instance per call per plugin
and feeds it call events (start, DTMF, bridged, paused, resumed, queued, end) and decoded
PCM per leg; what the instance emits goes to `on_emit`, which the server routes to the
recording's sidecar, the queue log and the desktops' WebSockets.

The host sits beside the media path, never on it:

- ``start_call``/``event``/``audio``/``end_call`` only append to each plugin's own bounded
  mailbox and return; a full mailbox refuses audio first (control events have a reserve,
  and ``end`` is always accepted, so per-call state is always cleaned up). Refusals are
  counted as drops.
- One worker thread per plugin runs its instances, so a slow plugin only drops its own data.
- A plugin's exception is counted and logged (rate-limited) and never reaches the caller,
  the other calls or the other plugins. An instance whose ``__init__`` failed is skipped
  for that call.

``synchronous=True`` runs everything inline, without threads: offline replay
(`recorder.replay`) and unit tests use it.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from media.osthread import name_os_thread

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "Analyzer",
    "HookHost",
    "load_factories",
]

log = logging.getLogger("switchboard.hooks")

ENTRY_POINT_GROUP = "switchboard.analyzers"
LEGS = ("caller", "other")
RATE = 8000
# Beyond this many emitted events per call, an instance's further events are dropped: a
# plugin stuck in a loop must not flood the event loop with callbacks.
MAX_EMITS_PER_CALL = 1000
LOG_INTERVAL = 10.0  # seconds between two error lines of the same plugin
DEFAULT_LIVE_INTERVAL = 0.2
CHUNK = 0.1  # seconds: the audio chunks a plugin gets are about this long (`Analyzer.chunk_s`)
# Seconds between a worker's looks for audio (control events wake it at once): a tenth of
# its plugin's `live_interval`, within these bounds.
POLL, MAX_POLL = 0.02, 0.2

Emit = Callable[[dict[str, Any]], None]
Int16Array = npt.NDArray[np.int16]


class Analyzer:
    """Base class. One instance per call per plugin, created in the plugin's worker thread.

    `call` holds ``call_id``, ``recording_id`` (may be None), ``did``, ``caller``, ``flow``
    and ``account`` (may be None or masked). `emit(event)` takes a dict with at least
    ``"type"`` ("alert", "tag", "score", "summary"...); the host adds ``source`` (this
    plugin's name), ``call_id`` and ``t`` when they are missing.
    """

    name: ClassVar[str] = "analyzer"
    # How late live audio may reach this plugin, in seconds: the recorder hands audio over
    # less often (fewer, larger batches) when every plugin of a call allows it.
    live_interval: ClassVar[float] = DEFAULT_LIVE_INTERVAL
    # The audio chunks it gets are about this long (seconds); None: as the recorder hands
    # them over, one per leg and hand-over (up to `live_interval` long), which spares a
    # plugin that joins its chunks anyway the splitting and the per-chunk calls.
    chunk_s: ClassVar[float | None] = CHUNK

    def __init__(self, call: dict[str, Any], emit: Emit, options: dict[str, Any]) -> None:
        self.call = call
        self.emit = emit
        self.options = options

    @classmethod
    def validate_options(cls, options: dict[str, Any]) -> None:
        """Raise ValueError for options this plugin cannot use; called once at config load."""

    def on_event(self, event: dict[str, Any]) -> None:
        """``{"type": ..., "t": seconds on the call timeline, ...}``; see docs/analytics.md."""

    def on_audio(self, leg: str, t: float, pcm: Int16Array) -> None:
        """`pcm`: read-only int16 mono 8 kHz of `leg`; `t`: timeline seconds of its first sample."""

    # A plugin may also define ``on_audio_chunks(chunks)``: it then gets each hand-over's
    # chunks, ``[(leg, t, pcm), ...]`` in order, in one call instead of one `on_audio`
    # per chunk (the built-ins, which judge seconds at a time, do).

    def close(self) -> None:
        """After the ``end`` event (or at host shutdown); release resources here."""


class _Loop(Protocol):
    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> object: ...


# -- loading from config ----------------------------------------------------------------

Factory = tuple[str, Any, dict[str, Any]]


def _resolve_path(path: str) -> Any:
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"analyzer path {path!r}: expected 'package.module:Class'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(f"analyzer path {path!r}: cannot import {module_name}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"analyzer path {path!r}: {module_name} has no {attr}") from None
    return obj


def _resolve_name(name: str) -> Any:
    if name in BUILTIN:
        return BUILTIN[name]
    found = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        known = sorted(set(BUILTIN) | {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)})
        raise ValueError(f"unknown analyzer {name!r}: known are {', '.join(known)}, "
                         f"or give a path as 'package.module:Class'")
    try:
        return found[0].load()
    except Exception as exc:
        raise ValueError(f"analyzer {name!r}: entry point {found[0].value} "
                         f"does not load: {exc}") from exc


def _factory(item: Any) -> Factory:
    if isinstance(item, str):
        item = {"path": item} if ":" in item else {"name": item}
    if not isinstance(item, dict):
        raise ValueError(f"analyzer entry {item!r}: expected a name, a path or a mapping")
    unknown = set(item) - {"name", "path", "options"}
    if unknown:
        raise ValueError(f"analyzer entry {item!r}: unknown keys {', '.join(sorted(unknown))}")
    options = item.get("options")
    options = {} if options is None else options
    name, path = item.get("name"), item.get("path")
    if not isinstance(options, dict):
        raise ValueError(f"analyzer {name or path!r}: options must be a mapping")
    if path is not None:
        if not isinstance(path, str):
            raise ValueError(f"analyzer path {path!r}: expected 'package.module:Class'")
        factory = _resolve_path(path)
        name = name or getattr(factory, "name", None) or path.rpartition(":")[2].lower()
    elif isinstance(name, str) and name:
        factory = _resolve_name(name)
    else:
        raise ValueError(f"analyzer entry {item!r}: needs a 'name' or a 'path'")
    if not isinstance(name, str) or not name:
        raise ValueError(f"analyzer entry {item!r}: bad name {name!r}")
    if not callable(factory):
        raise ValueError(f"analyzer {name!r}: {factory!r} is not a class or a callable")
    validate = getattr(factory, "validate_options", None)
    if callable(validate):
        try:
            validate(options)
        except ValueError as exc:
            raise ValueError(f"analyzer {name!r}: {exc}") from exc
    return name, factory, dict(options)


def load_factories(spec: list[Any]) -> list[Factory]:
    """Config items -> ``(name, factory, options)``; ValueError names what is wrong.

    Items: ``"talk"``, ``{"name": "stress", "options": {...}}``,
    ``{"path": "pkg.mod:Class", "options": {...}}`` (``"pkg.mod:Class"`` alone works too).
    Names resolve against `BUILTIN` first, then the ``switchboard.analyzers`` entry points.
    """
    if not isinstance(spec, list):
        raise ValueError("analyzers: expected a list")
    factories = [_factory(item) for item in spec]
    names = [name for name, _, _ in factories]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"analyzers: {', '.join(twice)} configured twice "
                         f"(give one of them another 'name')")
    return factories


# -- the host ---------------------------------------------------------------------------

# Mailbox items: (kind, call_id, payload). kind is "start", "event", "audio", "end", "stop";
# an "audio" payload is a list of (leg, t, pcm) chunks handed over together.
Item = tuple[str, str, Any]
_STOP: Item = ("stop", "", None)


class _Mailbox:
    """A bounded FIFO: audio up to `capacity`, control events up to `capacity + reserve`,
    ``end`` and ``stop`` always (one per call, so bounded by the live calls). Sizes count
    audio chunks: an item with several counts as that many."""

    def __init__(self, capacity: int, reserve: int, poll: float = POLL) -> None:
        self.capacity = capacity
        self.poll = poll
        self.reserve = reserve
        self._items: deque[Item] = deque()
        self._ready = threading.Condition(threading.Lock())
        self.refused = 0
        self.queued = 0  # the size of what is in _items
        self.in_hand = 0  # drained by the worker, not started yet: still counts to the bound

    def put(self, item: Item, weight: int | None = None) -> bool:
        """`weight`: the item's `_weight`, when the caller has it (one item, many boxes)."""
        kind = item[0]
        if weight is None:
            weight = _weight(item)
        with self._ready:
            size = self.queued + self.in_hand
            if kind == "audio" and size + weight > self.capacity or (
                kind in ("start", "event") and size >= self.capacity + self.reserve
            ):
                self.refused += weight
                return False
            self._items.append(item)
            self.queued += weight
            # Audio wakes the worker only when the mailbox is half full, and so do control
            # events for a worker that looks often anyway (every MAX_POLL at most);
            # otherwise the worker drains it every `poll` seconds, so a burst of chunks or
            # a call's events cost one wake-up and one GIL hand-off instead of one each.
            if (kind == "stop" or size + weight >= self.capacity // 2
                    or (kind != "audio" and self.poll < MAX_POLL)):
                self._ready.notify()
            return True

    def get_all(self) -> list[Item]:
        """Everything queued, oldest first; waits for at least one item. The worker takes
        each item's `_weight` off `in_hand` once it has handled it."""
        with self._ready:
            while not self._items:
                self._ready.wait(self.poll)
            items = list(self._items)
            self._items.clear()
            self.in_hand, self.queued = self.queued, 0
            return items

    def __len__(self) -> int:
        return self.queued + self.in_hand


def _weight(item: Item) -> int:
    """How much of a mailbox's bound an item takes: its audio in CHUNK units, else 1."""
    return _units(item[2]) if item[0] == "audio" else 1


def _units(chunks: Sequence[tuple[str, float, Int16Array]]) -> int:
    size = round(CHUNK * RATE)
    return sum(-(-len(pcm) // size) for _, _, pcm in chunks)


def _poll(factory: Any) -> float:
    interval = getattr(factory, "live_interval", DEFAULT_LIVE_INTERVAL)
    if not isinstance(interval, int | float) or isinstance(interval, bool):
        return POLL
    return min(max(interval / 10, POLL), MAX_POLL)


def _chunk_seconds(factory: Any) -> float | None:
    """A factory's `chunk_s`: None, or a positive number of seconds (else the default)."""
    value = getattr(factory, "chunk_s", CHUNK)
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)
                         and value > 0):
        return value
    log.warning("event=hook_bad_chunk_s analyzer=%r value=%r default=%s", factory, value, CHUNK)
    return CHUNK


def split_chunks(chunks: Sequence[tuple[str, float, Int16Array]], seconds: float
                 ) -> list[tuple[str, float, Int16Array]]:
    """Each ``(leg, t, pcm)`` cut into pieces of about `seconds` (views, equal sizes)."""
    size = max(round(seconds * RATE), 1)
    out: list[tuple[str, float, Int16Array]] = []
    for leg, t, pcm in chunks:
        count = -(-len(pcm) // size)
        if count <= 1:
            out.append((leg, t, pcm))
            continue
        for i in range(count):
            lo, hi = len(pcm) * i // count, len(pcm) * (i + 1) // count
            out.append((leg, t + lo / RATE, pcm[lo:hi]))
    return out


@dataclass
class _Throttle:
    """At most one log line per LOG_INTERVAL; counts the ones held back."""

    last: float = float("-inf")
    held: int = 0

    def allow(self) -> int | None:
        """None to stay quiet, else how many were held back since the last line."""
        now = time.monotonic()
        if now - self.last < LOG_INTERVAL:
            self.held += 1
            return None
        held, self.last, self.held = self.held, now, 0
        return held


@dataclass
class _CallState:
    now: float  # timeline seconds of the data being processed: the default "t" of emits
    emitted: int = 0


@dataclass
class _Plugin:
    """One configured plugin: its mailbox, its live instances, its counters.

    Counters are written by one thread each (`mailbox.refused` under the mailbox lock by
    the producers, the rest by the worker), so reading them needs no lock."""

    name: str
    factory: Any
    options: dict[str, Any]
    mailbox: _Mailbox
    chunk_s: float | None = CHUNK  # the factory's `chunk_s`
    instances: dict[str, tuple[Analyzer, _CallState]] = field(default_factory=dict)
    delivered: int = 0
    discarded: int = 0  # items of a call without an instance (its start dropped or failed)
    errors: int = 0
    throttle: _Throttle = field(default_factory=_Throttle)
    thread: threading.Thread | None = None

    def stats(self) -> dict[str, int]:
        return {
            "delivered": self.delivered,
            "dropped": self.mailbox.refused + self.discarded,
            "errors": self.errors,
            "queued": len(self.mailbox),
            "calls": len(self.instances),
        }


def _frozen(pcm: npt.ArrayLike) -> Int16Array:
    """`pcm` itself when nobody can change it any more, else a frozen copy: one array
    shared by every plugin."""
    if (isinstance(pcm, np.ndarray) and pcm.dtype == np.int16 and pcm.ndim == 1
            and not pcm.flags.writeable and _frozen_base(pcm)):
        return pcm  # already frozen, and so is what it views (the recorder's chunks)
    chunk = np.array(pcm, dtype=np.int16).reshape(-1)  # a copy the caller can't touch
    chunk.flags.writeable = False
    return chunk


def _frozen_base(pcm: np.ndarray) -> bool:
    """An array of its own, or a view of read-only arrays down to one of their own or to a
    bytes object (the recorder's frames): nobody can write through another name for the
    same memory without unfreezing it first, and bytes cannot be written at all."""
    base = pcm.base
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            return False
        base = base.base
    return base is None or isinstance(base, bytes)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class HookHost:
    """Runs the configured analyzers for every call; see the module docstring."""

    def __init__(
        self,
        factories: Sequence[tuple[str, Any, dict[str, Any]]],
        on_emit: Callable[[str, dict[str, Any]], None],
        *,
        loop: _Loop | None = None,
        queue_size: int = 256,
        synchronous: bool = False,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be positive, not {queue_size}")
        self._on_emit = on_emit
        self._loop = loop
        self._synchronous = synchronous
        self._closed = False
        self._throttle = _Throttle()  # bad input from the server itself
        self._sink_throttle = _Throttle()  # on_emit raising
        reserve = max(16, queue_size // 4)
        self._plugins = [
            _Plugin(name, factory, dict(options), _Mailbox(queue_size, reserve, _poll(factory)),
                    _chunk_seconds(factory))
            for name, factory, options in factories
        ]
        if not synchronous:
            for plugin in self._plugins:
                plugin.thread = threading.Thread(
                    target=self._work, args=(plugin,), name=f"hook-{plugin.name}", daemon=True
                )
                plugin.thread.start()

    # -- called from the event loop: cheap, never raise ------------------------------

    def start_call(self, call_id: str, call: dict[str, Any], t: float = 0.0) -> None:
        try:
            info = dict(call)
            info.setdefault("call_id", call_id)
            self._post(("start", call_id, (info, float(t))))
        except Exception as exc:
            self._bad_input("start", call_id, exc)

    def event(self, call_id: str, event: dict[str, Any]) -> None:
        try:
            kind = event.get("type")
            if kind in ("start", "end"):
                raise ValueError(f"{kind!r} goes through start_call/end_call")
            if kind == "dtmf" and (event.get("masked") or "digit" not in event):
                return  # sensitive input never reaches a plugin
            self._post(("event", call_id, dict(event, t=float(event["t"]))))
        except Exception as exc:
            self._bad_input("event", call_id, exc)

    def audio(self, call_id: str, leg: str, t: float, pcm: npt.ArrayLike) -> None:
        try:
            self._post(("audio", call_id, [(leg, float(t), _frozen(pcm))]))
        except Exception as exc:
            self._bad_input("audio", call_id, exc)

    def audio_chunks(self, call_id: str, chunks: Sequence[tuple[str, float, npt.ArrayLike]]
                     ) -> None:
        """Several `audio` chunks in one mailbox item (one lock, one hand-over): the
        recorder passes what one placement made final, one chunk per leg; each plugin gets
        them cut to its `chunk_s`. A full mailbox drops them together."""
        try:
            batch = [(leg, float(t), _frozen(pcm)) for leg, t, pcm in chunks]
            if batch:
                self._post(("audio", call_id, batch))
        except Exception as exc:
            self._bad_input("audio", call_id, exc)

    def end_call(self, call_id: str, t: float) -> None:
        try:
            self._post(("end", call_id, float(t)))
        except Exception as exc:
            self._bad_input("end", call_id, exc)

    def _bad_input(self, where: str, call_id: str, exc: Exception) -> None:
        held = self._throttle.allow()
        if held is not None:
            log.warning("event=hook_bad_input in=%s call_id=%s error=%s suppressed=%d",
                        where, call_id, exc, held)

    @property
    def live_interval(self) -> float:
        """The most any plugin lets its live audio wait (seconds): the smallest of their
        `live_interval` (a factory without one: the default)."""
        values = []
        for plugin in self._plugins:
            value = getattr(plugin.factory, "live_interval", DEFAULT_LIVE_INTERVAL)
            ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
            values.append(float(value) if ok else DEFAULT_LIVE_INTERVAL)
        return min(values, default=DEFAULT_LIVE_INTERVAL)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per plugin: delivered, dropped, errors (counters); queued, calls (gauges)."""
        return {plugin.name: plugin.stats() for plugin in self._plugins}

    def close(self, timeout: float = 2.0) -> None:
        """Stop the workers (closing the instances still open); return within `timeout`.

        A plugin stuck in its code keeps its daemon thread; the host forgets it."""
        if self._closed:
            return
        self._closed = True
        if self._synchronous:
            for plugin in self._plugins:
                self._stop(plugin)
            return
        for plugin in self._plugins:
            plugin.mailbox.put(_STOP)
        deadline = time.monotonic() + max(timeout, 0.0)
        for plugin in self._plugins:
            if plugin.thread is not None:
                plugin.thread.join(max(deadline - time.monotonic(), 0.0))
                if plugin.thread.is_alive():
                    log.warning("event=hook_stuck analyzer=%s", plugin.name)

    def _post(self, item: Item) -> None:
        if self._closed:
            return
        weight = _weight(item)
        for plugin in self._plugins:
            if self._synchronous:
                self._handle(plugin, item)
            else:
                plugin.mailbox.put(item, weight)

    # -- the worker side ------------------------------------------------------------

    def _work(self, plugin: _Plugin) -> None:
        name_os_thread(f"sb-hook-{plugin.name}")
        while True:
            for item in plugin.mailbox.get_all():
                plugin.mailbox.in_hand -= _weight(item)
                if item[0] == "stop":
                    self._stop(plugin)
                    return
                self._handle(plugin, item)

    def _stop(self, plugin: _Plugin) -> None:
        for call_id in list(plugin.instances):
            self._close(plugin, call_id)

    def _handle(self, plugin: _Plugin, item: Item) -> None:
        kind, call_id, payload = item
        if kind == "start":
            self._start(plugin, call_id, *payload)
            return
        found = plugin.instances.get(call_id)
        if found is None:
            plugin.discarded += 1
            return
        analyzer, state = found
        if kind == "audio":
            if plugin.chunk_s is not None:
                payload = split_chunks(payload, plugin.chunk_s)
            many = getattr(analyzer, "on_audio_chunks", None)
            if many is not None:
                state.now = max(t + len(pcm) / RATE for _, t, pcm in payload)
                self._call(plugin, call_id, many, payload, count=_units(payload))
                return
            for leg, t, pcm in payload:
                state.now = t + len(pcm) / RATE
                self._call(plugin, call_id, analyzer.on_audio, leg, t, pcm,
                           count=_units([(leg, t, pcm)]))
        elif kind == "event":
            state.now = payload["t"]
            self._call(plugin, call_id, analyzer.on_event, dict(payload))
        elif kind == "end":
            state.now = payload
            self._call(plugin, call_id, analyzer.on_event, {"type": "end", "t": payload})
            self._close(plugin, call_id)

    def _start(self, plugin: _Plugin, call_id: str, call: dict[str, Any], t: float) -> None:
        if call_id in plugin.instances:
            self._close(plugin, call_id)  # a repeated start replaces the old instance
        state = _CallState(t)
        try:
            analyzer = plugin.factory(
                dict(call), self._emitter(plugin, call_id, state), dict(plugin.options)
            )
        except Exception:
            self._failed(plugin, call_id, "init")
            return
        plugin.instances[call_id] = (analyzer, state)
        self._call(plugin, call_id, analyzer.on_event, {"type": "start", "t": t})

    def _close(self, plugin: _Plugin, call_id: str) -> None:
        analyzer, _ = plugin.instances.pop(call_id)
        try:
            analyzer.close()
        except Exception:
            self._failed(plugin, call_id, "close")

    def _call(self, plugin: _Plugin, call_id: str, method: Callable[..., None], *args: Any,
              count: int = 1) -> None:
        try:
            method(*args)
        except Exception:
            self._failed(plugin, call_id, getattr(method, "__name__", "call"))
        else:
            plugin.delivered += count

    def _failed(self, plugin: _Plugin, call_id: str, where: str) -> None:
        """Count the error; log it with its traceback at most once per LOG_INTERVAL."""
        plugin.errors += 1
        held = plugin.throttle.allow()
        if held is not None:
            log.warning("event=hook_error analyzer=%s call_id=%s in=%s suppressed=%d",
                        plugin.name, call_id, where, held, exc_info=True)

    def _emitter(self, plugin: _Plugin, call_id: str, state: _CallState) -> Emit:
        def emit(event: dict[str, Any]) -> None:
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                raise TypeError(f"emit takes a dict with a 'type' string, not {event!r}")
            # A JSON round trip: numpy scalars become numbers, and the plugin can go on
            # mutating its dict without racing the event loop.
            out = json.loads(json.dumps(event, default=_jsonable))
            out.setdefault("source", plugin.name)
            out.setdefault("call_id", call_id)
            out.setdefault("t", round(state.now, 3))
            state.emitted += 1
            if state.emitted > MAX_EMITS_PER_CALL:
                plugin.discarded += 1
                return
            self._deliver(call_id, out)

        return emit

    def _deliver(self, call_id: str, event: dict[str, Any]) -> None:
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._safe_emit, call_id, event)
            except RuntimeError:  # the loop closed under us: shutting down
                pass
        else:
            self._safe_emit(call_id, event)

    def _safe_emit(self, call_id: str, event: dict[str, Any]) -> None:
        try:
            self._on_emit(call_id, event)
        except Exception:
            held = self._sink_throttle.allow()
            if held is not None:
                log.exception("event=hook_emit_failed call_id=%s source=%s suppressed=%d",
                              call_id, event.get("source"), held)


# The built-ins import `Analyzer` from this module, so they come after it.
from recorder.analyzers.keywords import KeywordAnalyzer  # noqa: E402
from recorder.analyzers.stress import StressAnalyzer  # noqa: E402
from recorder.analyzers.talk import TalkAnalyzer  # noqa: E402

BUILTIN: dict[str, type[Analyzer]] = {
    cls.name: cls for cls in (TalkAnalyzer, StressAnalyzer, KeywordAnalyzer)
}

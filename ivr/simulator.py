"""Offline flow runs with a fake clock and a scripted caller, no network.

Used by ``switchboard flow test`` and by tests. The caller script is a string of
keys; 'T' means "press nothing and let the timer expire". The same
``DigitCollector`` as in live calls decides when input is complete.
"""

from __future__ import annotations

import argparse
import json
import sys
import wave
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .commands import (
    DTMF_KEYS,
    Command,
    DigitsResult,
    EnterQueue,
    GetDigits,
    GetTime,
    Hangup,
    HttpRequest,
    HttpResult,
    Play,
    PlayResult,
    RecordControl,
)
from .diagnostics import FlowError, UsageError
from .digits import DigitCollector
from .interpreter import FlowRun
from .lint import flow_files
from .loader import load_flow
from .model import Flow

NO_NETWORK = "no network in simulation"


@dataclass
class SimResult:
    flow: str
    path: list[str]
    variables: dict[str, str]
    events: list[dict[str, Any]]
    ended: str
    elapsed: float
    sensitive: list[str] = field(default_factory=list)
    unused_keys: str = ""

    def masked_variables(self) -> dict[str, str]:
        return {k: "*" * len(v) if k in self.sensitive else v for k, v in self.variables.items()}

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary; sensitive values are masked."""
        return {
            "flow": self.flow,
            "path": list(self.path),
            "variables": self.masked_variables(),
            "ended": self.ended,
            "elapsed": round(self.elapsed, 3),
            "unused_keys": self.unused_keys,
            "events": self.events,
        }


class _Caller:
    """The scripted keys, pressed ``gap`` seconds apart once the flow listens."""

    def __init__(self, script: str, gap: float) -> None:
        bad = [k for k in script if k not in DTMF_KEYS and k != "T"]
        if bad:
            raise ValueError(f"not a key: {bad[0]!r} (use 0-9 * # A-D, T for a timeout)")
        self.keys = list(script)
        self.gap = gap

    def next_key(self) -> str | None:
        return self.keys[0] if self.keys and self.keys[0] != "T" else None

    def take(self) -> str:
        return self.keys.pop(0)

    def skip_timeout(self) -> bool:
        """Consume a 'T' if it is next: the caller stays silent for this input."""
        if self.keys and self.keys[0] == "T":
            self.keys.pop(0)
            return True
        return False


class _Sim:
    def __init__(
        self,
        caller: _Caller,
        prompt_duration: Callable[[str], float],
        http: Callable[[HttpRequest], HttpResult] | None,
        start: datetime,
    ) -> None:
        self.caller = caller
        self.duration = prompt_duration
        self.http = http
        self.start = start
        self.now = 0.0

    def length(self, prompts: Sequence[str]) -> float:
        return sum(max(0.0, float(self.duration(p))) for p in prompts)

    def play(self, cmd: Play) -> PlayResult:
        end = self.now + self.length(cmd.prompts)
        key = self.caller.next_key()
        if cmd.barge_in and key is not None and self.now + self.caller.gap < end:
            self.now += self.caller.gap
            return PlayResult(self.caller.take())
        self.now = end
        return PlayResult(None)

    def get_digits(self, cmd: GetDigits) -> DigitsResult:
        playing = bool(cmd.prompts) and not cmd.typeahead
        prompt_end = self.now + (self.length(cmd.prompts) if playing else 0.0)
        c = DigitCollector(cmd.spec, now=self.now, prompt_playing=playing, barge_in=cmd.barge_in, typeahead=cmd.typeahead)
        if c.result is not None:
            return c.result
        if playing and prompt_end <= self.now:
            c.prompt_finished(self.now)
        silent = self.caller.skip_timeout()
        listen_from = self.now if cmd.barge_in else prompt_end
        press_at: float | None = None if silent else listen_from + self.caller.gap
        while True:
            if press_at is not None and self.caller.next_key() is None:
                press_at = None
                silent = self.caller.skip_timeout()
            events = [(t, kind) for t, kind in (
                (prompt_end if c.prompt_playing else None, "prompt"),
                (press_at, "key"),
                (c.next_deadline(), "timer"),
            ) if t is not None]
            if not events:
                raise UsageError("digit collection can never end")
            t, kind = min(events, key=lambda e: (e[0], ("prompt", "timer", "key").index(e[1])))
            self.now = max(self.now, t)
            if kind == "prompt":
                c.prompt_finished(self.now)
                continue
            if kind == "timer":
                result = c.on_timer(self.now)
            else:
                result = c.on_digit(self.caller.take(), self.now)
                press_at = self.now + self.caller.gap
            if result is not None:
                return result

    def run(self, run: FlowRun, max_steps: int) -> tuple[str, list[dict[str, Any]]]:
        timeline: list[dict[str, Any]] = []
        cmd: Command = run.start()
        for _ in range(max_steps):
            timeline += [{"t": round(self.now, 3), "event": n, **d} for n, d in run.events[len(timeline):]]
            if isinstance(cmd, Hangup):
                return f"hangup:{cmd.reason}", timeline
            if isinstance(cmd, EnterQueue):
                return f"queue:{cmd.queue}", timeline
            cmd = run.send(self.execute(cmd))
        timeline += [{"t": round(self.now, 3), "event": n, **d} for n, d in run.events[len(timeline):]]
        return "error:max_steps", timeline

    def execute(self, cmd: Command) -> object:
        if isinstance(cmd, Play):
            return self.play(cmd)
        if isinstance(cmd, GetDigits):
            return self.get_digits(cmd)
        if isinstance(cmd, GetTime):
            return self.start + timedelta(seconds=self.now)
        if isinstance(cmd, RecordControl):
            return None
        if isinstance(cmd, HttpRequest):
            if self.http is None:
                return HttpResult(None, b"", NO_NETWORK)
            return self.http(cmd)
        raise UsageError(f"unexpected command {cmd!r}")


def simulate(
    flow: Flow,
    digits: str,
    *,
    prompt_duration: Callable[[str], float] = lambda name: 1.0,
    start: datetime | None = None,
    variables: Mapping[str, str] | None = None,
    http: Callable[[HttpRequest], HttpResult] | None = None,
    digit_gap: float = 0.3,
    flows: Callable[[str], Flow] | None = None,
    max_steps: int = 10000,
) -> SimResult:
    """Run ``flow`` against a scripted caller; see docs/ivr.md, "Simulator"."""
    if start is None:
        start = datetime.now(UTC)
    elif start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    sim = _Sim(_Caller(digits, digit_gap), prompt_duration, http, start)
    run = FlowRun(flow, variables, flows=flows)
    ended, timeline = sim.run(run, max_steps)
    return SimResult(
        flow=flow.name,
        path=list(run.path),
        variables=dict(run.variables),
        events=timeline,
        ended=ended,
        elapsed=sim.now,
        sensitive=sorted(run.sensitive),
        unused_keys="".join(sim.caller.keys),
    )


# -- command line ---------------------------------------------------------------


def wav_durations(prompt_dir: Path, fallback: float = 1.0) -> Callable[[str], float]:
    """Prompt length read from ``prompt_dir/<name>.wav``; ``fallback`` if unreadable."""
    cache: dict[str, float] = {}

    def duration(name: str) -> float:
        if name not in cache:
            try:
                with wave.open(str(prompt_dir / f"{name}.wav"), "rb") as w:
                    cache[name] = w.getnframes() / float(w.getframerate())
            except (OSError, EOFError, wave.Error):
                cache[name] = fallback
        return cache[name]

    return duration


def directory_flows(directory: Path) -> Callable[[str], Flow]:
    """Look flows up by name among the files of a directory (for cross-flow goto)."""

    def lookup(name: str) -> Flow:
        for file in flow_files([directory]):
            try:
                flow = load_flow(file)
            except FlowError:
                continue
            if flow.name == name:
                return flow
        raise KeyError(name)

    return lookup


def _flow_test_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="switchboard flow test", description="Run a flow offline with scripted keys.")
    p.add_argument("file", type=Path)
    p.add_argument("--digits", default="", help="keys in order; T = let the timeout expire")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--var", action="append", default=[], metavar="K=V", help="initial variable")
    p.add_argument("--prompts", type=Path, help="prompt directory (WAV lengths set prompt timing)")
    p.add_argument("--at", help="call time, ISO 8601 (default now; UTC if no offset)")
    p.add_argument("--gap", type=float, default=0.3, help="seconds between key presses")
    return p


def _parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, dict[str, str], datetime | None]:
    p = _flow_test_parser()
    args = p.parse_args(list(argv))
    variables = {}
    for item in args.var:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--var expects K=V, got {item!r}")
        variables[key] = value
    at = None
    if args.at:
        try:
            at = datetime.fromisoformat(args.at)
        except ValueError:
            p.error(f"--at: not an ISO date-time: {args.at!r}")
    if any(k not in DTMF_KEYS and k != "T" for k in args.digits):
        p.error("--digits: use 0-9 * # A-D, and T for a timeout")
    return args, variables, at


def main_flow_test(argv: Sequence[str]) -> int:
    """``switchboard flow test FILE --digits ... [--json] [--var k=v] [--prompts DIR] [--at ISO]``."""
    try:
        args, variables, at = _parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        flow = load_flow(args.file)
    except FlowError as exc:
        print(exc, file=sys.stderr)
        return 1
    duration = wav_durations(args.prompts) if args.prompts else (lambda name: 1.0)
    result = simulate(
        flow,
        args.digits,
        prompt_duration=duration,
        start=at,
        variables=variables,
        digit_gap=args.gap,
        flows=directory_flows(args.file.parent),
    )
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True))
    else:
        print(_human(flow, result))
    return 1 if result.ended.startswith("error:") else 0


def _human(flow: Flow, result: SimResult) -> str:
    lines = [f"flow {flow.name} ({flow.source}, version {flow.version})"]
    lines.append("path: " + " -> ".join(result.path))
    lines.append("variables:")
    for key, value in sorted(result.masked_variables().items()):
        lines.append(f"  {key} = {value}")
    if not result.variables:
        lines.append("  (none)")
    lines.append(f"ended: {result.ended} after {result.elapsed:.1f} s")
    if result.unused_keys:
        lines.append(f"unused keys: {result.unused_keys}")
    return "\n".join(lines)


def main_lint(argv: Sequence[str]) -> int:
    """``switchboard lint [PATH...] [--prompts DIR]``: exit 1 on any error."""
    from .lint import lint_paths

    p = argparse.ArgumentParser(prog="switchboard lint", description="Check flow files.")
    p.add_argument("paths", nargs="*", type=Path)
    p.add_argument("--prompts", type=Path, help="prompt directory (default ./prompts if present)")
    try:
        args = p.parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    paths = args.paths or [Path("config/flows")]
    prompt_dir = args.prompts
    if prompt_dir is None and Path("prompts").is_dir():
        prompt_dir = Path("prompts")
    missing = [path for path in paths if not path.exists()]
    for path in missing:
        print(f"{path}:1:1: no such file or directory", file=sys.stdout)
    diagnostics = lint_paths([path for path in paths if path.exists()], prompt_dir=prompt_dir)
    for d in diagnostics:
        print(d)
    if missing or any(d.is_error for d in diagnostics):
        return 1
    count = len(flow_files([path for path in paths if path.exists()]))
    print(f"{count} flow{'s' if count != 1 else ''} OK")
    return 0

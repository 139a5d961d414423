"""Shared helpers for the ivr tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from textwrap import dedent

from ivr.commands import Command
from ivr.interpreter import FlowRun
from ivr.loader import load_flow, load_flow_text
from ivr.model import Flow

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "config" / "flows" / "main.yaml"
FIXTURES = Path(__file__).resolve().parent / "flows"
PROMPTS = ROOT / "prompts"


def flow(text: str, name: str = "t.yaml") -> Flow:
    return load_flow_text(dedent(text), name)


def demo() -> Flow:
    return load_flow(DEMO)


def drive(run: FlowRun, results: Iterable[object]) -> list[Command]:
    """Start ``run`` and answer each command with the next scripted result."""
    commands = [run.start()]
    for result in results:
        commands.append(run.send(result))
    return commands


def respond(run: FlowRun, answer: Callable[[Command], object], limit: int = 200) -> list[Command]:
    """Drive ``run`` with a function from command to result until Hangup/EnterQueue."""
    from ivr.commands import EnterQueue, Hangup

    commands = [run.start()]
    while not isinstance(commands[-1], Hangup | EnterQueue) and len(commands) < limit:
        commands.append(run.send(answer(commands[-1])))
    return commands


def names(events: Sequence[tuple[str, dict[str, object]]]) -> list[str]:
    return [name for name, _ in events]

"""DESIGN.md's layer rules, for every package: which project packages each may import,
sans-IO cores (no asyncio, socket, time, random, threads), modules under ~800 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = {"acd", "ivr", "media", "recorder", "signaling", "switchboard"}
IO = {"asyncio", "socket", "time", "random", "threading"}

# package -> (project packages it may import, modules that are asyncio adapters)
RULES: dict[str, tuple[set[str], set[str]]] = {
    "signaling": (set(), {"transport.py"}),
    "media": (set(), {"session.py", "clock.py", "engine.py"}),
    "acd": (set(), set()),
    "ivr": (set(), set()),
    # mediastream: an aiohttp WebSocket client; hooks: one worker thread per analyzer
    "recorder": ({"media"}, {"mediastream.py", "hooks.py"}),
}
EXTRA_IO = {"acd": {"datetime"}}  # the ACD takes `now` as a float: no wall clock at all
MODULES = [(pkg, path) for pkg in sorted(RULES) for path in sorted((ROOT / pkg).glob("*.py"))]


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(("pkg", "path"), MODULES, ids=lambda v: v if isinstance(v, str) else v.name)
def test_imports_point_down_the_layers(pkg: str, path: Path) -> None:
    allowed, adapters = RULES[pkg]
    names = imported(path)
    assert names & (PROJECT - {pkg} - allowed) == set()
    if path.name not in adapters:
        assert names & (IO | EXTRA_IO.get(pkg, set())) == set(), f"{pkg}/{path.name} is sans-IO"


@pytest.mark.parametrize("path", sorted(p for pkg in sorted(PROJECT) for p in (ROOT / pkg).glob("*.py")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_modules_stay_small(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) < 800

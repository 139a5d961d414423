"""The ivr package stays sans-IO and below the application layer (DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .helpers import ROOT

FORBIDDEN = {"asyncio", "socket", "time", "random", "signaling", "media", "switchboard"}
MODULES = sorted((ROOT / "ivr").glob("*.py"))


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_io_or_upper_layer_imports(path: Path) -> None:
    assert imported(path) & FORBIDDEN == set()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_modules_stay_small(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) < 800

"""FlowRegistry: initial load, safe reload, change detection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ivr.interpreter import FlowRun
from ivr.registry import FlowRegistry

GOOD = "flow: {name}\nstart: a\nnodes:\n  a: {{type: hangup, reason: {reason}}}\n"


def write(path: Path, text: str, bump: int = 0) -> None:
    path.write_text(text)
    st = path.stat()
    # make the change visible even on coarse mtime file systems
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    write(tmp_path / "main.yaml", GOOD.format(name="main", reason="v1"))
    write(tmp_path / "sales.yml", GOOD.format(name="sales", reason="s1"))
    write(tmp_path / "broken.yaml", "flow: broken\nstart: a\nnodes:\n  a: {type: ???}\n")
    return tmp_path


def test_initial_load_keeps_good_flows(flows: Path) -> None:
    reg = FlowRegistry(flows)
    diags = reg.load()
    assert reg.names() == ["main", "sales"]
    assert [(Path(d.file).name, d.line, d.col) for d in diags] == [("broken.yaml", 4, 13)]
    with pytest.raises(KeyError):
        reg.get("broken")
    assert not reg.changed_since_last_load()


def test_broken_edit_keeps_previous_version(flows: Path) -> None:
    reg = FlowRegistry(flows)
    reg.load()
    old = reg.get("main")
    run = FlowRun(old)  # a call in progress
    write(flows / "main.yaml", "flow: main\nstart: a\nnodes:\n  a: {type: hangup, reason: [x]}\n", bump=1)
    assert reg.changed_since_last_load()
    diags = reg.reload()
    assert [str(d).split(": ", 1)[0] for d in diags] == [f"{flows / 'main.yaml'}:4:29"]
    assert reg.get("main") is old
    assert not reg.changed_since_last_load()
    assert reg.reload() == []  # nothing changed since: not reported again

    write(flows / "main.yaml", GOOD.format(name="main", reason="v2"), bump=2)
    assert reg.reload() == []
    new = reg.get("main")
    assert new is not old and new.nodes["a"]["reason"] == "v2"
    assert run.flow is old and run.start().reason == "v1"  # type: ignore[union-attr]


def test_lint_errors_also_keep_previous_version(flows: Path) -> None:
    reg = FlowRegistry(flows)
    reg.load()
    write(flows / "main.yaml", "flow: main\nstart: a\nnodes:\n  a: {type: goto, node: nowhere}\n", bump=1)
    [d] = reg.reload()
    assert "unknown node 'nowhere'" in d.message
    assert reg.get("main").nodes["a"].type == "hangup"


def test_missing_prompt_refused_when_checker_given(flows: Path) -> None:
    write(flows / "p.yaml", "flow: p\nstart: a\nnodes:\n  a: {type: play, prompts: [hi], next: b}\n  b: {type: hangup}\n")
    reg = FlowRegistry(flows, prompt_exists=lambda name: name != "hi")
    diags = reg.load()
    assert any("missing prompt file 'hi.wav'" in d.message for d in diags)
    assert "p" not in reg.names()


def test_new_fixed_and_removed_files(flows: Path) -> None:
    reg = FlowRegistry(flows)
    reg.load()
    write(flows / "broken.yaml", GOOD.format(name="broken", reason="fixed"), bump=1)
    write(flows / "new.yaml", GOOD.format(name="new", reason="n"), bump=1)
    (flows / "sales.yml").unlink()
    assert reg.changed_since_last_load()
    assert reg.reload() == []
    assert reg.names() == ["broken", "main", "new"]


def test_duplicate_name_refused(flows: Path) -> None:
    reg = FlowRegistry(flows)
    reg.load()
    write(flows / "zz.yaml", GOOD.format(name="main", reason="dup"), bump=1)
    [d] = reg.reload()
    assert "duplicate flow name 'main'" in d.message
    assert reg.get("main").nodes["a"]["reason"] == "v1"


def test_missing_directory(tmp_path: Path) -> None:
    reg = FlowRegistry(tmp_path / "nope")
    assert reg.load() == [] and reg.names() == []
    assert not reg.changed_since_last_load()

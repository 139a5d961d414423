"""Lint checks, each with its position."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.lint import lint_flow, lint_paths

from .helpers import DEMO, FIXTURES, PROMPTS, flow

HEAD = "flow: t\nstart: a\nnodes:\n"

# (id, body, expected "line:col: fragment" list)
CASES = [
    ("clean", "  a: {type: play, prompts: [x], next: b}\n  b: {type: hangup}\n", []),
    ("unknown-next", "  a: {type: play, prompts: [x], next: nowhere}\n",
     ["4:39: node 'a': next -> unknown node 'nowhere'"]),
    ("unknown-menu-target", '  a: {type: menu, options: {"1": a, "2": zz}}\n',
     ["4:42: node 'a': options.2 -> unknown node 'zz'"]),
    ("unknown-branch-target", "  a:\n    type: branch\n    conditions:\n      - {if: x, next: q}\n    default: e\n  e: {type: hangup}\n",
     ["7:23: node 'a': conditions.0.next -> unknown node 'q'"]),
    ("unknown-on-failure", "  a: {type: collect, variable: v, next: a, on_failure: gone}\n",
     ["4:56: node 'a': on_failure -> unknown node 'gone'"]),
    ("unknown-start", "  b: {type: hangup}\n", ["2:8: start node 'a' does not exist"]),
    ("unreachable", "  a: {type: hangup}\n  b: {type: hangup}\n  c: {type: goto, node: b}\n",
     ["5:3: node 'b' is unreachable", "6:3: node 'c' is unreachable"]),
    ("loop-play", "  a: {type: play, prompts: [x], next: b}\n  b: {type: play, prompts: [y], next: a}\n",
     ["4:3: loop without exit: a -> b -> a"]),
    ("loop-self", "  a: {type: goto, node: a}\n", ["4:3: loop without exit: a -> a"]),
    ("loop-set-branch",
     "  a: {type: set, vars: {x: '1'}, next: b}\n  b: {type: branch, conditions: [{if: x, next: a}], default: a}\n",
     ["4:3: loop without exit: a -> b -> a"]),
    ("loop-http-hours",
     "  a: {type: http, url: u, next: b, on_failure: a}\n"
     "  b: {type: hours, timezone: UTC, schedule: {}, open: a, closed: b}\n",
     ["4:3: loop without exit"]),
    ("loop-with-exit-is-fine",
     "  a: {type: play, prompts: [x], next: b}\n  b: {type: branch, conditions: [{if: x, next: a}], default: c}\n"
     "  c: {type: hangup}\n", []),
    ("loop-through-menu-is-fine", '  a: {type: play, prompts: [x], next: m}\n  m: {type: menu, options: {"9": a}}\n', []),
    ("loop-leaving-flow-is-fine", "  a: {type: play, prompts: [x], next: b}\n  b: {type: goto, flow: t}\n", []),
]


@pytest.mark.parametrize("body, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_lint(body: str, expected: list[str]) -> None:
    got = [f"{d.line}:{d.col}: {d.message}" for d in lint_flow(flow(HEAD + body))]
    assert len(got) == len(expected), got
    for want, have in zip(expected, got, strict=True):
        assert have.startswith(want), (want, have)


def test_missing_prompts() -> None:
    f = flow(HEAD + "  a: {type: collect, prompts: [have, gone], invalid_prompts: [digits/7], variable: v, next: s}\n"
             "  s: {type: say_digits, variable: v, next: q}\n  q: {type: queue, queue: x, music: moh}\n")
    present = {"have", "digits/0", "digits/1"}
    got = [(d.line, d.col, d.message) for d in lint_flow(f, prompt_exists=present.__contains__)]
    assert got[0] == (4, 38, "node 'a': missing prompt file 'gone.wav'")
    assert got[1] == (4, 63, "node 'a': missing prompt file 'digits/7.wav'")
    assert got[2][:2] == (5, 3) and "missing digit prompts digits/2" in got[2][2]
    assert got[3] == (6, 37, "node 'q': missing prompt file 'moh.wav'")
    assert len(got) == 4


def test_unknown_flow_only_checked_with_known_flows() -> None:
    f = flow(HEAD + "  a: {type: goto, flow: elsewhere}\n")
    assert lint_flow(f) == []
    [d] = lint_flow(f, known_flows={"t"})
    assert (d.line, d.col, d.message) == (4, 25, "node 'a': unknown flow 'elsewhere'")
    assert lint_flow(f, known_flows={"elsewhere"}) == []


def test_demo_is_clean_with_real_prompts() -> None:
    assert lint_paths([DEMO], prompt_dir=PROMPTS) == []


def test_fixtures_are_clean() -> None:
    assert lint_paths([FIXTURES], prompt_dir=PROMPTS) == []


def test_lint_paths_reports_load_errors_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(HEAD + "  a: {type: hangup}\n")
    (tmp_path / "b.yml").write_text(HEAD + "  a: {type: hangup}\n")
    (tmp_path / "c.yaml").write_text("flow: c\nstart: a\nnodes:\n  a: {type: nope}\n")
    (tmp_path / "notes.txt").write_text("ignored")
    got = [str(d) for d in lint_paths([tmp_path], prompt_dir=None)]
    assert got == [
        f"{tmp_path / 'b.yml'}:1:7: duplicate flow name 't' (also in {tmp_path / 'a.yaml'})",
        f"{tmp_path / 'c.yaml'}:4:13: node 'a': unknown node type 'nope' (known: play, collect, menu, say_digits, "
        "set, branch, hours, http, queue, goto, hangup, record)",
    ]


def test_single_file_sees_sibling_flows(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(HEAD + "  a: {type: goto, flow: other}\n")
    (tmp_path / "b.yaml").write_text("flow: other\nstart: x\nnodes:\n  x: {type: hangup}\n")
    assert lint_paths([tmp_path / "a.yaml"], prompt_dir=None) == []

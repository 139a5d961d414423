"""Loader: every refusal names file:line:col; good files load with defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.diagnostics import Diagnostic, FlowError
from ivr.loader import flow_data, load_flow, load_flow_text

from .helpers import DEMO, FIXTURES, flow

OK_HEAD = "flow: t\nstart: a\nnodes:\n"

# (text, expected diagnostics as "line:col: message fragment")
BAD = [
    pytest.param("flow: t\nstart: [a\n", ["3:1: YAML syntax error"], id="yaml-unclosed-flow-seq"),
    pytest.param("flow: t\n  start: a\n", ["2:8: YAML syntax error: mapping values"], id="yaml-bad-indent"),
    pytest.param("flow: t\nstart: 'a\n", ["3:1: YAML syntax error"], id="yaml-unclosed-quote"),
    pytest.param("", ["1:1: empty flow file"], id="empty"),
    pytest.param("- a\n- b\n", ["1:1: a flow file must be a mapping"], id="not-a-mapping"),
    pytest.param("flow: t\nflow: u\nstart: a\nnodes: {a: {type: hangup}}\n", ["2:1: duplicate key 'flow'"], id="dup-key"),
    pytest.param("flow: t\nstart: a\n", ["1:1: flow: missing required key 'nodes'"], id="missing-nodes"),
    pytest.param(
        OK_HEAD + "  a: {type: hangup}\nversion: 2\n",
        ["5:1: unknown key 'version' in flow"],
        id="unknown-top-key",
    ),
    pytest.param(
        OK_HEAD + "  a: {type: play, prompts: [welcome], nxt: b}\n",
        ["4:3: play node 'a': missing required key 'next'", "4:39: unknown key 'nxt' in play node 'a'"],
        id="unknown-node-key",
    ),
    pytest.param(OK_HEAD + "  a: {type: bogus}\n", ["4:13: node 'a': unknown node type 'bogus'"], id="unknown-type"),
    pytest.param(OK_HEAD + "  a: {prompts: []}\n", ["4:3: node 'a': missing required key 'type'"], id="no-type"),
    pytest.param(OK_HEAD + "  a: hello\n", ["4:6: node 'a': expected a mapping, got a string"], id="node-not-mapping"),
    pytest.param(
        OK_HEAD + "  a:\n    type: collect\n    variable: v\n    max_digits: many\n    next: a\n",
        ["7:17: max_digits: expected an integer >= 1, got a string"],
        id="wrong-type-int",
    ),
    pytest.param(
        OK_HEAD + "  a: {type: play, prompts: welcome, next: a}\n",
        ["4:28: prompts: expected a list of prompt names, got a string"],
        id="wrong-type-list",
    ),
    pytest.param(
        OK_HEAD + "  a: {type: play, prompts: [welcome, 5], next: a}\n",
        ["4:38: prompts[1]: expected a string, got an integer"],
        id="wrong-type-item",
    ),
    pytest.param(
        OK_HEAD + "  a: {type: play, prompts: [../etc/passwd], next: a}\n",
        ["4:29: prompts[0]: bad value '../etc/passwd'"],
        id="prompt-path-traversal",
    ),
    pytest.param(
        OK_HEAD + "  a: {type: play, prompts: [x], barge_in: yes, next: a}\n",
        ["4:43: barge_in: expected true or false, got a string"],
        id="yaml11-yes-is-not-bool",
    ),
    pytest.param(
        OK_HEAD + '  a: {type: set, vars: {x: "{{ a +"}, next: a}\n',
        ["4:28: bad template: unexpected 'end of template'"],
        id="bad-jinja-syntax",
    ),
    pytest.param(
        OK_HEAD + '  a: {type: set, vars: {x: "{{ a | nosuchfilter }}"}, next: a}\n',
        ["4:28: bad template: No filter named 'nosuchfilter'"],
        id="bad-jinja-filter",
    ),
    pytest.param(
        OK_HEAD + "  a:\n    type: branch\n    conditions:\n      - {if: \"x ==\", next: a}\n    default: a\n",
        ["7:14: bad expression"],
        id="bad-condition",
    ),
    pytest.param(
        OK_HEAD + "  a:\n    type: set\n    vars:\n      x: |\n        line one\n        {% if %}\n    next: a\n",
        ["7:10: bad template", "line 2 of the template"],
        id="bad-jinja-block-scalar",
    ),
    pytest.param(
        OK_HEAD + "  a: {type: collect, variable: v, min_digits: 5, max_digits: 4, next: a}\n",
        ["4:47: min_digits (5) is greater than max_digits (4)"],
        id="min-gt-max",
    ),
    pytest.param(
        OK_HEAD + '  a: {type: collect, variable: v, validate: {regex: "([0-9"}, next: a}\n',
        ["4:53: validate.regex: bad regular expression"],
        id="bad-regex",
    ),
    pytest.param(
        OK_HEAD + '  a: {type: collect, variable: 1x, next: a}\n',
        ["4:32: variable: '1x' is not a variable name"],
        id="bad-variable-name",
    ),
    pytest.param(
        OK_HEAD + '  a: {type: menu, options: {"12": a}}\n',
        ["4:29: options: bad key '12'"],
        id="menu-option-two-keys",
    ),
    pytest.param(
        OK_HEAD + "  a: {type: menu, options: {}}\n",
        ["4:28: options: must not be empty"],
        id="menu-no-options",
    ),
    pytest.param(
        OK_HEAD + "  a: {type: hours, timezone: Mars/Base, schedule: {}, open: a, closed: a}\n",
        ["4:30: unknown time zone 'Mars/Base'"],
        id="bad-timezone",
    ),
    pytest.param(
        OK_HEAD + '  a: {type: hours, timezone: UTC, schedule: {"mon-fry": "08:00-18:00"}, open: a, closed: a}\n',
        ["4:46: schedule: bad key 'mon-fry'"],
        id="bad-day",
    ),
    pytest.param(
        OK_HEAD + '  a: {type: hours, timezone: UTC, schedule: {"fri-mon": "08:00-18:00"}, open: a, closed: a}\n',
        ["4:46: day range 'fri-mon' runs backwards"],
        id="backwards-days",
    ),
    pytest.param(
        OK_HEAD + '  a: {type: hours, timezone: UTC, schedule: {"mon": "18:00-08:00"}, open: a, closed: a}\n',
        ["4:53: time range '18:00-08:00' must end after it starts"],
        id="backwards-range",
    ),
    pytest.param(
        OK_HEAD + '  a: {type: hours, timezone: UTC, schedule: {"mon": "8-18"}, open: a, closed: a}\n',
        ["4:53: schedule.mon: bad value '8-18'"],
        id="bad-range-format",
    ),
    pytest.param(
        OK_HEAD + '  a: {type: hours, timezone: UTC, schedule: {}, holidays: ["2026-02-30"], open: a, closed: a}\n',
        ["4:60: bad holiday date '2026-02-30'"],
        id="bad-holiday",
    ),
    pytest.param(OK_HEAD + "  a: {type: goto}\n", ["4:3: goto node 'a': needs 'node' or 'flow'"], id="goto-nothing"),
    pytest.param(
        OK_HEAD + '  a: {type: say_digits, variable: x, value: "1", next: a}\n',
        ["4:3: say_digits node 'a': needs exactly one of 'variable' or 'value'"],
        id="say-digits-both",
    ),
    pytest.param(
        OK_HEAD + "  a: {type: http, url: u, method: FETCH, next: a}\n",
        ["4:35: method: expected one of GET, POST, PUT, PATCH, DELETE, got 'FETCH'"],
        id="http-method",
    ),
    pytest.param(
        OK_HEAD + "  a: {type: http, url: u, set: {x: data.field}, next: a}\n",
        ["4:36: set.x: bad value 'data.field'"],
        id="http-set-path",
    ),
    pytest.param(
        OK_HEAD + "  a: {type: collect, variable: v, first_digit_timeout: 0, next: a}\n",
        ["4:56: first_digit_timeout: must be > 0, got 0"],
        id="zero-timeout",
    ),
    pytest.param(
        OK_HEAD + "  a: {type: hangup}\n  b c: {type: hangup}\n",
        ["5:3: bad node id 'b c'"],
        id="bad-node-id",
    ),
    pytest.param("flow: t\nstart: a\nnodes: &x [*x]\n", ["document too large or nested too deep"], id="recursive-alias"),
]


@pytest.mark.parametrize("text, expected", BAD)
def test_refused_with_position(text: str, expected: list[str]) -> None:
    with pytest.raises(FlowError) as info:
        load_flow_text(text, "t.yaml")
    got = [f"{d.line}:{d.col}: {d.message}" for d in info.value.diagnostics]
    located = [e for e in expected if re.match(r"\d+:\d+: ", e)]
    assert len(got) == max(1, len(located)), got
    for want in expected:
        assert any(want in g for g in got), (want, got)
    assert str(info.value).startswith("t.yaml:")


def test_all_problems_reported_at_once() -> None:
    text = OK_HEAD + "  a: {type: bogus}\n  b: {type: play, prompts: [x]}\n  c: {type: hangup, reason: 5}\n"
    with pytest.raises(FlowError) as info:
        load_flow_text(text, "t.yaml")
    assert [(d.line, d.col) for d in info.value.diagnostics] == [(4, 13), (5, 3), (6, 29)]


def test_diagnostic_str() -> None:
    d = Diagnostic("f.yaml", 3, 7, "boom")
    assert str(d) == "f.yaml:3:7: boom"
    assert str(FlowError([d, Diagnostic("f.yaml", 1, 1, "first")])) == "f.yaml:1:1: first\nf.yaml:3:7: boom"


def test_demo_loads_with_defaults() -> None:
    f = load_flow(DEMO)
    assert f.name == "main" and f.start == "welcome"
    assert f.source == str(DEMO)
    assert len(f.version) == 12
    acct = f.nodes["get_account"]
    assert (acct.type, acct["min_digits"], acct["max_digits"], acct["terminators"]) == ("collect", 4, 12, "#")
    assert f.nodes["welcome"]["barge_in"] is False
    assert f.nodes["main_menu"]["options"]["9"] == "main_menu"
    assert f.nodes["get_account"].pos == (7, 3)
    assert f.nodes["get_account"].where("next") == (22, 11)


def test_yaml_12_scalars() -> None:
    data = flow_data("a: 08:00\nb: yes\nc: 2026-12-25\nd: 1:30\ne: 0x1F\nf: ~\ng: 1.5\nh: 'true'\ni: TRUE\n")
    assert data == {
        "a": "08:00", "b": "yes", "c": "2026-12-25", "d": "1:30", "e": 31, "f": None,
        "g": 1.5, "h": "true", "i": True,
    }


def test_unquoted_menu_keys_are_strings() -> None:
    f = flow(OK_HEAD + "  a: {type: menu, options: {1: a, 2: a}}\n")
    assert dict(f.nodes["a"]["options"]) == {"1": "a", "2": "a"}


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(FlowError, match="cannot read flow"):
        load_flow(tmp_path / "missing.yaml")
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"flow: caf\xe9\n")
    with pytest.raises(FlowError, match="not UTF-8"):
        load_flow(bad)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.yaml")), ids=lambda p: p.name)
def test_fixtures_load(path: Path) -> None:
    assert load_flow(path).nodes


def test_version_changes_with_text() -> None:
    a = load_flow_text(OK_HEAD + "  a: {type: hangup}\n", "x")
    b = load_flow_text(OK_HEAD + "  a: {type: hangup, reason: x}\n", "x")
    assert a.version != b.version

DEMO_TEXT = DEMO.read_text(encoding="utf-8")


def _accepts_or_flow_error(text: str) -> None:
    try:
        load_flow_text(text, "fuzz.yaml")
    except FlowError as exc:
        assert exc.diagnostics
        for d in exc.diagnostics:
            assert d.line >= 1 and d.col >= 1


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:{}[]-#'\"\n &*!|>0 1T")), max_size=80))
def test_any_text_loads_or_raises_flow_error(text: str) -> None:
    _accepts_or_flow_error(text)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(DEMO_TEXT) - 1), st.integers(0, 8), st.text(max_size=6))
def test_mutated_demo_loads_or_raises_flow_error(at: int, cut: int, insert: str) -> None:
    _accepts_or_flow_error(DEMO_TEXT[:at] + insert + DEMO_TEXT[at + cut:])

"""The published JSON Schema matches the loader's table and agrees with the loader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ivr.diagnostics import FlowError
from ivr.loader import flow_data, load_flow_text
from ivr.schema import build_schema

from .helpers import DEMO, FIXTURES, ROOT

SCHEMA_FILE = ROOT / "ivr" / "flow.schema.json"
HEAD = "flow: t\nstart: a\nnodes:\n"


def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def schema_errors(text: str) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema())
    return [e.message for e in validator.iter_errors(flow_data(text))]


def loader_accepts(text: str) -> bool:
    try:
        load_flow_text(text, "t.yaml")
    except FlowError:
        return False
    return True


def test_schema_file_is_generated_from_the_table() -> None:
    assert schema() == build_schema(), "run: python -m ivr.schema > ivr/flow.schema.json"


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_node_definition_is_closed() -> None:
    defs = schema()["$defs"]
    for name, d in defs.items():
        if name != "node":
            assert d["additionalProperties"] is False, name


def test_demo_has_schema_comment() -> None:
    assert DEMO.read_text().splitlines()[0] == "# yaml-language-server: $schema=../../ivr/flow.schema.json"


@pytest.mark.parametrize("path", [DEMO, *sorted(FIXTURES.glob("*.yaml"))], ids=lambda p: Path(p).name)
def test_demo_and_fixtures_validate(path: Path) -> None:
    assert schema_errors(path.read_text()) == []


GOOD = [
    "  a: {type: hangup}\n",
    "  a: {type: play, prompts: [x, digits/5], barge_in: true, next: a}\n",
    "  a: {type: collect, variable: v, next: b, description: d}\n  b: {type: hangup, reason: r}\n",
    '  a: {type: menu, options: {"1": a, "#": a, "*": a}, timeout: 2.5, retry_prompts: []}\n',
    '  a: {type: say_digits, value: "{{ x }}", next: a}\n',
    '  a: {type: set, vars: {x: "1", y: "{{ x }}"}, next: a}\n',
    '  a: {type: branch, conditions: [{if: "x == 1", next: a}], default: a}\n',
    '  a: {type: hours, timezone: UTC, schedule: {"mon-fri,sun": "08:00-12:00,13:00-24:00"}, open: a, closed: a}\n',
    "  a: {type: http, url: u, json: {a: [1, {b: null}]}, set: {x: json.a.0, s: status}, next: a}\n",
    "  a: {type: queue, queue: q, priority: -1, skills: {x: 0}, music: moh}\n",
    "  a: {type: goto, flow: other, node: x}\n",
]

# rejected by both the schema and the loader
BAD = [
    "  a: {type: hangup, extra: 1}\n",
    "  a: {type: nope}\n",
    "  a: {next: b}\n",
    "  a: {type: play, prompts: [x]}\n",
    "  a: {type: play, prompts: x, next: a}\n",
    "  a: {type: play, prompts: [a/../b], next: a}\n",
    "  a: {type: collect, variable: v, max_digits: 0, next: a}\n",
    "  a: {type: collect, variable: v, min_digits: -1, next: a}\n",
    "  a: {type: collect, variable: v, terminators: 'x', next: a}\n",
    "  a: {type: collect, variable: v, attempts: 1.5, next: a}\n",
    "  a: {type: collect, variable: v, sensitive: 1, next: a}\n",
    "  a: {type: collect, variable: v, validate: {re: x}, next: a}\n",
    '  a: {type: menu, options: {"12": a}}\n',
    "  a: {type: menu, options: {}}\n",
    "  a: {type: say_digits, next: a}\n",
    '  a: {type: say_digits, variable: v, value: "1", next: a}\n',
    "  a: {type: set, vars: {}, next: a}\n",
    '  a: {type: set, vars: {"bad name": x}, next: a}\n',
    "  a: {type: branch, conditions: [], default: a}\n",
    "  a: {type: branch, conditions: [{if: x}], default: a}\n",
    '  a: {type: hours, timezone: UTC, schedule: {"weekdays": "08:00-12:00"}, open: a, closed: a}\n',
    '  a: {type: hours, timezone: UTC, schedule: {"mon": "8:00-12:00"}, open: a, closed: a}\n',
    '  a: {type: hours, timezone: UTC, schedule: {}, holidays: ["25/12/2026"], open: a, closed: a}\n',
    "  a: {type: http, url: u, method: get, next: a}\n",
    "  a: {type: http, url: u, timeout: -1, next: a}\n",
    "  a: {type: queue, queue: q, skills: {x: -1}}\n",
    "  a: {type: queue, queue: q, priority: high}\n",
    "  a: {type: goto}\n",
    "  a: {type: hangup}\n  \"b c\": {type: hangup}\n",
]

# refused by the loader only: things a JSON Schema cannot express
LOADER_ONLY = [
    '  a: {type: set, vars: {x: "{{ oops"}, next: a}\n',
    '  a: {type: branch, conditions: [{if: "1 +", next: a}], default: a}\n',
    "  a: {type: hours, timezone: Nowhere/City, schedule: {}, open: a, closed: a}\n",
    '  a: {type: hours, timezone: UTC, schedule: {"sun-mon": "08:00-09:00"}, open: a, closed: a}\n',
    '  a: {type: hours, timezone: UTC, schedule: {}, holidays: ["2026-13-01"], open: a, closed: a}\n',
    "  a: {type: collect, variable: v, min_digits: 5, max_digits: 2, next: a}\n",
    "  a: {type: collect, variable: v, validate: {regex: '('}, next: a}\n",
]


@pytest.mark.parametrize("body", GOOD)
def test_both_accept(body: str) -> None:
    assert schema_errors(HEAD + body) == []
    assert loader_accepts(HEAD + body)


@pytest.mark.parametrize("body", BAD)
def test_both_refuse(body: str) -> None:
    assert schema_errors(HEAD + body) != []
    assert not loader_accepts(HEAD + body)


@pytest.mark.parametrize("body", LOADER_ONLY)
def test_loader_only_refusals(body: str) -> None:
    assert schema_errors(HEAD + body) == []
    assert not loader_accepts(HEAD + body)


@pytest.mark.parametrize(
    "text",
    ["flow: t\nstart: a\n", "flow: t\nstart: a\nnodes: {}\n", "flow: 5\nstart: a\nnodes: {a: {type: hangup}}\n",
     "flow: t\nstart: a\nnodes: {a: {type: hangup}}\nextra: 1\n"],
)
def test_top_level_agreement(text: str) -> None:
    assert schema_errors(text) != []
    assert not loader_accepts(text)


def test_docs_mention_every_node_type_and_key() -> None:
    from ivr.schema import NODE_FIELDS

    doc = (ROOT / "docs" / "ivr.md").read_text(encoding="utf-8")
    for node_type, fields in NODE_FIELDS.items():
        assert f"### `{node_type}`" in doc
        for key in fields:
            assert f"`{key}`" in doc, (node_type, key)

"""The flow file structure: one table that drives both the loader's checks and
the published JSON Schema (``flow.schema.json``), so the two cannot drift.

Run ``python -m ivr.schema > ivr/flow.schema.json`` after changing the table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*$"
VAR_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
PROMPT_PATTERN = r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$"
TERMINATORS_PATTERN = r"^[0-9*#]*$"
OPTION_PATTERN = r"^[0-9*#]$"
JSON_PATH_PATTERN = r"^(json(\.[^.]+)*|status|body)$"
_DAY = "(mon|tue|wed|thu|fri|sat|sun)"
_DAYS = f"{_DAY}(-{_DAY})?"
DAYSPEC_PATTERN = f"^{_DAYS}(\\s*,\\s*{_DAYS})*$"
_HHMM = "([01][0-9]|2[0-3]):[0-5][0-9]"
_RANGE = f"{_HHMM}-({_HHMM}|24:00)"
RANGES_PATTERN = f"^{_RANGE}(\\s*,\\s*{_RANGE})*$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Field:
    """One key of a node: its kind (see KINDS), whether required, its default."""

    kind: str
    required: bool = False
    default: Any = None


# kind -> JSON Schema fragment. The loader checks the same things (loader._check_kind).
KINDS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "id": {"type": "string", "pattern": ID_PATTERN},
    "var": {"type": "string", "pattern": VAR_PATTERN},
    "prompt": {"type": "string", "pattern": PROMPT_PATTERN},
    "prompts": {"type": "array", "items": {"type": "string", "pattern": PROMPT_PATTERN}},
    "int": {"type": "integer"},
    "count": {"type": "integer", "minimum": 0},
    "positive": {"type": "integer", "minimum": 1},
    "seconds": {"type": "number", "exclusiveMinimum": 0},
    "bool": {"type": "boolean"},
    "template": {"type": "string"},
    "expr": {"type": "string", "minLength": 1},
    "terminators": {"type": "string", "pattern": TERMINATORS_PATTERN},
    "validate": {
        "type": "object",
        "properties": {"regex": {"type": "string"}},
        "required": ["regex"],
        "additionalProperties": False,
    },
    "options": {
        "type": "object",
        "propertyNames": {"pattern": OPTION_PATTERN},
        "additionalProperties": {"type": "string", "pattern": ID_PATTERN},
        "minProperties": 1,
    },
    "conditions": {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "properties": {
                "if": {"type": "string", "minLength": 1},
                "next": {"type": "string", "pattern": ID_PATTERN},
            },
            "required": ["if", "next"],
            "additionalProperties": False,
        },
    },
    "vars": {
        "type": "object",
        "propertyNames": {"pattern": VAR_PATTERN},
        "additionalProperties": {"type": "string"},
        "minProperties": 1,
    },
    "skills": {
        "type": "object",
        "additionalProperties": {"type": "integer", "minimum": 0},
    },
    "tmap": {"type": "object", "additionalProperties": {"type": "string"}},
    "setpaths": {
        "type": "object",
        "propertyNames": {"pattern": VAR_PATTERN},
        "additionalProperties": {"type": "string", "pattern": JSON_PATH_PATTERN},
    },
    "json": {},
    "schedule": {
        "type": "object",
        "propertyNames": {"pattern": DAYSPEC_PATTERN},
        "additionalProperties": {"type": "string", "pattern": RANGES_PATTERN},
    },
    "holidays": {"type": "array", "items": {"type": "string", "pattern": DATE_PATTERN}},
    "method": {"enum": list(METHODS)},
    "record_action": {"enum": ["pause", "resume"]},
}

_COMMON = {"type": Field("str", True), "description": Field("str")}
_ATTEMPTS = {
    "attempts": Field("positive", default=3),
    "invalid_prompts": Field("prompts", default=()),
    "timeout_prompts": Field("prompts", default=()),
    "retry_prompts": Field("prompts"),
    "barge_in": Field("bool", default=True),
    "on_failure": Field("id"),
}

NODE_FIELDS: dict[str, dict[str, Field]] = {
    "play": {
        "prompts": Field("prompts", True),
        "barge_in": Field("bool", default=False),
        "next": Field("id", True),
    },
    "collect": {
        "prompts": Field("prompts", default=()),
        "variable": Field("var", True),
        "min_digits": Field("count", default=1),
        "max_digits": Field("positive", default=20),
        "terminators": Field("terminators", default="#"),
        "first_digit_timeout": Field("seconds", default=5.0),
        "inter_digit_timeout": Field("seconds", default=3.0),
        "validate": Field("validate"),
        "sensitive": Field("bool", default=False),
        "next": Field("id", True),
        **_ATTEMPTS,
    },
    "menu": {
        "prompts": Field("prompts", default=()),
        "variable": Field("var"),
        "options": Field("options", True),
        "timeout": Field("seconds", default=5.0),
        **_ATTEMPTS,
    },
    "say_digits": {
        "variable": Field("var"),
        "value": Field("template"),
        "prompts_before": Field("prompts", default=()),
        "prompts_after": Field("prompts", default=()),
        "barge_in": Field("bool", default=False),
        "next": Field("id", True),
    },
    "set": {"vars": Field("vars", True), "next": Field("id", True)},
    "branch": {"conditions": Field("conditions", True), "default": Field("id", True)},
    "hours": {
        "timezone": Field("str", True),
        "schedule": Field("schedule", True),
        "holidays": Field("holidays", default=()),
        "open": Field("id", True),
        "closed": Field("id", True),
    },
    "http": {
        "method": Field("method", default="GET"),
        "url": Field("template", True),
        "headers": Field("tmap", default={}),
        "json": Field("json"),
        "timeout": Field("seconds", default=5.0),
        "set": Field("setpaths", default={}),
        "next": Field("id", True),
        "on_failure": Field("id"),
    },
    "queue": {
        "queue": Field("str", True),
        "priority": Field("int", default=0),
        "skills": Field("skills", default={}),
        "data": Field("tmap", default={}),
        "timeout": Field("seconds"),
        "prompts": Field("prompts", default=()),
        "music": Field("prompt"),
        "next": Field("id"),
    },
    "goto": {"node": Field("id"), "flow": Field("id")},
    "hangup": {"reason": Field("str", default="normal")},
    "record": {"action": Field("record_action", True), "next": Field("id", True)},
}

# "at least one of" / "exactly one of" key groups, per node type.
ANY_OF: dict[str, tuple[str, ...]] = {"goto": ("node", "flow")}
ONE_OF: dict[str, tuple[str, ...]] = {"say_digits": ("variable", "value")}

TOP_FIELDS: dict[str, Field] = {
    "flow": Field("id", True),
    "description": Field("str"),
    "start": Field("id", True),
    "nodes": Field("nodes", True),
}


def fields_of(node_type: str) -> dict[str, Field]:
    return {**_COMMON, **NODE_FIELDS[node_type]}


def _node_def(node_type: str) -> dict[str, Any]:
    fields = fields_of(node_type)
    props: dict[str, Any] = {k: dict(KINDS[f.kind]) for k, f in fields.items()}
    props["type"] = {"const": node_type}
    for k, f in fields.items():
        if f.default not in (None, (), {}) and k != "type":
            props[k]["default"] = f.default
    schema: dict[str, Any] = {
        "type": "object",
        "properties": props,
        "required": [k for k, f in fields.items() if f.required],
        "additionalProperties": False,
    }
    if node_type in ANY_OF:
        schema["anyOf"] = [{"required": [k]} for k in ANY_OF[node_type]]
    if node_type in ONE_OF:
        schema["oneOf"] = [{"required": [k]} for k in ONE_OF[node_type]]
    return schema


def build_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a flow file."""
    types = list(NODE_FIELDS)
    defs: dict[str, Any] = {t: _node_def(t) for t in types}
    defs["node"] = {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": types}},
        "allOf": [
            {"if": {"properties": {"type": {"const": t}}}, "then": {"$ref": f"#/$defs/{t}"}}
            for t in types
        ],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://switchboard.dev/schemas/flow.schema.json",
        "title": "Switchboard IVR flow",
        "type": "object",
        "properties": {
            "flow": KINDS["id"],
            "description": KINDS["str"],
            "start": KINDS["id"],
            "nodes": {
                "type": "object",
                "propertyNames": {"pattern": ID_PATTERN},
                "additionalProperties": {"$ref": "#/$defs/node"},
                "minProperties": 1,
            },
        },
        "required": ["flow", "start", "nodes"],
        "additionalProperties": False,
        "$defs": defs,
    }


def schema_text() -> str:
    return json.dumps(build_schema(), indent=2) + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")

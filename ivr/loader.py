"""Load a flow file: YAML with positions -> checked ``Flow``, or ``FlowError``.

Every problem is reported as ``file:line:col: message`` and all problems of a
file are reported at once. Templates, conditions, regexes, time zones and
schedules are compiled here so a running call never meets a syntax error.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path as FsPath
from types import MappingProxyType
from typing import Any

from . import hours
from .diagnostics import Diagnostic, FlowError
from .model import Flow, Node
from .schema import (
    ANY_OF,
    KINDS,
    NODE_FIELDS,
    ONE_OF,
    TOP_FIELDS,
    Field,
    fields_of,
)
from .templating import TemplateProblem, compile_condition, compile_template
from .yamlpos import Located, Path, Pos, compose_located

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "a list",
    dict: "a mapping",
    type(None): "null",
}

_KIND_DESCRIPTIONS = {
    "str": "a string",
    "id": "a node id",
    "var": "a variable name",
    "prompt": "a prompt name",
    "prompts": "a list of prompt names",
    "int": "an integer",
    "count": "an integer >= 0",
    "positive": "an integer >= 1",
    "seconds": "a number of seconds > 0",
    "bool": "true or false",
    "template": "a template string",
    "expr": "an expression string",
    "terminators": "a string of DTMF keys",
    "validate": "a mapping with 'regex'",
    "options": "a mapping of keys to node ids",
    "conditions": "a list of {if, next}",
    "vars": "a mapping of variable names to templates",
    "skills": "a mapping of skill names to minimum levels",
    "tmap": "a mapping of names to templates",
    "setpaths": "a mapping of variable names to response paths",
    "schedule": "a mapping of days to time ranges",
    "holidays": "a list of dates",
    "method": "an HTTP method",
    "record_action": "pause or resume",
}


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _pattern_ok(kind_schema: dict[str, Any], value: str) -> bool:
    pattern = kind_schema.get("pattern")
    return pattern is None or re.search(pattern, value) is not None


class _Checker:
    def __init__(self, loc: Located, filename: str) -> None:
        self.loc = loc
        self.filename = filename
        self.errors: list[Diagnostic] = []

    def error(self, pos: Pos, message: str) -> None:
        self.errors.append(Diagnostic(self.filename, pos[0], pos[1], message))

    def at(self, path: Path, message: str) -> None:
        self.error(self.loc.value_pos(path), message)

    # -- structure ---------------------------------------------------------

    def keys(self, data: dict[str, Any], path: Path, fields: dict[str, Field], what: str) -> bool:
        ok = True
        for key in data:
            if key not in fields:
                allowed = ", ".join(sorted(fields))
                self.error(self.loc.key_pos(path + (key,)), f"unknown key '{key}' in {what} (allowed: {allowed})")
                ok = False
        for key, f in fields.items():
            if f.required and key not in data:
                pos = self.loc.key_pos(path) if path else self.loc.value_pos(path)
                self.error(pos, f"{what}: missing required key '{key}'")
                ok = False
        return ok

    def kind(self, kind: str, value: Any, path: Path, label: str) -> bool:
        """Check ``value`` against one KINDS entry; report at its position."""
        schema = KINDS[kind]
        check = _KIND_CHECKS.get(kind)
        if check is not None:
            return check(self, value, path, label)
        expected = schema.get("type")
        if not _json_type_ok(expected, value):
            self.at(path, f"{label}: expected {_KIND_DESCRIPTIONS[kind]}, got {_type_name(value)}")
            return False
        if "enum" in schema and value not in schema["enum"]:
            self.at(path, f"{label}: expected one of {', '.join(schema['enum'])}, got '{value}'")
            return False
        if isinstance(value, str) and not _pattern_ok(schema, value):
            self.at(path, f"{label}: '{value}' is not {_KIND_DESCRIPTIONS[kind]}")
            return False
        if isinstance(value, str) and len(value) < schema.get("minLength", 0):
            self.at(path, f"{label}: must not be empty")
            return False
        return self._bounds(schema, value, path, label)

    def _bounds(self, schema: dict[str, Any], value: Any, path: Path, label: str) -> bool:
        if "minimum" in schema and value < schema["minimum"]:
            self.at(path, f"{label}: must be >= {schema['minimum']}, got {value}")
            return False
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            self.at(path, f"{label}: must be > {schema['exclusiveMinimum']}, got {value}")
            return False
        return True

    def items(self, item_schema: dict[str, Any], value: Any, path: Path, label: str, kind: str) -> bool:
        if not isinstance(value, list):
            self.at(path, f"{label}: expected {_KIND_DESCRIPTIONS[kind]}, got {_type_name(value)}")
            return False
        ok = True
        for i, item in enumerate(value):
            ok &= self._scalar(item_schema, item, path + (i,), f"{label}[{i}]")
        if len(value) < KINDS[kind].get("minItems", 0):
            self.at(path, f"{label}: must not be empty")
            ok = False
        return ok

    def mapping(self, value: Any, path: Path, label: str, kind: str) -> bool:
        schema = KINDS[kind]
        if not isinstance(value, dict):
            self.at(path, f"{label}: expected {_KIND_DESCRIPTIONS[kind]}, got {_type_name(value)}")
            return False
        ok = True
        names = schema.get("propertyNames", {})
        for key, item in value.items():
            if not _pattern_ok(names, key):
                self.error(self.loc.key_pos(path + (key,)), f"{label}: bad key '{key}'")
                ok = False
            ok &= self._scalar(schema["additionalProperties"], item, path + (key,), f"{label}.{key}")
        if len(value) < schema.get("minProperties", 0):
            self.at(path, f"{label}: must not be empty")
            ok = False
        return ok

    def _scalar(self, schema: dict[str, Any], value: Any, path: Path, label: str) -> bool:
        expected = schema.get("type")
        if not _json_type_ok(expected, value):
            want = {"string": "a string", "integer": "an integer", "number": "a number"}.get(
                expected or "", str(expected)
            )
            self.at(path, f"{label}: expected {want}, got {_type_name(value)}")
            return False
        if isinstance(value, str) and not _pattern_ok(schema, value):
            self.at(path, f"{label}: bad value '{value}'")
            return False
        return self._bounds(schema, value, path, label)

    # -- flow --------------------------------------------------------------

    def flow(self, text: str) -> Flow:
        data = self.loc.data
        if not isinstance(data, dict):
            self.at((), "a flow file must be a mapping with 'flow', 'start' and 'nodes'")
            raise FlowError(self.errors)
        self.keys(data, (), TOP_FIELDS, "flow")
        for key in ("flow", "start", "description"):
            if key in data:
                self.kind(TOP_FIELDS[key].kind, data[key], (key,), key)
        nodes: dict[str, Node] = {}
        raw_nodes = data.get("nodes")
        if "nodes" in data and not isinstance(raw_nodes, dict):
            self.at(("nodes",), f"nodes: expected a mapping of node ids to nodes, got {_type_name(raw_nodes)}")
        elif isinstance(raw_nodes, dict):
            if not raw_nodes:
                self.at(("nodes",), "nodes: a flow needs at least one node")
            for node_id, raw in raw_nodes.items():
                node = self.node(node_id, raw, ("nodes", node_id))
                if node is not None:
                    nodes[node_id] = node
        if self.errors:
            raise FlowError(self.errors)
        positions = {k: self.loc.value_pos((k,)) for k in data}
        return Flow(
            name=data["flow"],
            start=data["start"],
            nodes=MappingProxyType(nodes),
            source=self.filename,
            version=hashlib.sha256(text.encode("utf-8")).hexdigest()[:12],
            description=data.get("description") or "",
            positions=positions,
        )

    def node(self, node_id: str, raw: Any, path: Path) -> Node | None:
        n_errors = len(self.errors)
        if not re.search(KINDS["id"]["pattern"], node_id):
            self.error(self.loc.key_pos(path), f"bad node id '{node_id}' (letters, digits, '_' and '-')")
        if not isinstance(raw, dict):
            self.at(path, f"node '{node_id}': expected a mapping, got {_type_name(raw)}")
            return None
        node_type = raw.get("type")
        if node_type is None:
            self.error(self.loc.key_pos(path), f"node '{node_id}': missing required key 'type'")
            return None
        if node_type not in NODE_FIELDS:
            known = ", ".join(NODE_FIELDS)
            self.at(path + ("type",), f"node '{node_id}': unknown node type '{node_type}' (known: {known})")
            return None
        fields = fields_of(node_type)
        what = f"{node_type} node '{node_id}'"
        self.keys(raw, path, fields, what)
        for key, value in raw.items():
            if key in fields and key != "type":
                self.kind(fields[key].kind, value, path + (key,), key)
        self._groups(node_type, raw, path, what)
        if len(self.errors) == n_errors:
            _SEMANTIC.get(node_type, _no_semantics)(self, raw, path)
            self._templates(node_type, raw, path)
        if len(self.errors) != n_errors:
            return None
        spec = {k: _freeze(raw.get(k, f.default)) for k, f in fields.items()}
        positions = {
            ".".join(str(p) for p in vpath[len(path):]): pos
            for vpath, pos in self.loc.values.items()
            if vpath[: len(path)] == path and len(vpath) > len(path)
        }
        return Node(node_id, node_type, MappingProxyType(spec), self.loc.key_pos(path), positions)

    def _groups(self, node_type: str, raw: dict[str, Any], path: Path, what: str) -> None:
        if node_type in ANY_OF and not any(k in raw for k in ANY_OF[node_type]):
            keys = " or ".join(f"'{k}'" for k in ANY_OF[node_type])
            self.error(self.loc.key_pos(path), f"{what}: needs {keys}")
        if node_type in ONE_OF and sum(k in raw for k in ONE_OF[node_type]) != 1:
            keys = " or ".join(f"'{k}'" for k in ONE_OF[node_type])
            self.error(self.loc.key_pos(path), f"{what}: needs exactly one of {keys}")

    # -- compiled parts ------------------------------------------------------

    def template(self, source: str, path: Path, condition: bool = False) -> None:
        try:
            compile_condition(source) if condition else compile_template(source)
        except TemplateProblem as exc:
            where = f" (line {exc.line} of the template)" if exc.line > 1 else ""
            self.at(path, f"{exc}{where}")

    def _templates(self, node_type: str, raw: dict[str, Any], path: Path) -> None:
        fields = fields_of(node_type)
        for key, value in raw.items():
            kind = fields[key].kind if key in fields else None
            if kind == "template":
                self.template(value, path + (key,))
            elif kind in ("tmap", "vars"):
                for k, v in value.items():
                    self.template(v, path + (key, k))
            elif kind == "conditions":
                for i, cond in enumerate(value):
                    self.template(cond["if"], path + (key, i, "if"), condition=True)
            elif kind == "json":
                self._json_templates(value, path + (key,))

    def _json_templates(self, value: Any, path: Path) -> None:
        if isinstance(value, str):
            self.template(value, path)
        elif isinstance(value, dict):
            for k, v in value.items():
                self._json_templates(v, path + (k,))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self._json_templates(v, path + (i,))


def _json_type_ok(expected: str | None, value: Any) -> bool:
    if expected is None:
        return True
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    py = {"string": str, "boolean": bool, "array": list, "object": dict}[expected]
    return isinstance(value, py)


def _check_prompts(c: _Checker, value: Any, path: Path, label: str) -> bool:
    return c.items(KINDS["prompts"]["items"], value, path, label, "prompts")


def _check_holidays(c: _Checker, value: Any, path: Path, label: str) -> bool:
    return c.items(KINDS["holidays"]["items"], value, path, label, "holidays")


def _check_conditions(c: _Checker, value: Any, path: Path, label: str) -> bool:
    if not isinstance(value, list):
        c.at(path, f"{label}: expected {_KIND_DESCRIPTIONS['conditions']}, got {_type_name(value)}")
        return False
    if not value:
        c.at(path, f"{label}: must not be empty")
        return False
    ok = True
    fields = {"if": Field("expr", True), "next": Field("id", True)}
    for i, cond in enumerate(value):
        p = path + (i,)
        if not isinstance(cond, dict):
            c.at(p, f"{label}[{i}]: expected a mapping with 'if' and 'next', got {_type_name(cond)}")
            ok = False
            continue
        ok &= c.keys(cond, p, fields, f"{label}[{i}]")
        for key in ("if", "next"):
            if key in cond:
                ok &= c.kind(fields[key].kind, cond[key], p + (key,), f"{label}[{i}].{key}")
    return ok


def _check_validate(c: _Checker, value: Any, path: Path, label: str) -> bool:
    if not isinstance(value, dict):
        c.at(path, f"{label}: expected {_KIND_DESCRIPTIONS['validate']}, got {_type_name(value)}")
        return False
    ok = c.keys(value, path, {"regex": Field("str", True)}, label)
    if "regex" in value and c.kind("str", value["regex"], path + ("regex",), f"{label}.regex"):
        try:
            re.compile(value["regex"])
        except re.error as exc:
            c.at(path + ("regex",), f"{label}.regex: bad regular expression: {exc}")
            ok = False
    return ok


def _map_check(kind: str) -> Callable[[_Checker, Any, Path, str], bool]:
    return lambda c, value, path, label: c.mapping(value, path, label, kind)


_KIND_CHECKS: dict[str, Callable[[_Checker, Any, Path, str], bool]] = {
    "prompts": _check_prompts,
    "holidays": _check_holidays,
    "conditions": _check_conditions,
    "validate": _check_validate,
    **{k: _map_check(k) for k in ("options", "vars", "skills", "tmap", "setpaths", "schedule")},
}


def _no_semantics(c: _Checker, raw: dict[str, Any], path: Path) -> None:
    return None


def _collect_semantics(c: _Checker, raw: dict[str, Any], path: Path) -> None:
    lo, hi = raw.get("min_digits", 1), raw.get("max_digits", 20)
    if lo > hi:
        c.at(path + ("min_digits",), f"min_digits ({lo}) is greater than max_digits ({hi})")


def _hours_semantics(c: _Checker, raw: dict[str, Any], path: Path) -> None:
    try:
        hours.parse_zone(raw["timezone"])
    except hours.ScheduleError as exc:
        c.at(path + ("timezone",), str(exc))
    for days, ranges in raw["schedule"].items():
        try:
            hours.parse_days(days)
        except hours.ScheduleError as exc:
            c.error(c.loc.key_pos(path + ("schedule", days)), str(exc))
        try:
            hours.parse_ranges(ranges)
        except hours.ScheduleError as exc:
            c.at(path + ("schedule", days), str(exc))
    for i, day in enumerate(raw.get("holidays", ())):
        try:
            hours.parse_holiday(day)
        except hours.ScheduleError as exc:
            c.at(path + ("holidays", i), str(exc))


_SEMANTIC: dict[str, Callable[[_Checker, dict[str, Any], Path], None]] = {
    "collect": _collect_semantics,
    "hours": _hours_semantics,
}


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    return value


def load_flow_text(text: str, filename: str) -> Flow:
    """Parse and check a flow; raise FlowError listing every problem."""
    loc = compose_located(text, filename)
    return _Checker(loc, filename).flow(text)


def load_flow(path: FsPath) -> Flow:
    try:
        text = FsPath(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FlowError([Diagnostic(str(path), 1, 1, f"not UTF-8 text: {exc.reason}")]) from None
    except OSError as exc:
        raise FlowError([Diagnostic(str(path), 1, 1, f"cannot read flow: {exc.strerror}")]) from None
    return load_flow_text(text, str(path))


def flow_data(text: str, filename: str = "<flow>") -> Any:
    """The plain data of a flow file as the loader (and an editor) sees it."""
    return compose_located(text, filename).data

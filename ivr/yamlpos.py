"""YAML text -> plain data plus the line:col of every key and value.

Built on PyYAML's node API (``yaml.compose``). Plain scalars are resolved with
the YAML 1.2 core schema, as editors and the JSON Schema see them, so ``08:00``,
``yes`` or ``2026-12-25`` stay strings instead of YAML 1.1 sexagesimals,
booleans or dates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .diagnostics import Diagnostic, FlowError

Pos = tuple[int, int]
Path = tuple[str | int, ...]

_NULL = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_INT = re.compile(r"[-+]?[0-9]+\Z")
_OCT = re.compile(r"0o[0-7]+\Z")
_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)\Z")
_NAN = re.compile(r"\.(nan|NaN|NAN)\Z")

MAX_NODES = 100_000
MAX_DEPTH = 64


@dataclass
class Located:
    """Plain data with positions: ``values[path]`` and ``keys[path]`` (1-based)."""

    data: Any
    values: dict[Path, Pos] = field(default_factory=dict)
    keys: dict[Path, Pos] = field(default_factory=dict)

    def value_pos(self, path: Path) -> Pos:
        """Position of the value at ``path``, or of its nearest located ancestor."""
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path, (1, 1))

    def key_pos(self, path: Path) -> Pos:
        return self.keys.get(path) or self.value_pos(path)


def _pos(node: yaml.Node) -> Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def resolve_plain(text: str) -> Any:
    """YAML 1.2 core schema resolution of a plain (unquoted) scalar."""
    if text in _NULL:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if _INT.match(text):
        return int(text)
    if _OCT.match(text):
        return int(text[2:], 8)
    if _HEX.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        return float(text)
    if _INF.match(text):
        return float("-inf") if text.startswith("-") else float("inf")
    if _NAN.match(text):
        return float("nan")
    return text


class _Converter:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.out = Located(None)
        self.errors: list[Diagnostic] = []
        self.count = 0

    def error(self, pos: Pos, message: str) -> None:
        self.errors.append(Diagnostic(self.filename, pos[0], pos[1], message))

    def convert(self, node: yaml.Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_NODES or len(path) > MAX_DEPTH:
            raise FlowError([Diagnostic(self.filename, *_pos(node), "document too large or nested too deep")])
        self.out.values[path] = _pos(node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, path + (i,)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return node.value if node.style else resolve_plain(node.value)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(_pos(key_node), "mapping keys must be plain strings")
                continue
            key = key_node.value
            if key == "<<":
                self.error(_pos(key_node), "YAML merge keys ('<<') are not supported")
                continue
            if key in result:
                self.error(_pos(key_node), f"duplicate key '{key}'")
                continue
            self.out.keys[path + (key,)] = _pos(key_node)
            result[key] = self.convert(value_node, path + (key,))
        return result


def compose_located(text: str, filename: str) -> Located:
    """Parse one YAML document; raise FlowError with positions on any YAML problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise FlowError([Diagnostic(filename, line, col, f"YAML syntax error: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise FlowError([Diagnostic(filename, 1, 1, f"YAML error: {exc}")]) from None
    if root is None:
        raise FlowError([Diagnostic(filename, 1, 1, "empty flow file")])
    conv = _Converter(filename)
    conv.out.data = conv.convert(root, ())
    if conv.errors:
        raise FlowError(conv.errors)
    return conv.out

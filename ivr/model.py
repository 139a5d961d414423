"""Loaded flows: immutable, with the position of every key for diagnostics."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Pos = tuple[int, int]

WAITING_TYPES = frozenset({"collect", "menu"})
TERMINAL_TYPES = frozenset({"queue", "hangup"})


@dataclass(frozen=True)
class Node:
    """One step of a flow. ``spec`` holds every key of the type, defaults filled in."""

    id: str
    type: str
    spec: Mapping[str, Any]
    pos: Pos
    positions: Mapping[str, Pos] = field(default_factory=dict, compare=False, repr=False)

    def __getitem__(self, key: str) -> Any:
        return self.spec[key]

    def get(self, key: str, default: Any = None) -> Any:
        value = self.spec.get(key)
        return default if value is None else value

    def where(self, path: str) -> Pos:
        """Position of the value at a dotted key path ('next', 'options.1', 'prompts.0')."""
        while path:
            if path in self.positions:
                return self.positions[path]
            path = path.rpartition(".")[0]
        return self.pos

    def targets(self) -> Iterator[tuple[str, str]]:
        """(key path, node id) of every node this one may continue to, in a stable order."""
        for key in ("next", "on_failure", "default", "open", "closed"):
            if self.spec.get(key):
                yield key, self.spec[key]
        if self.type == "menu":
            for digit, target in self.spec["options"].items():
                yield f"options.{digit}", target
        elif self.type == "branch":
            for i, cond in enumerate(self.spec["conditions"]):
                yield f"conditions.{i}.next", cond["next"]
        elif self.type == "goto" and self.spec.get("node") and not self.spec.get("flow"):
            yield "node", self.spec["node"]

    def prompts(self) -> Iterator[tuple[str, str]]:
        """(key path, prompt name) of every prompt named in the node."""
        keys = ("prompts", "invalid_prompts", "timeout_prompts", "retry_prompts")
        for key in (*keys, "prompts_before", "prompts_after"):
            for i, name in enumerate(self.spec.get(key) or ()):
                yield f"{key}.{i}", name
        if self.spec.get("music"):
            yield "music", self.spec["music"]


@dataclass(frozen=True)
class Flow:
    """A parsed, validated flow file."""

    name: str
    start: str
    nodes: Mapping[str, Node]
    source: str
    version: str
    description: str = ""
    positions: Mapping[str, Pos] = field(default_factory=dict, compare=False, repr=False)

    def where(self, key: str) -> Pos:
        return self.positions.get(key, (1, 1))

"""Checks on loaded flows: references, prompts, reachability, loops without exit."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path

from .diagnostics import Diagnostic, FlowError, sort_key
from .interpreter import SAY_DIGIT_PROMPTS
from .loader import load_flow
from .model import TERMINAL_TYPES, WAITING_TYPES, Flow, Node


def _diag(flow: Flow, pos: tuple[int, int], message: str) -> Diagnostic:
    return Diagnostic(flow.source, pos[0], pos[1], message)


def _edges(flow: Flow) -> dict[str, list[str]]:
    return {nid: [t for _, t in node.targets() if t in flow.nodes] for nid, node in flow.nodes.items()}


def _references(flow: Flow, known_flows: Collection[str] | None) -> list[Diagnostic]:
    out = []
    if flow.start not in flow.nodes:
        out.append(_diag(flow, flow.where("start"), f"start node '{flow.start}' does not exist"))
    for node in flow.nodes.values():
        for key, target in node.targets():
            if target not in flow.nodes:
                out.append(_diag(flow, node.where(key), f"node '{node.id}': {key} -> unknown node '{target}'"))
        other = node.get("flow") if node.type == "goto" else None
        if other and known_flows is not None and other not in known_flows:
            out.append(_diag(flow, node.where("flow"), f"node '{node.id}': unknown flow '{other}'"))
    return out


def _prompts(flow: Flow, prompt_exists: Callable[[str], bool]) -> list[Diagnostic]:
    out = []
    for node in flow.nodes.values():
        for key, name in node.prompts():
            if not prompt_exists(name):
                out.append(_diag(flow, node.where(key), f"node '{node.id}': missing prompt file '{name}.wav'"))
        if node.type == "say_digits":
            missing = [p for p in SAY_DIGIT_PROMPTS.values() if p[-1].isdigit() and not prompt_exists(p)]
            if missing:
                names = ", ".join(missing)
                out.append(_diag(flow, node.pos, f"node '{node.id}': missing digit prompts {names}"))
    return out


def _reachable(flow: Flow, edges: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = [flow.start] if flow.start in flow.nodes else []
    while todo:
        nid = todo.pop()
        if nid not in seen:
            seen.add(nid)
            todo.extend(edges[nid])
    return seen


def _unreachable(flow: Flow, edges: dict[str, list[str]]) -> list[Diagnostic]:
    if flow.start not in flow.nodes:
        return []
    seen = _reachable(flow, edges)
    return [
        _diag(flow, node.pos, f"node '{node.id}' is unreachable from start '{flow.start}'")
        for nid, node in flow.nodes.items()
        if nid not in seen
    ]


def _stops(node: Node) -> bool:
    """Waits for the caller, or leaves the flow."""
    return node.type in WAITING_TYPES or node.type in TERMINAL_TYPES or bool(
        node.type == "goto" and node.get("flow")
    )


def _endless_loops(flow: Flow, edges: dict[str, list[str]]) -> list[Diagnostic]:
    """Cycles of automatic nodes from which no waiting or terminal node can be reached."""
    reverse: dict[str, list[str]] = {nid: [] for nid in flow.nodes}
    for nid, targets in edges.items():
        for t in targets:
            reverse[t].append(nid)
    can_stop = {nid for nid, node in flow.nodes.items() if _stops(node)}
    todo = list(can_stop)
    while todo:
        for prev in reverse[todo.pop()]:
            if prev not in can_stop:
                can_stop.add(prev)
                todo.append(prev)
    stuck = set(flow.nodes) - can_stop
    out = []
    for cycle in _cycles(stuck, edges):
        first = min(cycle, key=lambda nid: flow.nodes[nid].pos)
        names = " -> ".join(_order(cycle, first, edges))
        out.append(_diag(flow, flow.nodes[first].pos, f"loop without exit: {names} -> {first} never waits for input nor ends the call"))
    return out


def _cycles(nodes: set[str], edges: dict[str, list[str]]) -> list[set[str]]:
    """Strongly connected components (within ``nodes``) that contain a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:  # flows are small: recursion depth is bounded by node count
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in nodes:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp: set[str] = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges[v]:
                found.append(comp)

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return found


def _order(cycle: set[str], first: str, edges: dict[str, list[str]]) -> list[str]:
    order, current = [first], first
    while True:
        nxt = next((t for t in edges[current] if t in cycle and t not in order), None)
        if nxt is None:
            return order
        order.append(nxt)
        current = nxt


def lint_flow(
    flow: Flow,
    *,
    prompt_exists: Callable[[str], bool] | None = None,
    known_flows: Collection[str] | None = None,
) -> list[Diagnostic]:
    """Every problem of a loaded flow, in file order."""
    edges = _edges(flow)
    out = _references(flow, known_flows)
    if prompt_exists is not None:
        out += _prompts(flow, prompt_exists)
    out += _unreachable(flow, edges)
    out += _endless_loops(flow, edges)
    return sorted(out, key=sort_key)


def prompt_checker(prompt_dir: Path) -> Callable[[str], bool]:
    return lambda name: (prompt_dir / f"{name}.wav").is_file()


def flow_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        else:
            files.append(path)
    return files


def lint_paths(paths: Sequence[Path], *, prompt_dir: Path | None) -> list[Diagnostic]:
    """Load and lint files and directories of flows; duplicate flow names are errors."""
    diagnostics: list[Diagnostic] = []
    flows: list[Flow] = []
    for file in flow_files(paths):
        try:
            flows.append(load_flow(file))
        except FlowError as exc:
            diagnostics += exc.diagnostics
    known = {f.name for f in flows} | _sibling_names(paths)
    exists = prompt_checker(prompt_dir) if prompt_dir is not None else None
    first_seen: dict[str, Flow] = {}
    for flow in flows:
        if flow.name in first_seen:
            other = first_seen[flow.name].source
            diagnostics.append(_diag(flow, flow.where("flow"), f"duplicate flow name '{flow.name}' (also in {other})"))
        else:
            first_seen[flow.name] = flow
        diagnostics += lint_flow(flow, prompt_exists=exists, known_flows=known)
    return sorted(diagnostics, key=sort_key)


def _sibling_names(paths: Sequence[Path]) -> set[str]:
    """Names of the flows next to single files given, so a cross-flow goto resolves."""
    names: set[str] = set()
    for path in paths:
        if path.is_file():
            for sibling in flow_files([path.parent]):
                try:
                    names.add(load_flow(sibling).name)
                except FlowError:
                    pass
    return names

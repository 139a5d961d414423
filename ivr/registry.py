"""The live set of flows of a directory, with safe reload.

A file that fails to load or lint never replaces a good version: its previous
version stays live and its diagnostics are returned. Calls in progress hold
their own ``Flow`` object, so a reload never changes a running call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .diagnostics import Diagnostic, FlowError, sort_key
from .lint import flow_files, lint_flow
from .loader import load_flow
from .model import Flow

Snapshot = dict[Path, tuple[int, int]]


class FlowRegistry:
    def __init__(self, flow_dir: Path, *, prompt_exists: Callable[[str], bool] | None = None) -> None:
        self.flow_dir = Path(flow_dir)
        self.prompt_exists = prompt_exists
        self._by_file: dict[Path, Flow] = {}
        self._snapshot: Snapshot = {}

    def _scan(self) -> Snapshot:
        snap: Snapshot = {}
        if not self.flow_dir.is_dir():
            return snap
        for path in flow_files([self.flow_dir]):
            try:
                st = path.stat()
            except OSError:
                continue
            snap[path] = (st.st_mtime_ns, st.st_size)
        return snap

    def changed_since_last_load(self) -> bool:
        return self._scan() != self._snapshot

    def load(self) -> list[Diagnostic]:
        """Initial load: good flows go live, bad ones are left out and reported."""
        self._by_file = {}
        self._snapshot = {}
        return self.reload()

    def reload(self) -> list[Diagnostic]:
        """Re-read new and changed files; drop flows whose file was removed."""
        snap = self._scan()
        changed = [p for p, sig in snap.items() if self._snapshot.get(p) != sig]
        for gone in set(self._by_file) - set(snap):
            del self._by_file[gone]
        candidates: dict[Path, Flow] = {}
        diagnostics: list[Diagnostic] = []
        for path in changed:
            try:
                candidates[path] = load_flow(path)
            except FlowError as exc:
                diagnostics += exc.diagnostics
        live = {**self._by_file, **candidates}
        known = {f.name for f in live.values()}
        for path, flow in sorted(candidates.items()):
            problems = self._problems(path, flow, live, known)
            if problems:
                diagnostics += problems
            else:
                self._by_file[path] = flow
        self._snapshot = snap
        return sorted(diagnostics, key=sort_key)

    def _problems(self, path: Path, flow: Flow, live: dict[Path, Flow], known: set[str]) -> list[Diagnostic]:
        problems = [
            d for d in lint_flow(flow, prompt_exists=self.prompt_exists, known_flows=known) if d.is_error
        ]
        for other_path, other in sorted(live.items()):
            if other_path != path and other.name == flow.name and other_path in self._by_file:
                pos = flow.where("flow")
                problems.append(
                    Diagnostic(flow.source, pos[0], pos[1], f"duplicate flow name '{flow.name}' (also in {other.source})")
                )
                break
        return problems

    def get(self, name: str) -> Flow:
        for flow in self._by_file.values():
            if flow.name == name:
                return flow
        raise KeyError(name)

    def names(self) -> list[str]:
        return sorted({f.name for f in self._by_file.values()})

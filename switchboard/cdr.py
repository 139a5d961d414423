"""Call detail records: one JSON line per finished call in DATA_DIR/cdr.jsonl.

Fields (a public contract; extend, never rename): call_id, caller, did, started_at,
answered_at, ended_at, end_reason, flow, path, vars (sensitive ones masked), queue,
agent, recording. Times are ISO 8601 UTC with milliseconds.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CDR_FIELDS = ("call_id", "caller", "did", "started_at", "answered_at", "ended_at", "end_reason",
              "flow", "path", "vars", "queue", "agent", "recording")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CdrWriter:
    """Appends whole lines with one write(2) each, so concurrent readers never see half a record."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "cdr.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
        os.write(self._fd, line.encode("utf-8"))

    def close(self) -> None:
        os.close(self._fd)

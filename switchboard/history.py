"""Customer history: earlier calls per account (or per caller id when no account was given).

Kept in DATA_DIR/history.jsonl, one JSON object per line, appended as calls end and as
agents add notes in wrap-up, so it survives restarts; read back into a bounded index at
start. The screen pop carries the most recent entries for the caller's account.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

log = logging.getLogger("switchboard.history")

KEEP_PER_CUSTOMER = 50
POP_ENTRIES = 5


def customer_key(account: str | None, caller: str | None) -> str | None:
    if account:
        return f"account:{account}"
    if caller:
        return f"caller:{caller}"
    return None


class CustomerHistory:
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "history.jsonl"
        self._index: dict[str, deque[dict[str, Any]]] = defaultdict(
            lambda: deque(maxlen=KEEP_PER_CUSTOMER))
        self._load()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def _load(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    log.warning("event=history_bad_line file=%s line=%d", self.path, number)
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("customer"), str):
                    self._apply(entry)

    def _apply(self, entry: dict[str, Any]) -> None:
        entries = self._index[entry["customer"]]
        if entry.get("type") == "note":
            for call in entries:
                if call.get("call_id") == entry.get("call_id"):
                    call.setdefault("notes", []).append(
                        {"agent": entry.get("agent"), "disposition": entry.get("disposition"),
                         "note": entry.get("note"), "at": entry.get("at")})
            return
        entries.append(dict(entry))

    def _append(self, entry: dict[str, Any]) -> None:
        self._apply(entry)
        os.write(self._fd, (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8"))

    def record_call(self, customer: str, cdr: dict[str, Any]) -> None:
        self._append({"type": "call", "customer": customer, "call_id": cdr["call_id"],
                      "when": cdr["started_at"], "path": cdr["path"], "queue": cdr["queue"],
                      "agent": cdr["agent"], "outcome": cdr["end_reason"], "notes": []})

    def add_note(self, customer: str, call_id: str, agent: str | None, disposition: str | None,
                 note: str, at: str) -> bool:
        if not any(c.get("call_id") == call_id for c in self._index.get(customer, ())):
            return False
        self._append({"type": "note", "customer": customer, "call_id": call_id, "agent": agent,
                      "disposition": disposition, "note": note, "at": at})
        return True

    def recent(self, customer: str | None, limit: int = POP_ENTRIES) -> list[dict[str, Any]]:
        if customer is None or customer not in self._index:
            return []
        return list(self._index[customer])[-limit:][::-1]

    def close(self) -> None:
        os.close(self._fd)

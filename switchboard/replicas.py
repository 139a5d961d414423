"""Registrations and customer history shared by the nodes of a cluster (docs/cluster.md).

The registrar and the history keep their synchronous interfaces (the registrar is a
sans-IO core): each node holds a full copy, changes it locally, and the change goes to
Redis and to the other nodes through `Cluster`; a node that starts reads the current
state from Redis first.

- Registrations: ``sb:reg:<user>`` holds the user's bindings as JSON with wall-clock
  expiry times, and expires in Redis with the last binding; every change is published
  as a ``reg`` event. Any node can then offer a call to an agent registered through
  another node: the INVITE goes to the Contact the agent registered.
- History: entries are appended to the stream ``sb:history`` (bounded), which every node
  reads, so a screen pop on any node shows calls and wrap-up notes made on any other.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from signaling.registrar import Binding, BindingStoreFull, MemoryBindingStore

from .cluster import Cluster
from .history import CustomerHistory

log = logging.getLogger("switchboard.cluster")

HISTORY_MAXLEN = 100_000


def _encode(binding: Binding, offset: float) -> dict[str, Any]:
    data = asdict(binding)
    data["expires_at"] = binding.expires_at + offset
    data["updated_at"] = binding.updated_at + offset
    return data


def _decode(data: dict[str, Any], offset: float) -> Binding:
    binding = Binding(**{**data, "source": tuple(data["source"])})
    return replace(binding, expires_at=binding.expires_at - offset,
                   updated_at=binding.updated_at - offset)


class ClusterBindingStore(MemoryBindingStore):
    """The registrar's store on a cluster node: a local copy kept in step through Redis.

    `wall_offset()` turns this process's monotonic times into wall-clock times, which is
    what the nodes share.
    """

    def __init__(self, cluster: Cluster, wall_offset: Callable[[], float]) -> None:
        super().__init__()
        self.cluster = cluster
        self.wall_offset = wall_offset
        cluster.on("reg", self._remote)

    def put(self, user: str, bindings: list[Binding]) -> None:
        super().put(user, bindings)
        offset = self.wall_offset()
        data = [_encode(b, offset) for b in bindings]
        self.cluster.publish("reg", {"user": user, "bindings": data})
        key = self.cluster.key("reg", user)
        if bindings:
            until = max(b.expires_at for b in bindings) + offset
            self.cluster.command("SET", key, json.dumps(data), "PXAT", str(int(until * 1000) + 1))
        else:
            self.cluster.command("DEL", key)

    def _apply(self, user: str, data: list[dict[str, Any]]) -> None:
        offset = self.wall_offset()
        try:
            MemoryBindingStore.put(self, user, [_decode(d, offset) for d in data])
        except (BindingStoreFull, TypeError, KeyError) as exc:
            log.warning("event=reg_replica_refused user=%s error=%s", user, exc)

    def _remote(self, origin: str, body: dict[str, Any]) -> None:
        self._apply(str(body["user"]), list(body["bindings"]))

    async def load(self) -> int:
        """Every registration the cluster holds now (at start, before taking REGISTERs)."""
        redis, prefix = self.cluster.redis, self.cluster.key("reg", "")
        keys = [k async for k in redis.scan_iter(match=prefix + "*", count=1000)]
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            for key, text in zip(chunk, await redis.mget(chunk), strict=True):
                if text:
                    self._apply(key[len(prefix):], json.loads(text))
        return len(keys)


class ClusterHistory(CustomerHistory):
    """Customer history read from and appended to the shared stream ``sb:history``; the
    node's own DATA_DIR/history.jsonl still gets what this node wrote."""

    def __init__(self, data_dir: Path, cluster: Cluster) -> None:
        self.cluster = cluster
        self.stream = cluster.key("history")
        super().__init__(data_dir)
        cluster.on("history", lambda origin, entry: self._apply(entry))

    def _load(self) -> None:
        pass  # the cluster's stream is the history (`load`)

    async def load(self) -> int:
        redis, after, count = self.cluster.redis, "-", 0
        while True:
            entries = await redis.xrange(self.stream, min=after, count=5000)
            for entry_id, fields in entries:
                after = "(" + entry_id
                try:
                    entry = json.loads(fields["m"])["b"]
                except (KeyError, ValueError, TypeError):
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("customer"), str):
                    self._apply(entry)
                    count += 1
            if len(entries) < 5000:
                break
        self.cluster.follow(self.stream, after[1:] if after != "-" else "0-0")
        return count

    def _append(self, entry: dict[str, Any]) -> None:
        super()._append(entry)
        text = json.dumps({"k": "history", "o": self.cluster.node, "b": entry},
                          separators=(",", ":"))
        self.cluster.command("XADD", self.stream, "MAXLEN", "~", str(HISTORY_MAXLEN), "*",
                             "m", text)

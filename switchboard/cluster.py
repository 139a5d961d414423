"""Several `switchboard run` processes sharing agents and queues through Redis.

`switchboard run --store redis://HOST:PORT/DB` makes the process a node of a cluster
(docs/cluster.md). What this module gives the rest of the server:

- **membership**: every node refreshes ``sb:alive:<id>`` (PX ``NODE_TTL``) every
  ``HEARTBEAT``; a node whose key expired is dead.
- **one router**: the ACD engine runs on one node at a time, the holder of the lease
  ``sb:acd:leader`` (SET NX PX, renewed by compare-and-pexpire). Each new holder takes
  a fencing epoch (INCR ``sb:acd:epoch``); nodes drop router orders of an older epoch.
- **messages**: Redis Streams, one XREAD loop per node over ``sb:events`` (every
  node), ``sb:node:<id>`` (this node) and, on the router, ``sb:acd:in``. Messages go
  out through one ordered writer task, so a node's messages arrive in the order it
  sent them.
- **agent claims**: ``claim`` is an atomic SET NX PX on ``sb:claim:<agent>``: while an
  offer rings, no other offer can take the agent, and a claim left by a dead node
  expires by itself when the offer would have timed out.

Sans-IO cores never see any of this: the registrar, the ACD engine and the history keep
their synchronous interfaces; this module replicates into and out of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("switchboard.cluster")

HEARTBEAT = 1.0  # seconds between heartbeats and lease renewals
NODE_TTL = 3.0  # a node (and the router lease) is gone this long after its last heartbeat
BLOCK_MS = 500  # XREAD block; bounds how long a stop waits for the reader
EVENTS_MAXLEN = 100_000
NODE_MAXLEN = 10_000

# compare-and-pexpire / compare-and-delete: only the holder renews or drops what it holds
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then " \
         "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then " \
           "return redis.call('del', KEYS[1]) else return 0 end"

Handler = Callable[[str, dict[str, Any]], None]  # (origin node, body)


def _raise_if_cancelled(exc: Exception) -> None:
    """A cancelled task whose Redis call ended in an error of the client's own instead of
    CancelledError (a cancellation racing a read) stops all the same, rather than looping
    on as if the call had merely failed (Task.cancelling, Python 3.11)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


class ClusterError(Exception):
    """The store cannot be used (bad URL, Redis unreachable)."""


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


def check_url(url: str) -> str:
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ClusterError(f"--store {url!r}: expected redis://HOST:PORT/DB "
                           "(or rediss://, unix://)")
    return url


class Cluster:
    def __init__(self, url: str, node_id: str | None = None, *, prefix: str = "sb:") -> None:
        self.url = check_url(url)
        self.node = node_id or default_node_id()
        self.p = prefix
        self.redis: Any = None
        self.leader: str | None = None
        self.epoch = 0
        self.handlers: dict[str, Handler] = {}
        self.on_lead: list[Callable[[int], Awaitable[None]]] = []
        self.on_follow: list[Callable[[], None]] = []
        self.on_tick: list[Callable[[], Awaitable[None]]] = []
        self.sent = 0
        self.received = 0
        self.errors = 0
        self._out: asyncio.Queue[tuple[str, ...] | None] = asyncio.Queue()
        self._ids: dict[str, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # -- keys ------------------------------------------------------------------------------

    def key(self, *parts: str) -> str:
        return self.p + ":".join(parts)

    @property
    def is_leader(self) -> bool:
        return self.leader == self.node

    # -- life ------------------------------------------------------------------------------

    async def connect(self) -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.from_url(self.url, decode_responses=True,
                                       socket_connect_timeout=3, health_check_interval=10)
        try:
            await self.redis.ping()
        except Exception as exc:  # redis raises its own ConnectionError family
            raise ClusterError(f"--store {self.url}: cannot reach Redis: {exc}") from exc

    async def start(self) -> None:
        """Join: heartbeat, then read the streams from what is there now."""
        if self.redis is None:
            await self.connect()
        await self._heartbeat()
        for stream in (self.key("events"), self.key("node", self.node)):
            if stream not in self._ids:  # `follow` may have placed it already
                self._ids[stream] = await self.last_id(stream)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._writer()), loop.create_task(self._reader()),
                       loop.create_task(self._keeper())]
        log.info("event=cluster_joined node=%s store=%s", self.node, self._safe_url())

    async def stop(self) -> None:
        self._stopping = True
        self._out.put_nowait(None)
        with contextlib.suppress(asyncio.TimeoutError, Exception):
            await asyncio.wait_for(self._tasks[0], 2.0)  # what is queued still goes out
        for task in self._tasks[1:]:
            task.cancel()
        for task in self._tasks[1:]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.redis is not None:
            with contextlib.suppress(Exception):
                if self.is_leader:
                    await self.redis.eval(_RELEASE, 1, self.key("acd", "leader"), self.node)
                await self.redis.delete(self.key("alive", self.node))
            await self.redis.aclose()
        log.info("event=cluster_left node=%s", self.node)

    def _safe_url(self) -> str:
        head, sep, tail = self.url.rpartition("@")
        return f"{self.url.split('://')[0]}://***@{tail}" if sep else self.url

    # -- messages --------------------------------------------------------------------------

    def on(self, kind: str, handler: Handler) -> None:
        self.handlers[kind] = handler

    def publish(self, kind: str, body: dict[str, Any]) -> None:
        """To every other node (``sb:events``)."""
        self._xadd(self.key("events"), kind, body, EVENTS_MAXLEN)

    def send(self, node: str, kind: str, body: dict[str, Any]) -> None:
        """To one node (its own stream; the router uses it for its orders)."""
        self._xadd(self.key("node", node), kind, body, NODE_MAXLEN)

    def to_router(self, kind: str, body: dict[str, Any]) -> None:
        self._xadd(self.key("acd", "in"), kind, body, NODE_MAXLEN)

    def command(self, *args: str) -> None:
        """A Redis command sent in order with the messages (fire and forget)."""
        self._out.put_nowait(tuple(args))

    def _xadd(self, stream: str, kind: str, body: dict[str, Any], maxlen: int) -> None:
        text = json.dumps({"k": kind, "o": self.node, "b": body}, separators=(",", ":"),
                          default=str)
        self._out.put_nowait(("XADD", stream, "MAXLEN", "~", str(maxlen), "*", "m", text))

    async def _writer(self) -> None:
        """Everything a node sends, in order, pipelined in batches."""
        while True:
            item = await self._out.get()
            batch = [item]
            while not self._out.empty() and len(batch) < 500:
                batch.append(self._out.get_nowait())
            stop = None in batch
            commands = [c for c in batch if c is not None]
            if commands:
                await self._send_batch(commands)
            if stop:
                return

    async def _send_batch(self, commands: list[tuple[str, ...]]) -> None:
        """Until Redis takes them: a Redis that is away for a while gets the messages,
        in order, when it is back (the node keeps taking calls meanwhile)."""
        attempt = 0
        while True:
            try:
                pipe = self.redis.pipeline(transaction=False)
                for cmd in commands:
                    pipe.execute_command(*cmd)
                await pipe.execute()
                self.sent += len(commands)
                return
            except Exception as exc:
                self.errors += 1
                attempt += 1
                if self._stopping and attempt >= 3:
                    log.error("event=cluster_write_dropped commands=%d", len(commands))
                    return
                if attempt == 1 or attempt % 30 == 0:
                    log.warning("event=cluster_write_failed attempt=%d error=%s", attempt, exc)
                await asyncio.sleep(min(1.0, 0.1 * attempt))

    async def last_id(self, stream: str) -> str:
        """The id of the newest entry (XREAD from '$' would lose what comes in between)."""
        newest = await self.redis.xrevrange(stream, count=1)
        return newest[0][0] if newest else "0-0"

    def follow(self, stream: str, after: str) -> None:
        """Also read `stream` (every node's entries but this node's own) after `after`."""
        self._ids[stream] = after

    async def read_router_from(self, stream_id: str) -> None:
        self._ids[self.key("acd", "in")] = stream_id

    def _stop_reading_router(self) -> None:
        self._ids.pop(self.key("acd", "in"), None)

    async def _reader(self) -> None:
        while not self._stopping:
            try:
                replies = await self.redis.xread(dict(self._ids), count=1000, block=BLOCK_MS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _raise_if_cancelled(exc)
                self.errors += 1
                log.warning("event=cluster_read_failed error=%s", exc)
                await asyncio.sleep(0.5)
                continue
            for stream, entries in replies or ():
                for entry_id, fields in entries:
                    if stream in self._ids:
                        self._ids[stream] = entry_id
                    self._dispatch(stream, fields)

    def _dispatch(self, stream: str, fields: dict[str, str]) -> None:
        try:
            msg = json.loads(fields["m"])
            kind, origin, body = msg["k"], msg["o"], msg["b"]
        except (KeyError, ValueError, TypeError):
            self.errors += 1
            log.warning("event=cluster_bad_message stream=%s", stream)
            return
        if stream == self.key("acd", "in"):
            if not self.is_leader:
                return
            kind = "router:" + kind
        elif stream != self.key("node", self.node) and origin == self.node:
            return  # what this node published, it already applied
        handler = self.handlers.get(kind)
        if handler is None:
            return
        self.received += 1
        try:
            handler(origin, body)
        except Exception:
            self.errors += 1
            log.exception("event=cluster_handler_failed kind=%s origin=%s", kind, origin)

    # -- membership and the router lease ---------------------------------------------------

    async def _heartbeat(self) -> None:
        info = json.dumps({"node": self.node, "pid": os.getpid(), "at": time.time()})
        await self.redis.set(self.key("alive", self.node), info, px=int(NODE_TTL * 1000))

    async def alive(self, nodes: set[str]) -> set[str]:
        if not nodes:
            return set()
        ordered = sorted(nodes)
        found = await self.redis.mget([self.key("alive", n) for n in ordered])
        return {n for n, v in zip(ordered, found, strict=True) if v is not None}

    async def _keeper(self) -> None:
        while not self._stopping:
            try:
                await self._heartbeat()
                await self._lease()
                for tick in list(self.on_tick):
                    await tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _raise_if_cancelled(exc)
                self.errors += 1
                log.warning("event=cluster_keeper_failed error=%s", exc)
            await asyncio.sleep(HEARTBEAT)

    async def _lease(self) -> None:
        key, ttl = self.key("acd", "leader"), int(NODE_TTL * 1000)
        if self.is_leader:
            if await self.redis.eval(_RENEW, 1, key, self.node, ttl):
                return
            log.warning("event=router_lease_lost node=%s epoch=%d", self.node, self.epoch)
            self.leader = None
            self._stop_reading_router()
            for follow in self.on_follow:
                follow()
        if await self.redis.set(key, self.node, nx=True, px=ttl):
            self.epoch = int(await self.redis.incr(self.key("acd", "epoch")))
            # where to read router input from, fixed before this node counts as the router:
            # what was sent before that is handed over again by the resync
            await self.read_router_from(await self.last_id(self.key("acd", "in")))
            self.leader = self.node
            log.info("event=router_elected node=%s epoch=%d", self.node, self.epoch)
            for lead in self.on_lead:
                await lead(self.epoch)
        else:
            self.leader = await self.redis.get(key)

    # -- agent claims ----------------------------------------------------------------------

    async def claim(self, agent: str, token: str, ttl: float) -> bool:
        """Atomically reserve `agent` for `token` (an offer) for at most `ttl` seconds."""
        try:
            return bool(await self.redis.set(self.key("claim", agent), token, nx=True,
                                             px=max(1, int(ttl * 1000))))
        except Exception as exc:
            self.errors += 1
            log.warning("event=claim_failed agent=%s error=%s", agent, exc)
            return False

    def release(self, agent: str, token: str) -> None:
        self.command("EVAL", _RELEASE, "1", self.key("claim", agent), token)

"""A WebSocket client in a background thread (aiohttp), recording messages with arrival times.

The sockets need a login: give `token`, or leave it out for `/ws/agents/{id}` and the
client logs in as that demo agent (password demo-<id>) first.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import urllib.request
from typing import Any

import aiohttp


class DeskClient:
    def __init__(self, url: str, token: str | None = None) -> None:
        if token is None:
            token = demo_agent_token(url)
        self.url = f"{url}?token={token}" if token else url
        self.messages: list[tuple[float, dict[str, Any]]] = []  # (wall time, event)
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DeskClient:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError(f"no WebSocket connection to {self.url}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with aiohttp.ClientSession() as session, session.ws_connect(self.url) as ws:
            reader = asyncio.create_task(self._read(ws))
            self._ready.set()
            await self._stop.wait()
            reader.cancel()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.messages.append((time.time(), json.loads(msg.data)))

    def of_type(self, kind: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, m) for t, m in self.messages if m.get("type") == kind]

    def wait_for(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of_type(kind)
            if found:
                return found[-1][1]
            time.sleep(0.05)
        raise AssertionError(f"no {kind!r} event; got {[m for _, m in self.messages]}")


def demo_agent_token(url: str) -> str | None:
    """Log in as the demo agent a /ws/agents/{id} URL names (None for other URLs)."""
    found = re.match(r"(?:http|ws)://([^/]+)/ws/agents/([^/?]+)$", url)
    if not found:
        return None
    host, agent = found.groups()
    req = urllib.request.Request(f"http://{host}/api/login", method="POST",
                                 data=json.dumps({"user": agent, "password": f"demo-{agent}"}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(json.loads(resp.read())["token"])

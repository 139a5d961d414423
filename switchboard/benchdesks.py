"""The bench's agent desktops: one WebSocket per agent, as the web desktop opens it, to
measure pop latency (`switchboard bench --agents`)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from typing import Any

from .benchreport import percentile


class Desks:
    """One desktop WebSocket per agent, in a thread: pop latency = arrival - decided_at.

    Each desktop logs in as its agent (POST /api/login with the agent's SIP password)
    and opens its own socket with the token, as the web desktop does."""

    def __init__(self, http: str, passwords: dict[str, str]) -> None:
        self.http = http
        self.url = http.replace("http://", "ws://") + "/ws/agents/"
        self.agents = list(passwords)
        self.passwords = passwords
        self.latencies: list[float] = []
        self.connected = 0
        self._stop_flag = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while self.connected < len(self.agents) and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop_flag = True
        if self._thread is not None:
            self._thread.join(10)

    async def _main(self) -> None:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=0)  # one connection per agent, no pool cap
        async with aiohttp.ClientSession(connector=connector) as session:
            tasks = [asyncio.create_task(self._desk(session, a)) for a in self.agents]
            while not self._stop_flag:
                await asyncio.sleep(0.2)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    def login(http: str, agent: str, password: str) -> str:
        req = urllib.request.Request(f"{http}/api/login", method="POST",
                                     data=json.dumps({"user": agent, "password": password}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return str(json.loads(resp.read())["token"])

    async def _desk(self, session: Any, agent: str) -> None:
        async with session.post(f"{self.http}/api/login", json={
                "user": agent, "password": self.passwords[agent]}) as resp:
            token = (await resp.json())["token"]
        async with session.ws_connect(self.url + agent, params={"token": token},
                                      heartbeat=30) as ws:
            self.connected += 1
            async for msg in ws:
                event = json.loads(msg.data)
                if event.get("type") == "offer" and "decided_at" in event:
                    self.latencies.append(time.time() - float(event["decided_at"]))

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            return round(1000 * (percentile(ordered, p) or 0.0), 2)

        return {"desktops_connected": self.connected, "pops": len(ordered),
                "pop_latency_p50_ms": pct(50), "pop_latency_p99_ms": pct(99),
                "pop_latency_max_ms": round(1000 * ordered[-1], 2) if ordered else 0.0}

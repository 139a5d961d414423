"""Executes a flow's `http` node: one shared aiohttp session, a hard timeout, never raises."""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from ivr.commands import HttpRequest, HttpResult

log = logging.getLogger("switchboard.http_node")

MAX_BODY = 1 << 20


class FlowHttpClient:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def request(self, req: HttpRequest) -> HttpResult:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(req.timeout):
                async with self._session.request(req.method, req.url, headers=list(req.headers),
                                                 data=req.body) as resp:
                    body = await resp.content.read(MAX_BODY)
                    return HttpResult(resp.status, body, None)
        except TimeoutError:
            log.warning("event=http_node_timeout url=%s", req.url)
            return HttpResult(None, b"", "timeout")
        except (aiohttp.ClientError, ValueError, OSError) as exc:
            log.warning("event=http_node_error url=%s error=%s", req.url, exc)
            return HttpResult(None, b"", str(exc) or type(exc).__name__)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

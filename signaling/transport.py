"""Thin asyncio adapters around the user-agent core: UDP and TCP (RFC 3261 §18).

They move bytes, hand `UserAgent` its input with `loop.time()`, send what it
returns, deliver its events, and keep one asyncio timer armed for the shared
timer heap. No protocol decisions here.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import cast

from .errors import SipError
from .message import Ping, StreamParser
from .useragent import Event, Outgoing, Peer, UserAgent

log = logging.getLogger("switchboard.sip")

MAX_TCP_CONNECTIONS = 4096


class SipService:
    """Owns the UA core, its sockets and its one timer."""

    def __init__(self, ua: UserAgent, on_event: Callable[[Event], None]) -> None:
        self.ua = ua
        self.on_event = on_event
        self.loop = asyncio.get_running_loop()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.Server | None = None
        self._conns: dict[int, _TcpConnection] = {}
        self._by_addr: dict[tuple[str, int], int] = {}
        self._conn_ids = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    async def start(self, host: str, port: int, *, tcp: bool = True) -> None:
        self._udp, _ = await self.loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(host, port))
        if tcp:
            self._tcp_server = await self.loop.create_server(
                lambda: _TcpConnection(self, None), host, port, reuse_address=True)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._udp is not None:
            self._udp.close()
        if self._tcp_server is not None:
            self._tcp_server.close()
        for conn in list(self._conns.values()):
            conn.close()

    # -- driving the core ----------------------------------------------------------

    def flush(self) -> None:
        """Send what the core produced, deliver its events, re-arm the timer."""
        ua = self.ua
        while True:
            out = ua.take_outgoing()
            events = ua.take_events()
            if not out and not events:
                break
            for item in out:
                self._send(item)
            for event in events:
                try:
                    self.on_event(event)
                except Exception:
                    log.exception("event=app_error kind=%s", type(event).__name__)
        self._arm()

    def _arm(self) -> None:
        deadline = self.ua.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.ua.on_timer(self.loop.time())
        self.flush()

    def _send(self, item: Outgoing) -> None:
        peer = item.peer
        if peer.transport == "UDP":
            if self._udp is not None:
                self._udp.sendto(item.data, (peer.host, peer.port))
            return
        conn = self._conns.get(peer.conn) or self._conns.get(
            self._by_addr.get((peer.host, peer.port), -1))
        if conn is not None:
            conn.write(item.data)
        else:
            self.loop.create_task(self._connect_and_send(peer, item.data))

    async def _connect_and_send(self, peer: Peer, data: bytes) -> None:
        try:
            _, proto = await asyncio.wait_for(self.loop.create_connection(
                lambda: _TcpConnection(self, (peer.host, peer.port)), peer.host, peer.port), 5)
            proto.write(data)
        except (TimeoutError, OSError) as exc:
            log.warning("event=sip_connect_failed peer=%s:%d error=%s", peer.host, peer.port, exc)

    # -- called by the protocols ----------------------------------------------------

    def datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        self.ua.receive(data, Peer("UDP", addr[0], addr[1]), self.loop.time())
        self.flush()

    def register(self, conn: _TcpConnection) -> int | None:
        if len(self._conns) >= MAX_TCP_CONNECTIONS:
            return None
        cid = next(self._conn_ids)
        self._conns[cid] = conn
        if conn.peer_addr is not None:
            self._by_addr[conn.peer_addr] = cid
        return cid

    def unregister(self, conn: _TcpConnection) -> None:
        if conn.cid is None:
            return
        self._conns.pop(conn.cid, None)
        if conn.peer_addr is not None and self._by_addr.get(conn.peer_addr) == conn.cid:
            del self._by_addr[conn.peer_addr]
        self.ua.connection_lost(conn.cid, self.loop.time())
        self.flush()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, service: SipService) -> None:
        self.service = service

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        try:
            self.service.datagram(data, addr)
        except Exception:
            log.exception("event=sip_internal_error peer=%s:%d", addr[0], addr[1])

    def error_received(self, exc: Exception) -> None:
        log.debug("event=udp_error error=%s", exc)


class _TcpConnection(asyncio.Protocol):
    """One TCP connection: frames messages with `StreamParser` (§18.3)."""

    def __init__(self, service: SipService, peer_addr: tuple[str, int] | None) -> None:
        self.service = service
        self.peer_addr = peer_addr
        self.parser = StreamParser()
        self.transport: asyncio.Transport | None = None
        self.cid: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if self.peer_addr is None:
            host, port = transport.get_extra_info("peername")[:2]
            self.peer_addr = (host, port)
        self.cid = self.service.register(self)
        if self.cid is None:
            log.warning("event=tcp_refused reason=too_many_connections")
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        assert self.peer_addr is not None and self.cid is not None
        try:
            items = self.parser.feed(data)
        except SipError as exc:
            log.warning("event=sip_malformed transport=tcp peer=%s:%d status=%d reason=%r",
                        self.peer_addr[0], self.peer_addr[1], exc.status, exc.reason)
            self.write(f"SIP/2.0 {exc.status} {exc.reason}\r\nContent-Length: 0\r\n\r\n".encode())
            self.close()
            return
        peer = Peer("TCP", self.peer_addr[0], self.peer_addr[1], self.cid)
        now = self.service.loop.time()
        for item in items:
            if isinstance(item, Ping):
                self.write(b"\r\n")  # RFC 5626 §4.4.1 pong
            else:
                try:
                    self.service.ua.receive_message(item, peer, now)
                except Exception:
                    log.exception("event=sip_internal_error transport=tcp")
        self.service.flush()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.service.unregister(self)

"""A bounded pool of RTP ports (RFC 3550 §11: RTP on even ports, RTCP on the next odd one)."""

from __future__ import annotations

from collections import deque


class PortPoolExhausted(Exception):
    """No RTP port is free: the call is refused (503) instead of being dropped silently."""


class PortPool:
    def __init__(self, low: int, high: int) -> None:
        if low < 1024 or high > 65535 or low >= high:
            raise ValueError(f"bad RTP port range {low}-{high}")
        first = low + (low % 2)
        self._free: deque[int] = deque(range(first, high, 2))
        self._used: set[int] = set()
        self.capacity = len(self._free)

    def acquire(self) -> int:
        """The least recently released even port (spreads reuse, RFC 3550 §8.2 spirit)."""
        if not self._free:
            raise PortPoolExhausted(f"all {self.capacity} RTP ports are in use")
        port = self._free.popleft()
        self._used.add(port)
        return port

    def release(self, port: int) -> None:
        if port in self._used:
            self._used.remove(port)
            self._free.append(port)

    def skip(self, port: int) -> None:
        """A port the OS would not bind: put it at the back and try another."""
        self.release(port)

    @property
    def in_use(self) -> int:
        return len(self._used)

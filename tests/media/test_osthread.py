"""Threads of the server carry their own names in /proc (top -H, ps -L, the bench)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from media.osthread import name_os_thread

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


def test_a_thread_names_itself_for_the_kernel_cut_to_15_bytes() -> None:
    seen: list[str] = []

    def body() -> None:
        assert name_os_thread("sb-hook-a-very-long-analyzer-name")
        seen.append(Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text().strip())

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == ["sb-hook-a-very-"]

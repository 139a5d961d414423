from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .server import RunningServer, start_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    srv = start_server(tmp_path)
    try:
        yield srv
    finally:
        srv.stop()
        log = srv.log()
        assert "Traceback" not in log, log[-4000:]

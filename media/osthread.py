"""Names for the server's own threads as the kernel sees them (``/proc/PID/task/*/comm``,
``top -H``, ``ps -L``), so that an operator, or `switchboard bench`, can tell the media
thread, the recorder's I/O and each analyzer apart. Linux only; elsewhere a no-op."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["name_os_thread"]

_PR_SET_NAME = 15
_NAME_MAX = 15  # the kernel keeps 15 bytes and a NUL

_prctl = None
if sys.platform.startswith("linux"):
    try:
        _prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        _prctl = None


def name_os_thread(name: str) -> bool:
    """Give the calling thread `name` (cut to 15 bytes); whether the kernel took it."""
    if _prctl is None:
        return False
    raw = name.encode("ascii", "replace")[:_NAME_MAX]
    return bool(_prctl(_PR_SET_NAME, ctypes.c_char_p(raw), 0, 0, 0) == 0)

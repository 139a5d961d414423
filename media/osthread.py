"""Names for the server's own threads as the kernel sees them (``/proc/PID/task/*/comm``,
``top -H``, ``ps -L``), so that an operator, or `switchboard bench`, can tell the media
thread, the recorder's I/O and each analyzer apart; and a nice value for all but the media
thread, so that it gets the core first. Linux only; elsewhere a no-op."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["name_os_thread", "renice_others"]

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


def renice_others(keep: set[int], nice: int) -> dict[int, str]:
    """Raise the nice value of every thread of this process except those in `keep` (kernel
    thread ids) to `nice`, never lowering one (that would need ``CAP_SYS_NICE``). Threads
    started later inherit the value of the thread that starts them, so the event loop's
    later threads follow it. Returns the threads it could not change, ``{tid: error}``;
    a no-op where ``/proc/self/task`` is missing."""
    failed: dict[int, str] = {}
    try:
        tids = [int(name) for name in os.listdir("/proc/self/task")]
    except OSError:
        return failed
    for tid in tids:
        if tid in keep:
            continue
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError as exc:  # the thread ended meanwhile, or a policy refused it
            failed[tid] = exc.strerror or exc.__class__.__name__
    return failed

"""Run SIPp scenarios from tests and benchmarks.

Imported by the end-to-end tests; holds no tests itself. Every SIPp process
started here runs in its own process group and is killed by its PID when it
outlives its time, so a hung scenario never leaves processes behind.
"""

from __future__ import annotations

import contextlib
import csv
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

SCENARIOS: Path = Path(__file__).resolve().parent.parent / "sipp_scenarios"
LOCALHOST = "127.0.0.1"
#: Extra seconds granted past SIPp's own -timeout before the harness kills it.
KILL_GRACE = 5.0


def sipp_path() -> str | None:
    """Path of the sipp binary, or None when SIPp is not installed."""
    return shutil.which("sipp")


@dataclass
class SippResult:
    """Outcome of one SIPp run.

    ``returncode`` is SIPp's own: 0 all calls succeeded, 1 at least one failed,
    97 stopped by an internal command, 99 ended without processing calls, 255
    fatal error (-1); a negative value means the harness killed it on timeout.
    """

    returncode: int
    stdout: str
    stderr: str
    successful: int
    failed: int
    stat_csv: Path | None
    messages: str
    errors: str = ""
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.failed == 0


def _port_free(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((LOCALHOST, port))
        except OSError:
            return False
    return True


def _ephemeral(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    return _ephemeral(socket.SOCK_DGRAM)


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return _ephemeral(socket.SOCK_STREAM)


def free_sip_port() -> int:
    """A port free for both UDP and TCP (SIPp may use either)."""
    for _ in range(100):
        port = free_udp_port()
        if _port_free(port, socket.SOCK_STREAM):
            return port
    raise OSError("no port free for both UDP and TCP")


SLOT = 512  # media ports per SIPp: base + 4 (n - 1) for call n with auto_media_port, 128 calls
_next_slot: list[int] = []  # the slot free_port_pair tries first


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port_pair() -> int:
    """An even UDP port p with p+1 free too (RTP and RTCP); SIPp also opens p+2 for video,
    so p+2 and p+3 are checked as well.

    Taken above the kernel's ephemeral range, in slots of SLOT ports used in turn: a port
    in that range can go to any socket bound to port 0 between this check and SIPp's own
    bind, which made SIPp exit with EADDRINUSE ("Unable to bind audio RTP socket"); above
    it only an explicit bind takes a port. Where the range leaves no room above it, an
    ephemeral port as before."""
    first = -(-(_ephemeral_range()[1] + 1) // SLOT) * SLOT
    slots = (65536 - first) // SLOT
    if slots >= 2:
        if not _next_slot:
            _next_slot.append(random.randrange(slots))
        for i in range(slots):
            k = (_next_slot[0] + i) % slots
            base = first + k * SLOT
            if all(_port_free(base + j, socket.SOCK_DGRAM) for j in range(4)):
                _next_slot[0] = k + 1
                return base
    for _ in range(200):
        base = free_udp_port() & ~1
        if base < 1024 or base + 3 > 65535:
            continue
        if all(_port_free(base + i, socket.SOCK_DGRAM) for i in range(4)):
            return base
    raise OSError("no free even UDP port pair")


def _options_request(host: str, port: int, local_port: int) -> bytes:
    tag = uuid.uuid4().hex[:10]
    return (
        f"OPTIONS sip:ping@{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {LOCALHOST}:{local_port};branch=z9hG4bK{tag};rport\r\n"
        f"From: <sip:probe@{LOCALHOST}>;tag={tag}\r\n"
        f"To: <sip:ping@{host}>\r\n"
        f"Call-ID: {tag}@{LOCALHOST}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Max-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def sip_options_ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """Send one OPTIONS over UDP; True when any SIP response comes back."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOCALHOST, 0))
        s.settimeout(timeout)
        try:
            s.sendto(_options_request(host, port, s.getsockname()[1]), (host, port))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                data, _ = s.recvfrom(65535)
                if data.startswith(b"SIP/2.0 "):
                    return True
        except OSError:  # timeout, or ICMP port unreachable surfaced as refused
            return False
    return False


def wait_for_sip(host: str, port: int, timeout: float = 10) -> None:
    """Poll with OPTIONS until the server answers; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sip_options_ping(host, port, timeout=min(0.5, max(0.05, deadline - time.monotonic()))):
            return
        time.sleep(0.1)
    raise TimeoutError(f"no SIP answer from {host}:{port} within {timeout} s")


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """Terminate a SIPp started with start_new_session, by its PID/process group."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _scenario_args(scenario: str) -> list[str]:
    """``foo.xml`` (in SCENARIOS, or a path) -> -sf; a bare name -> SIPp built-in -sn."""
    if scenario.endswith(".xml"):
        path = Path(scenario)
        if not path.is_absolute() and not path.exists():
            path = SCENARIOS / scenario
        return ["-sf", str(path.resolve())]
    return ["-sn", scenario]


_COUNT_RE = {
    "successful": re.compile(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)"),
    "failed": re.compile(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)"),
}


def _counts_from_stat(stat_csv: Path) -> tuple[int, int] | None:
    try:
        rows = list(csv.reader(stat_csv.read_text(errors="replace").splitlines(), delimiter=";"))
    except OSError:
        return None
    if len(rows) < 2:
        return None
    head, last = rows[0], rows[-1]
    try:
        return (int(last[head.index("SuccessfulCall(C)")]), int(last[head.index("FailedCall(C)")]))
    except (ValueError, IndexError):
        return None


def _counts_from_screen(text: str) -> tuple[int, int]:
    found = {k: rx.findall(text) for k, rx in _COUNT_RE.items()}
    return (int(found["successful"][-1]) if found["successful"] else 0,
            int(found["failed"][-1]) if found["failed"] else 0)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def sipp_command(scenario: str, target: str, *, calls: int = 1, rate: float = 10,
                 concurrency: int | None = None, service: str = "100",
                 inject: Path | None = None, transport: str = "u1", local_port: int = 0,
                 media_port: int | None = None, extra: Sequence[str] = (),
                 timeout: float = 60, logdir: Path | None = None,
                 trace: bool = True) -> list[str]:
    """The SIPp command line run_sipp uses (also handy to print for a manual run)."""
    binary = sipp_path() or "sipp"
    if local_port == 0:
        local_port = free_sip_port()
    if media_port is None:
        media_port = free_port_pair()
    cmd = [binary, target, *_scenario_args(scenario), "-s", service,
           "-m", str(calls), "-r", f"{rate:g}", "-t", transport,
           "-i", LOCALHOST, "-p", str(local_port), "-mi", LOCALHOST, "-mp", str(media_port),
           "-nostdin", "-timeout", f"{max(1, round(timeout))}s", "-timeout_error"]
    if concurrency is not None:
        cmd += ["-l", str(concurrency)]
    if inject is not None:
        cmd += ["-inf", str(Path(inject).resolve())]
    if logdir is not None:
        cmd += ["-trace_err", "-error_file", str(logdir / "errors.log"),
                "-trace_stat", "-stf", str(logdir / "stat.csv")]
        if trace:
            cmd += ["-trace_msg", "-message_file", str(logdir / "messages.log")]
    return cmd + list(extra)


# SIPp runs started again when a port the harness chose was taken before SIPp bound it
BIND_RETRIES = 2


def _says_port_taken(text: str) -> bool:
    """SIPp's message for EADDRINUSE on its main or media socket."""
    return "errno = 98" in text


def _bind_failed(result: SippResult) -> bool:
    """SIPp exited on a taken port before its first call."""
    return (result.returncode != 0 and result.successful == 0 and result.failed == 0
            and _says_port_taken(f"{result.errors}\n{result.stderr}\n{result.stdout[-4000:]}"))


def run_sipp(scenario: str, target: str, *, calls: int = 1, rate: float = 10,
             concurrency: int | None = None, service: str = "100",
             inject: Path | None = None, transport: str = "u1", local_port: int = 0,
             media_port: int | None = None, extra: Sequence[str] = (),
             timeout: float = 60, cwd: Path | None = None, trace: bool = True,
             logdir: Path | None = None) -> SippResult:
    """Run a UAC scenario against ``target`` (``host:port``) and wait for it.

    ``scenario`` is a file in sipp_scenarios/ (or any path ending in .xml), or a
    SIPp built-in name such as ``uac``. SIPp runs with ``cwd`` (default
    sipp_scenarios/, where the scenarios' pcap/ paths are relative to), its
    own ``-timeout`` and, ``KILL_GRACE`` seconds later, is killed by PID.
    Logs go to ``logdir`` (default: a temporary directory that is kept while
    the returned ``stat_csv`` path is of use, under the system temp dir).
    """
    if sipp_path() is None:
        raise FileNotFoundError("sipp is not installed")
    for attempt in range(BIND_RETRIES + 1):
        run_dir = Path(logdir) if logdir else Path(tempfile.mkdtemp(prefix="sipp-"))
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in ("stat.csv", "errors.log", "messages.log"):  # not the failed try's
            (run_dir / name).unlink(missing_ok=True)
        cmd = sipp_command(scenario, target, calls=calls, rate=rate, concurrency=concurrency,
                           service=service, inject=inject, transport=transport,
                           local_port=local_port, media_port=media_port, extra=extra,
                           timeout=timeout, logdir=run_dir, trace=trace)
        result = _run(cmd, cwd, timeout, run_dir)
        # Ports this harness picked were free when checked, but another socket may take
        # one before SIPp binds it; SIPp then exits before its first call. Only then, and
        # only with ports of our choosing, it runs again with new ones.
        chosen = local_port == 0 and media_port is None
        if not (chosen and attempt < BIND_RETRIES and _bind_failed(result)):
            return result
    raise AssertionError("unreachable")


def _run(cmd: list[str], cwd: Path | None, timeout: float, logdir: Path) -> SippResult:
    proc = subprocess.Popen(cmd, cwd=str(cwd or SCENARIOS), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace", start_new_session=True)
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout + KILL_GRACE)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
        stdout, stderr = proc.communicate()
    finally:
        _kill_group(proc)
    returncode = proc.returncode
    if timed_out and returncode >= 0:  # SIPp exits 0 on SIGTERM: report the kill
        returncode = -int(signal.SIGTERM)
    stat_csv = logdir / "stat.csv"
    counts = _counts_from_stat(stat_csv) or _counts_from_screen(stdout)
    return SippResult(returncode=returncode, stdout=stdout, stderr=stderr,
                      successful=counts[0], failed=counts[1],
                      stat_csv=stat_csv if stat_csv.exists() else None,
                      messages=_read(logdir / "messages.log"),
                      errors=_read(logdir / "errors.log"), timed_out=timed_out)


@dataclass
class SippServer:
    """A SIPp UAS started by :func:`sipp_uas`."""

    proc: subprocess.Popen[str]
    port: int
    media_port: int
    logdir: Path

    @property
    def target(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    def errors(self) -> str:
        return _read(self.logdir / "errors.log")


@contextlib.contextmanager
def sipp_uas(scenario: str = "uas", *, port: int = 0, transport: str = "u1",
             media_port: int | None = None, extra: Sequence[str] = (),
             cwd: Path | None = None) -> Iterator[SippServer]:
    """Run a SIPp UAS (built-in ``uas`` or a scenario file) for the ``with`` body.

    Used to exercise caller scenarios without Switchboard. The UAS is killed
    by its PID when the block exits."""
    if sipp_path() is None:
        raise FileNotFoundError("sipp is not installed")
    chosen = not port and not media_port
    for attempt in range(BIND_RETRIES + 1):
        sip_port, rtp_port = port or free_sip_port(), media_port or free_port_pair()
        logdir = Path(tempfile.mkdtemp(prefix="sipp-uas-"))
        cmd = [sipp_path() or "sipp", *_scenario_args(scenario), "-t", transport,
               "-i", LOCALHOST, "-p", str(sip_port), "-mi", LOCALHOST, "-mp", str(rtp_port),
               "-nostdin", "-trace_err", "-error_file", str(logdir / "errors.log"), *extra]
        proc = subprocess.Popen(cmd, cwd=str(cwd or SCENARIOS), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                text=True, start_new_session=True)
        try:
            _wait_bound(sip_port, transport, proc)
        except RuntimeError:  # exited early: a port taken since we checked it (as run_sipp)
            _kill_group(proc)
            if chosen and attempt < BIND_RETRIES and _says_port_taken(_read(logdir / "errors.log")):
                continue
            raise
        except BaseException:
            _kill_group(proc)
            raise
        break
    try:
        yield SippServer(proc, sip_port, rtp_port, logdir)
    finally:
        _kill_group(proc)


def _wait_bound(port: int, transport: str, proc: subprocess.Popen[str],
                timeout: float = 5.0) -> None:
    """Wait until the UAS holds its SIP port (SIPp has no readiness signal)."""
    kind = socket.SOCK_STREAM if transport.startswith("t") else socket.SOCK_DGRAM
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sipp UAS exited early with code {proc.returncode}")
        if not _port_free(port, kind):
            time.sleep(0.05)  # bound; give it a moment to enter its loop
            if proc.poll() is not None:  # it was another socket that held the port
                raise RuntimeError(f"sipp UAS exited early with code {proc.returncode}")
            return
        time.sleep(0.05)
    raise TimeoutError(f"sipp UAS did not bind port {port}")

"""The processes `switchboard bench` starts and watches: servers (nodes), redis-server,
SIPp callers (one per node) and what their statistics and setup logs show.

With `--nodes 1` (the default) there is one server and no Redis, as always. With
`--nodes N` the bench starts its own redis-server on a free loopback port (no
persistence, its files under the report directory) and N `switchboard run` processes
on it (`--store redis://127.0.0.1:PORT/0 --node-id nodeI`), each with its own SIP and
HTTP ports, RTP port range and data directory, each pinned to its own core.

Only processes started here are stopped, by their PID; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .benchreport import CallTimes, parse_proc_stat, parse_setup_log, plan_steps

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def free_port(avoid: tuple[int, int] = (0, -1)) -> int:
    """A loopback port free for UDP and TCP, outside `avoid` (the SIPp media blocks: the
    server's RTP sent there must not land in a SIP or control socket)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
        if avoid[0] <= port <= avoid[1]:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def cpu_seconds(pid: int) -> float:
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of a process's threads by kernel name (`media.osthread`); the main
    thread is ``main``. Threads that ended are not there."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = "main" if task.name == str(pid) else (task / "comm").read_text().strip()
            out[name] = out.get(name, 0.0) + cpu_seconds_of(task / "stat")
        except (OSError, ValueError, IndexError):
            continue  # it ended meanwhile
    return out


def cpu_seconds_of(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def by_thread(nodes: list[Node]) -> dict[str, float]:
    """The nodes' CPU seconds over the run by thread name, added up across nodes: where
    the server's time went (``main``: the event loop; ``sb-media``: the native RTP plane,
    kernel time of its sockets included; ``sb-recorder-io``; ``sb-hook-NAME`` per
    analyzer). The server's own threads are there even when they used less than a clock
    tick; other threads (executor workers) only when they used some."""
    out: dict[str, float] = {}
    for node in nodes:
        for name, used in node.threads_used.items():
            out[name] = out.get(name, 0.0) + used
    return {name: round(used, 2) for name, used in sorted(out.items(), key=lambda x: -x[1])
            if used >= 0.005 or name == "main" or name.startswith("sb-")}


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


class SippCost:
    """What the SIPp processes cost their core: CPU seconds (each process's last /proc
    reading, less what it had used when the run began) and the most threads one had
    (play_pcap_audio runs a thread per playing call)."""

    def __init__(self) -> None:
        self.cpu0: dict[int, float] = {}
        self.cpu: dict[int, float] = {}
        self.threads_peak = 0

    def sample(self, procs: list[subprocess.Popen[bytes] | None], from_zero: bool = False) -> None:
        """Reads each running process; `from_zero`: started for the run, all its CPU counts."""
        for proc in procs:
            if proc is None or proc.poll() is not None:
                continue
            try:
                used, count = cpu_seconds(proc.pid), threads(proc.pid)
            except (OSError, ValueError, IndexError):
                continue
            self.cpu0.setdefault(proc.pid, 0.0 if from_zero else used)
            self.cpu[proc.pid] = used
            self.threads_peak = max(self.threads_peak, count)

    def cpu_s(self) -> float:
        return sum(used - self.cpu0[pid] for pid, used in self.cpu.items())


def rss_kib(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB


def proc_stat() -> dict[int, tuple[int, ...]] | None:
    """Each core's jiffies now (see benchreport.parse_proc_stat); None without /proc/stat."""
    try:
        return parse_proc_stat(Path("/proc/stat").read_text())
    except OSError:
        return None


def pinned(cmd: list[str], cpu: str | None) -> list[str]:
    if cpu is not None and shutil.which("taskset"):
        return ["taskset", "-c", cpu, *cmd]
    return cmd


def stop(proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM, wait: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, sig)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)


def stop_on_sigterm() -> None:
    """A SIGTERM (a CI timeout, `kill PID`) stops the bench the way Ctrl-C does: through
    its cleanup, which ends the server, SIPp and tcpdump it started (exit status 143)."""
    def terminated(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminated)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Node:
    """One server process the bench measures, and what it sampled of it."""

    index: int                         # 1-based: node1 is the one the agents register with
    dir: Path                          # its files (server.log, var/)
    cpu: str | None = None             # taskset core list
    rtp_ports: tuple[int, int] = (20000, 29999)
    sip: str = ""
    http: str | None = None
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    data_dir: Path | None = None
    cpu0: float = 0.0
    cpu_used: float = 0.0
    threads0: dict[str, float] = field(default_factory=dict)  # CPU by thread at the start
    threads_used: dict[str, float] = field(default_factory=dict)
    rss_start: int = 0
    rss_peak: int = 0
    max_calls: int = 0
    health_body: dict[str, Any] = field(default_factory=dict)
    health_rtt_ms: float = 0.0
    cdr_before: int = 0

    @property
    def name(self) -> str:
        return f"node{self.index}"

    def health(self) -> dict[str, Any]:
        """One /api/health request (raises OSError when the server does not answer)."""
        if not self.http:
            return {}
        sent = time.monotonic()
        with urllib.request.urlopen(self.http + "/api/health", timeout=2) as resp:
            body: dict[str, Any] = json.loads(resp.read())
        self.health_rtt_ms = round((time.monotonic() - sent) * 1000.0, 2)
        return body

    def poll(self) -> bool:
        """Polls its health into `health_body` and `max_calls`; False when it did not answer."""
        try:
            self.health_body = self.health()
        except OSError:
            return False
        self.max_calls = max(self.max_calls, int(self.health_body.get("calls", 0)))
        return True

    def cpu_s(self) -> float:
        return cpu_seconds(self.pid) if self.pid else 0.0

    def thread_cpu_s(self) -> dict[str, float]:
        try:
            return thread_cpu_seconds(self.pid) if self.pid else {}
        except OSError:
            return {}

    def rss(self) -> int:
        rss = rss_kib(self.pid) if self.pid else 0
        self.rss_peak = max(self.rss_peak, rss)
        return rss

    def cdrs(self) -> list[dict[str, Any]]:
        return _jsonl(self.data_dir / "cdr.jsonl") if self.data_dir else []

    def queue_log(self) -> list[dict[str, Any]]:
        return _jsonl(self.data_dir / "queue_log.jsonl") if self.data_dir else []

    def start(self, cmd: list[str], cwd: Path) -> None:
        log = open(self.dir / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(pinned(cmd, self.cpu), cwd=cwd, stdout=log,
                                     stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def wait_up(self, deadline: float) -> None:
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: see {self.dir / 'server.log'}")
            try:
                self.health()
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"{self.name} did not come up within 30 s")


class RedisServer:
    """A redis-server of the bench's own: loopback, a free port, no persistence, its
    directory under the report directory; stopped by its PID."""

    def __init__(self, directory: Path, avoid: tuple[int, int]) -> None:
        self.dir = directory
        self.avoid = avoid
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.cpu0 = 0.0

    def start(self) -> str:
        exe = shutil.which("redis-server")
        if exe is None:
            raise SystemExit("bench: --nodes needs redis-server (apt-get install redis-server)")
        self.dir.mkdir(parents=True, exist_ok=True)
        port = free_port(self.avoid)
        log = open(self.dir / "redis.log", "wb")  # noqa: SIM115 - lives as long as redis
        self.proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--dir", str(self.dir)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while not self._ping(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                stop(self.proc)
                raise SystemExit(f"bench: redis-server did not start: see {self.dir / 'redis.log'}")
            time.sleep(0.05)
        self.url = f"redis://127.0.0.1:{port}/0"
        return self.url

    @staticmethod
    def _ping(port: int) -> bool:
        import redis  # the dependency `run --store` uses

        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def cpu_s(self) -> float:
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        stop(self.proc)


class SippStats:
    """The last row of SIPp's -trace_stat file (-fd 1): calls created and open so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.columns: list[str] = []

    def read(self) -> dict[str, float]:
        try:
            with open(self.path, "rb") as f:
                if not self.columns:
                    header = f.readline().decode(errors="replace")
                    if not header.endswith("\n"):
                        return {}
                    self.columns = header.strip().split(";")
                size = f.seek(0, os.SEEK_END)
                f.seek(max(0, size - 8192))
                lines = f.read().decode(errors="replace").split("\n")[:-1]
        except OSError:
            return {}
        if not lines:
            return {}
        row = dict(zip(self.columns, lines[-1].split(";"), strict=False))
        try:
            return {"created": int(row["TotalCallCreated"]), "current": int(row["CurrentCall"]),
                    "rate": float(row["TargetRate"])}
        except (KeyError, ValueError):
            return {}


class InviteCount:
    """INVITEs SIPp has sent so far: the `bench invite` lines of its setup log, read from
    where the last read stopped (SIPp writes each line as it goes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.count = 0

    def read(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(1 << 20)
        except OSError:
            return self.count
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        self.count += sum(1 for line in lines if line.startswith(b"bench invite "))
        return self.count


class Caller:
    """One SIPp caller process: one node's share of the calls, its rate and its limit, with
    its own media-port block, control socket and files."""

    def __init__(self, node: Node, calls: int, concurrency: int, cps: float, steps: int,
                 media_port: int) -> None:
        self.node = node
        self.dir = node.dir
        self.calls = calls
        self.plan = plan_steps(calls, concurrency, cps, steps)
        self.media_port = media_port
        self.control_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.stats = SippStats(self.dir / "sipp_stat.csv")
        self.invites = InviteCount(self.dir / "setup.log")

    def read(self) -> dict[str, float]:
        row = self.stats.read()
        row["created"] = max(row.get("created", 0), self.invites.read())
        return row

    def budget(self, talk: float) -> float:
        placing = sum((p.until - q) / p.rate for p, q in
                      zip(self.plan, [0] + [p.until for p in self.plan], strict=False))
        return placing + talk + 90

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def calls_logged(self) -> dict[str, CallTimes]:
        log = self.dir / "setup.log"
        return parse_setup_log(log.read_text(errors="replace")) if log.exists() else {}


class RtpSinks:
    """A bound, never-read UDP socket on each SIPp call's RTP port, as a phone has.

    SIPp 3.6.1 plays its audio from a pcap through a raw socket and binds only its base
    `-mp` port, so nothing listens on the per-call ports it offers ([auto_media_port]):
    every packet the server sends there comes back as an ICMP port unreachable, which
    costs the server the error and, on its connected sockets, a failed send retried. A
    socket here takes those packets instead; it is never read and its receive buffer is
    small, so the kernel drops what overflows at no cost to either side. Ports already in
    use (SIPp's own base port) are skipped."""

    RCVBUF = 4096

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.skipped = 0

    def bind(self, base: int, calls: int) -> None:
        """Call n of a SIPp process with `-mp base` offers base + 4 (n - 1), modulo 10,000
        (call 1 is SIPp's own base port)."""
        count = min(calls, 2500) - 1
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = len(self.sockets) + count + 1024
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want if hard == resource.RLIM_INFINITY
                                                        else min(want, hard), hard))
        for n in range(2, count + 2):
            port = base + (4 * (n - 1)) % 10000
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.RCVBUF)
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                self.skipped += 1
                continue
            self.sockets.append(sock)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


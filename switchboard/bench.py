"""`switchboard bench`: SIPp callers through the demo IVR, measured from outside the server.

- calls attempted/completed/failed from SIPp and the CDRs (a call is complete when it
  ended by the caller's BYE after the talk time, and its CDR holds the keyed digits);
- DTMF accuracy: every completed call keyed account 4711 and menu 1 (the load pcap);
- server CPU seconds per call and RSS from /proc of the server process;
- outbound RTP pacing from a tcpdump capture of what the server sent (kernel
  timestamps), never from the server's own counters.

Everything runs on 127.0.0.1. The server is pinned to one core and SIPp to the other
when `taskset` is present. Every wait is bounded; only processes started here are
stopped, by their PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .pacing import PcapError, analyse

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = REPO / "sipp_scenarios"
EXPECTED_VARS = {"account": "4711", "choice": "1"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _free_port() -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _rss_kib(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB


def _pinned(cmd: list[str], cpu: str | None) -> list[str]:
    if cpu is not None and shutil.which("taskset"):
        return ["taskset", "-c", cpu, *cmd]
    return cmd


def _stop(proc: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM, wait: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, sig)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.report_dir = Path(args.report or f"bench-report/{stamp}").resolve()
        self.report_dir.mkdir(parents=True, exist_ok=True)
        self.server: subprocess.Popen[bytes] | None = None
        self.server_pid: int | None = None
        self.http: str | None = None
        self.data_dir: Path | None = None
        self.rtp_ports = (20000, 29999)
        self.clock: dict[str, Any] = {}
        self.peak_bridged = 0
        self.agent_ids: list[str] = []
        self.agent_passwords: dict[str, str] = {}
        self.agents_ready = 0
        self.gc: dict[str, Any] = {}

    # -- set-up ----------------------------------------------------------------------------

    def start_server(self) -> str:
        if self.args.server:
            self.http = self.args.http
            self.server_pid = self.args.server_pid
            self.data_dir = Path(self.args.data_dir) if self.args.data_dir else None
            return str(self.args.server)
        sip, http = _free_port(), _free_port()
        self.data_dir = self.report_dir / "var"
        own = self.args.agents or self.args.no_record or self.args.analytics
        config = ["--config", str(self._config())] if own else []
        cmd = _pinned([sys.executable, "-m", "switchboard", "run", "--sip", f"127.0.0.1:{sip}",
                       "--http", f"127.0.0.1:{http}", "--rtp-ports", f"{self.rtp_ports[0]}-{self.rtp_ports[1]}",
                       "--data-dir", str(self.data_dir), "--log-level", "WARNING", *config],
                      self.args.server_cpu)
        log = open(self.report_dir / "server.log", "wb")  # noqa: SIM115 - lives as long as the server
        self.server = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        self.server_pid = self.server.pid
        self.http = f"http://127.0.0.1:{http}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise SystemExit(f"server exited: see {self.report_dir / 'server.log'}")
            try:
                self.health()
                return f"127.0.0.1:{sip}"
            except OSError:
                time.sleep(0.2)
        raise SystemExit("server did not come up within 30 s")

    def _config(self) -> Path:
        """The demo config, with `--agents` agents (2001...) serving both queues (wrap-up
        2 s), recording off with `--no-record`, and the `--analytics` analyzers."""
        cfg = (REPO / "config/switchboard.yaml").read_text()
        for old, new in (("prompts: ../prompts", f"prompts: {REPO / 'prompts'}"),
                         ("flows: flows", f"flows: {REPO / 'config/flows'}"),
                         ("agents: agents.yaml", f"agents: {REPO / 'config/agents.yaml'}"),
                         ("queues: queues.yaml", f"queues: {REPO / 'config/queues.yaml'}")):
            cfg = cfg.replace(old, new)
        if self.args.agents:
            cfg = self._agent_config(cfg)
        if self.args.no_record:
            cfg = cfg.replace("recording:\n  enabled: true", "recording:\n  enabled: false")
        if self.args.analytics:
            cfg += f"analytics: [{self.args.analytics}]\n"
        (self.report_dir / "switchboard.yaml").write_text(cfg)
        return self.report_dir / "switchboard.yaml"

    def _agent_config(self, cfg: str) -> str:
        secret = os.urandom(6).hex()
        self.agent_ids = [str(2001 + i) for i in range(self.args.agents)]
        self.agent_passwords = {a: f"bench-{a}-{secret}" for a in self.agent_ids}
        lines = ["agents:"]
        for agent in self.agent_ids:
            lines += [f"  - id: '{agent}'", f"    password: bench-{agent}-{secret}",
                      "    skills: {billing: 5, support: 5}", "    queues: {billing: 0, support: 0}"]
        (self.report_dir / "agents.yaml").write_text("\n".join(lines) + "\n")
        queues = (REPO / "config/queues.yaml").read_text().replace("wrapup: 10", "wrapup: 2")
        (self.report_dir / "queues.yaml").write_text(queues)
        cfg = cfg.replace(f"agents: {REPO / 'config/agents.yaml'}",
                          f"agents: {self.report_dir / 'agents.yaml'}")
        cfg = cfg.replace(f"queues: {REPO / 'config/queues.yaml'}",
                          f"queues: {self.report_dir / 'queues.yaml'}")
        logins = [f"{a};[authentication username={a} password=bench-{a}-{secret}]"
                  for a in self.agent_ids]
        (self.report_dir / "agents.csv").write_text("SEQUENTIAL\n" + "\n".join(logins) + "\n")
        return cfg

    def start_agents(self, target: str) -> subprocess.Popen[bytes]:
        """SIPp answering every offer (with agent audio), then every agent registers and
        dials *50 with its Contact pointing there."""
        a = self.args
        port = _free_port()
        uas = subprocess.Popen(_pinned(
            ["sipp", "-sf", "agent_answer.xml", "-i", "127.0.0.1", "-p", str(port),
             "-mi", "127.0.0.1", "-mp", str(a.media_port + 4000), "-m", str(a.calls),
             "-key", "agent_hangs_up_ms", "0", "-nostdin", "-max_socket", "60000",
             "-trace_err", "-error_file", str(self.report_dir / "agents_errors.log"),
             "-trace_stat", "-stf", str(self.report_dir / "agents_stat.csv"), "-fd", "1"],
            a.sipp_cpu), cwd=SCENARIOS, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True)
        time.sleep(1.0)
        login = subprocess.run(_pinned(
            ["sipp", target, "-sf", "agent_login.xml", "-inf", str(self.report_dir / "agents.csv"),
             "-key", "contact_port", str(port), "-m", str(a.agents), "-r", "50",
             "-l", str(a.agents), "-i", "127.0.0.1", "-mi", "127.0.0.1",
             "-mp", str(a.media_port + 8000), "-nostdin", "-timeout", "60s", "-timeout_error",
             "-trace_err", "-error_file", str(self.report_dir / "login_errors.log")],
            a.sipp_cpu), cwd=SCENARIOS, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            timeout=90, check=False)
        ready = sum(1 for agent in self._agents() if agent["status"] == "ready")
        print(f"bench: agents registered and ready: {ready}/{a.agents} (sipp rc={login.returncode})",
              flush=True)
        self.agents_ready = ready
        return uas

    def _agents(self) -> list[dict[str, Any]]:
        """Each bench agent as it sees itself (logged in with its own password)."""
        assert self.http
        out = []
        for agent, password in self.agent_passwords.items():
            token = Desks.login(self.http, agent, password)
            req = urllib.request.Request(f"{self.http}/api/agents/{agent}",
                                         headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                out.append(json.loads(resp.read()))
        return out

    def health(self) -> dict[str, Any]:
        if not self.http:
            return {}
        with urllib.request.urlopen(self.http + "/api/health", timeout=2) as resp:
            return json.loads(resp.read())

    def start_capture(self) -> subprocess.Popen[bytes] | None:
        if self.args.no_capture or not shutil.which("tcpdump"):
            print("bench: no tcpdump: RTP pacing is not measured", file=sys.stderr)
            return None
        lo, hi = self.rtp_ports
        cmd = ["tcpdump", "-i", "lo", "-w", str(self.report_dir / "rtp.pcap"), "-s", "64",
               "-B", "65536", "--time-stamp-precision=nano", "-U",
               f"udp and src host 127.0.0.1 and src portrange {lo}-{hi}"]
        proc = subprocess.Popen(_pinned(cmd, self.args.sipp_cpu), stdout=subprocess.DEVNULL,
                                stderr=open(self.report_dir / "tcpdump.log", "wb"))  # noqa: SIM115
        time.sleep(1.0)
        return proc

    def sipp_command(self, target: str) -> list[str]:
        a = self.args
        csv = self.report_dir / "talk.csv"
        csv.write_text("SEQUENTIAL\n" + f"{int(a.talk * 1000)}\n")
        cmd = ["sipp", target, "-sf", "ivr_load.xml", "-inf", str(csv), "-s", a.did,
               "-m", str(a.calls), "-l", str(a.concurrency), "-r", f"{a.cps:g}",
               "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", str(a.media_port), "-nostdin",
               "-trace_stat", "-stf", str(self.report_dir / "sipp_stat.csv"), "-fd", "1",
               "-trace_err", "-error_file", str(self.report_dir / "sipp_errors.log"),
               "-max_socket", "60000", "-timeout", f"{int(self.budget())}s", "-timeout_error"]
        return _pinned(cmd, a.sipp_cpu)

    def budget(self) -> float:
        a = self.args
        return a.calls / a.cps + a.talk + 90

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        target = self.start_server()
        capture = agents = None
        desks = None
        try:
            if self.args.agents:
                agents = self.start_agents(target)
                desks = Desks(self.http or "", self.agent_passwords)
                desks.start()
            capture = self.start_capture()
            result = self.measure(target, capture)
            if desks is not None:
                result.update(desks.summary())
            return result
        finally:
            if desks is not None:
                desks.stop()
            if agents is not None and agents.poll() is None:
                os.killpg(agents.pid, signal.SIGKILL)
                agents.wait(5)
            _stop(capture, signal.SIGINT)
            _stop(self.server)

    def measure(self, target: str, capture: subprocess.Popen[bytes] | None) -> dict[str, Any]:
        assert self.server_pid is not None
        pid = self.server_pid
        cdr_before = len(self._cdrs())
        cpu0, rss0 = _cpu_seconds(pid), _rss_kib(pid)
        t0 = time.monotonic()
        sipp = subprocess.Popen(self.sipp_command(target), cwd=SCENARIOS,
                                stdout=open(self.report_dir / "sipp.out", "wb"),  # noqa: SIM115
                                stderr=subprocess.STDOUT, start_new_session=True)
        peak_calls, peak_rss, lag = 0, rss0, 0.0
        last_print = 0.0
        deadline = t0 + self.budget() + 30
        while sipp.poll() is None and time.monotonic() < deadline:
            time.sleep(self.args.poll)
            try:
                health = self.health()
            except OSError:
                continue
            calls = health.get("calls", 0)
            peak_calls = max(peak_calls, calls)
            self.peak_bridged = max(self.peak_bridged, int(health.get("bridged", 0)))
            peak_rss = max(peak_rss, _rss_kib(pid))
            lag = max(lag, float(health.get("media_clock", {}).get("late_p99_ms", 0.0)))
            self.clock = health.get("media_clock", {})
            self.gc = health.get("gc", {})
            now = time.monotonic()
            if now - last_print >= 5:
                last_print = now
                print(f"bench: t={now - t0:5.0f}s calls_up={calls:5d} peak={peak_calls:5d} "
                      f"cdrs={len(self._cdrs()) - cdr_before:6d} cpu={_cpu_seconds(pid) - cpu0:7.1f}s "
                      f"rss={_rss_kib(pid) // 1024}MiB", flush=True)
        if sipp.poll() is None:
            os.killpg(sipp.pid, signal.SIGKILL)
            sipp.wait(5)
        elapsed = time.monotonic() - t0
        time.sleep(1.0)  # the last CDRs
        cpu = _cpu_seconds(pid) - cpu0
        return self.figures(cdr_before, cpu, elapsed, peak_calls, rss0, peak_rss, lag,
                            sipp.returncode, capture)

    def _cdrs(self) -> list[dict[str, Any]]:
        if self.data_dir is None or not (self.data_dir / "cdr.jsonl").exists():
            return []
        lines = (self.data_dir / "cdr.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def figures(self, cdr_before: int, cpu: float, elapsed: float, peak_calls: int, rss0: int,
                peak_rss: int, lag: float, sipp_rc: int | None,
                capture: subprocess.Popen[bytes] | None) -> dict[str, Any]:
        a = self.args
        cdrs = self._cdrs()[cdr_before:]
        completed = [c for c in cdrs if c.get("end_reason") == "caller_hangup"
                     and (not a.agents or c.get("agent"))]
        digits_ok = sum(1 for c in completed if c.get("vars") == EXPECTED_VARS)
        reasons: dict[str, int] = {}
        for c in cdrs:
            if c not in completed:
                why = str(c.get("end_reason"))
                if why == "caller_hangup":
                    why = "never_reached_an_agent"
                reasons[why] = reasons.get(why, 0) + 1
        missing = a.calls - len(cdrs)
        if missing > 0:
            reasons["no_cdr"] = missing
        result: dict[str, Any] = {
            "attempted": a.calls,
            "completed": len(completed),
            "failed": a.calls - len(completed),
            "failed_by_reason": reasons,
            "digits_right": digits_ok,
            "digits_right_pct": round(100.0 * digits_ok / len(completed), 2) if completed else 0.0,
            "max_concurrent": peak_calls,
            "max_bridged": self.peak_bridged,
            "agents": a.agents,
            "agents_ready": self.agents_ready,
            "recorded": sum(1 for c in cdrs if c.get("recording")),
            "analytics": a.analytics or None,
            "cps": round(a.calls / elapsed, 2) if elapsed else 0.0,
            "cps_target": a.cps,
            "elapsed_s": round(elapsed, 1),
            "cpu_s": round(cpu, 2),
            "cpu_s_per_call": round(cpu / max(1, len(completed)), 4),
            "cpu_pct_of_core": round(100.0 * cpu / elapsed, 1) if elapsed else 0.0,
            "rss_kib_start": rss0,
            "rss_kib_peak": peak_rss,
            "rss_kib_per_call": round((peak_rss - rss0) / peak_calls, 1) if peak_calls else 0.0,
            "media_clock_late_p99_ms": lag,
            "media_clock_work_p99_ms": self.clock.get("work_p99_ms"),
            "media_clock_skipped_ticks": self.clock.get("skipped"),
            "gc_pauses": self.gc.get("pauses"),
            "gc_pause_max_ms": self.gc.get("pause_max_ms"),
            "sipp_returncode": sipp_rc,
            "report_dir": str(self.report_dir),
        }
        if capture is not None:
            _stop(capture, signal.SIGINT)
            try:
                result.update(analyse(self.report_dir / "rtp.pcap").summary())
            except (PcapError, OSError) as exc:
                result["rtp_capture_error"] = str(exc)
        (self.report_dir / "report.json").write_text(json.dumps(result, indent=2) + "\n")
        (self.report_dir / "report.md").write_text(_markdown(result))
        return result


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
            if not ordered:
                return 0.0
            return round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))], 2)

        return {"desktops_connected": self.connected, "pops": len(ordered),
                "pop_latency_p50_ms": pct(50), "pop_latency_p99_ms": pct(99),
                "pop_latency_max_ms": round(1000 * ordered[-1], 2) if ordered else 0.0}


def _markdown(r: dict[str, Any]) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in r.items() if k != "report_dir")
    return f"| figure | value |\n|---|---|\n{rows}\n"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="switchboard bench",
                                description="SIPp callers through the demo IVR, measured")
    p.add_argument("--calls", type=int, default=100, help="calls to place (default 100)")
    p.add_argument("--concurrency", type=int, default=50, help="SIPp -l (default 50)")
    p.add_argument("--talk", type=float, default=20.0,
                   help="seconds from answer to the caller's BYE (default 20; IVR + queue)")
    p.add_argument("--cps", type=float, default=10.0, help="call attempts per second (default 10)")
    p.add_argument("--agents", type=int, default=0,
                   help="SIPp agents that register, go ready and answer (default 0: IVR and queue only)")
    p.add_argument("--server", help="HOST:PORT of a running server (default: start one)")
    p.add_argument("--http", help="with --server: its HTTP base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--server-pid", type=int, help="with --server: its PID, for CPU and RSS")
    p.add_argument("--data-dir", help="with --server: its data dir, for the CDRs")
    p.add_argument("--report", help="report directory (default bench-report/TIMESTAMP)")
    p.add_argument("--did", default="100", help="number to dial (default 100, the demo IVR)")
    p.add_argument("--media-port", type=int, default=40000, help="SIPp media port (default 40000)")
    p.add_argument("--server-cpu", default="0", help="core for the server (taskset; default 0)")
    p.add_argument("--sipp-cpu", default="1", help="core for SIPp and tcpdump (default 1)")
    p.add_argument("--no-capture", action="store_true", help="do not capture RTP with tcpdump")
    p.add_argument("--no-record", action="store_true",
                   help="turn call recording off (default: on, as in the demo config)")
    p.add_argument("--analytics", default="",
                   help="comma-separated analyzers to run on every call, e.g. talk,stress")
    p.add_argument("--poll", type=float, default=5.0,
                   help="seconds between the bench's /api/health polls (default 5; each poll is an HTTP request on the media loop)")
    args = p.parse_args(argv)
    if args.calls < 1 or args.concurrency < 1 or args.cps <= 0 or args.talk < 0:
        p.error("--calls, --concurrency and --cps must be positive, --talk >= 0")
    if args.agents < 0 or ((args.agents or args.no_record or args.analytics) and args.server):
        p.error("--agents, --no-record and --analytics need a server the bench starts itself "
                "(it writes its config)")
    if args.server and not (args.http and args.server_pid and args.data_dir):
        p.error("--server needs --http, --server-pid and --data-dir to measure it")
    if not shutil.which("sipp"):
        p.error("sipp is not installed (apt-get install sip-tester)")
    return args


def main_bench(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    result = Bench(args).run()
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(result, separators=(",", ":")))
    return 0 if result["failed"] == 0 else 1

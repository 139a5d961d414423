"""`switchboard bench`: SIPp callers through the demo IVR, measured from outside the server.

- calls attempted/completed/failed: each SIPp call is matched to its CDR by SIP Call-ID
  (a call is complete when it ended by the caller's BYE after the talk time, and with
  `--agents` reached an agent); calls SIPp never placed count as failed, `not_placed`;
- post-dial delay (INVITE -> first 18x, or the 200 when none) and time to answer
  (INVITE -> 200) p50/p99, from gettimeofday stamps SIPp logs per call (ivr_load.xml);
- DTMF accuracy: every completed call keyed account 4711 and menu 1 (the load pcap);
- server CPU seconds per call and RSS from /proc of the server process;
- outbound RTP pacing from a tcpdump capture of what the server sent (kernel
  timestamps), never from the server's own counters.

Steps (`--steps N`, default 1). The calls are placed by one SIPp process whose open-call
limit (-l) and rate (-r) the bench raises at run time through SIPp's control socket
(`-cp`, commands `set limit` and `set rate`). Step k of N offers a limit of
ceil(C * k / N) concurrent calls and R * k / N calls per second, and lasts until SIPp
has sent round(calls * k / N) INVITEs in all (the lines of its setup log, read every
0.25 s); the last step lasts until SIPp is done. A step can overshoot its share by what
SIPp sends within one read, more when it had been held at its limit (SIPp then sends
the calls it owes at once). Calls already up when a step ends keep
running, so the load climbs from step to step instead of draining in between. Each call
belongs to the step in which its INVITE was sent; a step's server figures (CPU, RSS
peak, media-clock lateness, health-poll round trip) and capture pacing cover its wall
time. With one step the run is a single SIPp run at -l C -r R, as before.

Every SIPp call sends and offers its own RTP port ([auto_media_port]): callers from
--media-port up, the agents' answering SIPp and their login calls in the blocks after,
each block 4 ports per call (at most 10,000). Every port the bench picks for SIP, HTTP
or the control socket avoids those blocks.

The report directory gets report.json (every figure and the per-step rows),
report.md (one table row per step plus a totals row) and report.png (load against
failures and latency per step; needs matplotlib, the `bench` extra). The last line
printed is one JSON object with the totals and the steps.

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

from .benchreport import (
    CallTimes,
    Step,
    markdown,
    parse_setup_log,
    percentile,
    plan_steps,
    step_rows,
    timing,
    write_report,
)
from .pacing import PcapError, analyse

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = REPO / "sipp_scenarios"
EXPECTED_VARS = {"account": "4711", "choice": "1"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _free_port(avoid: tuple[int, int] = (0, -1)) -> int:
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


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _rss_kib(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KIB


def _pinned(cmd: list[str], cpu: str | None) -> list[str]:
    if cpu is not None and shutil.which("taskset"):
        return ["taskset", "-c", cpu, *cmd]
    return cmd


def media_blocks(args: argparse.Namespace) -> tuple[int, int, int, int]:
    """First RTP port of the callers, of the agents' answering SIPp and of the agents' login
    calls, and the last port used: [auto_media_port] gives call n the port
    base + 4 * (n - 1) modulo 10,000."""

    def span(calls: int) -> int:
        return min(4 * max(1, calls), 10000)

    callers = args.media_port
    agents = callers + span(args.calls)
    login = agents + span(args.calls)
    return callers, agents, login, login + span(args.agents) - 1


def _control(port: int, command: str) -> None:
    """One command to SIPp's control socket (a datagram starting with "c")."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"c" + command.encode(), ("127.0.0.1", port))


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
        self.peak_server = self.peak_sipp = self.peak_rss = self.calls_up = 0
        self.lag = 0.0
        self._step_cpu0 = 0.0
        self.rate_warned: set[int] = set()
        self.agent_ids: list[str] = []
        self.agent_passwords: dict[str, str] = {}
        self.agents_ready = 0
        self.gc: dict[str, Any] = {}
        self.blocks = media_blocks(args)
        self.avoid = (self.blocks[0], self.blocks[3])
        self.plan = plan_steps(args.calls, args.concurrency, args.cps, args.steps)
        self.control_port = 0
        self.health_rtt_ms = 0.0

    # -- set-up ----------------------------------------------------------------------------

    def start_server(self) -> str:
        if self.args.server:
            self.http = self.args.http
            self.server_pid = self.args.server_pid
            self.data_dir = Path(self.args.data_dir) if self.args.data_dir else None
            return str(self.args.server)
        sip, http = _free_port(self.avoid), _free_port(self.avoid)
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
        port = _free_port(self.avoid)
        _, answer_rtp, login_rtp, _ = self.blocks
        uas = subprocess.Popen(_pinned(
            ["sipp", "-sf", "agent_answer.xml", "-i", "127.0.0.1", "-p", str(port),
             "-mi", "127.0.0.1", "-mp", str(answer_rtp), "-m", str(a.calls),
             "-key", "agent_hangs_up_ms", "0", "-nostdin", "-max_socket", "60000",
             "-trace_err", "-error_file", str(self.report_dir / "agents_errors.log"),
             "-trace_stat", "-stf", str(self.report_dir / "agents_stat.csv"), "-fd", "1"],
            a.sipp_cpu), cwd=SCENARIOS, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True)
        time.sleep(1.0)
        login = subprocess.run(_pinned(
            ["sipp", target, "-sf", "agent_login.xml", "-inf", str(self.report_dir / "agents.csv"),
             "-key", "contact_port", str(port), "-m", str(a.agents), "-r", "50",
             "-l", str(a.agents), "-i", "127.0.0.1", "-p", str(_free_port(self.avoid)),
             "-mi", "127.0.0.1", "-mp", str(login_rtp), "-nostdin", "-timeout", "60s",
             "-timeout_error",
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
        sent = time.monotonic()
        with urllib.request.urlopen(self.http + "/api/health", timeout=2) as resp:
            body: dict[str, Any] = json.loads(resp.read())
        self.health_rtt_ms = round((time.monotonic() - sent) * 1000.0, 2)
        return body

    def start_capture(self) -> subprocess.Popen[bytes] | None:
        if self.args.no_capture or not shutil.which("tcpdump"):
            why = "--no-capture" if self.args.no_capture else "no tcpdump"
            print(f"bench: {why}: RTP pacing is not measured", file=sys.stderr)
            return None
        lo, hi = self.rtp_ports
        # only what went to this bench's SIPp: other servers on the machine share the range
        cmd = ["tcpdump", "-i", "lo", "-w", str(self.report_dir / "rtp.pcap"), "-s", "64",
               "-B", "65536", "--time-stamp-precision=nano", "-U",
               f"udp and src host 127.0.0.1 and src portrange {lo}-{hi} "
               f"and dst portrange {self.avoid[0]}-{self.avoid[1]}"]
        proc = subprocess.Popen(_pinned(cmd, self.args.sipp_cpu), stdout=subprocess.DEVNULL,
                                stderr=open(self.report_dir / "tcpdump.log", "wb"))  # noqa: SIM115
        time.sleep(1.0)
        return proc

    def sipp_command(self, target: str) -> list[str]:
        a = self.args
        csv = self.report_dir / "talk.csv"
        csv.write_text("SEQUENTIAL\n" + f"{int(a.talk * 1000)}\n")
        first = self.plan[0]
        self.control_port = _free_port(self.avoid)
        cmd = ["sipp", target, "-sf", str(SCENARIOS / "ivr_load.xml"), "-inf", str(csv),
               "-s", a.did, "-m", str(a.calls), "-l", str(first.limit), "-r", f"{first.rate:g}",
               "-i", "127.0.0.1", "-p", str(_free_port(self.avoid)), "-cp", str(self.control_port),
               "-mi", "127.0.0.1", "-mp", str(a.media_port), "-nostdin",
               "-trace_logs", "-log_file", str(self.report_dir / "setup.log"),
               "-trace_stat", "-stf", str(self.report_dir / "sipp_stat.csv"), "-fd", "1",
               "-trace_err", "-error_file", str(self.report_dir / "sipp_errors.log"),
               "-max_socket", "60000", "-timeout", f"{int(self.budget())}s", "-timeout_error"]
        return _pinned(cmd, a.sipp_cpu)

    def budget(self) -> float:
        a = self.args
        placing = sum((p.until - q) / p.rate for p, q in
                      zip(self.plan, [0] + [p.until for p in self.plan], strict=False))
        return placing + a.talk + 90

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
        self.peak_rss = rss0
        t0 = time.monotonic()
        sipp = subprocess.Popen(self.sipp_command(target), cwd=self.report_dir,
                                stdout=open(self.report_dir / "sipp.out", "wb"),  # noqa: SIM115
                                stderr=subprocess.STDOUT, start_new_session=True)
        steps = [self._open_step(1)]
        stats = SippStats(self.report_dir / "sipp_stat.csv")
        invites = InviteCount(self.report_dir / "setup.log")
        next_health, last_print = t0 + self.args.poll, t0
        deadline = t0 + self.budget() + 30
        while sipp.poll() is None and time.monotonic() < deadline:
            time.sleep(min(0.25, self.args.poll))
            row = stats.read()
            row["created"] = max(row.get("created", 0), invites.read())
            self._sample_proc(steps[-1], row)
            self._check_rate(steps[-1], row)
            now = time.monotonic()
            if now >= next_health:
                next_health = now + self.args.poll
                self._sample_health(steps[-1])
            ending = self.plan[steps[-1].index - 1]
            if steps[-1].index < len(self.plan) and row.get("created", 0) >= ending.until:
                steps.append(self._next_step(steps[-1]))
            if now - last_print >= 5:
                last_print = now
                self._progress(steps[-1], now - t0, row, cdr_before, cpu0)
        if sipp.poll() is None:
            os.killpg(sipp.pid, signal.SIGKILL)
            sipp.wait(5)
        elapsed = time.monotonic() - t0
        self._close_step(steps[-1])
        time.sleep(1.0)  # the last CDRs
        cpu = _cpu_seconds(pid) - cpu0
        return self.figures(cdr_before, cpu, elapsed, rss0, sipp.returncode, capture, steps)

    # -- steps and samples -----------------------------------------------------------------

    def _open_step(self, index: int) -> Step:
        assert self.server_pid is not None
        plan = self.plan[index - 1]
        until = f", until {plan.until} calls placed" if index < len(self.plan) else ""
        print(f"bench: step {index}/{len(self.plan)}: up to {plan.limit} calls, {plan.rate:g} cps"
              f"{until}", flush=True)
        self._step_cpu0 = _cpu_seconds(self.server_pid)
        rss = _rss_kib(self.server_pid)
        return Step(index, plan.limit, plan.rate, time.time(), rss_kib_start=rss, rss_kib_peak=rss)

    def _close_step(self, step: Step) -> None:
        assert self.server_pid is not None
        self._sample_health(step)
        step.end = time.time()
        step.cpu_s = round(_cpu_seconds(self.server_pid) - self._step_cpu0, 2)

    def _next_step(self, step: Step) -> Step:
        """Ends `step` and raises SIPp's limit and rate to the next step's."""
        self._close_step(step)
        plan = self.plan[step.index]
        _control(self.control_port, f"set limit {plan.limit}")
        _control(self.control_port, f"set rate {plan.rate:g}")
        return self._open_step(step.index + 1)

    def _check_rate(self, step: Step, row: dict[str, float]) -> None:
        """SIPp's statistics show the rate it runs at: say so once if a step's did not take."""
        rate = row.get("rate")
        if (rate is not None and abs(rate - step.rate) > 0.01 * step.rate
                and time.time() - step.start > 5 and step.index not in self.rate_warned):
            self.rate_warned.add(step.index)
            print(f"bench: warning: SIPp runs at {rate:g} cps in step {step.index}, "
                  f"not {step.rate:g} (control socket port {self.control_port})", flush=True)

    def _sample_proc(self, step: Step, row: dict[str, float]) -> None:
        """What costs the server nothing: RSS from /proc, calls SIPp holds open."""
        assert self.server_pid is not None
        rss = _rss_kib(self.server_pid)
        step.rss_kib_peak = max(step.rss_kib_peak, rss)
        self.peak_rss = max(self.peak_rss, rss)
        open_calls = int(row.get("current", 0))
        step.sipp_peak_calls = max(step.sipp_peak_calls, open_calls)
        self.peak_sipp = max(self.peak_sipp, open_calls)

    def _sample_health(self, step: Step) -> None:
        """One /api/health poll (an HTTP request on the server's media loop)."""
        try:
            health = self.health()
        except OSError:
            return
        self.calls_up = int(health.get("calls", 0))
        step.server_peak_calls = max(step.server_peak_calls, self.calls_up)
        self.peak_server = max(self.peak_server, self.calls_up)
        self.peak_bridged = max(self.peak_bridged, int(health.get("bridged", 0)))
        self.clock = health.get("media_clock", {})
        self.gc = health.get("gc", {})
        late = float(self.clock.get("late_p99_ms", 0.0))
        # the server's histogram since it started: the step keeps the worst it saw
        step.clock_late_p99_ms = max(step.clock_late_p99_ms or 0.0, late)
        self.lag = max(self.lag, late)
        step.health_rtt_ms_max = max(step.health_rtt_ms_max or 0.0, self.health_rtt_ms)

    def _progress(self, step: Step, t: float, row: dict[str, float], cdr_before: int,
                  cpu0: float) -> None:
        assert self.server_pid is not None
        pid = self.server_pid
        print(f"bench: step {step.index}/{len(self.plan)} (up to {step.limit} calls, "
              f"{step.rate:g} cps) t={t:5.0f}s placed={row.get('created', 0):6.0f} "
              f"sipp_up={row.get('current', 0):5.0f} calls_up={self.calls_up:5d} "
              f"peak={max(self.peak_server, self.peak_sipp):5d} "
              f"cdrs={len(self._cdrs()) - cdr_before:6d} cpu={_cpu_seconds(pid) - cpu0:7.1f}s "
              f"rss={_rss_kib(pid) // 1024}MiB", flush=True)

    def _cdrs(self) -> list[dict[str, Any]]:
        if self.data_dir is None or not (self.data_dir / "cdr.jsonl").exists():
            return []
        lines = (self.data_dir / "cdr.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    # -- figures ---------------------------------------------------------------------------

    def _verdict(self, cdr: dict[str, Any] | None, call: CallTimes | None) -> str:
        """"completed", or why not."""
        if cdr is None:
            return "no_200" if call is not None and call.answer is None else "no_cdr"
        if cdr.get("end_reason") != "caller_hangup":
            return str(cdr.get("end_reason"))
        if self.args.agents and not cdr.get("agent"):
            return "never_reached_an_agent"
        return "completed"

    def outcomes(self, cdrs: list[dict[str, Any]], calls: dict[str, CallTimes]
                 ) -> tuple[dict[str, str], dict[str, int]]:
        """Each call's verdict by SIP Call-ID, and the failures by reason. Without SIPp's
        setup log (SIPp killed before it flushed), the CDRs alone."""
        by_id = {str(c.get("call_id")): c for c in cdrs}
        if calls:
            verdicts = {cid: self._verdict(by_id.get(cid), call) for cid, call in calls.items()}
            missing = ("not_placed", self.args.calls - len(calls))
        else:
            verdicts = {cid: self._verdict(cdr, None) for cid, cdr in by_id.items()}
            missing = ("no_cdr", self.args.calls - len(by_id))
        reasons: dict[str, int] = {}
        for why in verdicts.values():
            if why != "completed":
                reasons[why] = reasons.get(why, 0) + 1
        if missing[1] > 0:
            reasons[missing[0]] = reasons.get(missing[0], 0) + missing[1]
        return verdicts, reasons

    def figures(self, cdr_before: int, cpu: float, elapsed: float, rss0: int,
                sipp_rc: int | None, capture: subprocess.Popen[bytes] | None,
                steps: list[Step]) -> dict[str, Any]:
        a = self.args
        cdrs = self._cdrs()[cdr_before:]
        log = self.report_dir / "setup.log"
        calls = parse_setup_log(log.read_text(errors="replace")) if log.exists() else {}
        verdicts, reasons = self.outcomes(cdrs, calls)
        done = {cid for cid, why in verdicts.items() if why == "completed"}
        completed = [c for c in cdrs if str(c.get("call_id")) in done]
        digits_ok = sum(1 for c in completed if c.get("vars") == EXPECTED_VARS)
        peak_calls = max(self.peak_server, self.peak_sipp)
        result: dict[str, Any] = {
            "attempted": a.calls,
            "placed": len(calls) if calls else None,
            "completed": len(completed),
            "failed": a.calls - len(completed),
            "failed_by_reason": reasons,
            "digits_right": digits_ok,
            "digits_right_pct": round(100.0 * digits_ok / len(completed), 2) if completed else 0.0,
            "max_concurrent": peak_calls,
            "max_concurrent_server": self.peak_server,
            "max_concurrent_sipp": self.peak_sipp,
            "max_bridged": self.peak_bridged,
            "concurrency": a.concurrency,
            "step_count": len(steps),
            "agents": a.agents,
            "agents_ready": self.agents_ready,
            "recorded": sum(1 for c in cdrs if c.get("recording")),
            "analytics": a.analytics or None,
            "cps": round(a.calls / elapsed, 2) if elapsed else 0.0,
            "cps_target": a.cps,
            **timing(calls.values()),
            "elapsed_s": round(elapsed, 1),
            "cpu_s": round(cpu, 2),
            "cpu_s_per_call": round(cpu / max(1, len(completed)), 4),
            "cpu_pct_of_core": round(100.0 * cpu / elapsed, 1) if elapsed else 0.0,
            "rss_kib_start": rss0,
            "rss_kib_peak": self.peak_rss,
            "rss_kib_per_call":
                round((self.peak_rss - rss0) / peak_calls, 1) if peak_calls else 0.0,
            "media_clock_late_p99_ms": self.lag,
            "media_clock_work_p99_ms": self.clock.get("work_p99_ms"),
            "media_clock_skipped_ticks": self.clock.get("skipped"),
            "gc_pauses": self.gc.get("pauses"),
            "gc_pause_max_ms": self.gc.get("pause_max_ms"),
            "rtp_late_pct": None,
            "sipp_returncode": sipp_rc,
            "report_dir": str(self.report_dir),
        }
        windows = self._pacing(capture, steps, result)
        result["steps"] = step_rows(steps, calls.values(), verdicts, windows)
        why = write_report(self.report_dir, result)
        if why:
            print(f"bench: {why}", flush=True)
        return result

    def _pacing(self, capture: subprocess.Popen[bytes] | None, steps: list[Step],
                result: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Pacing of the whole capture into `result`; returns each step's."""
        if capture is None:
            return None
        _stop(capture, signal.SIGINT)
        edges = [s.start for s in steps] + [steps[-1].end]
        try:
            pacing = analyse(self.report_dir / "rtp.pcap", edges=edges)
        except (PcapError, OSError) as exc:
            result["rtp_capture_error"] = str(exc)
            return None
        result.update(pacing.summary())
        return [dict(w.summary()) for w in pacing.windows]


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
            return round(1000 * (percentile(ordered, p) or 0.0), 2)

        return {"desktops_connected": self.connected, "pops": len(ordered),
                "pop_latency_p50_ms": pct(50), "pop_latency_p99_ms": pct(99),
                "pop_latency_max_ms": round(1000 * ordered[-1], 2) if ordered else 0.0}


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="switchboard bench",
                                description="SIPp callers through the demo IVR, measured")
    p.add_argument("--calls", type=int, default=100, help="calls to place (default 100)")
    p.add_argument("--concurrency", type=int, default=50,
                   help="concurrent calls SIPp may hold (-l) in the last step (default 50)")
    p.add_argument("--talk", type=float, default=20.0,
                   help="seconds from answer to the caller's BYE (default 20; IVR + queue)")
    p.add_argument("--cps", type=float, default=10.0,
                   help="call attempts per second in the last step (default 10)")
    p.add_argument("--steps", type=int, default=1,
                   help="ramp in N steps: step k offers ceil(concurrency*k/N) calls at cps*k/N "
                        "and ends when SIPp has placed round(calls*k/N) in all (default 1)")
    p.add_argument("--agents", type=int, default=0,
                   help="SIPp agents that register, go ready and answer (default 0: IVR and queue only)")
    p.add_argument("--server", help="HOST:PORT of a running server (default: start one)")
    p.add_argument("--http", help="with --server: its HTTP base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--server-pid", type=int, help="with --server: its PID, for CPU and RSS")
    p.add_argument("--data-dir", help="with --server: its data dir, for the CDRs")
    p.add_argument("--report", help="report directory (default bench-report/TIMESTAMP)")
    p.add_argument("--did", default="100", help="number to dial (default 100, the demo IVR)")
    p.add_argument("--media-port", type=int, default=40000,
                   help="first SIPp RTP port: 4 per call from here, callers then agents "
                        "(default 40000)")
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
    if not 1 <= args.steps <= args.calls:
        p.error("--steps must be between 1 and --calls")
    top = media_blocks(args)[3]
    if args.media_port < 1024 or top > 65535 or (not args.server and args.media_port <= 29999
                                                   and top >= 20000):
        p.error(f"--media-port: SIPp's RTP ports {args.media_port}-{top} must lie in 1024-65535 "
                "and clear of the server's 20000-29999")
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
    print(markdown(result), end="", flush=True)
    print(json.dumps(result, separators=(",", ":")))
    return 0 if result["failed"] == 0 else 1

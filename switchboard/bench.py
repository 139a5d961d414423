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
- the hypervisor's steal on the server's cores and on SIPp's (/proc/stat at the start
  and end of the run and of each step): on a VM it bounds the pacing figures.

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
or the control socket avoids those blocks. SIPp binds only its base port, so the bench
holds a never-read socket on every other call port (`benchnodes.RtpSinks`): the server's
RTP lands as on a phone instead of coming back as ICMP port unreachable.

The report directory gets report.json (every figure and the per-step rows),
report.md (one table row per step plus a totals row) and report.png (load against
failures and latency per step; needs matplotlib, the `bench` extra). The last line
printed is one JSON object with the totals and the steps.

Several nodes (`--nodes N`, default 1): the bench starts its own redis-server (free
loopback port, no persistence) and N `switchboard run --store redis://...` processes,
each with its own ports, RTP range and data directory, each pinned to its own core. One
SIPp caller process per node places 1/N of the calls at 1/N of the rate and concurrency
(the steps move them together); the agents register and hold their desktops through
node1 only, so the other nodes' calls reach them across the cluster. CPU and RSS are
summed over the nodes (each node's in `nodes`), CDRs and queue logs read from every
node's data directory; redis-server's CPU is `redis_cpu_s`, apart from `cpu_s`.

Everything runs on 127.0.0.1. The server is pinned to one core and SIPp to the other
when `taskset` is present. Every wait is bounded; only processes started here are
stopped, by their PID.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import benchconfig, benchivr
from .benchdesks import Desks
from .benchnodes import (
    Caller,
    Node,
    RedisServer,
    RtpSinks,
    SippCost,
    by_thread,
    free_port,
    pinned,
    proc_stat,
    rss_kib,
    stop,
    stop_on_sigterm,
)
from .benchplateau import Plateau
from .benchreport import (
    CallTimes,
    Step,
    caller_ports,
    cpu_list,
    markdown,
    media_span,
    merge_health,
    node_cpus,
    placing,
    plan_steps,
    rtp_ranges,
    split_evenly,
    split_rate,
    steal_pct,
    step_rows,
    timing,
    write_report,
)
from .pacing import PcapError, analyse

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = REPO / "sipp_scenarios"
EXPECTED_VARS = {"account": "4711", "choice": "1"}
RTP_PORTS = (20000, 29999)  # the servers' RTP, split between the nodes


def media_blocks(args: argparse.Namespace) -> tuple[int, int, int, int]:
    """First RTP port of the callers, of the agents' answering SIPp and of the agents' login
    calls, and the last port used: [auto_media_port] gives call n the port
    base + 4 * (n - 1) modulo 10,000. With several nodes the callers' block holds one
    block per node's caller SIPp, one after the other."""
    callers = args.media_port
    agents = callers + sum(media_span(c) for c in split_evenly(args.calls, args.nodes))
    login = agents + media_span(args.calls)
    return callers, agents, login, login + media_span(args.agents) - 1


def _control(port: int, command: str) -> None:
    """One command to SIPp's control socket (a datagram starting with "c")."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"c" + command.encode(), ("127.0.0.1", port))


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.report_dir = Path(args.report or f"bench-report/{stamp}").resolve()
        self.report_dir.mkdir(parents=True, exist_ok=True)
        self.rtp_ports = RTP_PORTS
        self.clock: dict[str, Any] = {}
        self.peak_bridged = 0
        self.peak_server = self.peak_sipp = self.peak_rss = self.calls_up = 0
        self.lag = 0.0
        self._step_cpu0 = 0.0
        self.rate_warned: set[tuple[int, int]] = set()
        self.agent_ids: list[str] = []
        self.agent_passwords: dict[str, str] = {}
        self.agents_ready = 0
        self.gc: dict[str, Any] = {}
        self.blocks = media_blocks(args)
        self.avoid = (self.blocks[0], self.blocks[3])
        self.plan = plan_steps(args.calls, args.concurrency, args.cps, args.steps)
        self.health_rtt_ms = 0.0
        self.redis: RedisServer | None = None
        self.nodes = self._nodes()
        calls = split_evenly(args.calls, args.nodes)
        self.callers = [Caller(node, n, c, r, args.steps, port) for node, n, c, r, port in zip(
            self.nodes, calls, split_evenly(args.concurrency, args.nodes),
            split_rate(args.cps, calls), caller_ports(args.media_port, calls), strict=True)]
        self.cores = self._cores()
        self._step_stat0: dict[int, tuple[int, ...]] | None = None
        self.steal: dict[str, float | None] = {}
        self.sipp_cost = SippCost()
        self.uas: subprocess.Popen[bytes] | None = None  # the agents' answering SIPp
        self.loadavg_peak = 0.0
        self.plateau = Plateau("bridged" if args.agents else "calls")

    def _nodes(self) -> list[Node]:
        """node1 (the only one by default) keeps its files in the report directory itself;
        with several nodes each has its own directory nodeI/."""
        a = self.args
        if a.server:
            return [Node(1, self.report_dir, sip=str(a.server), http=a.http, pid=a.server_pid,
                         data_dir=Path(a.data_dir) if a.data_dir else None)]
        cpus = node_cpus(a.server_cpu, a.nodes, os.cpu_count() or 1)
        ranges = rtp_ranges(*self.rtp_ports, a.nodes)
        nodes = []
        for i in range(a.nodes):
            where = self.report_dir if a.nodes == 1 else self.report_dir / f"node{i + 1}"
            where.mkdir(parents=True, exist_ok=True)
            nodes.append(Node(i + 1, where, cpu=cpus[i], rtp_ports=ranges[i]))
        return nodes

    def _cores(self) -> tuple[list[int] | None, list[int] | None]:
        """The cores the servers and SIPp are pinned to, for their steal figures: None
        without taskset (nothing is pinned) or for a server the bench did not start."""
        if not shutil.which("taskset"):
            return None, None
        specs = [cpu_list(n.cpu) for n in self.nodes]
        server = None if any(c is None for c in specs) else sorted(
            {c for cores in specs for c in cores or []})
        return server, cpu_list(self.args.sipp_cpu)

    def _steal(self, before: dict[int, tuple[int, ...]] | None,
               after: dict[int, tuple[int, ...]] | None) -> dict[str, float | None]:
        server, sipp = self.cores
        return {"cpu_steal_pct_server": steal_pct(before, after, server),
                "cpu_steal_pct_sipp": steal_pct(before, after, sipp)}

    @property
    def http(self) -> str | None:
        """node1's HTTP base: the agents' desktops and status checks go there."""
        return self.nodes[0].http

    # -- set-up ----------------------------------------------------------------------------

    def start_server(self) -> str:
        """Starts the servers (and with several nodes, redis-server first); returns node1's
        SIP address, where the agents register."""
        if self.args.server:
            return str(self.args.server)
        config: list[str] = []
        if benchconfig.needs_own(self.args):
            written = benchconfig.write(self.args, self.report_dir)
            self.agent_ids, self.agent_passwords = written.agent_ids, written.agent_passwords
            config = ["--config", str(written.path)]
        store: list[str] = []
        if len(self.nodes) > 1:
            self.redis = RedisServer(self.report_dir / "redis", self.avoid)
            store = ["--store", self.redis.start()]
            print(f"bench: redis-server at {self.redis.url}, {len(self.nodes)} nodes", flush=True)
        deadline = time.monotonic() + 30
        for node in self.nodes:  # one at a time: node1 comes up first and becomes the router
            sip, http = free_port(self.avoid), free_port(self.avoid)
            node.data_dir = node.dir / "var"
            cluster = [*store, "--node-id", node.name] if store else []
            lo, hi = node.rtp_ports
            node.start([sys.executable, "-m", "switchboard", "run", "--sip", f"127.0.0.1:{sip}",
                        "--http", f"127.0.0.1:{http}", "--rtp-ports", f"{lo}-{hi}",
                        "--data-dir", str(node.data_dir), "--log-level", "WARNING", *cluster,
                        *config], REPO)
            node.sip, node.http = f"127.0.0.1:{sip}", f"http://127.0.0.1:{http}"
            node.wait_up(deadline)
        if store:
            self._wait_router(time.monotonic() + 30)
        return self.nodes[0].sip

    def _wait_router(self, deadline: float) -> None:
        """Every node names the same router."""
        routers: set[Any] = set()
        while time.monotonic() < deadline:
            routers = set()
            for node in self.nodes:
                try:
                    routers.add(node.health().get("cluster", {}).get("router"))
                except OSError:
                    routers.add(None)
            if len(routers) == 1 and None not in routers:
                print(f"bench: cluster up, router {routers.pop()}", flush=True)
                return
            time.sleep(0.2)
        raise SystemExit(f"bench: the nodes did not agree on a router within 30 s: {routers}")

    def start_agents(self, target: str) -> subprocess.Popen[bytes]:
        """SIPp answering every offer (with agent audio), then every agent registers and
        dials *50 with its Contact pointing there (through node1 only: the other nodes offer
        their calls to these agents across the cluster)."""
        a = self.args
        port = free_port(self.avoid)
        _, answer_rtp, login_rtp, _ = self.blocks
        uas = subprocess.Popen(pinned(
            ["sipp", "-sf", "agent_answer.xml", "-i", "127.0.0.1", "-p", str(port),
             "-mi", "127.0.0.1", "-mp", str(answer_rtp), "-m", str(a.calls),
             "-key", "agent_hangs_up_ms", "0", "-nostdin", "-max_socket", "60000",
             "-trace_err", "-error_file", str(self.report_dir / "agents_errors.log"),
             "-trace_stat", "-stf", str(self.report_dir / "agents_stat.csv"), "-fd", "1"],
            a.sipp_cpu), cwd=SCENARIOS, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True)
        time.sleep(1.0)
        login = subprocess.run(pinned(
            ["sipp", target, "-sf", "agent_login.xml", "-inf", str(self.report_dir / "agents.csv"),
             "-key", "contact_port", str(port), "-m", str(a.agents), "-r", "50",
             "-l", str(a.agents), "-i", "127.0.0.1", "-p", str(free_port(self.avoid)),
             "-mi", "127.0.0.1", "-mp", str(login_rtp), "-nostdin", "-timeout", "60s",
             "-timeout_error",
             "-trace_err", "-error_file", str(self.report_dir / "login_errors.log")],
            a.sipp_cpu), cwd=SCENARIOS, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            timeout=90, check=False)
        ready = sum(1 for agent in self._agents() if agent["status"] == "ready")
        print(f"bench: agents registered and ready: {ready}/{a.agents} (sipp rc={login.returncode})",
              flush=True)
        self.agents_ready = ready
        if len(self.nodes) > 1:
            self._wait_registered(time.monotonic() + 20)
        return uas

    def _wait_registered(self, deadline: float) -> None:
        """Every node has heard (through Redis) of every agent's registration."""
        seen = [0] * len(self.nodes)
        while time.monotonic() < deadline:
            for i, node in enumerate(self.nodes):
                with contextlib.suppress(OSError):
                    known = set(node.health().get("agents_registered", []))
                    seen[i] = len(known & set(self.agent_ids))
            if min(seen) == len(self.agent_ids):
                break
            time.sleep(0.2)
        print("bench: agents registered as seen by each node: "
              + ", ".join(f"{n.name} {k}" for n, k in zip(self.nodes, seen, strict=True)),
              flush=True)

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

    def start_capture(self) -> subprocess.Popen[bytes] | None:
        if self.args.no_capture or not shutil.which("tcpdump"):
            why = "--no-capture" if self.args.no_capture else "no tcpdump"
            print(f"bench: {why}: RTP pacing is not measured", file=sys.stderr)
            return None
        lo, hi = self.rtp_ports  # every node's range lies in it
        # only what went to this bench's SIPp: other servers on the machine share the range
        cmd = ["tcpdump", "-i", "lo", "-w", str(self.report_dir / "rtp.pcap"), "-s", "64",
               "-B", "65536", "--time-stamp-precision=nano", "-U",
               f"udp and src host 127.0.0.1 and src portrange {lo}-{hi} "
               f"and dst portrange {self.avoid[0]}-{self.avoid[1]}"]
        proc = subprocess.Popen(pinned(cmd, self.args.sipp_cpu), stdout=subprocess.DEVNULL,
                                stderr=open(self.report_dir / "tcpdump.log", "wb"))  # noqa: SIM115
        time.sleep(1.0)
        return proc

    def sipp_command(self, caller: Caller) -> list[str]:
        a = self.args
        csv = caller.dir / "talk.csv"
        csv.write_text("SEQUENTIAL\n" + f"{int(a.talk * 1000)}\n")
        first = caller.plan[0]
        caller.control_port = free_port(self.avoid)
        scenario = (benchivr.scenario(self.report_dir) if a.ivr == "quick"
                    else SCENARIOS / "ivr_load.xml")
        cmd = ["sipp", caller.node.sip, "-sf", str(scenario), "-inf", str(csv),
               "-s", a.did, "-m", str(caller.calls), "-l", str(first.limit),
               "-r", f"{first.rate:g}", "-i", "127.0.0.1", "-p", str(free_port(self.avoid)),
               "-cp", str(caller.control_port), "-mi", "127.0.0.1", "-mp", str(caller.media_port),
               "-nostdin", "-trace_logs", "-log_file", str(caller.dir / "setup.log"),
               "-trace_stat", "-stf", str(caller.dir / "sipp_stat.csv"), "-fd", "1",
               "-trace_err", "-error_file", str(caller.dir / "sipp_errors.log"),
               "-max_socket", "60000", "-timeout", f"{int(caller.budget(a.talk))}s",
               "-timeout_error"]
        return pinned(cmd, a.sipp_cpu)

    def budget(self) -> float:
        return max(c.budget(self.args.talk) for c in self.callers)

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        capture = agents = None
        desks = None
        sinks = RtpSinks()
        try:
            _, answer_rtp, login_rtp, _ = self.blocks
            for caller in self.callers:
                sinks.bind(caller.media_port, caller.calls)
            if self.args.agents:
                sinks.bind(answer_rtp, self.args.calls)
                sinks.bind(login_rtp, self.args.agents)
            target = self.start_server()
            if self.args.agents:
                agents = self.uas = self.start_agents(target)
                desks = Desks(self.http or "", self.agent_passwords)
                desks.start()
            capture = self.start_capture()
            result = self.measure(capture)
            result["sipp_rtp_sinks"] = len(sinks.sockets)
            if desks is not None:
                result.update(desks.summary())
            return result
        finally:
            self._stop_callers()  # stopped early (Ctrl-C, SIGTERM, an error): theirs too
            sinks.close()
            if desks is not None:
                desks.stop()
            if agents is not None and agents.poll() is None:
                os.killpg(agents.pid, signal.SIGKILL)
                agents.wait(5)
            stop(capture, signal.SIGINT)
            for node in self.nodes:
                stop(node.proc)
            if self.redis is not None:
                self.redis.stop()

    def measure(self, capture: subprocess.Popen[bytes] | None) -> dict[str, Any]:
        for node in self.nodes:
            node.cdr_before = len(node.cdrs())
            node.cpu0, node.rss_start = node.cpu_s(), node.rss()
            node.threads0 = node.thread_cpu_s()
            node.rss_peak = node.rss_start
        redis_cpu0 = self.redis.cpu_s() if self.redis else 0.0
        self.peak_rss = sum(n.rss_start for n in self.nodes)
        stat0 = proc_stat()
        t0 = time.monotonic()
        for caller in self.callers:
            caller.proc = subprocess.Popen(
                self.sipp_command(caller), cwd=caller.dir,
                stdout=open(caller.dir / "sipp.out", "wb"),  # noqa: SIM115
                stderr=subprocess.STDOUT, start_new_session=True)
        self._sample_sipp()
        steps = [self._open_step(1)]
        next_health, last_print = t0 + self.args.poll, t0
        deadline = t0 + self.budget() + 30
        while any(c.running() for c in self.callers) and time.monotonic() < deadline:
            time.sleep(min(0.25, self.args.poll))
            rows = [c.read() for c in self.callers]
            row = {"created": sum(r.get("created", 0) for r in rows),
                   "current": sum(r.get("current", 0) for r in rows)}
            self._sample_proc(steps[-1], row)
            for caller, own in zip(self.callers, rows, strict=True):
                self._check_rate(steps[-1], caller, own)
            now = time.monotonic()
            if now >= next_health:
                next_health = now + self.args.poll
                self._sample_health(steps[-1])
            ending = self.plan[steps[-1].index - 1]
            if steps[-1].index < len(self.plan) and row.get("created", 0) >= ending.until:
                steps.append(self._next_step(steps[-1]))
            if now - last_print >= 5:
                last_print = now
                self._progress(steps[-1], now - t0, row)
        self._stop_callers()
        elapsed = time.monotonic() - t0
        self._sample_sipp()  # the agents' SIPp; the callers' last reading is at most 0.25 s old
        self.steal = self._steal(stat0, proc_stat())
        self._close_step(steps[-1])
        time.sleep(1.0)  # the last CDRs
        for node in self.nodes:
            node.cpu_used = node.cpu_s() - node.cpu0
            node.threads_used = {name: used - node.threads0.get(name, 0.0)
                                 for name, used in node.thread_cpu_s().items()}
        cpu = sum(n.cpu_used for n in self.nodes)
        redis_cpu = self.redis.cpu_s() - redis_cpu0 if self.redis else None
        return self.figures(cpu, elapsed, redis_cpu, capture, steps)

    def _stop_callers(self) -> None:
        for caller in self.callers:
            if caller.proc is not None and caller.proc.poll() is None:
                os.killpg(caller.proc.pid, signal.SIGKILL)
                caller.proc.wait(5)

    # -- steps and samples -----------------------------------------------------------------

    def _cpu(self) -> float:
        return sum(n.cpu_s() for n in self.nodes)

    def _open_step(self, index: int) -> Step:
        plan = self.plan[index - 1]
        until = f", until {plan.until} calls placed" if index < len(self.plan) else ""
        print(f"bench: step {index}/{len(self.plan)}: up to {plan.limit} calls, {plan.rate:g} cps"
              f"{until}", flush=True)
        self._step_cpu0 = self._cpu()
        self._step_stat0 = proc_stat()
        rss = sum(n.rss() for n in self.nodes)
        return Step(index, plan.limit, plan.rate, time.time(), rss_kib_start=rss, rss_kib_peak=rss)

    def _close_step(self, step: Step) -> None:
        self._sample_health(step)
        step.end = time.time()
        step.cpu_s = round(self._cpu() - self._step_cpu0, 2)
        steal = self._steal(self._step_stat0, proc_stat())
        step.cpu_steal_pct_server = steal["cpu_steal_pct_server"]
        step.cpu_steal_pct_sipp = steal["cpu_steal_pct_sipp"]

    def _next_step(self, step: Step) -> Step:
        """Ends `step` and raises every caller SIPp's limit and rate to the next step's."""
        self._close_step(step)
        for caller in self.callers:
            plan = caller.plan[step.index]
            _control(caller.control_port, f"set limit {plan.limit}")
            _control(caller.control_port, f"set rate {plan.rate:g}")
        return self._open_step(step.index + 1)

    def _check_rate(self, step: Step, caller: Caller, row: dict[str, float]) -> None:
        """SIPp's statistics show the rate it runs at: say so once if a step's did not take."""
        rate, wanted = row.get("rate"), caller.plan[step.index - 1].rate
        key = (caller.node.index, step.index)
        if (rate is not None and abs(rate - wanted) > 0.01 * wanted
                and time.time() - step.start > 5 and key not in self.rate_warned):
            self.rate_warned.add(key)
            who = f" ({caller.node.name}'s callers)" if len(self.callers) > 1 else ""
            print(f"bench: warning: SIPp{who} runs at {rate:g} cps in step {step.index}, "
                  f"not {wanted:g} (control socket port {caller.control_port})", flush=True)

    def _sample_sipp(self) -> None:
        """SIPp's CPU and threads from /proc, and the machine's load average."""
        self.sipp_cost.sample([c.proc for c in self.callers], from_zero=True)
        self.sipp_cost.sample([self.uas])
        self.loadavg_peak = max(self.loadavg_peak, os.getloadavg()[0])

    def _sample_proc(self, step: Step, row: dict[str, float]) -> None:
        """What costs the servers nothing: RSS from /proc, calls SIPp holds open, SIPp's
        own CPU."""
        self._sample_sipp()
        rss = sum(n.rss() for n in self.nodes)
        step.rss_kib_peak = max(step.rss_kib_peak, rss)
        self.peak_rss = max(self.peak_rss, rss)
        open_calls = int(row.get("current", 0))
        step.sipp_peak_calls = max(step.sipp_peak_calls, open_calls)
        self.peak_sipp = max(self.peak_sipp, open_calls)

    def _sample_health(self, step: Step) -> None:
        """One /api/health poll of each node (an HTTP request on its media loop)."""
        if not any([n.poll() for n in self.nodes]):
            return
        health = merge_health([n.health_body for n in self.nodes])
        self.health_rtt_ms = max(n.health_rtt_ms for n in self.nodes)
        self.calls_up = int(health.get("calls", 0))
        step.server_peak_calls = max(step.server_peak_calls, self.calls_up)
        self.peak_server = max(self.peak_server, self.calls_up)
        self.peak_bridged = max(self.peak_bridged, int(health.get("bridged", 0)))
        self.clock = health.get("media_clock", {})
        self.gc = health.get("gc", {})
        late = float(self.clock.get("late_p99_ms") or 0.0)
        # the server's histogram since it started: the step keeps the worst it saw
        step.clock_late_p99_ms = max(step.clock_late_p99_ms or 0.0, late)
        self.lag = max(self.lag, late)
        self.plateau.add(time.monotonic(), int(health.get(self.plateau.of, 0)),
                         *(n.thread_cpu_s() for n in self.nodes))
        step.health_rtt_ms_max = max(step.health_rtt_ms_max or 0.0, self.health_rtt_ms)

    def _progress(self, step: Step, t: float, row: dict[str, float]) -> None:
        cdrs = sum(len(n.cdrs()) - n.cdr_before for n in self.nodes)
        cpu = sum(n.cpu_s() - n.cpu0 for n in self.nodes)
        rss = sum(rss_kib(n.pid) for n in self.nodes if n.pid)
        per_node = ""
        if len(self.nodes) > 1:
            per_node = " nodes=" + "/".join(str(n.health_body.get("calls", 0)) for n in self.nodes)
        print(f"bench: step {step.index}/{len(self.plan)} (up to {step.limit} calls, "
              f"{step.rate:g} cps) t={t:5.0f}s placed={row.get('created', 0):6.0f} "
              f"sipp_up={row.get('current', 0):5.0f} calls_up={self.calls_up:5d} "
              f"peak={max(self.peak_server, self.peak_sipp):5d} "
              f"cdrs={cdrs:6d} cpu={cpu:7.1f}s "
              f"rss={rss // 1024}MiB{per_node}", flush=True)

    def _cdrs(self) -> list[list[dict[str, Any]]]:
        """Each node's CDRs written since the run began."""
        return [n.cdrs()[n.cdr_before:] for n in self.nodes]

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

    def figures(self, cpu: float, elapsed: float, redis_cpu: float | None,
                capture: subprocess.Popen[bytes] | None, steps: list[Step]) -> dict[str, Any]:
        a = self.args
        per_node = self._cdrs()
        cdrs = [c for mine in per_node for c in mine]
        logged = [c.calls_logged() for c in self.callers]
        calls = {cid: call for mine in logged for cid, call in mine.items()}
        verdicts, reasons = self.outcomes(cdrs, calls)
        done = {cid for cid, why in verdicts.items() if why == "completed"}
        completed = [c for c in cdrs if str(c.get("call_id")) in done]
        digits_ok = sum(1 for c in completed if c.get("vars") == EXPECTED_VARS)
        peak_calls = max(self.peak_server, self.peak_sipp)
        rss0 = sum(n.rss_start for n in self.nodes)
        rcs = [c.proc.returncode if c.proc else None for c in self.callers]
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
            **placing(calls.values()),
            **timing(calls.values()),
            "elapsed_s": round(elapsed, 1),
            "cpu_s": round(cpu, 2),
            "cpu_s_per_call": round(cpu / max(1, len(completed)), 4),
            "cpu_pct_of_core": round(100.0 * cpu / elapsed, 1) if elapsed else 0.0,
            "cpu_s_by_thread": by_thread(self.nodes),
            **self.plateau.figures(),
            "cpu_steal_pct_server": self.steal.get("cpu_steal_pct_server"),
            "cpu_steal_pct_sipp": self.steal.get("cpu_steal_pct_sipp"),
            "cpu_cores_server": self.cores[0],
            "cpu_cores_sipp": self.cores[1],
            "sipp_cpu_s": round(self.sipp_cost.cpu_s(), 2),
            "sipp_cpu_pct_of_core":
                round(100.0 * self.sipp_cost.cpu_s() / elapsed, 1) if elapsed else 0.0,
            "sipp_threads_peak": self.sipp_cost.threads_peak,
            "loadavg_1m_peak": round(self.loadavg_peak, 2),
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
            "sipp_returncode": next((rc for rc in rcs if rc), rcs[0]),
            "report_dir": str(self.report_dir),
        }
        if len(self.nodes) > 1:
            result.update(self._cluster_figures(cpu, redis_cpu, elapsed, per_node, logged,
                                                verdicts, rcs, len(completed)))
        windows = self._pacing(capture, steps, result)
        result["steps"] = step_rows(steps, calls.values(), verdicts, windows)
        why = write_report(self.report_dir, result)
        if why:
            print(f"bench: {why}", flush=True)
        return result

    def _cluster_figures(self, cpu: float, redis_cpu: float | None, elapsed: float,
                         per_node: list[list[dict[str, Any]]],
                         logged: list[dict[str, CallTimes]], verdicts: dict[str, str],
                         rcs: list[int | None], completed: int) -> dict[str, Any]:
        """With several nodes: each node's own figures, and Redis's CPU (a cost of the
        cluster, not counted in `cpu_s`)."""
        rows = []
        lost = 0
        for node, caller, cdrs, calls, rc in zip(self.nodes, self.callers, per_node, logged, rcs,
                                                 strict=True):
            qlog = node.queue_log()
            lost += sum(1 for e in qlog if e.get("event") == "LOST")
            clock = node.health_body.get("media_clock", {})
            rows.append({
                "node": node.name, "sip": node.sip, "cpu_core": node.cpu,
                "rtp_ports": f"{node.rtp_ports[0]}-{node.rtp_ports[1]}",
                "attempted": caller.calls, "placed": len(calls),
                "completed": sum(1 for cid in calls if verdicts.get(cid) == "completed"),
                "max_calls": node.max_calls, "cdrs": len(cdrs),
                "cdrs_with_agent": sum(1 for c in cdrs if c.get("agent")),
                "queue_log_lines": len(qlog),
                "cpu_s": round(node.cpu_used, 2),
                "cpu_pct_of_core": round(100.0 * node.cpu_used / elapsed, 1) if elapsed else 0.0,
                "rss_kib_start": node.rss_start, "rss_kib_peak": node.rss_peak,
                "media_clock_late_p99_ms": clock.get("late_p99_ms"),
                "sipp_returncode": rc,
            })
        router = self.nodes[0].health_body.get("cluster", {}).get("router")
        total = cpu + (redis_cpu or 0.0)
        return {
            "nodes": rows, "router": router, "queue_log_lost": lost,
            "redis_cpu_s": None if redis_cpu is None else round(redis_cpu, 2),
            "cpu_s_per_call_with_redis": round(total / max(1, completed), 4),
        }

    def _pacing(self, capture: subprocess.Popen[bytes] | None, steps: list[Step],
                result: dict[str, Any]) -> list[dict[str, Any]] | None:
        """Pacing of the whole capture into `result`; returns each step's."""
        if capture is None:
            return None
        stop(capture, signal.SIGINT)
        edges = [s.start for s in steps] + [steps[-1].end]
        try:
            pacing = analyse(self.report_dir / "rtp.pcap", edges=edges)
        except (PcapError, OSError) as exc:
            result["rtp_capture_error"] = str(exc)
            return None
        result.update(pacing.summary())
        return [dict(w.summary()) for w in pacing.windows]


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
    p.add_argument("--did", help="number to dial (default 100, the demo IVR; 200 with --ivr quick)")
    p.add_argument("--ivr", choices=("demo", "quick"), default="demo",
                   help="demo: the demo flow (about 9 s to the queue); quick: account and menu "
                   "key only, about 2.5 s (for call-setup rate runs)")
    p.add_argument("--media-port", type=int, default=40000,
                   help="first SIPp RTP port: 4 per call from here, callers then agents "
                        "(default 40000)")
    p.add_argument("--nodes", type=int, default=1,
                   help="start N servers on a redis-server of the bench's own, one per core, "
                        "each taking 1/N of the callers; agents register with node 1 (default 1)")
    p.add_argument("--server-cpu", default=None,
                   help="core(s) for the server (taskset; default 0); with --nodes, a comma "
                        "list gives node i the i-th entry (default: node i on core i mod ncpu)")
    p.add_argument("--sipp-cpu", default="1", help="core for SIPp and tcpdump (default 1)")
    p.add_argument("--no-capture", action="store_true", help="do not capture RTP with tcpdump")
    p.add_argument("--no-record", action="store_true",
                   help="turn call recording off (default: on, as in the demo config)")
    p.add_argument("--media-engine", choices=("native", "python"), default=None,
                   help="the server's RTP plane (media.engine; default: the config's, native)")
    p.add_argument("--relay-jitter-ms", type=int, default=0,
                   help="the server's relay playout delay (media.relay_jitter_ms; default 0)")
    p.add_argument("--realtime-priority", type=int, default=0,
                   help="SCHED_FIFO priority of the server's media thread "
                        "(media.realtime_priority, 1-99; needs CAP_SYS_NICE; default 0: normal)")
    p.add_argument("--media-slice-us", type=int, default=None,
                   help="the server's media thread's scheduler slice request (media.slice_us, "
                        "0: the kernel's; default: the config's, 100)")
    p.add_argument("--media-coalesce-us", type=int, default=None,
                   help="after packets wake the server's media thread, it waits this long for "
                        "more (media.coalesce_us, 0-4000; default: the config's, 0)")
    p.add_argument("--background-nice", type=int, default=None,
                   help="nice value of the server's threads other than the media thread "
                        "(media.background_nice, 0-19; default: the config's, 5)")
    p.add_argument("--analytics", default="",
                   help="comma-separated analyzers to run on every call, e.g. talk,stress")
    p.add_argument("--poll", type=float, default=5.0,
                   help="seconds between the bench's /api/health polls (default 5; each poll is an HTTP request on the media loop)")
    args = p.parse_args(argv)
    if args.did is None:
        args.did = benchivr.DID if args.ivr == "quick" else "100"
    if args.calls < 1 or args.concurrency < 1 or args.cps <= 0 or args.talk < 0:
        p.error("--calls, --concurrency and --cps must be positive, --talk >= 0")
    if not 1 <= args.steps <= args.calls:
        p.error("--steps must be between 1 and --calls")
    if args.nodes < 1 or (args.nodes > 1 and args.server):
        p.error("--nodes must be at least 1, and more than 1 only when the bench starts the "
                "servers itself")
    if args.nodes > min(args.calls, args.concurrency):
        p.error("--nodes must not exceed --calls or --concurrency (each node's SIPp places "
                "its share)")
    top = media_blocks(args)[3]
    if args.media_port < 1024 or top > 65535 or (not args.server and args.media_port <= 29999
                                                   and top >= 20000):
        p.error(f"--media-port: SIPp's RTP ports {args.media_port}-{top} must lie in 1024-65535 "
                "and clear of the server's 20000-29999")
    if args.agents < 0 or (benchconfig.needs_own(args) and args.server):
        p.error("--agents, --no-record, --analytics, --ivr quick, --media-engine, "
                "--relay-jitter-ms, --realtime-priority, --media-slice-us and "
                "--background-nice need a server the bench starts itself (it writes its config)")
    if (why := benchconfig.media_error(args)) is not None:
        p.error(why)
    if args.server and not (args.http and args.server_pid and args.data_dir):
        p.error("--server needs --http, --server-pid and --data-dir to measure it")
    if not shutil.which("sipp"):
        p.error("sipp is not installed (apt-get install sip-tester)")
    if args.nodes > 1 and not shutil.which("redis-server"):
        p.error("--nodes needs redis-server (apt-get install redis-server)")
    return args


def main_bench(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    result = Bench(args).run()
    print(markdown(result), end="", flush=True)
    print(json.dumps(result, separators=(",", ":")))
    return 0 if result["failed"] == 0 else 1

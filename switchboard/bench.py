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
        cmd = _pinned([sys.executable, "-m", "switchboard", "run", "--sip", f"127.0.0.1:{sip}",
                       "--http", f"127.0.0.1:{http}", "--rtp-ports", f"{self.rtp_ports[0]}-{self.rtp_ports[1]}",
                       "--data-dir", str(self.data_dir), "--log-level", "WARNING"],
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
        capture = None
        try:
            capture = self.start_capture()
            return self.measure(target, capture)
        finally:
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
            time.sleep(0.5)
            try:
                health = self.health()
            except OSError:
                continue
            calls = health.get("calls", 0)
            peak_calls = max(peak_calls, calls)
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
        completed = [c for c in cdrs if c.get("end_reason") == "caller_hangup"]
        digits_ok = sum(1 for c in completed if c.get("vars") == EXPECTED_VARS)
        reasons: dict[str, int] = {}
        for c in cdrs:
            if c.get("end_reason") != "caller_hangup":
                reasons[str(c.get("end_reason"))] = reasons.get(str(c.get("end_reason")), 0) + 1
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
    args = p.parse_args(argv)
    if args.calls < 1 or args.concurrency < 1 or args.cps <= 0 or args.talk < 0:
        p.error("--calls, --concurrency and --cps must be positive, --talk >= 0")
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

"""`switchboard bench` end to end: a tiny two-step ramp against a server it starts itself."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from media import engine
from switchboard.pacing import rtp_packets
from tests.sipp import sipp_path

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sipp_path() is None, reason="sipp (apt sip-tester) is not installed"),
]

REPO = Path(__file__).resolve().parents[2]
REQUIRED = ("attempted", "completed", "failed", "max_concurrent", "cps", "pdd_p99_ms",
            "cpu_s_per_call", "rss_kib_per_call", "rtp_late_pct", "pdd_p50_ms", "tta_p50_ms",
            "tta_p99_ms", "cpu_steal_pct_server", "cpu_steal_pct_sipp")


CAN_CAPTURE = shutil.which("tcpdump") is not None and os.geteuid() == 0


def icmp_port_unreachable_sent() -> int:
    """The kernel's count of ICMP destination-unreachable messages sent (all on lo here)."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
             if line.startswith("Icmp:")]
    return int(lines[1][lines[0].index("OutDestUnreachs")])


@pytest.mark.parametrize("capture", [
    pytest.param(True, marks=pytest.mark.skipif(not CAN_CAPTURE, reason="tcpdump needs root")),
    False,
], ids=["capture", "no-capture"])
def test_two_step_ramp_reports_every_figure(tmp_path: Path, capture: bool) -> None:
    report = tmp_path / "report"
    cmd = [sys.executable, "-m", "switchboard", "bench", "--calls", "6", "--concurrency", "3",
           "--cps", "4", "--talk", "2", "--steps", "2", "--poll", "1", "--report", str(report)]
    if not capture:
        cmd.append("--no-capture")
    unreachable = icmp_port_unreachable_sent()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)
    unreachable = icmp_port_unreachable_sent() - unreachable
    out = done.stdout.strip().splitlines()
    assert out, done.stderr[-3000:]
    result = json.loads(out[-1])
    assert done.returncode == 0, (result, done.stderr[-3000:])
    assert all(key in result for key in REQUIRED), [k for k in REQUIRED if k not in result]
    assert result["attempted"] == 6 and result["completed"] == result["attempted"]
    assert result["failed"] == 0 and result["failed_by_reason"] == {}
    assert 0 < result["pdd_p50_ms"] <= result["pdd_p99_ms"] < 1000
    assert 0 < result["tta_p50_ms"] <= result["tta_p99_ms"] < 1000
    assert result["max_concurrent"] >= 1 and result["cpu_s_per_call"] > 0
    assert result["sipp_cpu_s"] > 0 and result["sipp_threads_peak"] >= 1
    assert result["loadavg_1m_peak"] >= 0
    # where the server's CPU went, by thread: the event loop, the media thread (the demo
    # config's native plane, when compiled) and the recorder's I/O (the demo records)
    threads = result["cpu_s_by_thread"]
    assert threads["main"] > 0 and "sb-recorder-io" in threads, threads
    assert ("sb-media" in threads) == (engine._engine is not None), threads
    assert sum(threads.values()) <= result["cpu_s"] + 0.1
    # every SIPp call's RTP port but SIPp's own base port has a socket of the bench's, so
    # the server's RTP is taken as a phone takes it, not refused with ICMP (thousands here)
    assert result["sipp_rtp_sinks"] == 5 and unreachable < 300, unreachable
    if capture:
        assert result["rtp_late_pct"] is not None and result["rtp_packets"] > 0
    else:
        assert result["rtp_late_pct"] is None

    steps = result["steps"]
    assert [s["step"] for s in steps] == [1, 2]
    assert [s["offered_concurrency"] for s in steps] == [2, 3]
    assert [s["offered_cps"] for s in steps] == [2.0, 4.0]
    assert sum(s["attempted"] for s in steps) == 6 and all(s["attempted"] for s in steps)
    assert all(s["pdd_p99_ms"] > 0 for s in steps)
    if shutil.which("taskset") and Path("/proc/stat").exists():  # pinned: steal is a share
        for row in [result, *steps]:
            assert 0 <= row["cpu_steal_pct_server"] <= 100 and 0 <= row["cpu_steal_pct_sipp"] <= 100
    assert any("step 2/2" in line for line in out)  # progress names the step

    assert json.loads((report / "report.json").read_text())["steps"] == steps
    table = [line for line in (report / "report.md").read_text().splitlines()
             if line.startswith("| ")]
    assert len(table) == 1 + 2 + 1  # header, two steps, totals
    assert (report / "report.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    if capture:  # each caller offered its own RTP port: the server sent to 6 ports
        ports = {dport for _, _, dport, *_ in rtp_packets(report / "rtp.pcap")}
        assert len(ports) == 6, ports


def test_quick_ivr_takes_callers_to_agents_in_seconds(tmp_path: Path) -> None:
    """--ivr quick: the account and the menu key keyed within 2.5 s, then an agent."""
    report = tmp_path / "report"
    cmd = [sys.executable, "-m", "switchboard", "bench", "--ivr", "quick", "--calls", "6",
           "--concurrency", "6", "--cps", "6", "--talk", "5", "--agents", "6", "--no-record",
           "--no-capture", "--poll", "1", "--realtime-priority", "5", "--report", str(report)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)
    out = done.stdout.strip().splitlines()
    assert out, done.stderr[-3000:]
    result = json.loads(out[-1])
    assert done.returncode == 0 and result["completed"] == 6, result
    assert result["digits_right_pct"] == 100.0 and result["pops"] == 6
    # the media thread asked for SCHED_FIFO 5 (granted or not, the calls went through)
    assert "  realtime_priority: 5\n" in (report / "switchboard.yaml").read_text()
    cdrs = [json.loads(x) for x in (report / "var" / "cdr.jsonl").read_text().splitlines()]
    calls = [c for c in cdrs if c["did"] == "200"]
    assert len(calls) == 6 and all(c["flow"] == "quick" and c["agent"] for c in calls)


def descendants(pid: int) -> dict[int, str]:
    """Every live process under `pid`, with its start time (to tell a reused PID)."""
    parent: dict[int, int] = {}
    started: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry.name)] = int(fields[1])
        started[int(entry.name)] = fields[19]
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        for child, ppid in parent.items():
            if ppid == current and child not in found:
                found[child] = started[child]
                frontier.append(child)
    return found


def still_running(pid: int, started: str) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[19] == started and fields[0] != "Z"


def test_sigterm_ends_what_the_bench_started(tmp_path: Path) -> None:
    """`kill PID` of a running bench stops it through its cleanup: the server and the
    SIPp agents and callers it started end too, none is left behind."""
    import time

    cmd = [sys.executable, "-m", "switchboard", "bench", "--calls", "20", "--concurrency", "4",
           "--cps", "2", "--talk", "60", "--agents", "4", "--no-capture",
           "--report", str(tmp_path / "report")]
    log = tmp_path / "bench.log"
    with log.open("wb") as out:
        bench = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        children: dict[int, str] = {}

        def callers_up() -> bool:  # the callers' SIPp runs: server, agents, callers all up
            for pid in children:
                with contextlib.suppress(OSError):
                    if b"ivr_load" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        return True
            return False

        while time.monotonic() < deadline and bench.poll() is None:
            children = descendants(bench.pid)
            if callers_up():
                break
            time.sleep(0.5)
        assert bench.poll() is None and callers_up(), log.read_text()[-3000:]
        time.sleep(1.0)  # calls up
        children = descendants(bench.pid)
        assert len(children) >= 3, children
        bench.terminate()
        assert bench.wait(60) == 128 + 15, log.read_text()[-3000:]
        left = [pid for pid, started in children.items() if still_running(pid, started)]
        assert left == [], (left, log.read_text()[-3000:])
    finally:
        if bench.poll() is None:  # a failed check above: still stop it through its cleanup
            bench.terminate()
            try:
                bench.wait(60)
            except subprocess.TimeoutExpired:
                bench.kill()
                bench.wait(10)

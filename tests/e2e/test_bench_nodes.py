"""`switchboard bench --nodes 2`: two servers on a redis-server the bench starts itself.

The callers are split over both nodes, the agents register through node1 only: the calls
node2 answers reach an agent only across the cluster (offered by the router, rung by
node2 at the agent's Contact, bridged on node2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.redis_server import redis_path
from tests.sipp import sipp_path

from .test_bench import REQUIRED

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sipp_path() is None, reason="sipp (apt sip-tester) is not installed"),
    pytest.mark.skipif(redis_path() is None,
                       reason="redis-server (apt redis-server) is not installed"),
]

REPO = Path(__file__).resolve().parents[2]


def cdrs(path: Path) -> list[dict[str, object]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


def test_two_nodes_share_the_callers_and_node1s_agents(tmp_path: Path) -> None:
    report = tmp_path / "report"
    # the demo IVR takes ~9 s to the queue: talk 12 s leaves ~3 s with the agent; as many
    # agents as concurrent calls, so no caller outlasts its talk time waiting in the queue
    cmd = [sys.executable, "-m", "switchboard", "bench", "--nodes", "2", "--calls", "6",
           "--concurrency", "4", "--cps", "4", "--agents", "4", "--talk", "12", "--poll", "1",
           "--no-capture", "--no-record", "--report", str(report)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=90, check=False)
    out = done.stdout.strip().splitlines()
    assert out, done.stderr[-3000:]
    result = json.loads(out[-1])
    assert done.returncode == 0, (result, done.stderr[-3000:])
    assert all(key in result for key in REQUIRED), [k for k in REQUIRED if k not in result]
    assert result["attempted"] == 6 and result["completed"] == 6 and result["failed"] == 0
    assert result["agents_ready"] == 4 and result["router"] in ("node1", "node2")
    assert result["redis_cpu_s"] is not None and result["redis_cpu_s"] >= 0
    assert result["queue_log_lost"] == 0

    node1, node2 = result["nodes"]
    assert (node1["node"], node2["node"]) == ("node1", "node2")
    assert node1["cpu_core"] != node2["cpu_core"]
    assert node1["rtp_ports"] != node2["rtp_ports"]
    for node in (node1, node2):
        assert node["attempted"] == node["placed"] == node["completed"] == 3
        assert node["max_calls"] > 0 and node["cpu_s"] > 0 and node["rss_kib_peak"] > 0
        assert node["queue_log_lines"] > 0
    assert result["cpu_s"] == pytest.approx(node1["cpu_s"] + node2["cpu_s"], abs=0.02)

    # each node wrote its own CDRs; node2's callers were bridged to agents that registered
    # through node1 only
    calls1 = [c for c in cdrs(report / "node1/var/cdr.jsonl") if c["did"] == "100"]
    calls2 = [c for c in cdrs(report / "node2/var/cdr.jsonl") if c["did"] == "100"]
    assert len(calls1) == len(calls2) == 3
    assert all(c["agent"] and c["bridged_at"] for c in calls2), calls2
    logins2 = [c for c in cdrs(report / "node2/var/cdr.jsonl") if c["did"] == "*50"]
    assert logins2 == []  # no agent logged in through node2
    assert "nodes=" in "\n".join(out) and "| node2 |" in (report / "report.md").read_text()

"""How `switchboard bench --nodes N` shares calls, rates, ports and cores between nodes,
and how it merges the nodes' figures (pure helpers of switchboard/benchreport.py)."""

from __future__ import annotations

import argparse

import pytest

from switchboard.bench import media_blocks
from switchboard.benchreport import (
    caller_ports,
    markdown,
    media_span,
    merge_health,
    node_cpus,
    node_lines,
    rtp_ranges,
    split_evenly,
    split_rate,
)


@pytest.mark.parametrize(("total", "parts", "expected"), [
    (200, 1, [200]),
    (200, 2, [100, 100]),
    (7, 2, [4, 3]),
    (6, 4, [2, 2, 1, 1]),
    (3, 3, [1, 1, 1]),
    (101, 3, [34, 34, 33]),
])
def test_split_evenly_keeps_the_total_and_differs_by_at_most_one(
        total: int, parts: int, expected: list[int]) -> None:
    shares = split_evenly(total, parts)
    assert shares == expected and sum(shares) == total
    assert max(shares) - min(shares) <= 1


@pytest.mark.parametrize(("rate", "calls", "expected"), [
    (10.0, [200], [10.0]),
    (10.0, [100, 100], [5.0, 5.0]),
    (4.0, [4, 3], [2.286, 1.714]),       # in proportion: both finish placing together
    (1.0, [1, 1, 1], [0.333, 0.333, 0.333]),
])
def test_split_rate_follows_each_nodes_share_of_the_calls(
        rate: float, calls: list[int], expected: list[float]) -> None:
    assert split_rate(rate, calls) == expected
    shares = split_rate(rate, calls)
    assert [c / r for c, r in zip(calls, shares, strict=True)] == pytest.approx(
        [sum(calls) / rate] * len(calls), rel=2e-3)


def test_media_span_is_four_ports_a_call_up_to_ten_thousand() -> None:
    assert [media_span(n) for n in (0, 1, 100, 2500, 9000)] == [4, 4, 400, 10000, 10000]


def test_each_caller_gets_its_own_consecutive_media_block() -> None:
    assert caller_ports(40000, [200]) == [40000]
    assert caller_ports(40000, [100, 100]) == [40000, 40400]
    assert caller_ports(40000, [4, 3, 3]) == [40000, 40016, 40028]
    assert caller_ports(40000, [5000, 5000]) == [40000, 50000]  # capped at 10,000 each


def _args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"media_port": 40000, "calls": 200, "agents": 100, "nodes": 1}
    return argparse.Namespace(**(base | kw))


def test_media_blocks_with_one_node_are_as_before_and_grow_with_nodes() -> None:
    # callers 40000-40799, agents' answers 40800-41599, logins 41600-41999
    assert media_blocks(_args()) == (40000, 40800, 41600, 41999)
    assert media_blocks(_args(nodes=2)) == (40000, 40800, 41600, 41999)
    # 7 calls over 2 nodes: blocks of 16 and 12 ports, then 28 for the answers
    assert media_blocks(_args(calls=7, agents=2, nodes=2)) == (40000, 40028, 40056, 40063)


@pytest.mark.parametrize(("low", "high", "parts", "expected"), [
    (20000, 29999, 1, [(20000, 29999)]),
    (20000, 29999, 2, [(20000, 24999), (25000, 29999)]),
    (20000, 29999, 3, [(20000, 23331), (23332, 26663), (26664, 29995)]),
])
def test_rtp_ranges_are_disjoint_even_aligned_slices(
        low: int, high: int, parts: int, expected: list[tuple[int, int]]) -> None:
    ranges = rtp_ranges(low, high, parts)
    assert ranges == expected
    assert all(lo % 2 == 0 and lo >= low and hi <= high for lo, hi in ranges)
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False))


@pytest.mark.parametrize(("spec", "nodes", "ncpu", "expected"), [
    (None, 1, 2, ["0"]),                  # today's default
    ("1", 1, 2, ["1"]),
    ("0-1", 1, 2, ["0-1"]),               # one node: passed to taskset as it is
    (None, 2, 2, ["0", "1"]),             # node i on core i mod ncpu
    (None, 3, 2, ["0", "1", "0"]),
    ("0,1", 2, 2, ["0", "1"]),
    ("1, 0", 2, 8, ["1", "0"]),
    ("0", 2, 2, ["0", "0"]),              # both on one core: the list cycles
    ("2,3", 3, 4, ["2", "3", "2"]),
])
def test_node_cpus(spec: str | None, nodes: int, ncpu: int, expected: list[str]) -> None:
    assert node_cpus(spec, nodes, ncpu) == expected


def _health(calls: int, bridged: int, late: float, work: float, skipped: int, pauses: int,
            pause_max: float) -> dict[str, object]:
    return {"calls": calls, "bridged": bridged, "agents_registered": ["2001"],
            "media_clock": {"late_p99_ms": late, "work_p99_ms": work, "skipped": skipped},
            "gc": {"pauses": pauses, "pause_max_ms": pause_max}}


def test_merge_health_of_one_node_is_that_node() -> None:
    body = _health(3, 1, 2.0, 0.4, 0, 1, 3.0)
    assert merge_health([body]) is body


def test_merge_health_sums_calls_and_keeps_the_worst_clock() -> None:
    merged = merge_health([_health(30, 10, 2.0, 0.4, 1, 2, 3.0),
                           _health(25, 12, 6.0, 0.2, 0, 5, 1.5),
                           {}])  # a node that never answered a poll
    assert merged == {"calls": 55, "bridged": 22,
                      "media_clock": {"late_p99_ms": 6.0, "work_p99_ms": 0.4, "skipped": 1},
                      "gc": {"pauses": 7, "pause_max_ms": 3.0}}
    assert merge_health([{}, {}])["media_clock"] == {"late_p99_ms": None, "work_p99_ms": None,
                                                     "skipped": None}


def test_the_report_shows_a_node_table_only_with_several_nodes() -> None:
    one = {"attempted": 2, "completed": 2, "failed": 0, "steps": []}
    assert node_lines(one) == [] and "| node |" not in markdown(one)
    nodes = [{"node": "node1", "cpu_core": "0", "placed": 1, "completed": 1, "max_calls": 1,
              "cdrs": 1, "cdrs_with_agent": 1, "cpu_s": 0.5, "cpu_pct_of_core": 5.0,
              "rss_kib_peak": 70000, "media_clock_late_p99_ms": 1.0},
             {"node": "node2", "cpu_core": "1", "placed": 1, "completed": 1, "max_calls": 1,
              "cdrs": 1, "cdrs_with_agent": 1, "cpu_s": 0.25, "cpu_pct_of_core": 2.5,
              "rss_kib_peak": 69000, "media_clock_late_p99_ms": None}]
    text = markdown(one | {"nodes": nodes, "router": "node1", "redis_cpu_s": 0.1,
                           "cpu_s_per_call_with_redis": 0.425})
    assert "| node1 | 0 | 1 | 1 | 1 | 1 | 1 | 0.5 | 5 | 70000 | 1 |" in text
    assert "| node2 | 1 | 1 | 1 | 1 | 1 | 1 | 0.25 | 2.5 | 69000 | n/a |" in text
    assert "Router: node1. redis-server: 0.1 CPU s" in text


def test_nodes_need_redis_server_and_a_server_of_the_benchs_own(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from switchboard import bench

    monkeypatch.setattr(bench.shutil, "which",
                        lambda name: None if name == "redis-server" else f"/usr/bin/{name}")
    assert bench.parse_args(["--calls", "4"]).nodes == 1  # one node needs no Redis
    for argv, message in (
            (["--nodes", "2"], "--nodes needs redis-server"),
            (["--nodes", "2", "--server", "127.0.0.1:5060", "--http", "http://127.0.0.1:8080",
              "--server-pid", "1", "--data-dir", "var"], "only when the bench starts"),
            (["--nodes", "3", "--calls", "2"], "must not exceed --calls"),
            (["--nodes", "0"], "--nodes must be at least 1")):
        with pytest.raises(SystemExit):
            bench.parse_args(argv)
        assert message in capsys.readouterr().err

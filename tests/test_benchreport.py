"""The bench's figures and report files, on made-up measurements."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from switchboard import benchreport
from switchboard.benchreport import (
    CallTimes,
    Step,
    cpu_list,
    markdown,
    parse_proc_stat,
    parse_setup_log,
    percentile,
    placing,
    plan_steps,
    steal_pct,
    step_rows,
    timing,
    write_report,
)
from switchboard.pacing import analyse
from tests.core.test_pacing import stream, write_pcap

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("values", "p", "expected"), [
    ([], 50, None),
    ([7.0], 99, 7.0),
    ([3.0, 1.0, 2.0], 50, 2.0),
    ([1.0, 2.0, 3.0, 4.0], 50, 2.0),          # nearest rank: ceil(4 * 0.5) = 2nd
    (list(range(1, 101)), 99, 99),            # the 99th of 100, not the maximum
    (list(range(1, 101)), 100, 100),
    (list(range(1, 1001)), 99, 990),
])
def test_percentile_is_nearest_rank(values: list[float], p: float, expected: float | None) -> None:
    assert percentile(values, p) == expected


SETUP_LOG = """\
bench invite 1-42@127.0.0.1 at=1795410221.000000/740309.000000
bench answer 1-42@127.0.0.1 p180=1795410221.000000/742914.000000 p183=/ ok=1795410221.000000/745313.000000
bench done 1-42@127.0.0.1
bench invite 2-42@127.0.0.1 at=1795410222.000000/999000.000000
bench answer 2-42@127.0.0.1 p180=/ p183=/ ok=1795410223.000000/9000.000000
bench invite 3-42@127.0.0.1 at=1795410224.000000/0.000000
garbage line
bench answer unknown-call p180=/ p183=/ ok=1795410224.000000/0.000000
bench answer 3-42@127.0.0.1 p180=1795410224.000000/300000.000000 p183=1795410224.000000/200000.000000 ok=1795410225.000000/0.000000
"""


def test_setup_log_gives_pdd_and_tta_per_call() -> None:
    calls = parse_setup_log(SETUP_LOG)
    assert set(calls) == {"1-42@127.0.0.1", "2-42@127.0.0.1", "3-42@127.0.0.1"}
    one, two, three = (calls[f"{n}-42@127.0.0.1"] for n in (1, 2, 3))
    assert one.done and not two.done
    # epoch seconds as doubles: a fraction of a microsecond off at most
    ms = {name: (c.pdd_ms, c.tta_ms) for name, c in (("one", one), ("two", two), ("three", three))}
    assert ms == {"one": pytest.approx((2.605, 5.004), abs=1e-3),
                  "two": pytest.approx((10.0, 10.0), abs=1e-3),       # no 18x: the 200's
                  "three": pytest.approx((200.0, 1000.0), abs=1e-3)}  # 180 and 183: the first


def test_a_call_without_200_has_no_pdd() -> None:
    calls = parse_setup_log("bench invite x at=10.000000/0.000000\n")
    assert calls["x"].pdd_ms is None and calls["x"].tta_ms is None
    assert timing(calls.values()) == {"pdd_p50_ms": None, "pdd_p99_ms": None,
                                      "tta_p50_ms": None, "tta_p99_ms": None}


def test_plan_ramps_limit_rate_and_calls() -> None:
    plan = plan_steps(calls=100, concurrency=50, cps=10, steps=4)
    assert [p.limit for p in plan] == [13, 25, 38, 50]
    assert [p.rate for p in plan] == [2.5, 5.0, 7.5, 10.0]
    assert [p.until for p in plan] == [25, 50, 75, 100]
    (only,) = plan_steps(calls=7, concurrency=3, cps=4, steps=1)
    assert (only.limit, only.rate, only.until) == (3, 4.0, 7)


def _calls(invites: list[float], pdd_s: float = 0.002) -> list[CallTimes]:
    return [CallTimes(f"c{i}", t, t + pdd_s, t + 2 * pdd_s, True) for i, t in enumerate(invites)]


def _steps() -> list[Step]:
    return [Step(1, 5, 2.0, start=100.0, end=110.0, cpu_s=2.0, rss_kib_peak=1000,
                 sipp_peak_calls=5, server_peak_calls=4, clock_late_p99_ms=0.5),
            Step(2, 10, 4.0, start=110.0, end=120.0, cpu_s=5.0, rss_kib_peak=2000,
                 sipp_peak_calls=9, server_peak_calls=10, clock_late_p99_ms=1.5)]


def test_calls_go_to_the_step_their_invite_was_sent_in() -> None:
    timed = [(99.0, 0.002), (100.0, 0.002), (105.0, 0.002), (109.999, 0.002),
             (110.0, 0.01), (119.0, 0.01), (125.0, 0.01)]
    calls = [CallTimes(f"c{i}", t, t + d, t + 2 * d, True) for i, (t, d) in enumerate(timed)]
    outcomes = {"c0": "completed", "c1": "completed", "c2": "no_cdr", "c3": "completed",
                "c4": "completed", "c5": "completed", "c6": "abandoned"}
    first, second = step_rows(_steps(), calls, outcomes)
    assert (first["attempted"], first["completed"], first["failed"]) == (4, 3, 1)
    assert first["failed_by_reason"] == {"no_cdr": 1}
    assert (second["attempted"], second["completed"], second["failed"]) == (3, 2, 1)
    assert second["failed_by_reason"] == {"abandoned": 1}
    assert first["pdd_p99_ms"] == pytest.approx(2.0) and second["pdd_p99_ms"] == pytest.approx(10.0)
    assert second["tta_p50_ms"] == pytest.approx(20.0)
    assert first["calls_up_peak"] == 5 and second["calls_up_peak"] == 10
    assert first["cpu_pct_of_core"] == 20.0 and second["cpu_pct_of_core"] == 50.0
    assert (first["offered_concurrency"], second["offered_cps"]) == (5, 4.0)
    assert (second["start_s"], second["duration_s"]) == (10.0, 10.0)
    assert first["rtp_late_pct"] is None  # no capture


def test_pacing_per_step_from_a_capture(tmp_path: Path) -> None:
    # one stream from t=100 s: on time for 5 s, then every frame 30 ms late from 110 s on
    packets = stream(100.0, 250) + [
        (t + 0.030 if t >= 110.0 else t, *rest) for t, *rest in stream(105.0, 500, sport=20002)]
    write_pcap(tmp_path / "rtp.pcap", packets)
    report = analyse(tmp_path / "rtp.pcap", edges=[100.0, 110.0, 120.0])
    first, second = (w.summary() for w in report.windows)
    assert first["rtp_late_frames"] == 0 and first["rtp_streams"] == 2
    assert second["rtp_late_frames"] == 500 - 250 and second["rtp_streams"] == 1
    assert report.summary()["rtp_packets"] == first["rtp_packets"] + second["rtp_packets"]
    rows = step_rows(_steps(), [], {}, [first, second])
    assert rows[0]["rtp_late_pct"] == 0.0 and rows[1]["rtp_late_pct"] == 100.0


def _result(rows: list[dict[str, object]]) -> dict[str, object]:
    return {"attempted": 7, "completed": 5, "failed": 2, "failed_by_reason": {"no_cdr": 1,
            "abandoned": 1}, "max_concurrent": 10, "concurrency": 10, "cps_target": 4.0,
            "cps": 0.5, "elapsed_s": 20.0, "pdd_p50_ms": 2.0, "pdd_p99_ms": 10.0,
            "tta_p50_ms": 4.0, "tta_p99_ms": 20.0, "cpu_pct_of_core": 35.0,
            "cpu_s_per_call": 1.4, "rss_kib_per_call": 100.0, "rss_kib_peak": 2000,
            "media_clock_late_p99_ms": 1.5, "rtp_late_pct": None, "steps": rows}


@pytest.mark.parametrize(("invites", "expected"), [
    ([], (None, None)),
    ([5.0], (None, None)),
    ([5.0, 5.0], (None, None)),
    # 100 a second for 3 s: 301 INVITEs over 3 s, every whole second has 100
    ([100.0 + i / 100 for i in range(301)], (100.0, 100.0)),
    # the same with SIPp silent for 1.5 s in the middle: a whole second with none
    ([100.0 + i / 100 for i in range(100)] + [102.5 + i / 100 for i in range(150)],
     (62.41, 0.0)),
    # a span under 2 s: the mean only
    ([0.0, 0.5, 1.0, 1.5], (2.0, None)),
])
def test_placing_rate_from_the_invites(invites: list[float],
                                       expected: tuple[float | None, float | None]) -> None:
    got = placing(reversed(_calls(invites)))  # in any order
    assert (got["cps_placed"], got["cps_placed_min"]) == expected


def test_markdown_has_one_row_per_step_and_a_totals_row() -> None:
    calls = _calls([100.0, 101.0, 111.0])
    rows = step_rows(_steps(), calls, {c.call_id: "completed" for c in calls})
    text = markdown(_result(rows))
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 2 + 1  # header, rule, two steps, totals
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[:3] == ["step", "offered calls", "offered cps"] and "PDD p99 ms" in header
    step1 = [c.strip() for c in table[2].strip("|").split("|")]
    assert step1[0] == "1" and step1[header.index("attempted")] == "2"
    assert step1[header.index("placed cps")] == "1"  # INVITEs at 100.0 and 101.0
    assert step1[header.index("RTP late %")] == "n/a"
    total = [c.strip() for c in table[-1].strip("|").split("|")]
    assert total[0] == "**total**" and total[header.index("failed")] == "**2**"
    assert total[header.index("PDD p99 ms")] == "**10**"
    assert "abandoned 1, no_cdr 1" in text and "not measured" in text


def test_report_files(tmp_path: Path) -> None:
    calls = _calls([100.0, 111.0])
    rows = step_rows(_steps(), calls, {"c0": "completed", "c1": "no_cdr"},
                     [{"rtp_late_pct": 0.0}, {"rtp_late_pct": 2.5}])
    assert write_report(tmp_path, _result(rows)) is None
    assert json.loads((tmp_path / "report.json").read_text())["steps"][1]["failed"] == 1
    assert (tmp_path / "report.md").read_text().startswith("# switchboard bench")
    png = (tmp_path / "report.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 5000


def test_without_matplotlib_json_and_md_are_still_written(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # import fails
    why = write_report(tmp_path, _result([]))
    assert why is not None and "matplotlib" in why and benchreport.NO_PNG_HINT in why
    assert (tmp_path / "report.json").exists() and (tmp_path / "report.md").exists()
    assert not (tmp_path / "report.png").exists()


PROC_STAT_START = """\
cpu  1000 10 300 5000 20 0 100 400 0 0
cpu0 400 5 100 2600 10 0 50 150 0 0
cpu1 600 5 200 2400 10 0 50 250 0 0
intr 66909180 0 0
ctxt 171530883
"""
# 10 s later at 100 jiffies a second: 1,000 jiffies per core
PROC_STAT_END = """\
cpu  1700 10 600 5300 20 0 200 1000 0 0
cpu0 800 5 250 2700 10 0 100 450 0 0
cpu1 900 5 350 2600 10 0 100 550 0 0
intr 66919180 0 0
"""


@pytest.mark.parametrize(("text", "expected"), [
    (PROC_STAT_START, {0: (400, 5, 100, 2600, 10, 0, 50, 150),
                       1: (600, 5, 200, 2400, 10, 0, 50, 250)}),
    ("", {}),
    ("cpu  1 2 3 4\nintr 5\n", {}),                             # the total line only
    ("cpu3 1 2 3 4 5 6 7\n", {3: (1, 2, 3, 4, 5, 6, 7, 0)}),      # no steal column: 0
    ("cpu0 1 2 3 4 5 6 7 8 9 10\n", {0: (1, 2, 3, 4, 5, 6, 7, 8)}),  # guest columns left out
    ("cpu0 1 x 3\ncpux 1 2\ncpu1 9 9 9 9 9 9 9 9\n", {1: (9,) * 8}),  # bad lines skipped
])
def test_proc_stat_gives_each_cores_jiffies(text: str, expected: dict[int, tuple[int, ...]]) -> None:
    assert parse_proc_stat(text) == expected


@pytest.mark.parametrize(("before", "after", "cores", "expected"), [
    (PROC_STAT_START, PROC_STAT_END, [0], 30.0),        # 300 of 1,000 jiffies
    (PROC_STAT_START, PROC_STAT_END, [1], 30.0),
    (PROC_STAT_START, PROC_STAT_END, [0, 1], 30.0),     # summed: 600 of 2,000
    ("cpu0 0 0 0 0 0 0 0 0\n", "cpu0 97 0 0 0 0 0 0 3\n", [0], 3.0),
    ("cpu0 0 0 0 0 0 0 0 0\n", "cpu0 2 0 0 1 0 0 0 0\n", [0], 0.0),
    ("cpu0 0 0 0 0 0 0 0 0\n", "cpu0 1 0 0 1 0 0 0 1\n", [0], 33.33),  # 2 decimals
    (PROC_STAT_START, PROC_STAT_START, [0], None),      # no jiffy passed
    (PROC_STAT_START, PROC_STAT_END, [2], None),        # no such core
    (PROC_STAT_START, PROC_STAT_END, [0, 2], None),
    (PROC_STAT_START, PROC_STAT_END, [], None),
    (PROC_STAT_START, PROC_STAT_END, None, None),       # not pinned
    (None, PROC_STAT_END, [0], None),                   # no /proc/stat
    ("", PROC_STAT_END, [0], None),
])
def test_steal_is_a_share_of_the_cores_jiffies(before: str | None, after: str | None,
                                               cores: list[int] | None,
                                               expected: float | None) -> None:
    parsed = [None if t is None else parse_proc_stat(t) for t in (before, after)]
    assert steal_pct(parsed[0], parsed[1], cores) == expected


@pytest.mark.parametrize(("spec", "expected"), [
    ("0", [0]), ("1", [1]), ("0,1", [0, 1]), ("1,0,1", [0, 1]), ("0-2,5", [0, 1, 2, 5]),
    (" 3 ", [3]), (None, None), ("", None), ("a", None), ("0-", None), ("0x1", None),
])
def test_taskset_core_lists(spec: str | None, expected: list[int] | None) -> None:
    assert cpu_list(spec) == expected


def test_steal_in_the_table_and_the_summary() -> None:
    steps = _steps()
    steps[0].cpu_steal_pct_server, steps[0].cpu_steal_pct_sipp = 12.5, 40.25
    rows = step_rows(steps, [], {})
    assert rows[0]["cpu_steal_pct_server"] == 12.5 and rows[1]["cpu_steal_pct_sipp"] is None
    result = {**_result(rows), "cpu_steal_pct_server": 20.0, "cpu_steal_pct_sipp": 33.33}
    text = markdown(result)
    table = [line for line in text.splitlines() if line.startswith("|")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    server, sipp = header.index("steal % server"), header.index("steal % SIPp")
    assert [c[server] for c in cells] == ["12.5", "n/a", "**20**"]
    assert [c[sipp] for c in cells] == ["40.25", "n/a", "**33.33**"]
    assert "server core(s) 20 %, SIPp core 33.33 %" in text
    assert "CPU steal not measured" in markdown(_result(rows))
    assert "SIPp:" not in text
    sipp = markdown({**result, "sipp_cpu_s": 41.5, "sipp_cpu_pct_of_core": 55.3,
                     "sipp_threads_peak": 503, "loadavg_1m_peak": 71.2})
    assert "SIPp: 41.5 CPU s (55.3 % of a core), up to 503 threads; load average (1 min) " \
           "peak 71.2." in sipp


def test_cpu_by_thread_keeps_the_servers_threads_even_when_idle(tmp_path: Path) -> None:
    """A tiny run's recorder I/O thread may use less than a clock tick: it is still
    listed (0.0), while anonymous executor threads are listed only when they used some."""
    from switchboard.benchnodes import Node, by_thread

    one = Node(1, tmp_path, threads_used={"main": 0.19, "sb-media": 0.07,
                                           "sb-recorder-io": 0.0, "python3": 0.0})
    two = Node(2, tmp_path, threads_used={"main": 0.5, "libuv-worker": 0.02})
    assert by_thread([one, two]) == {"main": 0.69, "sb-media": 0.07, "libuv-worker": 0.02,
                                     "sb-recorder-io": 0.0}

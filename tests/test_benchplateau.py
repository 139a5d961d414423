"""The bench's plateau figures: server CPU over the longest stretch at peak load."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.benchplateau import Plateau, Sample, plateau_figures, plateau_line
from switchboard.benchreport import markdown


def run(levels: list[int], step: float = 1.0, media: float = 0.2, main: float = 0.1
        ) -> list[Sample]:
    """Samples `step` s apart; the threads use `media` and `main` CPU s per second."""
    return [Sample(i * step, level, {"sb-media": i * step * media, "main": i * step * main})
            for i, level in enumerate(levels)]


@pytest.mark.parametrize("levels,span", [
    # ramp, 11 s at the peak, ramp down: the plateau is the 11 samples at 200
    ([50, 100, 150] + [200] * 11 + [120, 10], (3, 13)),
    # within 2 % of the peak (196..200) counts; 195 breaks it
    ([200, 198, 196, 199, 200, 197, 200, 195, 200, 200], (0, 6)),
    # the longer of two stretches wins, not the first
    ([200] * 6 + [100] + [200] * 8, (7, 14)),
])
def test_the_longest_stretch_near_the_peak(levels: list[int], span: tuple[int, int]) -> None:
    samples = run(levels)
    got = plateau_figures("bridged", samples)
    first, last = span
    assert got["plateau_s"] == last - first
    assert got["plateau_calls_max"] == max(levels[first:last + 1])
    assert got["plateau_calls_min"] == min(levels[first:last + 1])
    assert got["plateau_cpu_pct_of_core"] == pytest.approx(30.0)
    assert got["plateau_cpu_pct_by_thread"] == {"sb-media": pytest.approx(20.0),
                                                "main": pytest.approx(10.0)}


@pytest.mark.parametrize("levels", [[], [0, 0, 0], [200, 200, 200, 200, 200], [200, 10] * 10])
def test_no_plateau_when_the_peak_did_not_hold_five_seconds(levels: list[int]) -> None:
    got = plateau_figures("calls", run(levels))
    assert got["plateau_of"] == "calls"
    assert all(v is None for k, v in got.items() if k != "plateau_of")
    assert "never held" in plateau_line(got)


def test_the_rate_is_over_the_plateau_only() -> None:
    """CPU spent before the plateau (a busy ramp) does not count."""
    samples = [Sample(0, 10, {"main": 0.0}), Sample(10, 50, {"main": 9.0}),
               Sample(20, 100, {"main": 10.0}), Sample(30, 100, {"main": 12.5})]
    assert plateau_figures("calls", samples)["plateau_cpu_pct_of_core"] == 25.0


def test_a_thread_that_starts_on_the_plateau_counts_from_zero() -> None:
    samples = [Sample(0, 100, {"main": 1.0}), Sample(10, 100, {"main": 2.0, "sb-hook-talk": 0.5})]
    assert plateau_figures("calls", samples)["plateau_cpu_pct_by_thread"] == {
        "main": 10.0, "sb-hook-talk": 5.0}


def test_nodes_add_up_by_thread_name() -> None:
    plateau = Plateau("bridged")
    plateau.add(0.0, 100, {"main": 1.0, "sb-media": 2.0}, {"main": 1.0, "sb-media": 1.0})
    plateau.add(10.0, 100, {"main": 2.0, "sb-media": 4.0}, {"main": 2.0, "sb-media": 3.0})
    plateau.add(12.0, 100, {"main": 9.0, "sb-media": 9.0}, {})  # node 2 unread: left out
    got = plateau.figures()
    assert got["plateau_cpu_pct_by_thread"] == {"sb-media": 40.0, "main": 20.0}
    assert got["plateau_cpu_pct_of_core"] == 60.0


def test_the_markdown_report_states_it() -> None:
    result: dict[str, Any] = {"attempted": 1, "steps": [],
                              **plateau_figures("bridged", run([200] * 21))}
    line = next(x for x in markdown(result).splitlines() if x.startswith("Plateau"))
    assert line == ("Plateau: 200-200 bridged calls for 20 s, server CPU 30 % of a core "
                    "(sb-media 20 %, main 10 %).")
    assert "Plateau" not in markdown({"attempted": 1, "steps": []})

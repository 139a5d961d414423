"""DigitCollector: the digit-timing model, driven by a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.commands import DigitSpec, DigitsResult
from ivr.diagnostics import UsageError
from ivr.digits import DigitCollector

SPEC = DigitSpec(min_digits=1, max_digits=4, terminators="#", first_digit_timeout=5.0, inter_digit_timeout=3.0)


def play(
    events: list[tuple[float, str]],
    *,
    prompt: float | None = None,
    barge_in: bool = True,
    spec: DigitSpec = SPEC,
    typeahead: str = "",
) -> tuple[DigitsResult | None, float | None, DigitCollector]:
    """Run keys (time, key) against a prompt of length ``prompt`` (None = no prompt),
    firing timers exactly at their deadlines. Returns (result, time of completion, collector)."""
    c = DigitCollector(spec, now=0.0, prompt_playing=prompt is not None, barge_in=barge_in, typeahead=typeahead)
    if c.result is not None:
        return c.result, 0.0, c
    pending = sorted(events)
    if prompt is not None:
        pending.append((prompt, "END"))
        pending.sort(key=lambda e: (e[0], e[1] != "END"))
    while True:
        deadline = c.next_deadline()
        if pending and (deadline is None or pending[0][0] < deadline):
            t, key = pending.pop(0)
            if key == "END":
                if c.prompt_playing:
                    c.prompt_finished(t)
                continue
            result = c.on_digit(key, t)
        elif deadline is not None:
            t = deadline
            result = c.on_timer(t)
        else:
            return None, None, c
        if result is not None:
            return result, t, c


# (id, keys, prompt length, barge_in, expected result, completion time)
CASES = [
    ("first-digit-timeout-no-prompt", [], None, True, DigitsResult("", None, "timeout"), 5.0),
    ("first-digit-timer-starts-after-prompt", [], 2.0, True, DigitsResult("", None, "timeout"), 7.0),
    ("inter-digit-timeout-keeps-digits", [(1.0, "1"), (2.0, "2")], None, True, DigitsResult("12", None, "timeout"), 5.0),
    ("each-digit-restarts-timer", [(1, "1"), (3.9, "2"), (6.8, "3")], None, True, DigitsResult("123", None, "timeout"), 9.8),
    ("terminator-ends-not-kept", [(1, "1"), (1.5, "2"), (2, "#")], None, True, DigitsResult("12", "#", "terminator"), 2.0),
    ("terminator-alone", [(1, "#")], None, True, DigitsResult("", "#", "terminator"), 1.0),
    ("max-digits-ends-at-once", [(1, "1"), (2, "2"), (3, "3"), (4, "4"), (5, "5")], None, True,
     DigitsResult("1234", None, "max"), 4.0),
    ("barge-in-digit-kept", [(0.5, "7"), (1, "#")], 3.0, True, DigitsResult("7", "#", "terminator"), 1.0),
    ("barge-in-starts-inter-digit-timer", [(0.5, "7")], 3.0, True, DigitsResult("7", None, "timeout"), 3.5),
    ("no-barge-digit-discarded", [(0.5, "7"), (4, "8"), (5, "#")], 3.0, False, DigitsResult("8", "#", "terminator"), 5.0),
    ("no-barge-terminator-discarded", [(0.5, "#")], 3.0, False, DigitsResult("", None, "timeout"), 8.0),
    ("no-barge-after-prompt-counts", [(3.0, "1"), (3.1, "#")], 3.0, False, DigitsResult("1", "#", "terminator"), 3.1),
    ("late-first-digit-just-in-time", [(4.99, "1")], None, True, DigitsResult("1", None, "timeout"), 7.99),
    ("digit-at-deadline-is-late", [(5.0, "1")], None, True, DigitsResult("", None, "timeout"), 5.0),
]


@pytest.mark.parametrize(
    "keys, prompt, barge_in, expected, at", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_timing(
    keys: list[tuple[float, str]], prompt: float | None, barge_in: bool, expected: DigitsResult, at: float
) -> None:
    result, t, _ = play(keys, prompt=prompt, barge_in=barge_in)
    assert result == expected
    assert t == pytest.approx(at)


def test_no_timer_while_prompt_plays() -> None:
    c = DigitCollector(SPEC, now=0.0, prompt_playing=True, barge_in=True)
    assert c.next_deadline() is None
    assert c.on_timer(100.0) is None
    c.prompt_finished(10.0)
    assert c.next_deadline() == 15.0


def test_stop_prompt_only_on_barge_in() -> None:
    c = DigitCollector(SPEC, now=0.0, prompt_playing=True, barge_in=True)
    assert not c.stop_prompt
    c.on_digit("1", 0.5)
    assert c.stop_prompt
    c.prompt_finished(0.6)  # the driver reports the stop: the inter-digit timer keeps running
    assert c.next_deadline() == 3.5
    n = DigitCollector(SPEC, now=0.0, prompt_playing=True, barge_in=False)
    n.on_digit("1", 0.5)
    assert not n.stop_prompt and n.discarded == 1 and n.digits == ""


def test_typeahead_counts_as_barge_in() -> None:
    result, t, c = play([(1.0, "#")], prompt=3.0, typeahead="12")
    assert result == DigitsResult("12", "#", "terminator") and t == 1.0
    assert c.stop_prompt


def test_typeahead_can_complete_input() -> None:
    menu = DigitSpec(1, 1, "", 5.0, 5.0)
    c = DigitCollector(menu, now=0.0, prompt_playing=True, barge_in=True, typeahead="3")
    assert c.result == DigitsResult("3", None, "max")
    assert c.next_deadline() is None


def test_menu_spec_without_terminators_takes_hash_as_digit() -> None:
    menu = DigitSpec(1, 1, "", 5.0, 5.0)
    result, _, _ = play([(1, "#")], spec=menu)
    assert result == DigitsResult("#", None, "max")


def test_usage_errors() -> None:
    c = DigitCollector(SPEC, now=0.0, prompt_playing=False, barge_in=True)
    with pytest.raises(UsageError):
        c.on_digit("x", 1.0)
    with pytest.raises(UsageError):
        c.on_digit("12", 1.0)
    c.on_digit("#", 1.0)
    with pytest.raises(UsageError):
        c.on_digit("1", 1.1)
    assert c.on_timer(100.0) is None


def test_early_timer_call_is_ignored() -> None:
    c = DigitCollector(SPEC, now=0.0, prompt_playing=False, barge_in=True)
    assert c.on_timer(4.9) is None
    assert c.on_timer(5.0) == DigitsResult("", None, "timeout")


@given(
    keys=st.lists(st.tuples(st.floats(0, 30), st.sampled_from("0123456789*#")), max_size=12),
    prompt=st.one_of(st.none(), st.floats(0, 10)),
    barge_in=st.booleans(),
)
def test_always_completes_and_respects_limits(
    keys: list[tuple[float, str]], prompt: float | None, barge_in: bool
) -> None:
    result, _, _ = play(keys, prompt=prompt, barge_in=barge_in)
    assert result is not None
    assert len(result.digits) <= SPEC.max_digits
    assert "#" not in result.digits
    assert (result.reason == "terminator") == (result.terminator is not None)

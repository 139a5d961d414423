"""Opening hours across time zones, DST and holidays."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ivr.hours import ScheduleError, build_hours, parse_days, parse_ranges

OFFICE = build_hours(
    "Europe/Paris",
    {"mon-fri": "08:00-12:00, 13:00-18:00", "sat": "09:00-13:00"},
    ["2026-12-25"],
)
NEW_YORK = build_hours("America/New_York", {"mon-sun": "09:00-17:00"}, [])
LATE = build_hours("Asia/Tokyo", {"fri": "20:00-24:00", "mon,wed": "10:00-11:00"}, [])

# (hours, UTC time, open?)
CASES = [
    ("paris-winter-open", OFFICE, datetime(2026, 1, 7, 7, 30, tzinfo=UTC), True),  # 08:30 CET, Wednesday
    ("paris-winter-before", OFFICE, datetime(2026, 1, 7, 6, 59, tzinfo=UTC), False),  # 07:59 CET
    ("paris-lunch", OFFICE, datetime(2026, 1, 7, 11, 30, tzinfo=UTC), False),  # 12:30
    ("paris-end-exclusive", OFFICE, datetime(2026, 1, 7, 17, 0, tzinfo=UTC), False),  # 18:00
    ("paris-last-minute", OFFICE, datetime(2026, 1, 7, 16, 59, tzinfo=UTC), True),  # 17:59
    ("paris-summer-dst", OFFICE, datetime(2026, 7, 8, 6, 30, tzinfo=UTC), True),  # 08:30 CEST
    ("paris-summer-same-utc-closed", OFFICE, datetime(2026, 7, 8, 16, 30, tzinfo=UTC), False),  # 18:30 CEST
    ("paris-saturday", OFFICE, datetime(2026, 1, 10, 11, 0, tzinfo=UTC), True),  # 12:00 Sat
    ("paris-saturday-afternoon", OFFICE, datetime(2026, 1, 10, 13, 0, tzinfo=UTC), False),
    ("paris-sunday", OFFICE, datetime(2026, 1, 11, 10, 0, tzinfo=UTC), False),
    ("paris-holiday", OFFICE, datetime(2026, 12, 25, 10, 0, tzinfo=UTC), False),  # Friday, Christmas
    ("paris-day-after-holiday", OFFICE, datetime(2026, 12, 28, 10, 0, tzinfo=UTC), True),
    # 23:30 UTC on Dec 24 is already Dec 25 in Paris
    ("holiday-in-local-date", build_hours("Europe/Paris", {"mon-sun": "00:00-24:00"}, ["2026-12-25"]),
     datetime(2026, 12, 24, 23, 30, tzinfo=UTC), False),
    # US DST starts 2026-03-08: 13:30 UTC is 08:30 EST the day before, 09:30 EDT that day
    ("ny-before-dst", NEW_YORK, datetime(2026, 3, 7, 13, 30, tzinfo=UTC), False),
    ("ny-after-dst", NEW_YORK, datetime(2026, 3, 8, 13, 30, tzinfo=UTC), True),
    # US DST ends 2026-11-01: 21:30 UTC is 17:30 EDT before, 16:30 EST after
    ("ny-fall-back-before", NEW_YORK, datetime(2026, 10, 31, 21, 30, tzinfo=UTC), False),
    ("ny-fall-back-after", NEW_YORK, datetime(2026, 11, 1, 21, 30, tzinfo=UTC), True),
    ("tokyo-friday-night", LATE, datetime(2026, 1, 9, 14, 59, tzinfo=UTC), True),  # Fri 23:59 JST
    ("tokyo-saturday-midnight", LATE, datetime(2026, 1, 9, 15, 0, tzinfo=UTC), False),  # Sat 00:00 JST
    ("tokyo-list-of-days", LATE, datetime(2026, 1, 7, 1, 30, tzinfo=UTC), True),  # Wed 10:30 JST
    ("tokyo-not-listed-day", LATE, datetime(2026, 1, 6, 1, 30, tzinfo=UTC), False),  # Tue
    ("other-offset-input", OFFICE, datetime.fromisoformat("2026-01-07T03:30:00-05:00"), True),
]


@pytest.mark.parametrize("hours, when, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_is_open(hours, when: datetime, expected: bool) -> None:  # type: ignore[no-untyped-def]
    assert hours.is_open(when) is expected


def test_naive_time_refused() -> None:
    with pytest.raises(ValueError):
        OFFICE.is_open(datetime(2026, 1, 7, 10, 0))


@pytest.mark.parametrize(
    "spec, days", [("mon", [0]), ("mon-fri", [0, 1, 2, 3, 4]), ("sat,sun", [5, 6]), ("mon, wed-thu", [0, 2, 3])]
)
def test_parse_days(spec: str, days: list[int]) -> None:
    assert parse_days(spec) == days


@pytest.mark.parametrize("spec", ["monday", "fri-mon", "", "mon-"])
def test_parse_days_errors(spec: str) -> None:
    with pytest.raises(ScheduleError):
        parse_days(spec)


@pytest.mark.parametrize("spec", ["25:00-26:00", "10:00-09:00", "10:00-10:00", "9-17", "10:60-11:00", "00:00-24:01"])
def test_parse_ranges_errors(spec: str) -> None:
    with pytest.raises(ScheduleError):
        parse_ranges(spec)


def test_parse_ranges() -> None:
    assert parse_ranges("08:00-12:00,13:30-24:00") == [(480, 720), (810, 1440)]

"""Opening hours: weekly schedule in an IANA time zone, plus holidays."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Hours:
    zone: ZoneInfo
    # weekday (0 = Monday) -> open intervals in minutes since midnight, [start, end)
    week: tuple[tuple[tuple[int, int], ...], ...]
    holidays: frozenset[date]

    def is_open(self, when: datetime) -> bool:
        if when.tzinfo is None:
            raise ValueError("time must be timezone-aware")
        local = when.astimezone(self.zone)
        if local.date() in self.holidays:
            return False
        minute = local.hour * 60 + local.minute
        return any(a <= minute < b for a, b in self.week[local.weekday()])


def parse_days(spec: str) -> list[int]:
    days: list[int] = []
    for part in spec.split(","):
        first, dash, last = part.strip().partition("-")
        if first not in DAYS or (dash and last not in DAYS):
            raise ScheduleError(f"bad day range '{part.strip()}' (use mon..sun, e.g. 'mon-fri')")
        a, b = DAYS.index(first), DAYS.index(last or first)
        if b < a:
            raise ScheduleError(f"day range '{part.strip()}' runs backwards")
        days.extend(range(a, b + 1))
    return days


def parse_ranges(spec: str) -> list[tuple[int, int]]:
    ranges = []
    for part in spec.split(","):
        m = _RANGE.match(part.strip())
        if not m:
            raise ScheduleError(f"bad time range '{part.strip()}' (use 'HH:MM-HH:MM')")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60:
            raise ScheduleError(f"bad time in '{part.strip()}'")
        if end <= start:
            raise ScheduleError(f"time range '{part.strip()}' must end after it starts")
        ranges.append((start, end))
    return ranges


def parse_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone '{name}'") from None


def parse_holiday(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ScheduleError(f"bad holiday date '{text}' (use YYYY-MM-DD)") from None


def build_hours(timezone: str, schedule: Mapping[str, str], holidays: Iterable[str]) -> Hours:
    week: list[list[tuple[int, int]]] = [[] for _ in DAYS]
    for days, ranges in schedule.items():
        parsed = parse_ranges(ranges)
        for d in parse_days(days):
            week[d].extend(parsed)
    return Hours(
        zone=parse_zone(timezone),
        week=tuple(tuple(sorted(w)) for w in week),
        holidays=frozenset(parse_holiday(h) for h in holidays),
    )

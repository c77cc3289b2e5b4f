"""Local time rules: quiet hours and `wait: {until: "09:30"}`, in the customer's time zone, DST included.

Times are computed on the customer's wall clock with zoneinfo, then converted to UTC. A wall time that does not
exist (02:30 on the night clocks go forward) is moved forward by the gap; one that exists twice (the night they
go back) is taken at its first occurrence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_clock(text: str) -> time:
    """`09:30` → time(9, 30); ValueError with the expected shape otherwise."""
    match = _CLOCK.match(text.strip())
    if not match:
        raise ValueError(f"bad time of day {text!r}: use HH:MM on a 24-hour clock, e.g. 09:30 or 21:00")
    return time(int(match.group(1)), int(match.group(2)))


def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    """The customer's zone; an unknown or missing one falls back to the default."""
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def wall_to_utc(day: date, clock: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time on a day in a zone.

    With fold=0 (PEP 495), a time in a DST gap is read with the offset from before the transition, which lands
    it as far past the gap's start as it was meant to be (02:30 → 03:30 when clocks jump from 02:00 to 03:00),
    and a time that occurs twice is its first occurrence.
    """
    return datetime.combine(day, clock, tzinfo=tz).astimezone(UTC)


def next_wall_time(now: float, clock: time, tz: ZoneInfo) -> float:
    """The next moment (after `now`) the customer's clock shows `clock`."""
    today = datetime.fromtimestamp(now, tz).date()
    for offset in range(0, 3):
        candidate = wall_to_utc(today + timedelta(days=offset), clock, tz).timestamp()
        if candidate > now:
            return candidate
    raise AssertionError("a wall-clock time always recurs within two days")


def parse_moment(value: object, tz: ZoneInfo) -> datetime | None:
    """A moment from the data: an ISO 8601 timestamp (without an offset: on the customer's clock, `tz`) or epoch
    seconds; None for anything else (a bool, a malformed text, a number out of range)."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            moment = datetime.fromisoformat(value.strip())
            return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)
    except (ValueError, OverflowError, OSError):
        return None
    return None


@dataclass(frozen=True)
class QuietHours:
    """A nightly window (e.g. 21:00-08:00) in which marketing messages are held, not sent."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours | None:
        """`21:00-08:00`, or `off`/empty for none."""
        if text.strip().lower() in ("", "off", "none"):
            return None
        start, sep, end = text.partition("-")
        if not sep:
            raise ValueError(f"bad quiet hours {text!r}: use START-END, e.g. 21:00-08:00, or off")
        window = cls(parse_clock(start), parse_clock(end))
        if window.start == window.end:  # no time inside, or all day? Said, not guessed
            raise ValueError(f"bad quiet hours {text!r}: it starts and ends at {window.start:%H:%M}: write `off` for "
                             "no quiet hours, or a window such as 21:00-08:00")
        return window

    def opens_at(self, now: float, tz: ZoneInfo) -> float | None:
        """None when `now` is outside quiet hours; otherwise when they end (the customer's clock shows `end`)."""
        local = datetime.fromtimestamp(now, tz).time()
        inside = (self.start <= local or local < self.end) if self.start > self.end else self.start <= local < self.end
        return next_wall_time(now, self.end, tz) if inside else None

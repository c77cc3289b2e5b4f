"""Journey time as the ISO-8601 text the API, the timeline and templates show."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(timestamp: float) -> str:
    """Journey time as the ISO-8601 UTC string the API shows, to the millisecond (truncated).

    A worker asks for the same moment many times in a row (every customer of a batch is applied at one `now`,
    and each of their records is stamped with it): the last answer is kept."""
    global _last_iso
    if _last_iso[0] == timestamp:
        return _last_iso[1]
    seconds, micros = divmod(round(timestamp * 1_000_000), 1_000_000)  # rounded to the µs, as datetime does
    text = f"{_iso_second(seconds)}.{micros // 1000:03d}Z"
    _last_iso = (timestamp, text)
    return text


_last_iso: tuple[float, str] = (-1.0, "")


def iso_of(when: datetime) -> str:
    """A date and time in UTC (in_utc's) as `iso` writes journey time, from its fields: no float on the way, so
    9999-12-31T23:59:59.999999 stays in its year."""
    return f"{when.date().isoformat()}T{when:%H:%M:%S}.{when.microsecond // 1000:03d}Z"


def in_utc(when: datetime) -> datetime:
    """A client's date and time in UTC (one without a zone is UTC already); ValueError when UTC puts it outside
    the years 1 to 9999 that dates are written in."""
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{when.isoformat()} is outside the years 1 to 9999 once in UTC") from None


_last_day: tuple[int, str] = (0, "1970-01-01T")


def _iso_second(seconds: int) -> str:
    """`2026-11-23T10:00:00` for a Unix second. Every timeline entry and event asks, under an accelerated clock
    nearly always for another second: the date part is made once a day, the time of day by arithmetic."""
    global _last_day
    day, second_of_day = divmod(seconds, 86_400)
    if _last_day[0] != day:
        _last_day = (day, datetime.fromtimestamp(day * 86_400, UTC).date().isoformat() + "T")  # year 1 is 0001
    hours, rest = divmod(second_of_day, 3_600)
    minutes, secs = divmod(rest, 60)
    return f"{_last_day[1]}{hours:02d}:{minutes:02d}:{secs:02d}"


def moment(text: str) -> float:
    """An ISO 8601 time from a person or a client (`2026-12-01`, `2026-12-01T09:00:00Z`, an offset) as a Unix
    timestamp; without a zone it is UTC. ValueError naming the expected form otherwise."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time, e.g. 2026-12-01 or 2026-12-01T09:00:00Z") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()

"""Scheduled triggers, pure: reading a cron expression in a time zone, and which occurrences are due.

Occurrences are computed on journey time (engine/clock.py, which may run faster than real time) with APScheduler
3's `CronTrigger.get_next_fire_time`, which knows cron syntax, time zones and daylight saving (a 02:30 that a
spring-forward skips, a 01:30 that autumn repeats); APScheduler's own scheduler is not used, since it sleeps on
the wall clock.

With `timezone: customer` each customer starts at the schedule's wall-clock time in their own zone. The
occurrence is then read in the first zone to reach any wall-clock time (UTC+14); it carries that wall-clock time
(`local_time`, ISO 8601 without offset), and the journey core holds each customer's new instance until their own
clock shows it (journey/core.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from omnicanal.policy.windows import parse_moment

EVERYONE = "everyone"
"""The audience of a scheduled journey that starts for every customer."""
CUSTOMER = "customer"
"""`timezone: customer`: each customer's own zone (their profile's `timezone`, else OMNICANAL_DEFAULT_TIMEZONE)."""
EARLIEST_ZONE = "Etc/GMT-14"
"""UTC+14 (the Line Islands): the first zone to reach any wall-clock time (POSIX names invert the sign)."""


def check_timezone(name: str) -> str:
    """An IANA zone name, or `customer`."""
    if name == CUSTOMER:
        return name
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris or UTC, or `customer` "
                         "(each customer at that time in their own zone)") from None
    return name


@functools.lru_cache(maxsize=256)
def cron_of(expression: str, timezone: str = "UTC") -> CronTrigger:
    """The cron expression (5 fields: minute hour day month weekday) read in `timezone` (kept: the schedule
    loop asks for the same ones at every look); `customer`: read in the earliest zone."""
    return CronTrigger.from_crontab(expression, timezone=ZoneInfo(EARLIEST_ZONE if timezone == CUSTOMER else timezone))


def check_cron(expression: str) -> str:
    """A cron expression APScheduler reads. Days of the week must be names: APScheduler 3 counts 0 as Monday
    where crontab counts it as Sunday, so `0 9 * * 0` would fire on the wrong day without a word."""
    fields = expression.split()
    if len(fields) == 5 and any(character.isdigit() for character in fields[4]):
        raise ValueError(f"invalid cron expression {expression!r}: write the days of the week as names (MON, "
                         "TUE-FRI, SAT,SUN), not numbers, whose meaning differs between cron dialects; e.g. "
                         "\"0 9 * * MON\"")
    try:
        cron_of(expression)
    except ValueError as exc:
        raise ValueError(f"invalid cron expression {expression!r} ({exc}): 5 fields, minute hour day month "
                         "weekday, e.g. \"0 9 * * MON\"") from None
    return expression


def local_time(timezone: str, occurrence: float) -> str | None:
    """With `timezone: customer`, the wall-clock time each customer starts at on their own clock (the
    occurrence read in the earliest zone); None for a fixed zone (everyone starts at the occurrence)."""
    if timezone != CUSTOMER:
        return None
    return datetime.fromtimestamp(occurrence, ZoneInfo(EARLIEST_ZONE)).replace(tzinfo=None).isoformat()


def customer_moment(local: str, zone: ZoneInfo) -> float | None:
    """When a customer of `zone` reaches the wall-clock time `local`; None if it is no such time."""
    moment = parse_moment(local, zone)
    return None if moment is None else moment.timestamp()


def next_after(cron: CronTrigger, moment: float) -> float | None:
    """The first occurrence strictly after `moment` (epoch seconds); None if there is none. Occurrences fall on
    whole minutes, so starting one second later skips `moment` itself and nothing else.

    A wall-clock time that the clocks going back make come twice (01:30 in New York on the first Sunday of
    November) fires once, at its first coming, for a schedule at fixed times, as cron does: a daily 01:30 is one
    message that day, not two an hour apart. A schedule whose minute or hour is `*` (`*/15 * * * *`) is about
    elapsed time and fires in both hours."""
    start = datetime.fromtimestamp(moment, UTC) + timedelta(seconds=1)
    while True:
        found: datetime | None = cron.get_next_fire_time(None, start)
        if found is None:
            return None
        if not _repeated(cron, found.timestamp()):
            return found.timestamp()
        start = found.astimezone(UTC) + timedelta(seconds=1)  # in UTC: a zone's arithmetic is on its wall clock


def _repeated(cron: CronTrigger, moment: float) -> bool:
    """Whether `moment` is the second coming of a wall-clock time (the clocks went back over it) that a schedule
    at fixed times already fired at its first."""
    fields = {field.name: str(field) for field in cron.fields}
    if fields["minute"].startswith("*") or fields["hour"].startswith("*"):
        return False
    local = datetime.fromtimestamp(moment, cron.timezone)
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


@dataclass(frozen=True)
class Due:
    """What to do at one look: the occurrences to fire, oldest first, and whether older ones were let go."""

    fire: tuple[float, ...]
    skipped: bool


def due(cron: CronTrigger, handled: float | None, now: float, grace: float, looking: float = 0.0) -> Due:
    """The occurrences to fire now, given the moment up to which occurrences were handled (None: never).

    An occurrence is fired at most `grace` seconds late: older ones were missed (no process ran, or the
    schedule is new) and are let go. When nothing was handled yet, only the latest occurrence within the grace
    fires: a journey just deployed does not replay its past. A mark at most `looking` seconds old means the
    processes were looking all along (on a fast clock a look can last longer than the grace): every occurrence
    since it fires.
    """
    if handled is not None and now - handled <= looking:
        grace = max(grace, now - handled)
    since = now - grace if handled is None else max(handled, now - grace)
    skipped = handled is not None and handled < now - grace and _any_between(cron, handled, now - grace)
    fire: list[float] = []
    moment = next_after(cron, since - 1) if handled is None or since > handled else next_after(cron, since)
    while moment is not None and moment <= now:
        fire.append(moment)
        moment = next_after(cron, moment)
    if handled is None:
        fire = fire[-1:]
    return Due(tuple(fire), skipped)


def _any_between(cron: CronTrigger, start: float, end: float) -> bool:
    moment = next_after(cron, start)
    return moment is not None and moment < end

"""Scheduled triggers, pure: reading a cron expression in a time zone, and which occurrences are due.

Occurrences are computed on journey time (engine/clock.py, which may run faster than real time) with APScheduler
3's `CronTrigger.get_next_fire_time`, which knows cron syntax, time zones and daylight saving (a 02:30 that a
spring-forward skips, a 01:30 that autumn repeats); APScheduler's own scheduler is not used, since it sleeps on
the wall clock.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

EVERYONE = "everyone"
"""The audience of a scheduled journey that starts for every customer."""


def check_timezone(name: str) -> str:
    """An IANA zone name; `customer` (each customer at the time in their own zone) is not supported yet."""
    if name == "customer":
        raise ValueError("`customer` (each customer at that time in their own zone) is not supported yet: "
                         "name one zone, e.g. Europe/Paris or UTC")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as Europe/Paris or UTC") from None
    return name


@functools.lru_cache(maxsize=256)
def cron_of(expression: str, timezone: str = "UTC") -> CronTrigger:
    """The cron expression (5 fields: minute hour day month weekday) read in `timezone` (kept: the schedule
    loop asks for the same ones at every look)."""
    return CronTrigger.from_crontab(expression, timezone=ZoneInfo(timezone))


def check_cron(expression: str) -> str:
    try:
        cron_of(expression)
    except ValueError as exc:
        raise ValueError(f"invalid cron expression {expression!r} ({exc}): 5 fields, minute hour day month "
                         "weekday, e.g. \"0 9 * * MON\"") from None
    return expression


def next_after(cron: CronTrigger, moment: float) -> float | None:
    """The first occurrence strictly after `moment` (epoch seconds); None if there is none. Occurrences fall on
    whole minutes, so starting one second later skips `moment` itself and nothing else."""
    found = cron.get_next_fire_time(None, datetime.fromtimestamp(moment, UTC) + timedelta(seconds=1))
    return found.timestamp() if found is not None else None


@dataclass(frozen=True)
class Due:
    """What to do at one look: the occurrences to fire, oldest first, and whether older ones were let go."""

    fire: tuple[float, ...]
    skipped: bool


def due(cron: CronTrigger, handled: float | None, now: float, grace: float) -> Due:
    """The occurrences to fire now, given the moment up to which occurrences were handled (None: never).

    An occurrence is fired at most `grace` seconds late: older ones were missed (no process ran, or the
    schedule is new) and are let go. When nothing was handled yet, only the latest occurrence within the grace
    fires: a journey just deployed does not replay its past.
    """
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

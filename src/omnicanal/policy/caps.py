"""Frequency caps: at most N marketing messages per customer per period, across channels and journeys.

Written `3/1d` (any channel, any journey), `channel:1/4h` (per channel) or, in a journey's `caps`, counted for
that journey only. Transactional messages are never capped. The check and the record happen in one Lua script
on the customer's slot (store/sends.py), so two sends racing for the last slot cannot both win.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from omnicanal.journey.durations import format_duration, parse_duration

Scope = Literal["customer", "channel", "journey"]


@dataclass(frozen=True)
class Cap:
    limit: int
    seconds: float
    scope: Scope = "customer"

    @classmethod
    def parse(cls, text: str, scope: Scope = "customer") -> Cap:
        """`3/1d` or `channel:1/4h`; ValueError naming the expected shape."""
        body = text.strip()
        if body.startswith("channel:"):
            scope, body = "channel", body[len("channel:"):]
        count, sep, period = body.partition("/")
        if not sep or not count.strip().isdigit() or int(count) < 1:
            raise ValueError(f"bad frequency cap {text!r}: use COUNT/PERIOD, e.g. 3/1d or channel:1/4h")
        return cls(int(count), parse_duration(period.strip()), scope)

    def __str__(self) -> str:
        prefix = {"customer": "", "channel": "channel:", "journey": "journey:"}[self.scope]
        return f"{prefix}{self.limit}/{format_duration(self.seconds)}"


def longest(caps: Iterable[Cap]) -> float:
    """The longest period of these caps (0 for none): how far back the customer's sends record must reach."""
    return max((cap.seconds for cap in caps), default=0.0)


def parse_caps(text: str) -> tuple[Cap, ...]:
    """A comma-separated list of caps, e.g. `3/1d,channel:1/4h` (empty: no cap)."""
    return tuple(Cap.parse(part) for part in text.split(",") if part.strip())

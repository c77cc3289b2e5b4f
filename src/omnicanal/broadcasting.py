"""Asking for a broadcast — one journey started for a whole audience — for the API and the command line alike.

The request is checked here, completely, before anything is stored: the journey must be loaded, the audience
named one way only (a segment, a condition on customers, or everyone, said explicitly so that no one broadcasts
to every customer by forgetting an option), the condition must compile, the rate be positive. The walk itself
is done by the workers (engine/broadcasts.py); the starts are decided per customer by the journey core, with
the journey's re-entry rules, and each message with consent, caps and quiet hours as for any journey.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Collection, Mapping
from typing import Any

from omnicanal.errors import ExpressionError, InputError
from omnicanal.expressions import Expression
from omnicanal.store.broadcasts import SCHEDULED, Broadcast, BroadcastStore


def audience_of(segment: str | None, where: str | None, everyone: bool) -> dict[str, Any]:
    """The audience from its three ways of being named; InputError unless exactly one is used."""
    named = [(name, value) for name, value in (("segment", segment), ("where", where),
                                                ("everyone", True if everyone else None)) if value is not None]
    if len(named) != 1:
        raise InputError([{"field": "audience", "message": "name the audience one way: a segment id, a "
                                                           "condition on customers (where), or everyone: true"}])
    name, value = named[0]
    if name == "where":
        try:
            Expression(str(value))
        except ExpressionError as exc:
            raise InputError([{"field": "audience.where", "message": str(exc)}]) from None
    return {name: value}


def new_broadcast(journey: str, journeys: Collection[str], audience: dict[str, Any], segments: Collection[str],
                  now: float, at: float | None = None, rate: float = 0.0, data: Mapping[str, Any] | None = None,
                  origin: str = "api", broadcast_id: str | None = None, local_time: str = "") -> Broadcast:
    """A broadcast ready to store; InputError naming each field that is wrong. `local_time`: each customer
    starts at that wall-clock time on their own clock (a scheduled journey with `timezone: customer`)."""
    errors = []
    if journey not in journeys:
        errors.append({"field": "journey", "message": f"no journey {journey!r} is loaded; loaded: "
                                                      f"{', '.join(sorted(journeys)) or 'none'}"})
    if "segment" in audience and audience["segment"] not in segments:
        errors.append({"field": "audience.segment", "message": f"no segment {audience['segment']!r}; defined: "
                                                               f"{', '.join(sorted(segments)) or 'none'}"})
    if not 0 <= rate < math.inf:  # NaN too: a walk would wait NaN seconds between batches
        errors.append({"field": "rate", "message": "customers per second: a positive number (0: no limit)"})
    if errors:
        raise InputError(errors)
    return Broadcast(id=broadcast_id or f"b_{secrets.token_hex(6)}", journey=journey, audience=audience,
                     status=SCHEDULED, at=now if at is None else at, created_at=now, rate=rate,
                     data=dict(data or {}), origin=origin, local_time=local_time)


async def start(store: BroadcastStore, broadcast: Broadcast) -> Broadcast:
    """Store it: the workers walk its audience once its moment has come."""
    if not await store.create(broadcast):
        raise InputError([{"field": "id", "message": f"a broadcast {broadcast.id!r} exists already"}])
    return broadcast

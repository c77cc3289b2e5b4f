"""A customer's segments, kept as their work applies: aggregates updated by events, memberships re-evaluated.

Membership is evaluated again when something it reads may have changed: an aggregate (an event it is kept from,
or a window expiring), or the profile (`customer.updated`, an `update` step). A window expiring with no event is
seen through one timer per customer, due when the earliest kept data leaves its window (never a scan of the
customers). Entering or leaving a segment emits `segment.entered` / `segment.left` (`properties.segment`) into
the customer's ordered work when a journey listens to it, and says which segments were evaluated so that the
engine brings the segment index (a Redis set per segment) in line.

What is kept, in `CustomerState.audience` (stored as one profile field): `a` the aggregates' data by name
(journey/aggregates.py), `s` the segments the customer is in, `due` when the expiry timer is set for.
"""

from __future__ import annotations

import hashlib
from typing import Any

from omnicanal.errors import ExpressionError
from omnicanal.journey import aggregates
from omnicanal.journey.advance import CUSTOMER_UPDATED
from omnicanal.journey.effects import EvaluateSegments, EventArrived, TimerChange, TimerFired, Work
from omnicanal.journey.segments import Aggregate
from omnicanal.journey.session import Session

TIMER = "audience"
"""The instance id of a customer's expiry timer (instance ids are hex digests: it is no instance's)."""
ENTERED, LEFT = "segment.entered", "segment.left"


class Tracker:
    """Follows one session's work for the customer's segments (see `track`)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.catalog = session.context.segments
        self.kept: dict[str, Any] = session.state.audience
        self._fresh = False
        self._attributes = session.state.customer.get("attributes")

    def takes(self, item: Work) -> bool:
        """Called before an item applies; True for the tracker's own work, which it applies itself: its timer,
        and an evaluation of every segment."""
        if isinstance(item, TimerFired) and item.instance_id == TIMER:
            if self.kept.get("due") is not None and repr(self.kept["due"]) == item.token:
                self.kept["due"] = None  # it fired: nothing to cancel
                self._evaluate()
            return True
        if isinstance(item, EvaluateSegments):
            self._evaluate()
            return True
        if isinstance(item, EventArrived):  # an event applied before is skipped by the core: not counted again
            self._fresh = item.unique or item.event["id"] not in self.session.state.seen
        return False

    def applied(self, item: Work) -> None:
        """Called after an item applied: the event counted, membership evaluated again if it may have changed."""
        counted: tuple[str, ...] = ()
        profile = False
        if isinstance(item, EventArrived) and self._fresh:
            counted = self._count(item.event)
            profile = item.event["name"] == CUSTOMER_UPDATED
        attributes = self.session.state.customer.get("attributes")
        if profile or attributes is not self._attributes:  # an update step replaces the attributes' mapping
            self._attributes = attributes
            self._evaluate()
        elif counted:
            self._evaluate(frozenset(counted))

    def _count(self, event: dict[str, Any]) -> tuple[str, ...]:
        """The event added to the aggregates kept from it; their names."""
        names = self.catalog.by_event.get(event["name"], ())
        if not names:
            return names
        session = self.session
        kept = self.kept.setdefault("a", {})
        scope = session.scope(None, event)
        for name in names:
            aggregate = self.catalog.aggregates[name]
            amount = _amount(session, name, aggregate, scope)
            if amount is not None:
                kept[name] = data = aggregates.fresh(kept.get(name), aggregate)
                aggregates.add(data, aggregate, amount, session.now)
        return names

    def _evaluate(self, counted: frozenset[str] | None = None) -> None:
        """The segments evaluated now (with `counted`, only those reading one of these aggregates: nothing else
        they read changed); entries and exits said; the expiry timer moved if it must."""
        session, catalog = self.session, self.catalog
        kept = self.kept.setdefault("a", {})
        values: dict[str, Any] = {}
        due: float | None = None
        for name, aggregate in catalog.aggregates.items():
            data = aggregates.fresh(kept.get(name), aggregate)
            aggregates.expire(data, aggregate, session.now)
            if len(data) > 1:
                kept[name] = data
            else:
                kept.pop(name, None)
            values[name] = aggregates.value(data, aggregate)
            expiry = aggregates.next_expiry(data, aggregate)
            if expiry is not None and (due is None or expiry < due):
                due = expiry
        for name in set(kept) - set(catalog.aggregates):  # no segment defines it any more
            del kept[name]
        before = set(self.kept.get("s", ())) & set(catalog.by_id)
        evaluated = [segment for segment in catalog.by_id.values()
                     if counted is None or not counted.isdisjoint(segment.aggregates)]
        now = {segment.id for segment in evaluated if session.holds(
            segment.where, {"customer": session.state.customer, "now": session.now_datetime,
                            "aggregates": {name: values[name] for name in segment.aggregates}},
            f"segment {segment.id}.where")}
        now |= before - {segment.id for segment in evaluated}
        for segment_id in sorted(now - before):
            self._say(ENTERED, segment_id)
        for segment_id in sorted(before - now):
            self._say(LEFT, segment_id)
        self.kept["s"] = sorted(now)
        session.changes.memberships.update({segment.id: segment.id in now for segment in evaluated})
        self._set_timer(due)
        session.state.audience = self.kept
        session.changes.audience = True

    def _set_timer(self, due: float | None) -> None:
        old = self.kept.get("due")
        if old == due:
            return
        if old is not None:
            self.session.changes.old_timers.append(TimerChange(TIMER, repr(old), old))
        if due is not None:
            self.session.changes.new_timers.append(TimerChange(TIMER, repr(due), due))
        self.kept["due"] = due

    def _say(self, name: str, segment_id: str) -> None:
        """A change of membership, as an event for the journeys that listen to it (its id derived from the
        customer's timeline position: a replay of the same work emits the same id, applied once)."""
        session = self.session
        if not session.context.journeys.listens(name):
            return
        digest = hashlib.sha256(f"{session.customer_id}\x00{segment_id}\x00{name}\x00{session.timeline_end()}"
                                .encode()).hexdigest()[:32]
        session.changes.emitted.append({
            "id": f"evt_seg_{digest}", "name": name, "customer_id": session.customer_id, "timestamp": session.at,
            "received_at": session.now, "properties": {"segment": segment_id}})


def track(session: Session) -> Tracker | None:
    """A tracker for the session, or None when no segment is defined (nothing to keep)."""
    return Tracker(session) if session.context.segments else None


def _amount(session: Session, name: str, aggregate: Aggregate, scope: dict[str, Any]) -> Any:
    """What one event adds to an aggregate (None: nothing, the reason said on the timeline)."""
    if aggregate.count:
        return 1
    expression = aggregate.sum if aggregate.sum is not None else aggregate.last
    assert expression is not None
    try:
        found = expression.evaluate(scope)
    except ExpressionError as exc:
        session.record_error(f"aggregate {name}", str(exc))
        return None
    if aggregate.sum is not None and (isinstance(found, bool) or not isinstance(found, int | float)):
        session.record_error(f"aggregate {name}", f"{expression.source} gave {found!r}: a sum adds numbers")
        return None
    return found

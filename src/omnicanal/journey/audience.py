"""A customer's segments, kept as their work applies: aggregates updated by events, memberships re-evaluated.

Membership is evaluated again when something it reads may have changed: an aggregate (an event it is kept from,
or a window expiring), or the profile (`customer.updated`, an `update` step); only the segments reading what
changed are (segments.Reads, found in each `where` when the files load). A window expiring with no event is
seen through one timer per customer, due when the earliest kept data leaves its window (never a scan of the
customers). Entering or leaving a segment emits `segment.entered` / `segment.left` (`properties.segment`) into
the customer's ordered work when a journey listens to it, and says which segments were evaluated so that the
engine brings the segment index (a Redis set per segment) in line.

What is kept, in `CustomerState.audience` (stored as one profile field): `a` the aggregates' data by name
(journey/aggregates.py), `s` the segments the customer is in, `due` when the expiry timer is set for, `v` the
definitions (Segments.signature) of the last evaluation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
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
_ABSENT = object()


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
                self._evaluate(everything=True)
            return True
        if isinstance(item, EvaluateSegments):
            self._evaluate()
            return True
        if isinstance(item, EventArrived):  # an event applied before is skipped by the core: not counted again
            self._fresh = item.unique or item.event["id"] not in self.session.state.seen
        return False

    def applied(self, item: Work) -> None:
        """Called after an item applied: the event counted, and the segments whose membership it may have changed
        evaluated again (by an aggregate it counted, or a change of the profile: `customer.updated`, or an
        `update` step, which replaces the attributes' mapping)."""
        counted: tuple[str, ...] = ()
        profile = False
        fields: frozenset[str] | None = frozenset()
        if isinstance(item, EventArrived) and self._fresh:
            counted = self._count(item.event)
            if item.event["name"] == CUSTOMER_UPDATED:
                profile, fields = True, _announced(item.event)
        attributes = self.session.state.customer.get("attributes")
        if attributes is not self._attributes:
            changed = _changed(self._attributes, attributes)
            profile, fields = True, None if fields is None else fields | changed
            self._attributes = attributes
        if counted or profile:
            self._evaluate(frozenset(counted), profile, fields)

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

    def _evaluate(self, counted: frozenset[str] = frozenset(), profile: bool = False,
                  fields: frozenset[str] | None = frozenset(), everything: bool = False) -> None:
        """The segments whose membership may have changed evaluated now (Segments.reads: those reading an
        aggregate `counted` or left by expiry, or, on a change of the profile, one of the `fields` changed —
        None: unknown; `everything`: all of them), entries and exits said, the expiry timer moved if it must.
        Every segment is evaluated at the customer's first evaluation, and at the first one after the definitions
        changed: what a segment reads may have been set before it was defined."""
        session, catalog, kept = self.session, self.catalog, self.kept
        data = kept.setdefault("a", {})
        everything = everything or kept.get("v") != catalog.signature
        due = kept.get("due")
        changed: set[str] = set(counted)
        if everything or (due is not None and due <= session.now):
            changed |= self._expire(data)
            due = _earliest(data, catalog.aggregates)
        elif counted:  # what was added leaves its window after what was kept before it, a last value excepted
            due = _earliest(data, catalog.aggregates, None if any(
                catalog.aggregates[name].kind == "last" for name in counted) else counted, due)
        evaluated = [segment for segment in catalog.by_id.values()
                     if everything or catalog.reads[segment.id].moved_by(changed, profile, fields)]
        if not (evaluated or changed or due != kept.get("due")):
            return  # nothing it keeps changed
        before = set(kept.get("s", ())) & set(catalog.by_id)
        now = set(before)
        for segment in evaluated:
            scope = {"customer": session.state.customer, "now": session.now_datetime, "aggregates": {
                name: _value(data, name, catalog.aggregates[name]) for name in catalog.reads[segment.id].aggregates}}
            if session.holds(segment.where, scope, f"segment {segment.id}.where"):
                now.add(segment.id)
            else:
                now.discard(segment.id)
        for segment_id in sorted(now - before):
            self._say(ENTERED, segment_id)
        for segment_id in sorted(before - now):
            self._say(LEFT, segment_id)
        session.changes.memberships.update({segment.id: segment.id in now for segment in evaluated})
        members = sorted(now)
        if changed or everything or members != kept.get("s") or due != kept.get("due"):
            kept["s"], kept["v"] = members, catalog.signature
            self._set_timer(due)
            session.state.audience = kept
            session.changes.audience = True

    def _expire(self, data: dict[str, Any]) -> set[str]:
        """The data out of its window dropped, and data no definition keeps any more (a segment removed or
        changed); the names of the aggregates whose value changed."""
        expired: set[str] = set()
        for name in list(data):
            aggregate = self.catalog.aggregates.get(name)
            if aggregate is None or data[name].get("d") != aggregate.signature:
                del data[name]
                continue
            if aggregates.expire(data[name], aggregate, self.session.now):
                expired.add(name)
            if len(data[name]) == 1:  # nothing left
                del data[name]
        return expired

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


def _announced(event: dict[str, Any]) -> frozenset[str] | None:
    """The attributes a `customer.updated` says changed (None: it does not say)."""
    changes = event["properties"].get("changes")
    return frozenset({"attributes", *changes}) if isinstance(changes, dict) else None


def _changed(before: dict[str, Any] | None, after: dict[str, Any] | None) -> frozenset[str]:
    """The attributes an `update` step changed (with `attributes` itself when any did)."""
    before, after = before or {}, after or {}
    changed = {name for name in before.keys() | after.keys() if before.get(name, _ABSENT) != after.get(name, _ABSENT)}
    return frozenset({"attributes", *changed}) if changed else frozenset()


def _earliest(data: dict[str, Any], defined: Mapping[str, Aggregate], names: Iterable[str] | None = None,
              due: float | None = None) -> float | None:
    """When the first of these aggregates' data (None: all kept) leaves its window, or `due` if earlier."""
    for name in data if names is None else names:
        aggregate = defined.get(name)
        expiry = aggregates.next_expiry(data[name], aggregate) if aggregate is not None and name in data else None
        if expiry is not None and (due is None or expiry < due):
            due = expiry
    return due


def _value(data: dict[str, Any], name: str, aggregate: Aggregate) -> Any:
    return aggregates.value(aggregates.fresh(data.get(name), aggregate), aggregate)


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

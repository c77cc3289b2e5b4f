"""The bookkeeping of applying one customer's work: the state being changed, the changes collected, and the
moves every part of the core shares (record on the timeline, save, wait, end an instance, evaluate conditions).

No I/O: what it collects (Changes) is written by the engine afterwards.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from omnicanal.errors import ExpressionError
from omnicanal.expressions import Expression
from omnicanal.journey.attribution import kept, touchpoint
from omnicanal.journey.effects import FALLBACK_TOKEN_PREFIX, Changes, TimerChange
from omnicanal.journey.model import DigestStep, EventMatch, Journey, SendStep, WaitForStep
from omnicanal.journey.segments import NO_SEGMENTS, Segments
from omnicanal.journey.state import CustomerState, Instance, Wait, goal_watch
from omnicanal.links import Links
from omnicanal.policy.caps import Cap
from omnicanal.policy.choice import Rules
from omnicanal.render import TemplateCatalog
from omnicanal.timestamps import iso


class Journeys(Protocol):
    """The journeys the core may run: the current ones by trigger, and any version an instance runs on (the
    engine makes sure the versions of a customer's instances are at hand before applying their work)."""

    def triggered_by(self, event_name: str) -> Sequence[Journey]: ...

    def loaded(self, journey_id: str, version: str) -> Journey: ...

    def current_of(self, journey_id: str) -> Journey | None:
        """The current version of a journey (what a broadcast starts); None if no such journey is loaded."""

    def listens(self, event_name: str) -> bool:
        """Whether a journey reacts to events of this name (trigger, wait, exit, goal): a current one, or an older
        version instances may still run on."""


@dataclass(frozen=True, slots=True)
class Context:
    """What the core needs besides the customer: journeys, templates and the brand's rules."""

    journeys: Journeys
    templates: TemplateCatalog
    rules: Rules
    caps: tuple[Cap, ...] = ()
    """Frequency caps of every marketing send (OMNICANAL_FREQUENCY_CAPS)."""
    default_locale: str = "en"
    retry_budget: float = 3600.0
    """Journey seconds a send retries a failing channel before the next channel."""
    timeline_limit: int = 5_000
    paused: frozenset[str] = frozenset()
    """Journeys paused (`omnicanal journeys pause`): no new entries, their instances defer their work."""
    global_control: float = 0.0
    """The share of customers (0-1, by a hash of their id) who get no marketing at all, whose goals still
    count: the baseline of the whole programme (OMNICANAL_GLOBAL_CONTROL)."""
    coupon_secret: bytes = b""
    """The key coupon codes are derived with (OMNICANAL_COUPON_SECRET, or one kept per workspace)."""
    receipts: frozenset[str] = frozenset()
    """Channels whose providers report delivery (channels.CHANNELS): a message sent there keeps its later
    channels for a fallback even without `fallback_after`, should a failure receipt come."""
    links: Links | None = None
    """Mints the tracked and unsubscribe links of messages (OMNICANAL_PUBLIC_URL, OMNICANAL_LINK_SECRET); None:
    links stay as written."""
    segments: Segments = NO_SEGMENTS
    """The segments whose membership is kept per customer (OMNICANAL_SEGMENTS_DIR; journey/audience.py)."""


class Session:
    """One customer's state while their work is applied."""

    def __init__(self, context: Context, state: CustomerState, now: float) -> None:
        self.context = context
        self.state = state
        self.customer_id = state.customer_id
        self.now = now
        self.now_datetime = datetime.fromtimestamp(now, UTC)
        """`now` in expressions and templates: the session's moment, the same for all its steps."""
        self.at = iso(now)
        self.changes = Changes()
        self.event_at: int | None = None
        """The timeline position of the event being applied: instances it starts or moves keep it there."""
        self.applying: dict[str, Any] | None = None
        """The event being applied (None while a timer is): a step it leads to may take it in (a digest)."""
        self.sends_visited: set[str] = set()
        """The step visits (`<instance>.<seq>`) whose send this session carried out (journey/sending.py)."""
        self._goals_taken: dict[str, set[tuple[str, str | None]]] = {}
        """Per event id, the (journey, key) pairs it already converted, or that a running instance of a paused
        journey keeps for its resume: one purchase is one conversion of a journey, credited to its latest
        instance, even when earlier ones are still inside their goal window."""

    # -- scope and conditions -------------------------------------------------------------------------------

    def scope(self, instance: Instance | None, event: Mapping[str, Any]) -> dict[str, Any]:
        """What expressions and templates see."""
        return {"customer": self.state.customer, "event": event, "vars": instance.vars if instance else {},
                "now": self.now_datetime}

    def holds(self, condition: Expression | None, scope: dict[str, Any], where: str) -> bool:
        """A condition's truth; one that fails to evaluate is false and said on the timeline."""
        if condition is None:
            return True
        try:
            return condition.test(scope)
        except ExpressionError as exc:
            self.record_error(where, str(exc))
            return False

    def matches(self, rule: EventMatch | WaitForStep | DigestStep, event: Mapping[str, Any],
                instance: Instance | None, where: str) -> bool:
        return rule.event == event["name"] and self.holds(rule.where, self.scope(instance, event), where)

    def evaluate_all(self, expressions: Mapping[str, Expression], scope: dict[str, Any], where: str
                     ) -> dict[str, Any]:
        """Values of the expressions that evaluate; each failure is said on the timeline and leaves its name
        unset."""
        values: dict[str, Any] = {}
        for name, expression in expressions.items():
            try:
                values[name] = expression.evaluate(scope)
            except ExpressionError as exc:
                self.record_error(f"{where}.{name}", str(exc))
        return values

    def take_goal(self, event_id: str, journey_id: str, key: str | None) -> None:
        """This event's conversion of the journey (and key) is taken: no other instance of it converts on it."""
        self._goals_taken.setdefault(event_id, set()).add((journey_id, key))

    def goal_taken(self, event_id: str, journey_id: str, key: str | None) -> bool:
        return (journey_id, key) in self._goals_taken.get(event_id, ())

    # -- timeline and bookkeeping ---------------------------------------------------------------------------

    def record(self, kind: str, **fields: Any) -> None:
        self.changes.timeline.append({"kind": kind, "at": self.at, **fields})

    def record_error(self, where: str, message: str) -> None:
        self.record("error", where=where, message=message)

    def count(self, journey_id: str, counter: str, by: float = 1) -> None:
        self.changes.stats[journey_id][counter] += by

    def timeline_end(self) -> int:
        """The position the customer's next timeline entry will have, counting this session's entries."""
        return self.state.timeline_end + len(self.changes.timeline)

    def save(self, instance: Instance) -> None:
        self.state.instances[instance.id] = instance
        self.changes.saved.add(instance.id)

    def end(self, instance: Instance, journey: Journey, status: str, reason: str | None = None) -> None:
        """Finish an instance: forget its wait and its pending fallbacks, count it, say it on the timeline."""
        self._cancel_held_message(instance, journey, status + (f" ({reason})" if reason else ""))
        self.stop_waiting(instance, journey)
        for message_id in list(instance.fallbacks or ()):
            self.cancel_fallback(instance, message_id)
        self.state.instances.pop(instance.id, None)
        self.changes.saved.discard(instance.id)
        self.changes.ended.add(instance.id)
        goal = journey.goal
        if status != "failed" and goal is not None and goal.within is not None and not instance.converted \
                and instance.started_at + goal.within >= self.now:  # a goal met within its window still counts
            self.state.watches.append(goal_watch(instance, instance.started_at + goal.within))
            self.changes.watches = True
        # Re-entry rules read when the last instance began; written as it ends (while it runs, the instance
        # itself keeps a second one from starting).
        entry = entry_name(journey.id, instance.key)
        self.state.entries[entry] = self.changes.entries[entry] = instance.started_at
        self.count(journey.id, status)
        if reason:
            self.count(journey.id, f"{status}:{reason}")
        self.record("journey", journey=journey.id, version=journey.version, status=status,
                    **({"reason": reason} if reason else {}))

    def _cancel_held_message(self, instance: Instance, journey: Journey, why: str) -> None:
        """A message held (quiet hours) or waiting for a provider's retry will never go: its timeline says
        `held` or `retrying` until told otherwise."""
        if instance.waiting is None or instance.waiting.kind != "hold":
            return
        step = journey.steps[instance.position]
        if isinstance(step.action, SendStep | DigestStep):
            self.count(journey.id, f"step:{step.id}:cancelled")
            self.record("message", journey=journey.id, step=step.id, template=step.action.template,
                        purpose=step.action.purpose, status="cancelled", reason=f"journey {why}")

    def wait(self, instance: Instance, journey: Journey, kind: str, until: float | None) -> None:
        token = str(instance.seq)
        instance.waiting = Wait(kind=kind, token=token, until=until)
        self.count(journey.id, f"step:{journey.steps[instance.position].id}:waiting")
        if until is not None:
            self.changes.new_timers.append(TimerChange(instance.id, token, until))

    def stop_waiting(self, instance: Instance, journey: Journey) -> None:
        """The instance no longer waits (resumed, or ended): its timer, if any, is removed."""
        wait = instance.waiting
        if wait is None:
            return
        instance.waiting = None
        self.count(journey.id, f"step:{journey.steps[instance.position].id}:waiting", -1)
        if wait.until is not None:
            self.changes.old_timers.append(TimerChange(instance.id, wait.token, wait.until))

    def touched(self, message_id: str, journey_id: str, step_id: str, channel: str) -> None:
        """A message reached the customer (or may have): a touchpoint later conversions may credit."""
        self.state.touchpoints = kept([*self.state.touchpoints, touchpoint(message_id, journey_id, step_id, channel,
                                                                           self.now)], self.now)
        self.changes.touchpoints = True

    def schedule_fallback(self, instance: Instance, message_id: str, step_id: str, channels: Sequence[str],
                          due: float | None, data: dict[str, Any] | None = None, coupon: str | None = None) -> None:
        """Keep a message's later channels on its instance (with the `data` it was rendered with, when the step
        computed it: a digest's items; and its coupon code); with `due`, try them then unless it is delivered."""
        fallbacks = instance.fallbacks if instance.fallbacks is not None else {}
        fallbacks[message_id] = {"step": step_id, "channels": list(channels), "due": due,
                                 **({"data": data} if data is not None else {}),
                                 **({"coupon": coupon} if coupon is not None else {})}
        instance.fallbacks = fallbacks
        if due is not None:
            self.changes.new_timers.append(TimerChange(instance.id, fallback_token(message_id), due))

    def cancel_fallback(self, instance: Instance, message_id: str) -> dict[str, Any] | None:
        """Forget a message's fallback (delivered, sent, or its instance ended); returns what it was."""
        fallbacks = instance.fallbacks or {}
        pending = fallbacks.pop(message_id, None)
        if pending is not None and pending.get("due") is not None:
            self.changes.old_timers.append(TimerChange(instance.id, fallback_token(message_id), pending["due"]))
        if not fallbacks:
            instance.fallbacks = None
        return pending

    def finish(self) -> Changes:
        """The changes, once every item is applied. An instance whose event's timeline entry is about to be
        trimmed away (a timeline keeps `timeline_limit` entries) keeps a copy of the event instead. A timer both
        removed and added again (a fallback held until quiet hours end) is only added: removals are written last."""
        changes = self.changes
        watching = [watch for watch in self.state.watches if watch["until"] >= self.now]
        if len(watching) != len(self.state.watches):
            self.state.watches, changes.watches = watching, True
        added = {(timer.instance_id, timer.token) for timer in changes.new_timers}
        changes.old_timers = [timer for timer in changes.old_timers if (timer.instance_id, timer.token) not in added]
        first_kept = self.timeline_end() - self.context.timeline_limit
        for instance in self.state.instances.values():
            if instance.event_at is not None and instance.event_at < first_kept:
                instance.event_at = None
                self.save(instance)
        return changes


def entry_name(journey_id: str, key: str | None) -> str:
    """Where re-entry rules keep when the last instance began: per journey, or per journey and key."""
    return journey_id if key is None else f"{journey_id}|{key}"


def share_of(*parts: str) -> float:
    """A stable number in [0, 1) for these parts (a hash, the same in every process and on every run):
    experiment arms and the global control group are sticky by it."""
    digest = hashlib.blake2b("\x00".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2 ** 64


def fallback_token(message_id: str) -> str:
    return FALLBACK_TOKEN_PREFIX + message_id

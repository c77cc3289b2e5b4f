"""Applying a customer's work — events and fired timers — to their journeys, one item at a time, in order.

For each event: it is recorded on the timeline; running instances whose journey exits on it end; goals it
meets are recorded as conversions; instances waiting for it resume; journeys it triggers start. Every affected
instance then advances until it waits or ends. All of it is collected into one Commit written atomically.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from omnicanal.engine.clock import iso
from omnicanal.engine.instance import Instance, Wait
from omnicanal.errors import ExpressionError
from omnicanal.expressions import Expression
from omnicanal.journey.model import DigestStep, EventMatch, Journey, SendStep, WaitForStep
from omnicanal.store.customers import Commit, Snapshot
from omnicanal.store.keys import valid_customer_id
from omnicanal.store.work import FALLBACK_TOKEN, WorkItem, stream_position

if TYPE_CHECKING:
    from omnicanal.engine.engine import Engine

log = structlog.get_logger("omnicanal.engine")

IDENTIFY = "identify"
"""`{"name": "identify", "customer_id": "c42", "properties": {"anonymous_id": "anon-123"}}`: the visitor
anon-123 is c42 — their history, attributes and running journeys are merged into c42."""


@dataclass(slots=True)
class TimerChange:
    customer_id: str
    instance_id: str
    token: str
    due: float


def _customer_view(customer_id: str, snapshot: Snapshot) -> dict[str, Any]:
    """`customer` in expressions and templates: attributes at the top, reserved profile fields over them."""
    profile = snapshot.profile
    return {
        **snapshot.attributes,
        "id": customer_id,
        "attributes": snapshot.attributes,
        "locale": profile.get("locale"),
        "timezone": profile.get("timezone"),
        "addresses": profile.get("addresses", {}),
        "channel_preference": profile.get("channel_preference", []),
        "consents": profile.get("consents", {}),
        "whatsapp_last_inbound": profile.get("whatsapp_last_inbound"),
    }


class CustomerSession:
    """One customer's state while their work is applied; `commit` and timer changes are written after."""

    def __init__(self, engine: Engine, snapshot: Snapshot) -> None:
        self.engine = engine
        self.snapshot = snapshot
        self.customer_id = snapshot.customer_id
        self.customer = _customer_view(snapshot.customer_id, snapshot)
        self.instances = {iid: Instance.from_json(data) for iid, data in snapshot.instances.items()}
        self.commit = Commit()
        self.new_timers: list[TimerChange] = []
        self.old_timers: list[TimerChange] = []
        self.stats: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.identified: list[str] = []
        """Anonymous ids an `identify` event said are this customer: merged after the commit."""
        self.applied = stream_position(snapshot.applied) if snapshot.applied else None
        """Where in the customer's work stream their stored state stands."""
        self.event_at: int | None = None
        """The timeline position of the event being applied: instances it starts or moves keep it there."""
        self.now = engine.clock.now()
        self.now_datetime = datetime.fromtimestamp(self.now, UTC)
        """`now` in expressions and templates: the session's moment, the same for all its steps."""

    # -- scope and conditions -------------------------------------------------------------------------------

    def scope(self, instance: Instance | None, event: dict[str, Any]) -> dict[str, Any]:
        """What expressions and templates see."""
        return {"customer": self.customer, "event": event, "vars": instance.vars if instance else {},
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

    def matches(self, rule: EventMatch | WaitForStep | DigestStep, event: dict[str, Any], instance: Instance | None,
                where: str) -> bool:
        return rule.event == event["name"] and self.holds(rule.where, self.scope(instance, event), where)

    # -- timeline and bookkeeping ---------------------------------------------------------------------------

    def record(self, kind: str, **fields: Any) -> None:
        self.commit.timeline.append({"kind": kind, "at": iso(self.engine.clock.now()), **fields})

    def record_error(self, where: str, message: str) -> None:
        log.warning("journey_error", customer_id=self.customer_id, where=where, error=message)
        self.record("error", where=where, message=message)

    def save(self, instance: Instance) -> None:
        self.instances[instance.id] = instance
        self.commit.instances[instance.id] = instance.to_json()

    def end(self, instance: Instance, journey: Journey, status: str, reason: str | None = None) -> None:
        """Finish an instance: forget its wait, count it, say it on the timeline."""
        self.stop_waiting(instance, journey)
        self.instances.pop(instance.id, None)
        self.commit.instances.pop(instance.id, None)
        self.commit.ended.add(instance.id)
        # The entry time re-entry rules read is written as the instance ends: while it runs, the instance itself
        # keeps a second one from starting, and a waiting customer costs one key less.
        self.commit.entries[journey.id] = instance.started_at
        self.stats[journey.id][status] += 1
        self.record("journey", journey=journey.id, version=journey.version, status=status,
                    **({"reason": reason} if reason else {}))

    def wait(self, instance: Instance, journey: Journey, kind: str, until: float | None) -> None:
        token = str(instance.seq)
        instance.waiting = Wait(kind=kind, token=token, until=until)
        self.stats[journey.id][f"step:{journey.steps[instance.position].id}:waiting"] += 1
        if until is not None:
            self.new_timers.append(TimerChange(self.customer_id, instance.id, token, until))

    def schedule(self, instance_id: str, token: str, due: float) -> None:
        """A timer not tied to the instance's wait (a message's fallback deadline)."""
        self.new_timers.append(TimerChange(self.customer_id, instance_id, token, due))

    def stop_waiting(self, instance: Instance, journey: Journey) -> None:
        wait = instance.waiting
        if wait is None:
            return
        instance.waiting = None
        self.stats[journey.id][f"step:{journey.steps[instance.position].id}:waiting"] -= 1
        if wait.until is not None:
            self.old_timers.append(TimerChange(self.customer_id, instance.id, wait.token, wait.until))

    def _timeline_end(self) -> int:
        """The position the customer's next timeline entry will have, counting this session's entries."""
        return self.snapshot.timeline_end + len(self.commit.timeline)

    def prepare_commit(self) -> None:
        """Called before the commit. An instance whose event's timeline entry the commit trims away (a timeline
        keeps OMNICANAL_TIMELINE_LIMIT entries) stores the event itself again."""
        first_kept = self._timeline_end() - self.engine.customers.timeline_limit
        for instance in list(self.instances.values()):
            if instance.event_at is not None and instance.event_at < first_kept:
                instance.event_at = None
                self.save(instance)

    # -- work items ------------------------------------------------------------------------------------------

    async def apply(self, item: WorkItem) -> None:
        if item.entry_id:  # from the stream: one at or before the last applied entry was applied already
            position = stream_position(item.entry_id)
            if self.applied is not None and position <= self.applied:
                return
            self.applied = position
            self.commit.applied = item.entry_id
        if item.kind == "event" and item.event is not None:
            await self.apply_event(item.event, item.unique)
        elif item.kind == "drain" and item.payload:
            await self.apply_drain(item.payload["journey"])
        elif item.instance_id is not None and item.token is not None:
            await self.apply_timer(item.instance_id, item.token)

    async def apply_event(self, event: dict[str, Any], unique: bool = False) -> None:
        event_id = event["id"]
        if not unique:  # it may come again under its id, in another entry: the applied-events index says
            if event_id in self.snapshot.seen or event_id in self.commit.seen:
                return  # a retry with the same idempotency key, a provider's retried callback, a forwarded event
            self.commit.seen[event_id] = time.time()  # real time: the idempotency window is a promise to clients
        self.record("event", name=event["name"], event_id=event_id, properties=event["properties"],
                    occurred_at=event["timestamp"])
        self.event_at = self._timeline_end() - 1  # the entry just recorded
        visitor = event["properties"].get("anonymous_id") if event["name"] == IDENTIFY else None
        if isinstance(visitor, str) and visitor != self.customer_id and valid_customer_id(visitor):
            self.identified.append(visitor)
        for instance in list(self.instances.values()):
            await self._route_to_instance(instance, event)
        for journey in self.engine.registry.triggered_by(event["name"]):
            await self._maybe_start(journey, event)

    async def _route_to_instance(self, instance: Instance, event: dict[str, Any]) -> None:
        journey = await self.engine.registry.version(instance.journey, instance.version)
        for rule in journey.exit_on:
            if self.matches(rule, event, instance, f"{journey.id}.exit_on"):
                self.end(instance, journey, "exited", reason=f"exit_on {event['name']}")
                return
        goal = journey.goal
        if goal and not instance.converted and self.matches(goal, event, instance, f"{journey.id}.goal") and (
            goal.within is None or self.now - instance.started_at <= goal.within
        ):
            instance.converted = True
            self.stats[journey.id]["converted"] += 1
            self.record("conversion", journey=journey.id, event=event["name"], event_id=event["id"],
                        attributed_to=list(instance.messages))
            self.save(instance)
        waiting = instance.waiting
        step = journey.steps[instance.position]
        if waiting and waiting.kind == "digest" and isinstance(step.action, DigestStep):
            self.collect(instance, journey, step.action, event)
            self.save(instance)
            return
        if waiting and waiting.kind == "wait_for" and isinstance(step.action, WaitForStep) and self.matches(
            step.action, event, instance, f"{journey.id}.{step.id}.where"
        ):
            self.stop_waiting(instance, journey)
            instance.event, instance.event_at = event, self.event_at
            instance.vars["timed_out"] = False
            instance.position += 1
            await self.engine.interpreter.advance(self, instance, journey)

    def collect(self, instance: Instance, journey: Journey, action: DigestStep, event: dict[str, Any]) -> None:
        """Add an event to the digest being collected, if it is one the digest wants."""
        digest = instance.digest
        if digest is None or not self.matches(action, event, instance, f"{journey.id}.digest.where"):
            return
        digest["total"] += 1
        if len(digest["items"]) < action.max_items:
            digest["items"].append(event["properties"])

    async def _maybe_start(self, journey: Journey, event: dict[str, Any]) -> None:
        if any(i.journey == journey.id for i in self.instances.values()):
            return  # one running instance per journey and customer
        last = self.commit.entries.get(journey.id, self.snapshot.entries.get(journey.id))
        re_entry = journey.re_entry
        if last is not None and (
            re_entry.mode == "never" or (re_entry.mode == "after" and self.now - last < (re_entry.after or 0))
        ):
            return
        if not self.holds(journey.trigger.where, self.scope(None, event), f"{journey.id}.trigger.where"):
            return
        # Derived from the event: a replayed event re-creates the same instance, so its sends are recognised.
        instance_id = hashlib.sha256(f"{journey.id}\x00{event['id']}".encode()).hexdigest()[:20]
        instance = Instance(id=instance_id, journey=journey.id, version=journey.version,
                            customer_id=self.customer_id, started_at=self.now, event=event, event_at=self.event_at)
        self.stats[journey.id]["started"] += 1
        self.record("journey", journey=journey.id, version=journey.version, status="started",
                    instance_id=instance_id)
        await self.engine.interpreter.advance(self, instance, journey)

    async def apply_drain(self, journey_id: str) -> None:
        """`omnicanal journeys drain`: the customer's instance of that journey ends now."""
        for instance in list(self.instances.values()):
            if instance.journey == journey_id:
                journey = await self.engine.registry.version(instance.journey, instance.version)
                self.end(instance, journey, "exited", reason="drained")

    async def apply_fallback(self, message_id: str) -> None:
        """The message was not delivered (a failed receipt, or its `fallback_after` passed): send the step again
        on the channels after the one it went on — once, even if both a receipt and the deadline ask."""
        record = await self.engine.customers.message(self.customer_id, message_id)
        fallback = (record or {}).get("fallback")
        if record is None or not fallback or fallback.get("done") or record["status"] in ("delivered", "read"):
            return
        journey = await self.engine.registry.version(fallback["journey"], fallback["version"])
        step = journey.steps[journey.step_index(fallback["step"])]
        if not isinstance(step.action, SendStep):
            return
        stand_in = Instance(id=f"{message_id}~fallback", journey=journey.id, version=journey.version,
                            customer_id=self.customer_id, started_at=self.now, event=fallback["event"],
                            vars=fallback["vars"], seq=1)
        action = step.action.model_copy(update={"channels": tuple(fallback["channels"])})
        self.record("fallback", journey=journey.id, step=step.id, message_id=message_id, status=record["status"])
        await self.engine.interpreter.delivery.deliver(self, stand_in, journey, step.id, action)
        fallback["done"] = True
        await self.engine.customers.save_message(self.customer_id, message_id, record)

    async def apply_timer(self, instance_id: str, token: str) -> None:
        if token == FALLBACK_TOKEN:
            await self.apply_fallback(instance_id)
            return
        instance = self.instances.get(instance_id)
        if instance is None or instance.waiting is None or instance.waiting.token != token:
            return  # the instance moved on (resumed by its event, exited): the timer is stale
        journey = await self.engine.registry.version(instance.journey, instance.version)
        step = journey.steps[instance.position]
        kind = instance.waiting.kind
        instance.waiting = None  # the timer fired: nothing to cancel
        self.stats[journey.id][f"step:{step.id}:waiting"] -= 1
        if kind == "wait_for" and isinstance(step.action, WaitForStep):
            instance.vars["timed_out"] = True
            target = step.action.on_timeout
            instance.position = journey.step_index(target) if target else instance.position + 1
        elif kind == "digest" and instance.digest is not None:
            instance.digest["ready"] = True  # the same step runs again, now to send
        elif kind == "wait":
            instance.position += 1
        # "hold": the same step runs again (quiet hours over, or time to retry a provider)
        await self.engine.interpreter.advance(self, instance, journey)

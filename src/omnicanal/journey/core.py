"""The journey core: a customer's work applied to their state, with no I/O.

`apply(context, state, work, now)` takes the customer's state and their work items (events, fired timers,
drains, resumes of a paused journey, cancellations of what an event started, a broadcast's starts, a segment
backfill's evaluations — those journey/audience.py applies), in order, and changes the state;
it returns the Changes for the engine to write. For each event: it is recorded on the timeline; delivery
receipts and engagement events settle the fallbacks of the messages they concern; running instances whose
journey exits on it end; goals it meets are recorded as conversions; instances waiting for it resume; journeys
it triggers start. Every affected instance then advances until it waits or ends.

It is a generator: each send it decides is yielded as an `Attempt`, each `fetch` step's call as a `Fetch`, and the
engine sends back the `Outcome` (journey/effects.py), so the same code runs in the worker, in `omnicanal simulate`
and in unit tests, where the outcomes are given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from omnicanal.errors import ExpressionError
from omnicanal.journey.advance import CUSTOMER_UPDATED, advance, collect
from omnicanal.journey.attribution import WINDOW as ATTRIBUTION_WINDOW
from omnicanal.journey.attribution import counter, credits, revenue_of, where_of
from omnicanal.journey.audience import track
from omnicanal.journey.coupons import REDEEMED
from omnicanal.journey.effects import (
    FALLBACK_TOKEN_PREFIX,
    CancelEvent,
    Changes,
    DrainJourney,
    EventArrived,
    ResumeJourney,
    Sends,
    StartJourney,
    TimerFired,
    Work,
)
from omnicanal.journey.model import DigestStep, Goal, InstanceRule, Journey, SendStep, WaitForStep
from omnicanal.journey.schedules import EVERYONE, customer_moment
from omnicanal.journey.sending import FALLBACK_VISIT, Plan, deliver
from omnicanal.journey.session import Context, Session, entry_name
from omnicanal.journey.state import CustomerState, Instance, watched_instance
from omnicanal.policy.windows import zone

IDENTIFY = "identify"
"""`{"name": "identify", "customer_id": "c42", "properties": {"anonymous_id": "anon-123"}}`: the visitor
anon-123 is c42 — their history, attributes and running journeys are merged into c42."""

DELIVERED = frozenset({"message.delivered", "message.read"})
"""Receipts that say a message arrived: its fallback is not needed."""
FAILED = "message.failed"
"""The receipt that says a message did not arrive: its fallback goes now."""
RECEIPTS = {"message.delivered": "delivered", "message.read": "read", "message.failed": "failed",
            "message.clicked": "clicked"}
"""Events about one message (their properties name its journey, step and channel) → the funnel status counted."""
REPLIED = "message.received"
"""A reply: counted as `replied` on the last message the customer got on that channel (within the window)."""
LOCAL_TIME = "local_time"
"""The wait of an instance a scheduled journey started ahead of the customer's own clock (`timezone: customer`):
the walk of the audience chose them up to 26 hours before; their first step runs when their clock shows the
occurrence, if they are still in the audience then."""


def apply(context: Context, state: CustomerState, work: Iterable[Work], now: float) -> Sends[Changes]:
    """Apply the work items in order; the state is changed in place, the rest comes back as Changes."""
    session = Session(context, state, now)
    segments = track(session)
    for item in work:
        if segments is not None and segments.takes(item):
            continue
        if isinstance(item, EventArrived):
            session.applying = item.event
            yield from _apply_event(session, item.event, item.unique)
        elif isinstance(item, TimerFired):
            session.applying = None
            yield from _apply_timer(session, item.instance_id, item.token)
        elif isinstance(item, DrainJourney):
            _apply_drain(session, item.journey, item.reason)
        elif isinstance(item, ResumeJourney):
            session.applying = session.event_at = None
            yield from _apply_resume(session, item.journey)
        elif isinstance(item, CancelEvent):
            _apply_cancel(session, item.event_id)
        elif isinstance(item, StartJourney):
            session.applying = item.event
            yield from _apply_start(session, item.journey, item.event, item.local_time)
        if segments is not None:
            segments.applied(item)
    return session.finish()


def instance_id_of(journey_id: str, event_id: str) -> str:
    """The id of the instance an event starts: derived from the event, so a replayed event re-creates the same
    instance (its sends are recognised) and a cancellation finds what the event started."""
    return hashlib.sha256(f"{journey_id}\x00{event_id}".encode()).hexdigest()[:20]


def _defer(session: Session, instance: Instance, work: dict[str, Any]) -> bool:
    """While its journey is paused an instance keeps its work for later; True if it did."""
    if instance.journey not in session.context.paused:
        return False
    instance.deferred = [*(instance.deferred or ()), work]
    session.save(instance)
    return True


def _apply_resume(session: Session, journey_id: str) -> Sends[None]:
    """The journey runs again: each of its instances applies what came meanwhile, in order."""
    for instance in list(session.state.instances.values()):
        if instance.journey != journey_id or not instance.deferred:
            continue
        deferred, instance.deferred = instance.deferred, None
        session.save(instance)
        for work in deferred:
            if instance.id not in session.state.instances:
                break  # it ended on the way: the rest concerned it only
            if "event" in work:
                yield from _route_to_instance(session, instance, work["event"])
            else:
                yield from _apply_timer(session, instance.id, work["timer"])


def _apply_cancel(session: Session, event_id: str) -> None:
    for instance in list(session.state.instances.values()):
        if instance.id == instance_id_of(instance.journey, event_id):
            session.end(instance, _journey_of(session, instance), "exited", reason="cancelled")


def _journey_of(session: Session, instance: Instance) -> Journey:
    return session.context.journeys.loaded(instance.journey, instance.version)


def _apply_event(session: Session, event: dict[str, Any], unique: bool) -> Sends[None]:
    event_id = event["id"]
    state = session.state
    if not unique:  # it may come again under its id, in another work item
        if event_id in state.seen:
            return  # a retry with the same idempotency key, a provider's retried callback, a forwarded event
        state.seen.add(event_id)
        session.changes.seen.append(event_id)
    session.record("event", name=event["name"], event_id=event_id, properties=event["properties"],
                   occurred_at=event["timestamp"])
    session.event_at = session.timeline_end() - 1  # the entry just recorded
    if event["name"] in RECEIPTS or event["name"] == REPLIED:
        _count_receipt(session, event)
    elif event["name"] == REDEEMED:
        _redeem(session, event)
    visitor = event["properties"].get("anonymous_id") if event["name"] == IDENTIFY else None
    if isinstance(visitor, str) and visitor != session.customer_id:
        session.changes.identified.append(visitor)
    for instance in list(state.instances.values()):
        if _defer(session, instance, {"event": event}):
            if not instance.converted:  # its goal may take this event on resume: no ended entry takes it now
                session.take_goal(event_id, instance.journey, instance.key)
        else:
            yield from _route_to_instance(session, instance, event)
    if state.watches:
        _watch_goals(session, event)
    for journey in session.context.journeys.triggered_by(event["name"]):
        yield from _maybe_start(session, journey, event)


def _apply_start(session: Session, journey_id: str, event: dict[str, Any], local_time: str | None) -> Sends[None]:
    """A broadcast's start: recorded with the broadcast's event, once per customer, then the journey starts
    unless a rule keeps it from doing so; what happened is counted for the broadcast. With `local_time` the
    instance starts now but runs its first step when the customer's clock shows that time."""
    state, event_id = session.state, event["id"]
    broadcast = str(event["properties"].get("broadcast", ""))
    if event_id in state.seen:  # queued twice (the walk met them twice): applied once, counted apart
        session.changes.broadcasts[broadcast] = "duplicate"
        return
    state.seen.add(event_id)
    session.changes.seen.append(event_id)
    session.record("event", name=event["name"], event_id=event_id, properties=event["properties"],
                   occurred_at=event["timestamp"])
    session.event_at = session.timeline_end() - 1
    journey = session.context.journeys.current_of(journey_id)
    if journey is None:
        session.record_error(f"broadcast {broadcast}", f"no journey {journey_id!r} is loaded any more")
        session.changes.broadcasts[broadcast] = "skipped:unknown_journey"
        return
    not_before = None
    if local_time is not None:
        not_before = customer_moment(local_time, zone(session.state.customer.get("timezone"),
                                                      session.context.rules.default_timezone))
    skipped = yield from _maybe_start(session, journey, event, triggered=False, not_before=not_before)
    session.changes.broadcasts[broadcast] = "started" if skipped is None else f"skipped:{skipped}"


def _key_of(session: Session, journey: Journey, event: dict[str, Any]) -> str | None:
    """The key an event carries for a keyed journey (`trigger.key` evaluated on it); None: no key (missing, or
    the journey is not keyed). Numbers and text of the same value are one key (`42` and "42")."""
    key = journey.trigger.key
    if key is None:
        return None
    try:
        value = key.evaluate(session.scope(None, event))
    except ExpressionError:
        return None
    return None if value is None else str(value)


def _sees(rule: InstanceRule | WaitForStep, instance: Instance, event_key: str | None) -> bool:
    """Whether a rule of a keyed instance sees an event: its own key, no key (customer-wide), or `any_key`."""
    return rule.any_key or event_key is None or instance.key is None or event_key == instance.key


def _route_to_instance(session: Session, instance: Instance, event: dict[str, Any]) -> Sends[None]:
    journey = _journey_of(session, instance)
    event_key = _key_of(session, journey, event)
    if instance.fallbacks:
        yield from _settle_fallbacks(session, instance, journey, event)
    goal = journey.goal
    if goal and not instance.converted and _sees(goal, instance, event_key) and not _goal_met_by(
        session, event, journey, instance
    ) and session.matches(goal, event, instance, f"{journey.id}.goal") and (
        goal.within is None or session.now - instance.started_at <= goal.within
    ):
        _convert(session, instance, journey, goal, event)
    for rule in journey.exit_on:  # after the goal: the purchase that ends the journey is its conversion too
        if _sees(rule, instance, event_key) and session.matches(rule, event, instance, f"{journey.id}.exit_on"):
            session.end(instance, journey, "exited", reason=f"exit_on {event['name']}")
            return
    waiting = instance.waiting
    step = journey.steps[instance.position]
    if waiting and waiting.kind == "digest" and isinstance(step.action, DigestStep):
        collect(session, instance, journey, step, event)
        session.save(instance)
        return
    if waiting and waiting.kind == "wait_for" and isinstance(step.action, WaitForStep) and _sees(
        step.action, instance, event_key
    ) and session.matches(step.action, event, instance, f"{journey.id}.{step.id}.where"):
        session.stop_waiting(instance, journey)
        instance.event, instance.event_at = event, session.event_at
        instance.vars["timed_out"] = False
        instance.position += 1
        yield from advance(session, instance, journey)


def _watch_goals(session: Session, event: dict[str, Any]) -> None:
    """Instances that ended before their goal window closed: a goal met within it converts them too."""
    state = session.state
    for watch in sorted(state.watches, key=lambda watch: -float(watch["started_at"])):  # the latest entry first
        journey = session.context.journeys.loaded(watch["journey"], watch["version"])
        goal, instance = journey.goal, watched_instance(session.customer_id, watch)
        if goal is None or watch["until"] < session.now or not _sees(goal, instance, _key_of(session, journey, event)):
            continue
        if _goal_met_by(session, event, journey, instance):
            continue
        if session.matches(goal, event, instance, f"{journey.id}.goal"):
            state.watches.remove(watch)
            session.changes.watches = True
            _convert(session, instance, journey, goal, event)


def _goal_met_by(session: Session, event: dict[str, Any], journey: Journey, instance: Instance) -> bool:
    """Whether this event already converted an instance of the journey (and key): a customer who entered it
    again, the earlier instances still in their goal window, converts once per purchase — the latest instance
    (the running one before those that ended) takes it."""
    return session.goal_taken(event["id"], journey.id, instance.key)


def _convert(session: Session, instance: Instance, journey: Journey, goal: Goal, event: dict[str, Any]) -> None:
    """The goal is met: record the conversion with its revenue, and credit the messages before it (any journey,
    any channel) under each attribution model, split by where it happened."""
    instance.converted = True
    session.take_goal(event["id"], journey.id, instance.key)
    scope = session.scope(instance, event)
    try:
        value = goal.revenue.evaluate(scope) if goal.revenue is not None else event["properties"].get("total")
    except ExpressionError as exc:
        session.record_error(f"{journey.id}.goal.revenue", str(exc))
        value = None
    revenue, where = revenue_of(value), where_of(event)
    session.count(journey.id, "converted")
    session.count(journey.id, "revenue", revenue)
    session.count(journey.id, f"converted:{where}")
    session.count(journey.id, f"revenue:{where}", revenue)
    for step_id, arm in (instance.arms or {}).items():
        session.count(journey.id, f"step:{step_id}:arm:{arm}:converted")
        session.count(journey.id, f"step:{step_id}:arm:{arm}:revenue", revenue)
    credited = credits(session.state.touchpoints, session.now, goal.within or ATTRIBUTION_WINDOW)
    for model, shares in credited.items():
        for touch, share in shares:
            session.count(journey.id, counter(model, where, touch, "conversions"), share)
            session.count(journey.id, counter(model, where, touch, "revenue"), share * revenue)
    session.record("conversion", journey=journey.id, event=event["name"], event_id=event["id"],
                   attributed_to=list(instance.messages), revenue=revenue, where=where,
                   credits={model: {touch["m"]: round(share, 6) for touch, share in shares}
                            for model, shares in credited.items()},
                   **({"arms": instance.arms} if instance.arms else {}))
    if instance.id in session.state.instances:  # a running instance; an ended one is only watched
        session.save(instance)


def _redeem(session: Session, event: dict[str, Any]) -> None:
    """A coupon used at the till, on the site...: the store checked (and marked) its code before this work was
    applied; a good one is a conversion credited to the message, step and channel that carried it, a refused
    one is recorded with why."""
    verdict = session.state.redemptions.get(event["id"]) or {"status": "unknown"}
    code = event["properties"].get("code")
    status = verdict["status"]
    if status != "redeemed":
        session.record("coupon", code=code, status="refused", reason=status,
                       **{name: verdict[name] for name in ("journey", "step", "channel") if name in verdict})
        if "journey" in verdict:
            session.count(verdict["journey"], f"coupons_refused:{status}")
        return
    revenue, where = revenue_of(event["properties"].get("total")), where_of(event)
    journey_id = verdict["journey"]
    touch = {"j": journey_id, "s": verdict["step"], "c": verdict["channel"]}
    session.count(journey_id, "coupons_redeemed")
    session.count(journey_id, "coupon_revenue", revenue)
    session.count(journey_id, f"step:{verdict['step']}:{verdict['channel']}:redeemed")
    session.count(journey_id, counter("coupon", where, touch, "conversions"))
    session.count(journey_id, counter("coupon", where, touch, "revenue"), revenue)
    session.record("coupon", code=code, status="redeemed", message_id=verdict["message_id"], journey=journey_id,
                   step=verdict["step"], channel=verdict["channel"], revenue=revenue, where=where)


def _count_receipt(session: Session, event: dict[str, Any]) -> None:
    """A delivery receipt, a click or a reply: counted on the step and channel of the message it concerns."""
    name, properties = event["name"], event["properties"]
    if name == REPLIED:
        channel = properties.get("channel")
        touch = next((t for t in reversed(session.state.touchpoints) if t["c"] == channel), None)
        if touch is not None and session.now - float(touch["t"]) <= ATTRIBUTION_WINDOW:
            journey, step, status = touch["j"], touch["s"], "replied"
        else:
            return
    else:
        # once per message and status, on the step and channel that sent it: a second click on the link, a
        # provider reporting delivery twice (under two ids) or a receipt naming no message of this customer
        # counted again, making more messages delivered or clicked than were sent
        message_id, status = properties.get("message_id"), RECEIPTS[name]
        touch = next((t for t in session.state.touchpoints if t["m"] == message_id), None)
        if touch is None or status in touch.get("r", ()):
            return
        touch["r"] = [*touch.get("r", ()), status]
        session.changes.touchpoints = True
        journey, step, channel = touch["j"], touch["s"], touch["c"]
    if all(isinstance(value, str) and value for value in (journey, step, channel)):
        session.count(journey, f"step:{step}:{status}")
        session.count(journey, f"channel:{channel}:{status}")
        session.count(journey, f"step:{step}:{channel}:{status}")


def _settle_fallbacks(session: Session, instance: Instance, journey: Journey, event: dict[str, Any]) -> Sends[None]:
    """A receipt or an engagement event about a message that may fall back: delivered → no fallback; failed →
    the fallback goes now."""
    message_id = event["properties"].get("message_id")
    name = event["name"]
    for pending_id, pending in list((instance.fallbacks or {}).items()):
        if name in DELIVERED or name == FAILED:
            if message_id != pending_id:
                continue
        else:
            action = journey.steps[journey.step_index(pending["step"])].action
            engaged = action.delivered_on if isinstance(action, SendStep) else None
            if name not in (engaged or ()) or (message_id is not None and message_id != pending_id):
                continue
        session.cancel_fallback(instance, pending_id)
        if name == FAILED:
            session.record("fallback", journey=journey.id, step=pending["step"], message_id=pending_id,
                           reason="failed")
            yield from _send_fallback(session, instance, journey, pending_id, pending)
        session.save(instance)


def _send_fallback(session: Session, instance: Instance, journey: Journey, message_id: str,
                   pending: dict[str, Any]) -> Sends[None]:
    """Send the step's message again, on the channels after the one it went on, without moving the instance."""
    step = journey.steps[journey.step_index(pending["step"])]
    if not isinstance(step.action, SendStep | DigestStep):
        return
    data = pending.get("data")
    plan = Plan(instance, journey, step.id, step.action, tuple(pending["channels"]), message_id + FALLBACK_VISIT,
                data, retries=False, coupon=pending.get("coupon"))
    held_until = yield from deliver(session, plan)
    if held_until is not None:  # quiet hours on every channel left: the fallback goes when they end
        session.schedule_fallback(instance, message_id, step.id, pending["channels"], held_until, data,
                                  pending.get("coupon"))
    session.save(instance)


def _maybe_start(session: Session, journey: Journey, event: dict[str, Any], triggered: bool = True,
                 not_before: float | None = None) -> Sends[str | None]:
    """Start the journey on this event unless a rule says no; returns why not (None: started). A broadcast's
    start (`triggered` false) does not test the trigger's `where`: its audience chose the customer. An instance
    started before `not_before` holds at its first step until then."""
    state = session.state
    if triggered and event["name"] == CUSTOMER_UPDATED and event["properties"].get("journey") == journey.id:
        return "own_update"  # its own update: a journey cannot start itself again in a loop
    if journey.id in session.context.paused:
        session.count(journey.id, "skipped:paused")
        session.record("journey", journey=journey.id, version=journey.version, status="skipped", reason="paused")
        return "paused"
    key = _key_of(session, journey, event)
    if journey.trigger.key is not None and key is None:
        session.record_error(f"{journey.id}.trigger.key", f"{journey.trigger.key.source} gave no value for this "
                                                          f"{event['name']} event: the journey did not start")
        return "no_key"
    if any(i.journey == journey.id and i.key == key for i in state.instances.values()):
        return "running"  # one running instance per journey (and key) and customer
    last = state.entries.get(entry_name(journey.id, key))
    re_entry = journey.re_entry
    if last is not None and (
        re_entry.mode == "never" or (re_entry.mode == "after" and session.now - last < (re_entry.after or 0))
    ):
        return "re_entry"
    if triggered and not session.holds(journey.trigger.where, session.scope(None, event),
                                       f"{journey.id}.trigger.where"):
        return "where"
    instance_id = instance_id_of(journey.id, event["id"])
    instance = Instance(id=instance_id, journey=journey.id, version=journey.version,
                        customer_id=session.customer_id, started_at=session.now, event=event,
                        event_at=session.event_at, key=key)
    session.count(journey.id, "started")
    session.record("journey", journey=journey.id, version=journey.version, status="started",
                   instance_id=instance_id, **({"key": key} if key is not None else {}))
    if not_before is not None and not_before > session.now:
        session.wait(instance, journey, LOCAL_TIME, not_before)  # the timer runs the first step then
        session.save(instance)
        return None
    yield from advance(session, instance, journey)
    return None


def _apply_drain(session: Session, journey_id: str, reason: str) -> None:
    for instance in list(session.state.instances.values()):
        if instance.journey == journey_id:
            session.end(instance, _journey_of(session, instance), "exited", reason=reason)


def _apply_timer(session: Session, instance_id: str, token: str) -> Sends[None]:
    instance = session.state.instances.get(instance_id)
    if instance is None:
        return  # the instance ended: its timers are stale, and its messages no longer fall back
    if _defer(session, instance, {"timer": token}):
        return
    journey = _journey_of(session, instance)
    if token.startswith(FALLBACK_TOKEN_PREFIX):
        message_id = token[len(FALLBACK_TOKEN_PREFIX):]
        pending = session.cancel_fallback(instance, message_id)
        if pending is not None:  # not delivered in time
            session.record("fallback", journey=journey.id, step=pending["step"], message_id=message_id,
                           reason="not delivered in time")
            yield from _send_fallback(session, instance, journey, message_id, pending)
        return
    if instance.waiting is None or instance.waiting.token != token:
        return  # the instance moved on (resumed by its event): the timer is stale
    step = journey.steps[instance.position]
    kind = instance.waiting.kind
    instance.waiting = None  # the timer fired: nothing to cancel
    session.count(journey.id, f"step:{step.id}:waiting", -1)
    if kind == "wait_for" and isinstance(step.action, WaitForStep):
        instance.vars["timed_out"] = True
        target = step.action.on_timeout
        instance.position = journey.step_index(target) if target else instance.position + 1
    elif kind == "digest" and instance.digest is not None:
        instance.digest["ready"] = True  # the same step runs again, now to send
    elif kind == "wait":
        instance.position += 1
    elif kind == "holdout":  # the goal window closed: the holdout's conversion, if any, is counted
        session.end(instance, journey, "exited", reason="holdout")
        return
    elif kind == LOCAL_TIME and not _in_audience(session, journey):
        session.end(instance, journey, "exited", reason="left_audience")
        return
    # "hold": the same step runs again (quiet hours over, or time to retry a provider); "local_time": the first one
    yield from advance(session, instance, journey)


def _in_audience(session: Session, journey: Journey) -> bool:
    """Whether the customer is still in the scheduled journey's audience: everyone is; a segment's member is while
    the segment holds them (their memberships are kept as their work applies, journey/audience.py)."""
    audience = journey.trigger.audience
    return audience in (None, EVERYONE) or audience in session.state.audience.get("s", ())

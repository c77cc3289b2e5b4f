"""The step interpreter: runs an instance's steps until it waits or ends.

Steps run top to bottom; `goto` and `branch` jump; `wait`, `wait_for` and `digest` park the instance (with a
timer when they have a deadline); reaching the end completes the journey. A journey that loops without waiting is
stopped after MAX_STEPS steps and marked failed, so a mistake in a file cannot spin a worker.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from omnicanal.errors import ExpressionError
from omnicanal.journey.effects import Sends
from omnicanal.journey.fetching import fetch
from omnicanal.journey.model import (
    BranchStep,
    DigestStep,
    ExitStep,
    FetchStep,
    GotoStep,
    Journey,
    SendStep,
    SplitArm,
    SplitStep,
    Step,
    UpdateStep,
    WaitForStep,
    WaitStep,
)
from omnicanal.journey.sending import Plan, deliver
from omnicanal.journey.session import Session, share_of
from omnicanal.journey.state import Instance
from omnicanal.policy.windows import next_wall_time, parse_clock, parse_moment, zone

CUSTOMER_UPDATED = "customer.updated"
"""The event a change of profile attributes makes (`properties.changes = {attr: {from, to}}`)."""

MAX_STEPS = 1000
"""Steps one instance may run in a row without waiting."""


def advance(session: Session, instance: Instance, journey: Journey) -> Sends[None]:
    """Run steps from `instance.position` until the instance waits or ends; save it either way."""
    for run in range(MAX_STEPS + 1):
        if instance.position >= len(journey.steps):
            session.end(instance, journey, "completed")
            return
        if run == MAX_STEPS:
            break
        step = journey.steps[instance.position]
        instance.seq += 1
        session.count(journey.id, f"step:{step.id}:entered")
        action = step.action
        if isinstance(action, SendStep):
            plan = Plan(instance, journey, step.id, action, action.channels, f"{instance.id}.{instance.seq}")
            again_at = yield from deliver(session, plan)
            if again_at is not None:  # quiet hours, or a provider to try again later
                session.wait(instance, journey, "hold", again_at)
                session.save(instance)
                return
            instance.position += 1
        elif isinstance(action, DigestStep):
            if not (yield from _digest(session, instance, journey, step, action)):
                session.save(instance)
                return
            instance.position += 1
        elif isinstance(action, FetchStep):
            again_at = yield from fetch(session, instance, journey, step.id, action)
            if again_at is not None:  # the endpoint failed for now: the same step again later
                session.wait(instance, journey, "hold", again_at)
                session.save(instance)
                return
        elif isinstance(action, WaitStep) and action.at is not None:
            moment = _moment(session, instance, journey, step.id, action)
            if isinstance(moment, float) and moment > session.now:
                session.wait(instance, journey, "wait", moment)
                session.save(instance)
                return
            target = action.on_past if isinstance(moment, float) else action.on_error
            if moment is None and target is None:
                session.end(instance, journey, "failed", reason=f"{step.id}: not a date")
                return
            instance.position = journey.step_index(target) if target else instance.position + 1
        elif isinstance(action, WaitStep):
            session.wait(instance, journey, "wait", _until(session, action.seconds, action.until))
            session.save(instance)
            return
        elif isinstance(action, SplitStep):
            arm = _arm(session, instance, journey, step.id, action)
            if arm.goto is not None:
                instance.position = journey.step_index(arm.goto)
            elif not _hold_out(session, instance, journey):
                session.end(instance, journey, "exited", reason="holdout")
                return
            else:
                session.save(instance)
                return
        elif isinstance(action, WaitForStep):
            until = session.now + action.timeout if action.timeout is not None else None
            session.wait(instance, journey, "wait_for", until)
            session.save(instance)
            return
        elif isinstance(action, BranchStep):
            scope = session.scope(instance, instance.event)
            where = f"{journey.id}.{step.id}"
            chosen = next(
                (case.goto for i, case in enumerate(action.cases) if session.holds(case.when, scope, f"{where}[{i}]")),
                action.otherwise,
            )
            instance.position = journey.step_index(chosen)
        elif isinstance(action, UpdateStep):
            _update(session, instance, action, f"{journey.id}.{step.id}")
            instance.position += 1
        elif isinstance(action, GotoStep):
            instance.position = journey.step_index(action.target)
        elif isinstance(action, ExitStep):
            session.end(instance, journey, "exited", reason=action.reason)
            return
    session.record_error(journey.id, f"more than {MAX_STEPS} steps without a wait: is there a goto loop?")
    session.end(instance, journey, "failed", reason="step limit")


def _arm(session: Session, instance: Instance, journey: Journey, step_id: str, action: SplitStep) -> SplitArm:
    """The customer's arm: sticky by a hash of customer, journey and step, recorded and counted."""
    total = sum(arm.weight for arm in action.arms)
    point = share_of(session.customer_id, journey.id, step_id) * total
    arm = action.arms[-1]
    for candidate in action.arms:
        if point < candidate.weight:
            arm = candidate
            break
        point -= candidate.weight
    instance.arms = {**(instance.arms or {}), step_id: arm.name}
    session.count(journey.id, f"step:{step_id}:arm:{arm.name}")
    session.record("split", journey=journey.id, step=step_id, arm=arm.name)
    return arm


def _hold_out(session: Session, instance: Instance, journey: Journey) -> bool:
    """A holdout gets no message but stays until its goal window closes, so that its conversions count;
    False when there is no window left to wait out."""
    goal = journey.goal
    if goal is None or goal.within is None or instance.started_at + goal.within <= session.now:
        return False
    session.wait(instance, journey, "holdout", instance.started_at + goal.within)
    return True


def _moment(session: Session, instance: Instance, journey: Journey, step_id: str, action: WaitStep
            ) -> float | None:
    """The moment a `wait: {at}` waits for (offset applied), or None, said on the timeline with the value."""
    where = f"{journey.id}.{step_id}.at"
    assert action.at is not None
    try:
        value = action.at.evaluate(session.scope(instance, instance.event))
    except ExpressionError as exc:
        session.record_error(where, str(exc))
        return None
    tz = zone(session.state.customer.get("timezone"), session.context.rules.default_timezone)
    moment = parse_moment(value, tz)
    if moment is None:
        session.record_error(where, f"{action.at.source} gave {value!r}: not an ISO 8601 timestamp or epoch "
                                    "seconds")
        return None
    offset = action.offset or 0.0
    if offset and offset % 86400 == 0:  # whole days: the same wall-clock time, across a DST change too
        return (moment.astimezone(tz) + timedelta(days=offset // 86400)).timestamp()
    return moment.timestamp() + offset


def _until(session: Session, seconds: float | None, clock: str | None) -> float:
    """The end of a wait: a duration from now, or the next time the customer's clock shows `clock`."""
    if seconds is not None:
        return session.now + seconds
    tz = zone(session.state.customer.get("timezone"), session.context.rules.default_timezone)
    return next_wall_time(session.now, parse_clock(clock or "00:00"), tz)


def collect(session: Session, instance: Instance, journey: Journey, step: Step, event: dict[str, Any]) -> None:
    """Add an event to the digest being collected, if it is one the digest wants."""
    digest, action = instance.digest, step.action
    if digest is None or not isinstance(action, DigestStep) or not session.matches(
        action, event, instance, f"{journey.id}.{step.id}.where"
    ):
        return
    digest["total"] += 1
    if len(digest["items"]) < action.max_items:
        digest["items"].append(event["properties"])


def _digest(session: Session, instance: Instance, journey: Journey, step: Step, action: DigestStep
            ) -> Sends[bool]:
    """Collect, then send the digest; True once the step is done, False while it waits."""
    digest, step_id = instance.digest, step.id
    if digest is None:  # the window opens; the event being applied, if it led here, is the first item
        instance.digest = {"items": [], "total": 0, "ready": False}
        if session.applying is not None and session.applying["id"] == instance.event.get("id"):
            collect(session, instance, journey, step, instance.event)
        session.wait(instance, journey, "digest", _until(session, action.window, action.until))
        return False
    if not digest["ready"]:
        return False
    if digest["total"]:
        scope = session.scope(instance, instance.event)
        data = session.evaluate_all(action.data, scope, f"{journey.id}.{step_id}.data")
        data.update(items=digest["items"], count=digest["total"])
        plan = Plan(instance, journey, step_id, action, action.channels, f"{instance.id}.{instance.seq}", data)
        again_at = yield from deliver(session, plan)
        if again_at is not None:
            session.wait(instance, journey, "hold", again_at)
            return False
    instance.digest = None
    return True


def _update(session: Session, instance: Instance, action: UpdateStep, where: str) -> None:
    """Set vars and profile attributes; all values see the scope as it was before the step."""
    scope = session.scope(instance, instance.event)
    new_vars = session.evaluate_all(action.vars, scope, f"{where}.vars")
    attributes = session.evaluate_all(action.customer, scope, f"{where}.customer")
    instance.vars.update(new_vars)
    customer = session.state.customer
    before = customer["attributes"]
    changes = {name: {"from": before.get(name), "to": value} for name, value in attributes.items()
               if before.get(name) != value}
    customer.update(attributes)
    customer["attributes"] = {**before, **attributes}
    session.changes.attributes.update(attributes)
    if changes and session.context.journeys.listens(CUSTOMER_UPDATED):  # some journey reacts to it
        session.changes.emitted.append({
            "id": f"evt_upd_{instance.id}_{instance.seq}", "name": CUSTOMER_UPDATED,
            "customer_id": session.customer_id, "timestamp": session.at, "received_at": session.now,
            "properties": {"changes": changes, "source": "journey", "journey": instance.journey,
                           "step": where.rsplit(".", 1)[-1]}})

"""The step interpreter: runs an instance's steps until it waits or ends.

Steps run top to bottom; `goto` and `branch` jump; `wait` and `wait_for` park the instance (its timer, if any,
is durable in Redis); reaching the end completes the journey. A journey that loops without waiting is stopped
after MAX_STEPS steps and marked failed, so a mistake in a file cannot spin a worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from omnicanal.engine.instance import Instance
from omnicanal.errors import ExpressionError
from omnicanal.expressions import Expression
from omnicanal.journey.model import (
    BranchStep,
    DigestStep,
    ExitStep,
    GotoStep,
    Journey,
    SendStep,
    UpdateStep,
    WaitForStep,
    WaitStep,
)
from omnicanal.policy.windows import next_wall_time, parse_clock, zone

if TYPE_CHECKING:
    from omnicanal.engine.delivery import Delivery
    from omnicanal.engine.session import CustomerSession

MAX_STEPS = 1000
"""Steps one instance may run in a row without waiting."""


class Interpreter:
    def __init__(self, delivery: Delivery) -> None:
        self.delivery = delivery

    async def advance(self, session: CustomerSession, instance: Instance, journey: Journey) -> None:
        """Run steps from `instance.position` until the instance waits or ends; save it either way."""
        for _ in range(MAX_STEPS):
            if instance.position >= len(journey.steps):
                session.end(instance, journey, "completed")
                return
            step = journey.steps[instance.position]
            instance.seq += 1
            session.stats[journey.id][f"step:{step.id}:entered"] += 1
            action = step.action
            where = f"{journey.id}.{step.id}"
            if isinstance(action, SendStep):
                again_at = await self.delivery.deliver(session, instance, journey, step.id, action)
                if again_at is not None:  # quiet hours, or a provider to try again later
                    session.wait(instance, journey, "hold", again_at)
                    session.save(instance)
                    return
                instance.position += 1
            elif isinstance(action, DigestStep):
                if not await self._digest(session, instance, journey, action, step.id):
                    session.save(instance)
                    return
                instance.position += 1
            elif isinstance(action, WaitStep):
                session.wait(instance, journey, "wait", self._until(session, action.seconds, action.until))
                session.save(instance)
                return
            elif isinstance(action, WaitForStep):
                until = session.now + action.timeout if action.timeout is not None else None
                session.wait(instance, journey, "wait_for", until)
                session.save(instance)
                return
            elif isinstance(action, BranchStep):
                scope = session.scope(instance, instance.event)
                chosen = next(
                    (c.goto for i, c in enumerate(action.cases) if session.holds(c.when, scope, f"{where}[{i}]")),
                    action.otherwise,
                )
                instance.position = journey.step_index(chosen)
            elif isinstance(action, UpdateStep):
                self._update(session, instance, action, where)
                instance.position += 1
            elif isinstance(action, GotoStep):
                instance.position = journey.step_index(action.target)
            elif isinstance(action, ExitStep):
                session.end(instance, journey, "exited", reason=action.reason)
                return
        session.record_error(journey.id, f"more than {MAX_STEPS} steps without a wait: is there a goto loop?")
        session.end(instance, journey, "failed", reason="step limit")

    @staticmethod
    def _until(session: CustomerSession, seconds: float | None, clock: str | None) -> float:
        """The end of a wait: a duration from now, or the next time the customer's clock shows `clock`."""
        if seconds is not None:
            return session.now + seconds
        tz = zone(session.customer.get("timezone"), session.engine.default_timezone)
        return next_wall_time(session.now, parse_clock(clock or "00:00"), tz)

    async def _digest(self, session: CustomerSession, instance: Instance, journey: Journey, action: DigestStep,
                      step_id: str) -> bool:
        """Collect, then send the digest; True once the step is done, False while it waits."""
        digest = instance.digest
        if digest is None:  # the window opens; the event that led here is the first item if it matches
            instance.digest = {"items": [], "total": 0, "ready": False}
            session.collect(instance, journey, action, instance.event)
            session.wait(instance, journey, "digest", self._until(session, action.window, action.until))
            return False
        if not digest["ready"]:
            return False
        if digest["total"]:
            scope = session.scope(instance, instance.event)
            data = _evaluate_all(session, action.data, scope, f"{journey.id}.{step_id}.data")
            data.update(items=digest["items"], count=digest["total"])
            again_at = await self.delivery.deliver(session, instance, journey, step_id, action, data)
            if again_at is not None:
                session.wait(instance, journey, "hold", again_at)
                return False
        instance.digest = None
        return True

    @staticmethod
    def _update(session: CustomerSession, instance: Instance, action: UpdateStep, where: str) -> None:
        """Set vars and profile attributes; all values see the scope as it was before the step."""
        scope = session.scope(instance, instance.event)
        new_vars = _evaluate_all(session, action.vars, scope, f"{where}.vars")
        attributes = _evaluate_all(session, action.customer, scope, f"{where}.customer")
        instance.vars.update(new_vars)
        session.customer.update(attributes)
        session.customer["attributes"] = {**session.customer["attributes"], **attributes}
        session.commit.attributes.update(attributes)


def _evaluate_all(
    session: CustomerSession, expressions: dict[str, Expression], scope: dict[str, Any], where: str
) -> dict[str, Any]:
    """Values of the expressions that evaluate; each failure is said on the timeline and leaves its name unset."""
    values: dict[str, Any] = {}
    for name, expression in expressions.items():
        try:
            values[name] = expression.evaluate(scope)
        except ExpressionError as exc:
            session.record_error(f"{where}.{name}", str(exc))
    return values

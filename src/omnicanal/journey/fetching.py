"""A `fetch` step, decided: the call to make, and where each answer leads.

The core renders the URL and the body, asks the engine for the call (a `Fetch`: the engine checks the host and
calls it), and keeps the JSON answer in `vars.<into>`. A failure for now is retried like a send's (the instance
holds on a timer, with backoff, within the retry budget); a failure for good, or the budget spent, is said on the
timeline and goes to `on_error` (`skip`: the next step).
"""

from __future__ import annotations

from omnicanal.errors import ExpressionError
from omnicanal.journey.effects import Fetch, Fetched, Refused, Sends
from omnicanal.journey.model import FetchStep, Journey
from omnicanal.journey.sending import retry_delay
from omnicanal.journey.session import Session
from omnicanal.journey.state import Instance


def fetch(session: Session, instance: Instance, journey: Journey, step_id: str, action: FetchStep
          ) -> Sends[float | None]:
    """Make the call and move the instance on; returns when to try again, or None once it moved."""
    scope = session.scope(instance, instance.event)
    try:
        url = action.url.render(scope)
        body = session_values(session, action, scope) if action.method == "POST" else None
    except ExpressionError as exc:
        _failed(session, instance, journey, step_id, action, None, str(exc))
        return None
    outcome = yield Fetch(url, action.method, body, action.timeout, session.customer_id, journey.id, step_id)
    if isinstance(outcome, Fetched):
        instance.retry = None
        instance.vars[action.into] = outcome.value
        session.count(journey.id, f"step:{step_id}:fetched")
        session.record("fetch", journey=journey.id, step=step_id, url=url, status="ok")
        instance.position += 1
        return None
    error = outcome.error if isinstance(outcome, Refused) else f"unexpected answer {outcome!r}"
    if isinstance(outcome, Refused) and outcome.transient:
        retry = instance.retry or {"since": session.now, "attempts": 0, "exhausted": []}
        delay = retry_delay(f"{instance.id}.{instance.seq}", retry["attempts"], outcome.retry_after)
        if session.now + delay - retry["since"] <= session.context.retry_budget:
            retry["attempts"] += 1
            instance.retry = retry
            session.record("fetch", journey=journey.id, step=step_id, url=url, status="retrying", error=error,
                           retry_in=round(delay, 3))
            return session.now + delay
    instance.retry = None
    _failed(session, instance, journey, step_id, action, url, error)
    return None


def session_values(session: Session, action: FetchStep, scope: dict[str, object]) -> dict[str, object]:
    """The POST body: every value must evaluate (a body with a hole is not sent)."""
    return {name: expression.evaluate(scope) for name, expression in action.body.items()}


def _failed(session: Session, instance: Instance, journey: Journey, step_id: str, action: FetchStep,
            url: str | None, error: str) -> None:
    instance.vars.pop(action.into, None)
    session.count(journey.id, f"step:{step_id}:failed")
    session.record("fetch", journey=journey.id, step=step_id, url=url, status="failed", error=error)
    target = action.on_error
    instance.position = instance.position + 1 if target == "skip" else journey.step_index(target)

"""A send step: choose the channel, render the message, hand it to the connector — at most once.

Channel choice (policy/choice.py): the step's channels in the customer's preferred order; a channel qualifies
with an address, a template variant, consent for the step's purpose, outside quiet hours (marketing), and, on
WhatsApp outside the 24 h window, an approved template. Marketing sends must also fit the frequency caps,
checked and recorded atomically. Every channel passed over is recorded with its reason.

Outcomes: sent (or queued) → done; the provider refuses for good → the next channel; a transient failure →
the step is retried later (durably: the instance waits on a timer, honouring Retry-After, with exponential
backoff and jitter) until the retry budget is spent, then the next channel; nothing qualifies only because of
quiet hours → the step waits for the window to open; nothing qualifies at all → `suppressed`.

At most once: before the provider is called the message is claimed in Redis under an id derived from the
instance and the step visit — with the frequency-cap check, one script (store/sends.py). A replay (re-delivered
event after a crash) finds the claim and does not send again; a claim still marked `sending` means the process
died during the call or before the customer's commit, so the outcome is `unknown`. The record with the
provider's answer is written with the commit (or at once, with its provider id, where receipts will ask for it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from omnicanal.channels import ConnectorRegistry, OutboundMessage
from omnicanal.engine.instance import Instance
from omnicanal.errors import (
    DeliveryError,
    ExpressionError,
    PermanentDelivery,
    TemplateError,
    TransientDelivery,
    UnknownDelivery,
)
from omnicanal.journey.model import DigestStep, Journey, SendStep
from omnicanal.metrics import MESSAGES
from omnicanal.policy.caps import Cap
from omnicanal.policy.choice import Candidate, Rules, choose
from omnicanal.render import Rendered, TemplateCatalog
from omnicanal.store.customers import CustomerStore
from omnicanal.store.rates import RateLimiter
from omnicanal.store.sends import SendLog
from omnicanal.store.work import FALLBACK_TOKEN

if TYPE_CHECKING:
    from omnicanal.engine.session import CustomerSession

log = structlog.get_logger("omnicanal.delivery")

RETRY_BASE = 2.0
RETRY_MAX = 300.0


def retry_delay(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, never sooner than the provider's Retry-After."""
    backoff = random.uniform(0, min(RETRY_MAX, RETRY_BASE * 2 ** attempt))
    return max(backoff, retry_after or 0.0)


@dataclass(slots=True)
class _Send:
    """One send step being carried out: where it stands and what was tried."""

    session: CustomerSession
    instance: Instance
    journey: Journey
    step_id: str
    action: SendStep | DigestStep
    scope: dict[str, Any]
    skipped: list[dict[str, str]] = field(default_factory=list)

    def record(self, status: str, **fields: Any) -> None:
        stats = self.session.stats[self.journey.id]
        stats[f"step:{self.step_id}:{status}"] += 1
        if "channel" in fields:
            stats[f"channel:{fields['channel']}:{status}"] += 1
            MESSAGES.labels(fields["channel"], status).inc()
        extra = {"skipped": self.skipped} if self.skipped else {}
        self.session.record("message", journey=self.journey.id, step=self.step_id, template=self.action.template,
                            purpose=self.action.purpose, status=status, **fields, **extra)


class Delivery:
    def __init__(self, templates: TemplateCatalog, connectors: ConnectorRegistry, customers: CustomerStore,
                 sends: SendLog, rates: RateLimiter, rules: Rules, caps: tuple[Cap, ...], default_locale: str,
                 retry_budget: float) -> None:
        self.templates = templates
        self._connectors = connectors
        self._customers = customers
        self._sends = sends
        self._rates = rates
        self._rules = rules
        self._caps = caps
        self._default_locale = default_locale
        self._retry_budget = retry_budget

    async def deliver(self, session: CustomerSession, instance: Instance, journey: Journey, step_id: str,
                      action: SendStep | DigestStep, data: dict[str, Any] | None = None) -> float | None:
        """Carry out the step; returns when to try again (quiet hours, transient failure), or None: done."""
        send = _Send(session, instance, journey, step_id, action, session.scope(instance, instance.event))
        retry = instance.retry or {}
        exhausted = set(retry.get("exhausted", []))
        choice = choose(action.channels, session.customer, self.templates.channels(action.template) or (),
                        action.purpose, session.now, self._rules)
        send.skipped += choice.skipped
        retry_at: float | None = None
        for candidate in choice.candidates:
            if candidate.channel in exhausted:
                send.skipped.append({"channel": candidate.channel, "reason": "failed: retries exhausted"})
                continue
            outcome = await self._attempt(send, candidate, data)
            if outcome == "settled":
                instance.retry = None
                return None
            if isinstance(outcome, float):  # transient: try this channel again later, within the budget
                retry_at = outcome
                break
        if retry_at is not None:
            return retry_at
        if choice.held_until is not None and not choice.candidates:
            send.record("held", until=choice.held_until)
            return choice.held_until
        instance.retry = None
        failed = any(s["reason"].startswith("failed") for s in send.skipped)
        send.record("failed" if failed else "suppressed")
        return None

    def _render(self, send: _Send, candidate: Candidate, data: dict[str, Any] | None) -> Rendered | str:
        """The message for this channel, or why it cannot go on it."""
        locale = send.session.customer.get("locale") or self._default_locale
        values = data if data is not None else {name: e.evaluate(send.scope) for name, e in send.action.data.items()}
        rendered = self.templates.render(send.action.template, candidate.channel, locale,
                                         {**send.scope, "data": values, "locale": locale})
        if candidate.channel == "whatsapp":
            if candidate.template_only and not rendered.content.get("content_sid"):
                return "outside the 24h WhatsApp window and the template has no approved variant (content_sid)"
            if not candidate.template_only:  # inside the window: a free-form message
                rendered.content.pop("content_sid", None)
                rendered.content.pop("content_variables", None)
        return rendered

    async def _attempt(self, send: _Send, candidate: Candidate, data: dict[str, Any] | None) -> str | float:
        """Try one channel: "settled" (sent, unknown, or a rendering failure every channel would share),
        "next" (this channel will not do: try the next), or the time to retry this channel at."""
        session, channel = send.session, candidate.channel
        message_id = f"{send.instance.id}.{send.instance.seq}.{channel}"
        try:
            rendered = self._render(send, candidate, data)
        except (TemplateError, ExpressionError) as exc:
            log.warning("render_failed", customer_id=session.customer_id, journey=send.journey.id,
                        step=send.step_id, error=str(exc))
            send.record("failed", channel=channel, error=str(exc))
            return "settled"
        if isinstance(rendered, str):
            send.skipped.append({"channel": channel, "reason": rendered})
            return "next"
        shown = {"channel": channel, "message_id": message_id, "to": candidate.to, "locale": rendered.locale,
                 "content": rendered.content}
        now = session.engine.clock.now()
        record: dict[str, Any] = {"status": "sending", "history": [{"status": "sending", "at": now}],
                                  "journey": send.journey.id, "step": send.step_id, "channel": channel}
        caps = (*self._caps, *send.journey.caps) if send.action.purpose == "marketing" else ()
        claim = await self._sends.claim(session.customer_id, message_id, record, channel, send.journey.id, now, caps)
        if claim.previous is not None:
            return await self._replayed(send, claim.previous, message_id, shown, now)
        if claim.cap is not None:
            send.skipped.append({"channel": channel, "reason": f"frequency cap {claim.cap}"})
            return "next"
        connector = self._connectors.for_channel(channel)
        await self._rates.acquire(connector.name, connector.rate_limit)
        message = OutboundMessage(id=message_id, customer_id=session.customer_id, channel=channel, to=candidate.to,
                                  content=rendered.content, template=send.action.template, locale=rendered.locale,
                                  journey=send.journey.id, step=send.step_id)
        error: DeliveryError | None = None
        try:
            receipt = await connector.send(message)
            status, provider_id = receipt.status, receipt.provider_id
        except UnknownDelivery as exc:
            status, provider_id, error = "unknown", None, exc
        except DeliveryError as exc:
            status, provider_id, error = "failed", None, exc
        record["status"] = status
        record["history"].append({"status": status, "at": session.engine.clock.now(), "connector": connector.name,
                                  **({"error": str(error)} if error else {})})
        if provider_id:
            record["provider_id"] = provider_id
        if status != "failed" and candidate.later:  # what the fallback needs, should the message not arrive
            record["fallback"] = {"journey": send.journey.id, "version": send.journey.version, "step": send.step_id,
                                  "channels": list(candidate.later), "event": send.instance.event,
                                  "vars": send.instance.vars}
        if provider_id and connector.provider:  # its provider calls back with receipts: they must find the message
            await self._customers.save_sent_message(session.customer_id, message_id, record, provider_id)
        else:  # written with the customer's commit; a crash before it leaves the claim, read as `unknown`
            session.commit.messages[message_id] = record
        fallback_after = getattr(send.action, "fallback_after", None)
        if status != "failed" and candidate.later and fallback_after:
            session.schedule(message_id, FALLBACK_TOKEN, session.now + fallback_after)
        if status != "failed":
            send.instance.messages.append(message_id)
            details = {"provider_id": provider_id, "error": str(error) if error else None}
            send.record(status, **shown, **{name: value for name, value in details.items() if value})
            return "settled"
        return await self._failed(send, candidate, message_id, error)

    async def _failed(self, send: _Send, candidate: Candidate, message_id: str,
                      error: DeliveryError | None) -> str | float:
        session, channel = send.session, candidate.channel
        log.warning("send_failed", customer_id=session.customer_id, channel=channel, error=str(error))
        if send.action.purpose == "marketing":
            await self._sends.forget(session.customer_id, message_id, channel, send.journey.id)
        if isinstance(error, PermanentDelivery) and error.invalid_address:
            await self._customers.remove_address(session.customer_id, channel, candidate.to)
        if isinstance(error, TransientDelivery):
            retry = send.instance.retry or {"since": session.now, "attempts": 0, "exhausted": []}
            delay = retry_delay(retry["attempts"], error.retry_after)
            if session.now + delay - retry["since"] <= self._retry_budget:
                retry["attempts"] += 1
                send.instance.retry = retry
                send.record("retrying", channel=channel, error=str(error), retry_in=round(delay, 3))
                return session.now + delay
            retry["exhausted"] = [*retry["exhausted"], channel]
            send.instance.retry = retry
        send.skipped.append({"channel": channel, "reason": f"failed: {error}"})
        return "next"

    async def _replayed(self, send: _Send, previous: dict[str, Any], message_id: str, shown: dict[str, Any],
                        now: float) -> str | float:
        """The step visit was already claimed (a re-delivered item): never send again, report what happened."""
        status = previous["status"]
        if status in ("failed", "capped"):  # that channel did not take it: the next one was tried
            send.skipped.append({"channel": shown["channel"], "reason": status})
            return "next"
        if status == "sending":  # the process died while the provider had the request
            status = "unknown"
            previous["history"].append({"status": status, "at": now})
            await self._customers.save_message(send.session.customer_id, message_id, {**previous, "status": status})
        send.instance.messages.append(message_id)
        send.record(status, **shown)
        return "settled"

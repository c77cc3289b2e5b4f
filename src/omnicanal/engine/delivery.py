"""A send step: pick the channel, render the message, hand it to the connector — at most once.

Channel choice: the step's `channels` in order; a channel qualifies when the customer has an address for it and
the template has a variant for it. Each skipped channel is recorded with its reason; when none qualifies the
step is `suppressed` and the journey goes on.

At most once: before the provider is called the message is claimed in Redis under an id derived from the
instance and the step visit. A replay (re-delivered event after a crash) finds the claim and does not send
again; a claim still marked `sending` means the process died during the call, so the outcome is `unknown`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from omnicanal.channels import ConnectorRegistry, OutboundMessage
from omnicanal.engine.instance import Instance
from omnicanal.errors import DeliveryError, ExpressionError, TemplateError, UnknownDelivery
from omnicanal.journey.model import Journey, SendStep
from omnicanal.render import TemplateCatalog
from omnicanal.store.customers import CustomerStore

if TYPE_CHECKING:
    from omnicanal.engine.session import CustomerSession

log = structlog.get_logger("omnicanal.delivery")


def _address(addresses: dict[str, Any], channel: str) -> str | None:
    """The customer's address on a channel; for push (a list of device tokens) the most recent one."""
    value = addresses.get(channel)
    if isinstance(value, list):
        return str(value[-1]) if value else None
    return str(value) if value else None


@dataclass(slots=True)
class _Send:
    """One send step being carried out: where it stands and what was tried."""

    session: CustomerSession
    instance: Instance
    journey: Journey
    step_id: str
    action: SendStep
    scope: dict[str, Any]
    skipped: list[dict[str, str]] = field(default_factory=list)

    def record(self, status: str, **fields: Any) -> None:
        self.session.stats[self.journey.id][f"step:{self.step_id}:{status}"] += 1
        if "channel" in fields:
            self.session.stats[self.journey.id][f"channel:{fields['channel']}:{status}"] += 1
        extra = {"skipped": self.skipped} if self.skipped else {}
        self.session.record("message", journey=self.journey.id, step=self.step_id, template=self.action.template,
                            status=status, **fields, **extra)


class Delivery:
    def __init__(self, templates: TemplateCatalog, connectors: ConnectorRegistry, customers: CustomerStore,
                 default_locale: str) -> None:
        self.templates = templates
        self._connectors = connectors
        self._customers = customers
        self._default_locale = default_locale

    async def deliver(self, session: CustomerSession, instance: Instance, journey: Journey, step_id: str,
                      action: SendStep) -> None:
        send = _Send(session, instance, journey, step_id, action, session.scope(instance, instance.event))
        template_channels = self.templates.channels(action.template) or frozenset()
        for channel in action.channels:
            to = _address(session.customer["addresses"], channel)
            if to is None:
                send.skipped.append({"channel": channel, "reason": "no address"})
            elif channel not in template_channels:
                send.skipped.append({"channel": channel, "reason": "template has no variant"})
            elif await self._attempt(send, channel, to):
                return
        failed = any(s["reason"].startswith("failed") for s in send.skipped)
        send.record("failed" if failed else "suppressed")

    async def _attempt(self, send: _Send, channel: str, to: str) -> bool:
        """Try one channel. True when the step is settled (sent, unknown, or a rendering failure every channel
        would share); False when the provider refused and the next channel should be tried."""
        session = send.session
        message_id = f"{send.instance.id}.{send.instance.seq}.{channel}"
        locale = session.customer.get("locale") or self._default_locale
        try:
            data = {name: expr.evaluate(send.scope) for name, expr in send.action.data.items()}
            rendered = self.templates.render(send.action.template, channel, locale,
                                              {**send.scope, "data": data, "locale": locale})
        except (TemplateError, ExpressionError) as exc:
            log.warning("render_failed", customer_id=session.customer_id, journey=send.journey.id,
                        step=send.step_id, error=str(exc))
            send.record("failed", channel=channel, error=str(exc))
            return True
        shown = {"channel": channel, "message_id": message_id, "to": to, "locale": rendered.locale,
                 "content": rendered.content}
        now = session.engine.clock.now()
        record: dict[str, Any] = {"status": "sending", "history": [{"status": "sending", "at": now}]}
        previous = await self._customers.claim_message(session.customer_id, message_id, record)
        if previous is not None:
            status = previous["status"]
            if status == "sending":  # the process died while the provider had the request
                status = "unknown"
                history = [*previous["history"], {"status": status, "at": now}]
                await self._customers.save_message(session.customer_id, message_id,
                                                   {"status": status, "history": history})
            send.instance.messages.append(message_id)
            send.record(status, **shown)
            return True
        connector = self._connectors.for_channel(channel)
        message = OutboundMessage(id=message_id, customer_id=session.customer_id, channel=channel, to=to,
                                  content=rendered.content, template=send.action.template, locale=rendered.locale,
                                  journey=send.journey.id, step=send.step_id)
        error: str | None = None
        try:
            status = (await connector.send(message)).status
        except UnknownDelivery as exc:
            status, error = "unknown", str(exc)
        except DeliveryError as exc:
            status, error = "failed", str(exc)
        record["status"] = status
        record["history"].append({"status": status, "at": session.engine.clock.now(), "connector": connector.name,
                                  **({"error": error} if error else {})})
        await self._customers.save_message(session.customer_id, message_id, record)
        if status == "failed":
            log.warning("send_failed", customer_id=session.customer_id, channel=channel, error=error)
            send.skipped.append({"channel": channel, "reason": f"failed: {error}"})
            return False
        send.instance.messages.append(message_id)
        send.record(status, **shown)
        return True

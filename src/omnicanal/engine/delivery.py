"""Carrying out one send attempt the journey core decided: claim it, hand it to the connector, report the outcome.

At most once: before the provider is called the message is claimed in Redis under its id (derived from the
instance and the step visit) — with the frequency-cap check, one script (store/sends.py). A replay (work applied
again after a crash) finds the claim and does not send again; a claim still marked `sending` means the process
died during the call or before the customer's commit, so the outcome is `unknown`. The record with the
provider's answer is written with the customer's commit — or at once, with its provider id, where the provider's
receipts will look for it.

Provider failures come as the connector's typed errors (errors.py) and leave as data (journey/effects.py): the
core decides what they lead to. What only this side can do happens here: a refused marketing send gives its cap
slot back, and an address the provider says is dead is removed from the profile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

from omnicanal.channels import ConnectorRegistry, OutboundMessage
from omnicanal.engine.clock import Clock
from omnicanal.errors import DeliveryError, PermanentDelivery, TransientDelivery, UnknownDelivery
from omnicanal.journey.effects import Attempt, Capped, Handed, Outcome, Refused, Replayed
from omnicanal.metrics import WorkspaceMetrics
from omnicanal.store.customers import CustomerStore
from omnicanal.store.rates import RateLimiter
from omnicanal.store.sends import SendLog

log = structlog.get_logger("omnicanal.delivery")


class Delivery:
    def __init__(self, connectors: ConnectorRegistry, customers: CustomerStore, sends: SendLog,
                 rates: RateLimiter, clock: Clock, metrics: WorkspaceMetrics,
                 caps_kept: Callable[[], float] = lambda: 0.0) -> None:
        """`caps_kept`: the longest period any frequency cap counts (the brand's and the loaded journeys'), which
        the customer's record of sends is kept for."""
        self._caps_kept = caps_kept
        self._connectors = connectors
        self._provider_seconds = metrics.provider_seconds
        self._customers = customers
        self._sends = sends
        self._rates = rates
        self._clock = clock

    async def attempt(self, attempt: Attempt, records: dict[str, dict[str, Any]]) -> Outcome:
        """Send one message at most once; its record goes into `records` (written with the customer's commit)
        unless its provider's receipts need it at once."""
        customer_id, message_id, channel = attempt.customer_id, attempt.message_id, attempt.channel
        now = self._clock.now()
        record: dict[str, Any] = {"status": "sending", "history": [{"status": "sending", "at": now}],
                                  "journey": attempt.journey, "step": attempt.step, "channel": channel}
        claim = await self._sends.claim(customer_id, message_id, record, channel, attempt.journey, now, attempt.caps,
                                        self._caps_kept() if attempt.caps else 0.0)
        if claim.previous is not None:
            return await self._replayed(customer_id, message_id, claim.previous)
        if claim.cap is not None:
            return Capped(str(claim.cap))
        connector = self._connectors.for_channel(channel)
        await self._rates.acquire(connector.name, connector.rate_limit)
        message = OutboundMessage(id=message_id, customer_id=customer_id, channel=channel, to=attempt.to,
                                  content=attempt.content, template=attempt.template, locale=attempt.locale,
                                  journey=attempt.journey, step=attempt.step, unsubscribe_url=attempt.unsubscribe_url)
        error: DeliveryError | None = None
        provider_id: str | None = None
        started = time.perf_counter()
        try:
            receipt = await connector.send(message)
            status, provider_id = receipt.status, receipt.provider_id
        except UnknownDelivery as exc:
            status, error = "unknown", exc
        except DeliveryError as exc:
            status, error = "failed", exc
        self._provider_seconds(connector.name, _outcome(error)).observe(time.perf_counter() - started)
        record["status"] = status
        record["history"].append({"status": status, "at": self._clock.now(), "connector": connector.name,
                                  **({"error": str(error)} if error else {})})
        if provider_id:
            record["provider_id"] = provider_id
        if provider_id and connector.provider:  # its provider calls back with receipts: they must find the message
            await self._customers.save_sent_message(customer_id, message_id, record, provider_id)
        else:  # written with the customer's commit; a crash before it leaves the claim, read as `unknown`
            records[message_id] = record
        if status == "failed":
            return await self._refused(attempt, error)
        return Handed(status, provider_id, str(error) if error else None)

    async def _refused(self, attempt: Attempt, error: DeliveryError | None) -> Refused:
        log.warning("send_failed", customer_id=attempt.customer_id, channel=attempt.channel, error=str(error))
        if attempt.caps:  # the send did not happen after all: its slot goes back
            await self._sends.forget(attempt.customer_id, attempt.message_id, attempt.channel, attempt.journey)
        if isinstance(error, PermanentDelivery) and error.invalid_address:
            await self._customers.remove_address(attempt.customer_id, attempt.channel, attempt.to)
        if isinstance(error, TransientDelivery):
            return Refused(str(error), transient=True, retry_after=error.retry_after)
        return Refused(str(error))

    async def _replayed(self, customer_id: str, message_id: str, previous: dict[str, Any]) -> Replayed:
        """The message was claimed before (the work is applied again): never send again, say what happened."""
        status = str(previous["status"])
        if status == "sending":  # the process died while the provider had the request
            status = "unknown"
            previous["history"].append({"status": status, "at": self._clock.now()})
            await self._customers.save_message(customer_id, message_id, {**previous, "status": status})
        return Replayed(status)


def _outcome(error: DeliveryError | None) -> str:
    """A provider call's outcome as a metric label: `ok`, `transient`, `unknown`, or `permanent` (any other
    refusal: the next channel is tried at once)."""
    if error is None:
        return "ok"
    if isinstance(error, TransientDelivery):
        return "transient"
    return "unknown" if isinstance(error, UnknownDelivery) else "permanent"

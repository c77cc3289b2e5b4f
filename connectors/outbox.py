"""The outbox connector: records each message in Redis instead of sending it.

Every channel with no real provider configured uses it, so journeys run end to end without credentials, and the
demo and tests can read exactly what would have gone out (`GET /v1/outbox`).
"""

from __future__ import annotations

import time
from typing import ClassVar

from omnicanal.channels import Connector, ConnectorContext, ConnectorSettings, OutboundMessage, Receipt
from omnicanal.store.outbox import OutboxStore


class OutboxConnector(Connector):
    name: ClassVar[str] = "outbox"
    channels: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, context: ConnectorContext, settings: ConnectorSettings | None = None) -> None:
        super().__init__(context, settings)
        self._outbox = OutboxStore(context.redis, context.keys)

    async def send(self, message: OutboundMessage) -> Receipt:
        await self._outbox.append({
            "message_id": message.id,
            "customer_id": message.customer_id,
            "channel": message.channel,
            "to": message.to,
            "template": message.template,
            "locale": message.locale,
            "journey": message.journey,
            "step": message.step,
            "content": dict(message.content),
            "recorded_at": time.time(),
        })
        return Receipt(status="sent", provider_id=f"outbox-{message.id}")

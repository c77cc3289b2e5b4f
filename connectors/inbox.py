"""The in-app inbox: a message on channel `inbox` is kept in Redis, in the customer's inbox, for the brand's app to
show (`GET /v1/inbox`, live through `GET /v1/inbox/stream`).

There is no provider: every customer has an inbox (its address is their id), and the message is there the moment
it is stored. The customer's app marks it read (`POST /v1/inbox/read`, which becomes a `message.read` event) or
archived. The template variant has `title` and `body`, and optionally `url` (where a tap leads) and `image`.
"""

from __future__ import annotations

import time
from typing import ClassVar

from omnicanal.channels import Connector, ConnectorContext, ConnectorSettings, OutboundMessage, Receipt
from omnicanal.store.inbox import InboxStore
from omnicanal.timestamps import iso


class InboxConnector(Connector):
    name: ClassVar[str] = "inbox"
    channels: ClassVar[frozenset[str]] = frozenset({"inbox"})

    def __init__(self, context: ConnectorContext, settings: ConnectorSettings | None = None) -> None:
        super().__init__(context, settings)
        self._inbox = InboxStore(context.redis, context.keys)

    async def send(self, message: OutboundMessage) -> Receipt:
        arrived = time.time()
        await self._inbox.append(message.customer_id, {
            "id": message.id, **dict(message.content), "journey": message.journey, "step": message.step,
            "template": message.template, "locale": message.locale, "created_at": iso(arrived),
        }, int(arrived * 1000))
        return Receipt(status="sent", provider_id=f"inbox-{message.id}")

"""Message records: what was sent, where, and its status history as the provider reports it.

The worker writes a record when it claims a message (sends.py), when the provider answered, and when a replay
or a fallback settles it; the API records the provider's receipts. Both may write the same message at once, so
each write is one Lua script and a status history only ever grows (schema.HISTORY_SUFFIX): a receipt recorded
while the worker holds an older copy of the record stays when the worker writes it back.
"""

from __future__ import annotations

import asyncio
from typing import Any

from omnicanal.codec import encode
from omnicanal.store import schema
from omnicanal.store.connection import call
from omnicanal.store.keys import Keyspace
from omnicanal.store.scripts import load
from omnicanal.store.transport import Transport

SAVE_MESSAGE = load("save_message")
RECORD_STATUS = load("record_status")
PROVIDER_INDEX_SECONDS = 30 * 86400
"""How long a provider's message id finds its message (receipts come within hours; late ones are ignored)."""


class MessageLog:
    def __init__(self, transport: Transport, keys: Keyspace) -> None:
        self._transport = transport
        self._keys = keys

    async def save(self, customer_id: str, message_id: str, record: dict[str, Any]) -> None:
        """Write a message's record; its status history merges with the stored one."""
        stored = schema.encode_message(record)
        await self._transport.script(SAVE_MESSAGE, [self._keys.customer(customer_id).messages],
                                     [message_id, stored.record, *stored.flat_history()])

    async def save_sent(self, customer_id: str, message_id: str, record: dict[str, Any], provider_id: str) -> None:
        """Save a message's record and remember whose message its provider id is, in the same round trip (shared
        with the other messages sent at the same time), before the provider's receipts can ask."""
        index = self._transport.command("SET", self._keys.provider_message(provider_id),
                                        schema.provider_entry(customer_id, message_id), "EX", PROVIDER_INDEX_SECONDS)
        await asyncio.gather(self.save(customer_id, message_id, record), index)

    async def of_provider_id(self, provider_id: str) -> tuple[str, str] | None:
        """(customer, message) of a provider's message id, if it is ours and recent."""
        raw = await call(self._transport.client.get(self._keys.provider_message(provider_id)))
        return schema.parse_provider_entry(raw) if raw else None

    async def get(self, customer_id: str, message_id: str) -> dict[str, Any] | None:
        key = self._keys.customer(customer_id).messages
        record, history = await call(self._transport.client.hmget(key, [message_id,
                                                                        message_id + schema.HISTORY_SUFFIX]))
        return schema.decode_message(message_id, record, history) if record else None

    async def record_status(self, customer_id: str, message_id: str, status: str, at: float,
                            error_code: str | None = None) -> dict[str, Any] | None:
        """Append a provider's status to a message's history, unless the history holds it already; the record
        as it stands afterwards, or None for a message the customer does not have."""
        entry = encode({"status": status, "at": at, **({"error_code": error_code} if error_code else {})})
        key = self._keys.customer(customer_id).messages
        answer = await self._transport.script(RECORD_STATUS, [key], [message_id, status, entry])
        return schema.decode_message(message_id, answer[0], answer[1]) if answer else None

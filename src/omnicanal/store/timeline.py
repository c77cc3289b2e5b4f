"""Reading a customer's timeline: every event and message, oldest first, messages with their latest status."""

from __future__ import annotations

from typing import Any

from omnicanal.codec import loads
from omnicanal.store import schema
from omnicanal.store.connection import Redis, decode_map, translated
from omnicanal.store.keys import CustomerKeys


async def read_timeline(client: Redis, k: CustomerKeys) -> list[dict[str, Any]]:
    """Every entry, oldest first, messages carrying their latest status and status history."""
    async with translated(), client.pipeline(transaction=False) as pipe:
        pipe.lrange(k.timeline, 0, -1)
        pipe.hgetall(k.messages)
        raw_entries, raw_messages = await pipe.execute()
    messages = schema.decode_messages(decode_map(raw_messages))
    entries = [loads(raw) for raw in raw_entries]
    for entry in entries:
        record = messages.get(entry.get("message_id", ""))
        if entry.get("kind") == "message" and record:
            entry["status"] = record["status"]
            entry["status_history"] = record["history"]
    return entries

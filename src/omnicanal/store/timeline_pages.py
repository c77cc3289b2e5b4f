"""A customer's timeline one page at a time, for people reading it (the dashboard).

`CustomerStore.timeline` reads every entry and every message record: right for the API's export of one
customer, not for a page that must answer quickly whatever the customer's history. A page reads a range of the
list and only the message records its own entries name.

Pages are addressed by position counted from the first entry ever (the profile's `timeline_trimmed` plus the
list index), so a link to older entries keeps pointing at the same entries while new ones come and the oldest
are trimmed away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omnicanal.codec import loads
from omnicanal.store import schema
from omnicanal.store.connection import Redis, translated
from omnicanal.store.keys import Keyspace


@dataclass(frozen=True, slots=True)
class TimelinePage:
    """Entries oldest first, `first` the position of the first one; `older` is the position to ask for the
    page before (None: this page starts at the oldest entry kept)."""

    entries: list[dict[str, Any]]
    first: int
    total: int
    """Entries kept on the timeline now."""
    older: int | None
    latest: bool
    """Nothing newer than this page's entries."""


class TimelinePages:
    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self._redis = redis
        self._keys = keys

    async def page(self, customer_id: str, size: int, before: int | None = None) -> TimelinePage:
        """The `size` entries before position `before` (None: the newest), messages with their latest status
        and status history, as `CustomerStore.timeline` gives them (store/timeline.py)."""
        k = self._keys.customer(customer_id)
        async with translated():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.hget(k.profile, schema.TIMELINE_TRIMMED)
                pipe.llen(k.timeline)
                raw_trimmed, length = await pipe.execute()
            trimmed = int(raw_trimmed or 0)
            end = length if before is None else max(0, min(before - trimmed, length))
            start = max(0, end - size)
            raw = await self._redis.lrange(k.timeline, start, end - 1) if end > start else []
            entries = [loads(item) for item in raw]
            message_ids = [e["message_id"] for e in entries if e.get("kind") == "message" and e.get("message_id")]
            fields = [field for mid in message_ids for field in (mid, mid + schema.HISTORY_SUFFIX)]
            stored = await self._redis.hmget(k.messages, fields) if fields else []
        found = {mid: schema.decode_message(mid, record, history)
                 for mid, record, history in zip(message_ids, stored[0::2], stored[1::2], strict=True) if record}
        for entry in entries:
            record = found.get(entry.get("message_id", "")) if entry.get("kind") == "message" else None
            if record:
                entry["status"] = record["status"]
                entry["status_history"] = record["history"]
        return TimelinePage(entries, trimmed + start, int(length), trimmed + start if start > 0 else None,
                            end == length)

"""A customer's in-app inbox: the messages sent on channel `inbox`, newest first, each read and archived once.

The messages sit with the customer's other keys (one slot): a hash of message id -> the message as JSON, with a
field per mark (`<id>|r`, `<id>|a`: when it was read, archived), and a sorted set giving their order of arrival.
An inbox keeps its newest INBOX_KEPT messages; it is a feed, not an archive (the message records, and the
timeline, keep every send).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omnicanal.codec import dumps, loads
from omnicanal.store.connection import Redis, call
from omnicanal.store.keys import Keyspace
from omnicanal.store.schema import INBOX_ARCHIVED_SUFFIX, INBOX_KEPT, INBOX_READ_SUFFIX, INBOX_VERSION
from omnicanal.store.scripts import load

INBOX_APPEND = load("inbox_append")
INBOX_MARK = load("inbox_mark")
MARKS = {"read": INBOX_READ_SUFFIX, "archived": INBOX_ARCHIVED_SUFFIX}
"""What a message can be marked, and the suffix of its field."""


class InboxStore:
    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self._redis = redis
        self._keys = keys

    async def append(self, customer_id: str, message: dict[str, Any], arrived_ms: int) -> bool:
        """Put `message` (its `id` among its fields) in the inbox; False if it was there already."""
        k = self._keys.customer(customer_id)
        added = await call(self._redis.eval(INBOX_APPEND.source, 2, k.inbox, k.inbox_order, message["id"],
                                            dumps(message), arrived_ms, INBOX_KEPT))
        return bool(int(added))

    async def messages(self, customer_id: str) -> list[tuple[int, dict[str, Any]]]:
        """Every message kept, newest first, each with when it arrived (ms) and its marks (`read_at`,
        `archived_at`: None until then)."""
        k = self._keys.customer(customer_id)
        ordered = await call(self._redis.zrevrange(k.inbox_order, 0, -1, withscores=True))
        if not ordered:
            return []
        fields = [f"{mid}{suffix}" for mid, _ in ordered for suffix in ("", INBOX_READ_SUFFIX, INBOX_ARCHIVED_SUFFIX)]
        values = await call(self._redis.hmget(k.inbox, fields))
        found = []
        for (_, score), (message, read_at, archived_at) in zip(ordered, _triples(values), strict=True):
            if message is not None:  # trimmed between the two reads
                found.append((int(score), {**loads(message), "read_at": read_at, "archived_at": archived_at}))
        return found

    async def version(self, customer_id: str) -> int:
        """How many changes the inbox has had (messages in, marks): equal, nothing to read again."""
        return int(await call(self._redis.hget(self._keys.customer(customer_id).inbox, INBOX_VERSION)) or 0)

    async def mark(self, customer_id: str, message_ids: Sequence[str], mark: str, at: str) -> list[str]:
        """Mark these messages `read` or `archived` at `at` (ISO 8601), each once; returns those newly marked."""
        if not message_ids:
            return []
        inbox = self._keys.customer(customer_id).inbox
        marked = await call(self._redis.eval(INBOX_MARK.source, 1, inbox, MARKS[mark], at, *message_ids))
        return [str(mid) for mid in marked]


def _triples(values: Sequence[Any]) -> list[tuple[Any, Any, Any]]:
    return [(values[i], values[i + 1], values[i + 2]) for i in range(0, len(values), 3)]

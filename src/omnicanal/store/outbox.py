"""The outbox: messages recorded instead of sent, newest last, capped, read a page at a time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omnicanal.codec import dumps, loads
from omnicanal.store.connection import Redis, call, translated
from omnicanal.store.keys import Keyspace
from omnicanal.store.scripts import load

OUTBOX_LIMIT = 10_000
"""The outbox keeps the most recent messages only: it is a development aid, not an archive."""
OUTBOX_PAGE = load("outbox_page")
_SCAN = 500
"""Records read per round trip while looking for those a filtered page wants."""


class OutboxStore:
    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self._redis = redis
        self._key = keys.outbox
        self._count = keys.outbox_count

    async def append(self, record: dict[str, Any]) -> None:
        async with translated(), self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(self._count)
            pipe.rpush(self._key, dumps(record))
            pipe.ltrim(self._key, -OUTBOX_LIMIT, -1)
            await pipe.execute()

    async def page(self, after: int, limit: int, wanted: Mapping[str, str]) -> tuple[list[dict[str, Any]], int | None]:
        """Up to `limit` records after position `after`, oldest first, whose fields equal `wanted`; and the
        position to ask after for the next page (None: the outbox has nothing more)."""
        found: list[dict[str, Any]] = []
        while True:
            first, *raw = await call(self._redis.eval(OUTBOX_PAGE.source, 2, self._key, self._count, after,
                                                      max(limit, _SCAN)))
            for position, text in enumerate(raw, start=int(first)):
                record = loads(text)
                after = position
                if all(record.get(name) == value for name, value in wanted.items()):
                    found.append(record)
                    if len(found) == limit:
                        return found, position
            if len(raw) < max(limit, _SCAN):
                return found, None

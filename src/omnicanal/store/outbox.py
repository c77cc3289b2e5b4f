"""The outbox: messages recorded instead of sent, newest last, capped."""

from __future__ import annotations

from typing import Any

from omnicanal.codec import dumps, loads
from omnicanal.store.connection import Redis, call, translated
from omnicanal.store.keys import Keyspace

OUTBOX_LIMIT = 10_000
"""The outbox keeps the most recent messages only: it is a development aid, not an archive."""


class OutboxStore:
    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self._redis = redis
        self._key = keys.outbox

    async def append(self, record: dict[str, Any]) -> None:
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(self._key, dumps(record))
            pipe.ltrim(self._key, -OUTBOX_LIMIT, -1)
            await pipe.execute()

    async def records(self) -> list[dict[str, Any]]:
        raw = await call(self._redis.lrange(self._key, 0, -1))
        return [loads(item) for item in raw]

"""Provider send-rate limits shared by every worker: a counter per connector and second in Redis.

A connector declares the rate its provider allows (`Connector.rate_limit`); OMNICANAL_RATE_LIMITS overrides it.
Over the limit, the send waits for the next second rather than being refused by the provider with a 429.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping

from omnicanal.store.connection import Redis, translated
from omnicanal.store.keys import Keyspace


class RateLimiter:
    def __init__(self, redis: Redis, keys: Keyspace, overrides: Mapping[str, float]) -> None:
        self._redis = redis
        self._keys = keys
        self._overrides = dict(overrides)

    async def acquire(self, connector: str, default: float | None) -> None:
        """Return once a send through `connector` fits its per-second budget."""
        limit = self._overrides.get(connector, default)
        if not limit:
            return
        per_second = max(1, math.floor(limit))
        while True:
            now = time.time()
            second = int(now)
            key = self._keys.rate(connector, second)
            async with translated(), self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, 2)
                count, _ = await pipe.execute()
            if count <= per_second:
                return
            await asyncio.sleep(second + 1 - now)

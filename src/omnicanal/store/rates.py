"""Provider send-rate limits shared by every worker: a counter per connector and second in Redis.

A connector declares the rate its provider allows (`Connector.rate_limit`); OMNICANAL_RATE_LIMITS overrides it.
Over the limit, the send waits for the next second rather than being refused by the provider with a 429.

A worker takes its sends from the shared counter in small reservations — one fiftieth of the per-second budget,
at most RESERVATION_MAX, at least one — and spends them locally: a high limit costs one Redis call per
reservation, not per send, while a low one (10/s) is still shared exactly, one send at a time. Sends reserved
and not spent within their second are lost, never carried over, so the total never exceeds the limit.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping

from omnicanal.store.connection import Redis, translated
from omnicanal.store.keys import Keyspace

RESERVATION_SHARE = 50
"""A reservation is this fraction (1/N) of the per-second budget."""
RESERVATION_MAX = 100


class RateLimiter:
    def __init__(self, redis: Redis, keys: Keyspace, overrides: Mapping[str, float]) -> None:
        self._redis = redis
        self._keys = keys
        self._overrides = dict(overrides)
        self._reserved: dict[str, tuple[int, int]] = {}
        """connector -> (second, sends this worker reserved for that second and has not spent yet)."""
        self._refills: dict[str, asyncio.Lock] = {}

    async def acquire(self, connector: str, default: float | None) -> None:
        """Return once a send through `connector` fits its per-second budget."""
        limit = self._overrides.get(connector, default)
        if not limit:
            return
        per_second = max(1, math.floor(limit))
        chunk = max(1, min(RESERVATION_MAX, per_second // RESERVATION_SHARE))
        refill = self._refills.setdefault(connector, asyncio.Lock())
        while True:
            if self._spend(connector):
                return
            async with refill:  # one reservation at a time: the sends waiting meanwhile spend it
                if self._spend(connector):
                    return
                now = time.time()
                second = int(now)
                key = self._keys.rate(connector, second)
                async with translated(), self._redis.pipeline(transaction=False) as pipe:
                    pipe.incrby(key, chunk)
                    pipe.expire(key, 2)
                    count, _ = await pipe.execute()
                granted = min(chunk, per_second - (count - chunk))
                if granted > 0:
                    self._reserved[connector] = (second, granted - 1)
                    return
                await asyncio.sleep(second + 1 - now)

    def _spend(self, connector: str) -> bool:
        """Take one send from this worker's reservation for the current second, if any is left."""
        second = int(time.time())
        held_second, left = self._reserved.get(connector, (second, 0))
        if held_second != second or left <= 0:
            return False
        self._reserved[connector] = (second, left - 1)
        return True

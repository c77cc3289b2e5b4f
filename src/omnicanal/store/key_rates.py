"""Requests per API key (or, on an API without keys, per client address) and second, counted in Redis so that every
API process shares one limit (OMNICANAL_RATE_LIMIT_PER_KEY).

A fixed window of one second: INCR of the key's counter for the current second and EXPIRE, in one round trip.
Simple and shared; its known edge: a client can fit up to twice the limit in a second that straddles two windows.
"""

from __future__ import annotations

import time

from omnicanal.store.connection import Redis, translated
from omnicanal.store.keys import Keyspace


class KeyRates:
    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self._redis = redis
        self._keys = keys

    async def wait_for(self, subject: str, limit: int) -> float:
        """Count one request of `subject` (a key's fingerprint, `address:<client address>`); 0 when it fits the
        limit, else the seconds until the next window (the request is refused)."""
        now = time.time()
        second = int(now)
        key = self._keys.key_hits(subject, second)
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, 2)
            count, _ = await pipe.execute()
        return 0.0 if count <= limit else second + 1 - now

"""Idempotency keys and the bodies they came with: the same key with the same body is a retry (same id, no second
effect); the same key with another body is a conflict the client must hear about (409), not a silent drop."""

from __future__ import annotations

from collections.abc import Sequence

from omnicanal.store.connection import Redis, translated
from omnicanal.store.keys import Keyspace


class IdempotencyIndex:
    def __init__(self, redis: Redis, keys: Keyspace, window: float) -> None:
        self._redis = redis
        self._keys = keys
        self._window = int(window)

    async def first_seen(self, bodies: Sequence[tuple[str, str]]) -> list[bool]:
        """For each (event id, body fingerprint): True when the key is new or came with this very body before;
        False when it came with another body. One round trip for all."""
        if not bodies:
            return []
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            for event_id, fingerprint in bodies:
                pipe.set(self._keys.idempotency(event_id), fingerprint, nx=True, get=True, ex=self._window)
            previous = await pipe.execute()
        return [before is None or before == fingerprint for (_, fingerprint), before in zip(bodies, previous,
                                                                                             strict=True)]

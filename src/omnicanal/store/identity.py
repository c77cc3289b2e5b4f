"""The identity index: which customer an e-mail, phone, push token or anonymous id belongs to.

An index, not state: it is written after the profile (a different slot), and a stale entry is harmless because
every lookup is checked against the profile it points to before use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from omnicanal.store.connection import Redis, call, translated
from omnicanal.store.keys import Keyspace


class IdentityIndex:
    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self._redis = redis
        self._keys = keys

    async def link(self, customer_id: str, identifiers: Iterable[tuple[str, str]]) -> None:
        """Point these identifiers at the customer (the latest profile to claim one wins)."""
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            self.link_into(pipe, customer_id, identifiers)
            if len(pipe):
                await pipe.execute()

    def link_into(self, pipe: Any, customer_id: str, identifiers: Iterable[tuple[str, str]]) -> None:
        """Queue the links on `pipe`, with other writes."""
        for kind, value in identifiers:
            pipe.set(self._keys.identity(kind, value), customer_id)

    async def resolve(self, kind: str, value: str) -> str | None:
        found: str | None = await call(self._redis.get(self._keys.identity(kind, value)))
        return found

    async def resolve_many(self, identifiers: Sequence[tuple[str, str]]) -> list[str | None]:
        """The customer of each (kind, value), None for those nobody has: one round trip (a Cluster's client
        splits it by node)."""
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            for kind, value in identifiers:
                pipe.get(self._keys.identity(kind, value))
            return list(await pipe.execute())

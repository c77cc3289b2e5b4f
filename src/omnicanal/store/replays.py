"""The signatures of signed requests seen lately (signing.py), so that a captured request sent again within its
window is refused: one `SET NX EX` per request, shared by every API process, kept as long as the request's timestamp
is in the window (at most twice signing.WINDOW) and no longer."""

from __future__ import annotations

import math

from omnicanal.store.connection import Redis, call
from omnicanal.store.keys import Keyspace


class SignatureMemory:
    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self._redis = redis
        self._keys = keys

    async def first_use(self, key_id: str, signature: str, fresh_for: float) -> bool:
        """Whether this is the first request with `signature` of the key `key_id` within `fresh_for` seconds (then
        it is remembered that long); False: a replay."""
        seconds = max(1, math.ceil(fresh_for))
        return bool(await call(self._redis.set(self._keys.seen_signature(key_id, signature), b"", nx=True,
                                               ex=seconds)))

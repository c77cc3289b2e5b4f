"""The segment index: a Redis set of customer ids per segment, for sizes and for walking an audience in batches
(SSCAN: never the whole audience at once).

The customer's own record (the profile's `audience` field, written by their commit) says which segments they are
in; the index follows it. It is not written by the commit's script: the commit touches only the customer's slot,
and a segment's set holds customers of every slot (Redis Cluster). Instead each batch asserts, before its
commits, the membership of every customer in every segment it evaluated (SADD or SREM, one command per segment
and batch). Asserting is idempotent, so a crash before a commit is repaired by the replay of its work, and the
next evaluation of a customer repairs anything else.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from omnicanal.store.connection import translated
from omnicanal.store.keys import Keyspace
from omnicanal.store.transport import Transport


class SegmentIndex:
    def __init__(self, transport: Transport, keys: Keyspace) -> None:
        self._redis = transport.client
        self._keys = keys

    def follow(self, pipe: Any, memberships: Iterable[tuple[str, Mapping[str, bool]]]) -> None:
        """Queue on `pipe` the membership of each (customer, {segment: in it?}) evaluated: one SADD and one SREM
        per segment at most, however many customers."""
        added: dict[str, list[str]] = {}
        removed: dict[str, list[str]] = {}
        for customer_id, segments in memberships:
            for segment_id, member in segments.items():
                (added if member else removed).setdefault(segment_id, []).append(customer_id)
        for segment_id, customers in added.items():
            pipe.sadd(self._keys.segment_members(segment_id), *customers)
        for segment_id, customers in removed.items():
            pipe.srem(self._keys.segment_members(segment_id), *customers)

    async def sizes(self, segment_ids: Collection[str]) -> dict[str, int]:
        """How many customers each segment holds, in one round trip."""
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            for segment_id in segment_ids:
                pipe.scard(self._keys.segment_members(segment_id))
            counts = await pipe.execute()
        return {segment_id: int(count) for segment_id, count in zip(segment_ids, counts, strict=True)}

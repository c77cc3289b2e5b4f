"""Segment backfills as stored: per segment, the fingerprint of the definition last evaluated for every customer
and how far that walk stands (a hash), and the index of the segments that have such a record.

A segment added, or whose definition changed, must be evaluated for the customers who already match, not only
for those whose next event comes: engine/backfills.py walks every customer for it. Each process arms the
backfills when it loads the segments (`arm`): a segment whose fingerprint is not the recorded one gets a fresh
record — one script, so of the processes loading the same files one arms it and the others find it armed — and
the records of segments no longer defined are dropped, so that a segment defined again is backfilled again.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from omnicanal.store.connection import call, decode_map, translated
from omnicanal.store.keys import Keyspace
from omnicanal.store.schema import (
    BACKFILL_ARMED_AT,
    BACKFILL_CONSIDERED,
    BACKFILL_CURSOR,
    BACKFILL_FINGERPRINT,
    BACKFILL_STATE,
    BACKFILL_TOTAL,
    BACKFILL_WALKED_AT,
    BACKFILL_WALKING,
)
from omnicanal.store.scripts import load
from omnicanal.store.transport import Transport

ARM = load("arm_backfill")
ADVANCE = load("advance_backfill")


@dataclass(frozen=True, slots=True)
class Backfill:
    """One segment's backfill as stored."""

    segment: str
    fingerprint: str
    state: str
    """`walking` (under way, or waiting for a process that runs this definition) or `done`."""
    cursor: str
    considered: int
    total: int | None
    """Customers when the walk began (None: not begun)."""
    armed_at: float
    walked_at: float | None

    @property
    def walking(self) -> bool:
        return self.state == BACKFILL_WALKING

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "considered": self.considered, "total": self.total, "armed_at": self.armed_at,
                "walked_at": self.walked_at}


def _decode(segment_id: str, raw: Mapping[str, str]) -> Backfill:
    return Backfill(segment_id, raw[BACKFILL_FINGERPRINT], raw[BACKFILL_STATE], raw.get(BACKFILL_CURSOR, "0"),
                    int(raw.get(BACKFILL_CONSIDERED, 0)),
                    int(raw[BACKFILL_TOTAL]) if BACKFILL_TOTAL in raw else None, float(raw[BACKFILL_ARMED_AT]),
                    float(raw[BACKFILL_WALKED_AT]) if BACKFILL_WALKED_AT in raw else None)


class SegmentBackfills:
    def __init__(self, transport: Transport, keys: Keyspace) -> None:
        self._transport = transport
        self._redis = transport.client
        self._keys = keys

    async def arm(self, fingerprints: Mapping[str, str], now: float) -> list[str]:
        """The segments loaded (id -> fingerprint of the definition): a backfill begins for each one whose
        definition has none yet; the records of the segments not among them are dropped. Returns the segments
        whose backfill began."""
        k = self._keys
        ids = sorted(fingerprints)
        began = await self._transport.scripts(ARM, [
            ([k.segment_backfill(segment_id), k.segment_backfills], [segment_id, fingerprints[segment_id], repr(now)])
            for segment_id in ids])
        gone = {str(s) for s in await call(self._redis.smembers(k.segment_backfills))} - set(ids)
        if gone:
            async with translated(), self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(*(k.segment_backfill(segment_id) for segment_id in gone))
                pipe.srem(k.segment_backfills, *gone)
                await pipe.execute()
        return [segment_id for segment_id, fresh in zip(ids, began, strict=True) if fresh]

    async def get(self, segment_id: str) -> Backfill | None:
        raw = decode_map(await call(self._redis.hgetall(self._keys.segment_backfill(segment_id))))
        return _decode(segment_id, raw) if BACKFILL_FINGERPRINT in raw else None

    async def of(self, segment_ids: Collection[str]) -> dict[str, Backfill]:
        """The backfills of these segments (those that have one), in one round trip."""
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            for segment_id in segment_ids:
                pipe.hgetall(self._keys.segment_backfill(segment_id))
            answers = await pipe.execute()
        found = {segment_id: decode_map(raw) for segment_id, raw in zip(segment_ids, answers, strict=True)}
        return {segment_id: _decode(segment_id, raw) for segment_id, raw in found.items()
                if BACKFILL_FINGERPRINT in raw}

    async def advance(self, backfill: Backfill, cursor: str, considered: int, now: float, *, finished: bool = False,
                      total: int | None = None) -> bool:
        """Record where the walk stands (`total`: it begins); False when the backfill was superseded meanwhile (a
        newer definition armed): nothing is recorded, and this walk must stop."""
        recorded = await self._transport.script(ADVANCE, [self._keys.segment_backfill(backfill.segment)], [
            backfill.fingerprint, cursor, considered, "1" if finished else "0", repr(now),
            "" if total is None else total])
        return bool(recorded)

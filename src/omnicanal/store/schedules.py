"""Where scheduled journeys stand: per journey, the journey time up to which its occurrences were handled.

The mark only moves forward (`ZADD GT`): a process that looked a moment earlier cannot take it back. Firing an
occurrence twice is harmless anyway (its broadcast id is deterministic and created once); the mark only saves
work and tells a process starting up which occurrences it missed.
"""

from __future__ import annotations

from omnicanal.store.connection import Redis, call
from omnicanal.store.keys import Keyspace


class ScheduleMarks:
    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self._redis = redis
        self._keys = keys

    async def handled(self, journey_id: str) -> float | None:
        """Up to when the journey's occurrences were handled; None if never (a new scheduled journey)."""
        score = await call(self._redis.zscore(self._keys.schedules, journey_id))
        return None if score is None else float(score)

    async def mark(self, journey_id: str, moment: float) -> None:
        await call(self._redis.zadd(self._keys.schedules, {journey_id: moment}, gt=True))

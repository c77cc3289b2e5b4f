"""Journey sources by version, and per-journey counters.

The source of every journey version that ever started an instance is kept, so an instance finishes on the
version it began with even after the file changed and the daemon restarted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from omnicanal.store.connection import Redis, call, decode_map, translated
from omnicanal.store.keys import Keyspace


class JourneyStore:
    def __init__(self, redis: Redis, keys: Keyspace, retention: float = 90 * 86400, counting: bool = True) -> None:
        self._redis = redis
        self._keys = keys
        self._retention = retention
        """Seconds the hourly counters are kept (OMNICANAL_STATS_RETENTION)."""
        self._counting = counting
        """False (OMNICANAL_STATS=false): `record` writes nothing; the stats stay as they were."""

    async def remember(self, journey_id: str, version: str, source: str, events: Iterable[str]) -> None:
        """Keep a version's source, and the names of the events it reacts to (`listened`)."""
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            pipe.hsetnx(self._keys.journey_sources(journey_id), version, source)
            if names := sorted(events):
                pipe.sadd(self._keys.listened, *names)
            await pipe.execute()

    async def listened(self) -> set[str]:
        """The events some version ever remembered here reacts to: one of its instances may still be running."""
        return {name.decode() if isinstance(name, bytes) else name
                for name in await call(self._redis.smembers(self._keys.listened))}

    async def known(self, journey_id: str) -> bool:
        """True once a process of this workspace has loaded a version of the journey (`remember`)."""
        return bool(await call(self._redis.exists(self._keys.journey_sources(journey_id))))

    async def source(self, journey_id: str, version: str) -> str | None:
        result: str | None = await call(
            self._redis.hget(self._keys.journey_sources(journey_id), version)
        )
        return result

    def record(self, pipe: Any, increments: Mapping[str, Mapping[str, float]], now: float) -> None:
        """Queue on `pipe` the counters' increments ({journey: {counter: delta}}; zeros are skipped; fractions,
        such as attribution shares and revenue, are added as floats): to the totals and to the hour of `now`
        (journey time), which expires after the retention. Nothing when counting is off."""
        if not self._counting:
            return
        hour = int(now // 3600)
        for journey_id, counters in increments.items():
            keys = (self._keys.journey_stats(journey_id), self._keys.journey_stats_hour(journey_id, hour))
            for counter, delta in counters.items():
                for key in keys:
                    if delta and float(delta).is_integer():
                        pipe.hincrby(key, counter, int(delta))
                    elif delta:
                        pipe.hincrbyfloat(key, counter, delta)
            pipe.expire(keys[1], int(self._retention + 3600))

    async def hours(self, journey_id: str, first: int, last: int) -> dict[int, dict[str, float]]:
        """The counters of each hour from `first` to `last` (epoch hours, both included) that has any."""
        hours = range(first, last + 1)
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            for hour in hours:
                pipe.hgetall(self._keys.journey_stats_hour(journey_id, hour))
            answers = await pipe.execute()
        return {hour: {name: _number(value) for name, value in decode_map(raw).items()}
                for hour, raw in zip(hours, answers, strict=True) if raw}

    def mark_active(self, pipe: Any, runs: Iterable[tuple[str, str]]) -> None:
        """Queue on `pipe`: these (customer, journey) pairs now run (the index `journeys drain` walks); one
        command per journey, however many customers."""
        for journey_id, customers in self._by_journey(runs).items():
            pipe.sadd(self._keys.journey_active(journey_id), *customers)

    def mark_inactive(self, pipe: Any, runs: Iterable[tuple[str, str]]) -> None:
        for journey_id, customers in self._by_journey(runs).items():
            pipe.srem(self._keys.journey_active(journey_id), *customers)

    @staticmethod
    def _by_journey(runs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for customer_id, journey_id in runs:
            grouped.setdefault(journey_id, []).append(customer_id)
        return grouped

    async def track_active(self, customer_id: str, joined: Iterable[str], left: Iterable[str]) -> None:
        """Change the index at once (merges, outside a batch's writes)."""
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            self.mark_active(pipe, ((customer_id, journey_id) for journey_id in joined))
            self.mark_inactive(pipe, ((customer_id, journey_id) for journey_id in left))
            if len(pipe):
                await pipe.execute()

    async def pause(self, journey_id: str, paused: bool) -> None:
        """Pause the journey (no new entries, its instances defer their work) or let it run again."""
        command = self._redis.sadd if paused else self._redis.srem
        await call(command(self._keys.paused, journey_id))

    async def paused(self) -> set[str]:
        return set(await call(self._redis.smembers(self._keys.paused)))

    async def active_customers(self, journey_id: str) -> AsyncIterator[str]:
        key = self._keys.journey_active(journey_id)
        async with translated():
            async for customer_id in self._redis.sscan_iter(key, count=1000):
                yield customer_id

    async def active_count(self, journey_id: str) -> int:
        return int(await call(self._redis.scard(self._keys.journey_active(journey_id))))

    async def counters(self, journey_id: str) -> dict[str, float]:
        """The journey's counters: whole numbers as int, fractions (attribution, revenue) as float."""
        raw = await call(self._redis.hgetall(self._keys.journey_stats(journey_id)))
        return {name: _number(value) for name, value in decode_map(raw).items()}


def _number(text: str) -> float:
    value = float(text)
    return int(value) if value.is_integer() else value

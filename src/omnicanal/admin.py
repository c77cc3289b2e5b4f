"""Operator commands that work on the store directly: the dead-letter stream and journey draining.

They connect to OMNICANAL_REDIS_URL like a worker would (the embedded store would be empty: they refuse it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from omnicanal.config import Settings
from omnicanal.errors import ConfigError
from omnicanal.store.journeys import JourneyStore
from omnicanal.store.keys import Keyspace
from omnicanal.store.transport import open_transport
from omnicanal.store.work import WorkItem, WorkQueue


@dataclass(frozen=True)
class DeadLetter:
    id: str
    item: WorkItem
    error: str

    def describe(self) -> str:
        what = (f"event {self.item.event['name']} ({self.item.event['id']})" if self.item.event
                else f"{self.item.kind} of instance {self.item.instance_id}")
        return f"{self.id}  customer {self.item.customer_id}  {what}\n    {self.error}"


@asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[tuple[WorkQueue, JourneyStore]]:
    if settings.embedded:
        raise ConfigError("set OMNICANAL_REDIS_URL to the Redis of the running daemon (the embedded store is "
                          "private to its process)")
    transport = open_transport(settings.redis_url)
    keys = Keyspace(settings.workspace, settings.partitions)
    try:
        yield WorkQueue(transport, keys), JourneyStore(transport.client, keys)
    finally:
        await transport.aclose()


async def list_dead_letters(settings: Settings, limit: int) -> list[DeadLetter]:
    async with _store(settings) as (queue, _):
        return [DeadLetter(*entry) for entry in await queue.dead_letters(limit)]


async def retry_dead_letters(settings: Settings, ids: list[str]) -> list[str]:
    """Put the entries back to work (all of them when `ids` is empty); returns the ids that were found."""
    async with _store(settings) as (queue, _):
        wanted = ids or [entry_id for entry_id, *_ in await queue.dead_letters(100_000)]
        return [entry_id for entry_id in wanted if await queue.retry_dead_letter(entry_id)]


async def drop_dead_letters(settings: Settings, ids: list[str]) -> list[str]:
    async with _store(settings) as (queue, _):
        wanted = ids or [entry_id for entry_id, *_ in await queue.dead_letters(100_000)]
        return [entry_id for entry_id in wanted if await queue.drop_dead_letter(entry_id)]


async def drain_journey(settings: Settings, journey_id: str) -> int:
    """Exit every running instance of the journey (through the workers, in each customer's order)."""
    async with _store(settings) as (queue, journeys):
        customers = [customer_id async for customer_id in journeys.active_customers(journey_id)]
        return await queue.append_drains(journey_id, customers)

"""The worker loop: read work from the partition streams, apply it per customer, acknowledge it.

A batch is grouped by customer, keeping arrival order inside each group; customers are applied concurrently,
one customer's items strictly one after another. The next batch is read only when the whole batch is done, so
two items of one customer are never in flight at once in this process. Entries are acknowledged after their
effects are committed: a crash means re-delivery (made harmless by idempotent application), never loss.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import structlog

from omnicanal.engine.engine import Engine
from omnicanal.errors import OmnicanalError, StoreUnavailable
from omnicanal.store.work import WorkItem, WorkQueue

log = structlog.get_logger("omnicanal.worker")

BATCH = 256
BLOCK_MS = 200
CLAIM_EVERY = 15.0
"""Seconds between two looks for entries abandoned by a dead worker."""
CLAIM_IDLE_MS = 60_000


class Worker:
    def __init__(self, engine: Engine, queue: WorkQueue, consumer: str, concurrency: int = 64) -> None:
        self._engine = engine
        self._queue = queue
        self._consumer = consumer
        self._limit = asyncio.Semaphore(concurrency)
        self.processed = 0

    async def run(self, stopping: asyncio.Event) -> None:
        """Until `stopping` is set: finish the batch in hand, then return."""
        await self._queue.ensure_groups()
        backlog = await self._queue.read(self._consumer, BATCH, 0, pending=True)
        next_claim = time.monotonic() + CLAIM_EVERY
        while not stopping.is_set():
            try:
                if time.monotonic() >= next_claim:
                    backlog += await self._queue.claim_abandoned(self._consumer, CLAIM_IDLE_MS)
                    next_claim = time.monotonic() + CLAIM_EVERY
                started = time.monotonic()
                items = backlog or await self._queue.read(self._consumer, BATCH, BLOCK_MS)
                backlog = []
                if items:
                    await self.process(items)
                elif time.monotonic() - started < BLOCK_MS / 2000:
                    # the embedded store answers a blocking read at once when empty: don't spin
                    await asyncio.sleep(BLOCK_MS / 1000)
            except StoreUnavailable as exc:
                log.error("store_unavailable", error=str(exc))
                await asyncio.sleep(1.0)
            except Exception:  # the loop must outlive any bug: entries stay pending and come back
                log.exception("worker_loop_failed")
                await asyncio.sleep(1.0)

    async def process(self, items: Sequence[WorkItem]) -> None:
        by_customer: dict[str, list[WorkItem]] = {}
        for item in items:
            by_customer.setdefault(item.customer_id, []).append(item)
        done = await asyncio.gather(*(self._apply(cid, its) for cid, its in by_customer.items()))
        await self._queue.acknowledge(item for ok, its in zip(done, by_customer.values(), strict=True) if ok
                                      for item in its)
        self.processed += len(items)

    async def _apply(self, customer_id: str, items: list[WorkItem]) -> bool:
        async with self._limit:
            try:
                await self._engine.apply(customer_id, items)
            except StoreUnavailable:
                raise
            except OmnicanalError as exc:
                log.error("work_failed", customer_id=customer_id, error=str(exc))
                return False
            except Exception:  # a bug must not stop the other customers' work; the entry stays pending
                log.exception("work_crashed", customer_id=customer_id)
                return False
            return True

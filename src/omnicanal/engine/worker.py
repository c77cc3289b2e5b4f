"""The worker loop: read work from the partitions this worker owns, apply it per customer, acknowledge it.

A batch is grouped by customer, keeping arrival order inside each group; customers are applied concurrently,
one customer's items strictly one after another. The next batch is read only when the whole batch is done, so
two items of one customer are never in flight at once. Entries are acknowledged after their effects are
committed — in the round trip of the next read — so a crash means re-delivery (harmless: application is
idempotent), never loss.

An item that fails for a reason other than the store being down is retried a few times in place (so the
customer's later items keep their order behind it), then parked in the dead-letter stream with its error
(`omnicanal dlq list|retry|drop`) so one poisonous event never blocks a customer for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Collection, Sequence

import structlog

from omnicanal.engine.engine import Engine
from omnicanal.engine.ownership import REBALANCE_EVERY, PartitionOwnership
from omnicanal.errors import StoreUnavailable
from omnicanal.eventloop import pause
from omnicanal.metrics import WorkspaceMetrics
from omnicanal.store.work import WorkItem, WorkQueue

log = structlog.get_logger("omnicanal.worker")

BATCH = 256
"""Work items a worker applies at once, about (the partitions it owns share it): its memory holds every one of
them — their customers' snapshots and states, the encoded commits, the pipeline's buffer — until the batch is
written, so this bounds the memory of a busy worker whatever the backlog, and how long the next read waits."""
PER_PARTITION_MIN = 16
"""Items read from each owned partition at least: a worker owning many partitions, with the work all in one of
them, still reads it in batches worth a round trip."""
BLOCK_MS = 200
RETRY_DELAYS = (0.05, 0.25, 1.0)
"""Pauses between the attempts at an item that fails; after the last, it goes to the dead-letter stream."""


class Worker:
    def __init__(self, engine: Engine, queue: WorkQueue, ownership: PartitionOwnership, consumer: str,
                 metrics: WorkspaceMetrics, concurrency: int = 64) -> None:
        self._engine = engine
        self._metrics = metrics
        self._queue = queue
        self._ownership = ownership
        self._consumer = consumer
        self._limit = asyncio.Semaphore(concurrency)
        self.processed = 0

    async def run(self, stopping: asyncio.Event) -> None:
        """Until `stopping` is set: finish the batch in hand, give the partitions back, return."""
        await self._queue.ensure_groups()
        keep_alive = asyncio.create_task(self._ownership.keep_alive(stopping), name="leases")
        backlog: list[WorkItem] = []
        done: list[WorkItem] = []  # applied and committed: acknowledged with the next read, or at the end
        next_rebalance = 0.0
        reread_pending = True
        try:
            while not stopping.is_set():
                try:
                    if time.monotonic() >= next_rebalance:
                        backlog += await self._ownership.rebalance()
                        next_rebalance = time.monotonic() + REBALANCE_EVERY
                        await self._report()
                    owned = self._ownership.owned
                    if reread_pending:  # after a start or an outage, what this consumer was given comes first
                        backlog += await self._read(owned, done, None, pending=True)
                        done, reread_pending = [], False
                    started = time.monotonic()
                    if backlog:
                        items, backlog = backlog, []
                    else:
                        items = await self._read(owned, done, BLOCK_MS)
                        done = []
                    if items:
                        await self.process(items)
                        done += items
                    elif time.monotonic() - started < BLOCK_MS / 2000:
                        # nothing owned, or the embedded store answered a blocking read at once: don't spin
                        await pause(stopping, BLOCK_MS / 1000)
                except StoreUnavailable as exc:
                    log.error("store_unavailable", error=str(exc))
                    reread_pending = True
                    await pause(stopping, 1.0)
                except Exception:  # the loop must outlive any bug: entries stay pending and come back
                    log.exception("worker_loop_failed")
                    reread_pending = True
                    await pause(stopping, 1.0)
        finally:
            keep_alive.cancel()
            try:
                await self._queue.acknowledge(done)
            except Exception as exc:  # the entries are re-delivered to the next owner: harmless, applied once
                log.warning("final_acknowledge_failed", error=str(exc))
            with contextlib.suppress(StoreUnavailable):  # if Redis is gone, the leases expire by themselves
                await self._ownership.release_all()

    async def _read(self, owned: Collection[int], done: list[WorkItem], block_ms: int | None,
                    pending: bool = False) -> list[WorkItem]:
        """The next batch, in the round trip that acknowledges the last one. Redis counts a read's entries per
        stream, so BATCH is shared among the partitions owned. The entries left pending (after an outage) are
        read BATCH per partition: more than any batch took from one, even with fewer partitions owned then."""
        count = BATCH if pending else max(PER_PARTITION_MIN, -(-BATCH // max(1, len(owned))))
        return await self._queue.read(owned, self._consumer, count, block_ms, pending=pending, done=done)

    async def _report(self) -> None:
        """Refresh the workspace's gauges an autoscaler and dashboards read."""
        metrics = self._metrics
        metrics.work_backlog.set(await self._queue.backlog())
        metrics.work_pending.set(await self._queue.pending())
        metrics.waiting_timers.set(await self._queue.waiting_timers())
        metrics.owned_partitions.set(len(self._ownership.owned))

    async def process(self, items: Sequence[WorkItem]) -> None:
        by_customer: dict[str, list[WorkItem]] = {}
        for item in items:
            by_customer.setdefault(item.customer_id, []).append(item)
        left = await self._engine.apply_batch(by_customer, self._limit)
        await asyncio.gather(*(self._apply(cid, its) for cid, its in left.items()))
        self.processed += len(items)
        for kind, count in Counter(item.kind for item in items).items():
            self._metrics.work_items(kind).inc(count)

    async def _apply(self, customer_id: str, items: list[WorkItem]) -> None:
        async with self._limit:
            await self._apply_or_park(customer_id, items)

    async def _apply_or_park(self, customer_id: str, items: list[WorkItem]) -> None:
        """Apply a customer's items; one that keeps failing is dead-lettered and the others still applied."""
        for attempt, delay in enumerate((*RETRY_DELAYS, None)):
            try:
                await self._engine.apply(customer_id, items)
                return
            except StoreUnavailable:
                raise
            except Exception as exc:  # a bug or bad data: retry in place, then park the culprit
                if len(items) > 1:  # find the culprit: apply the items one by one, in order
                    for item in items:
                        await self._apply_or_park(customer_id, [item])
                    return
                if delay is None:
                    log.error("work_dead_lettered", customer_id=customer_id, error=repr(exc))
                    await self._queue.dead_letter(items[0], f"{type(exc).__name__}: {exc}")
                    return
                log.warning("work_retry", customer_id=customer_id, attempt=attempt + 1, error=repr(exc))
                await asyncio.sleep(delay)

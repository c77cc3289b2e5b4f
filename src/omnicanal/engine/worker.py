"""The worker loop: read work from the partitions this worker owns, apply it per customer, acknowledge it.

A batch is grouped by customer, keeping arrival order inside each group; customers are applied concurrently,
one customer's items strictly one after another. Up to LANES batches are in flight at once, so that the next
batch's read and snapshots overlap the last one's work and commit instead of the CPU idling through them. A
customer is in one batch in flight at most: their items read while an earlier batch holds them wait until it is
done, so two items of one customer are never in flight at once and are applied in their order. Entries are
acknowledged after their effects are committed — in the round trip of a later read — so a crash means
re-delivery (harmless: application is idempotent), never loss.

An item that fails for a reason other than the store being down is retried a few times in place (so the
customer's later items keep their order behind it), then parked in the dead-letter stream with its error
(`omnicanal dlq list|retry|drop`) so one poisonous event never blocks a customer for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager

import structlog

from omnicanal.engine.engine import Engine
from omnicanal.engine.ownership import REBALANCE_EVERY, PartitionOwnership
from omnicanal.errors import StaleWork, StoreUnavailable
from omnicanal.eventloop import pause
from omnicanal.metrics import WorkspaceMetrics
from omnicanal.store.work import WorkItem, WorkQueue, stream_position

log = structlog.get_logger("omnicanal.worker")

BATCH = 256
"""Work items a worker reads at once, about (the partitions it owns share it): its memory holds every one of
them — their customers' snapshots and states, the encoded commits, the pipeline's buffer — until the batch is
written, so this (times LANES) bounds the memory of a busy worker whatever the backlog, and how long the next
read waits."""
PER_PARTITION_MIN = 16
"""Items read from each owned partition at least: a worker owning many partitions, with the work all in one of
them, still reads it in batches worth a round trip."""
LANES = 2
"""Batches in flight at once. A batch waits for Redis to run its snapshot scripts, then its commit scripts, and
the worker's CPU would idle meanwhile; a second batch uses it. More would hold more memory for little: with two,
the CPU is busy."""
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
        self._turn = asyncio.Lock()
        """Held by the batch whose customers are being applied: the other one meanwhile waits for Redis (its
        snapshots, its commit) rather than interleaving its customers with these, which costs more CPU for
        each (more state live at once) and gains nothing once the CPU is busy."""
        self._lanes: dict[asyncio.Task[None], list[WorkItem]] = {}
        """The batches in flight, with their items."""
        self._applied = asyncio.Event()
        self._applied.set()
        """Set once the last batch started has applied its customers."""
        self._behind = False
        """Whether the last read came back at least half full: work is waiting, so the next read goes at once
        and its snapshots overlap the batch being applied. Otherwise it waits until that batch has applied its
        customers (their commit then overlaps the read): the events arriving meanwhile join the next batch
        instead of going one or two at a time behind it, which costs each of them a batch's round trips."""
        self._backlog: list[WorkItem] = []
        """Items to apply before reading more: inherited with a partition, re-read after an outage, or waiting
        for a batch in flight that holds their customer."""
        self._done: list[WorkItem] = []
        """Applied and committed: acknowledged with the next read, or at the end."""
        self._reread_pending = True
        """After a start or a failure, what this consumer was given and did not acknowledge is read again."""
        self._stopping = asyncio.Event()
        """Set when the worker is to stop (run's argument): pauses end early."""
        self.processed = 0

    async def run(self, stopping: asyncio.Event) -> None:
        """Until `stopping` is set: finish the batches in hand, give the partitions back, return."""
        self._stopping = stopping
        await self._queue.ensure_groups()
        keep_alive = asyncio.create_task(self._ownership.keep_alive(stopping), name="leases")
        next_rebalance = 0.0
        try:
            while not stopping.is_set():
                try:
                    if time.monotonic() >= next_rebalance:
                        inherited = await self._ownership.rebalance(self._settle)
                        self._backlog = _in_order([*self._backlog, *inherited])
                        next_rebalance = time.monotonic() + REBALANCE_EVERY
                        await self._report()
                    if self._reread_pending:  # with nothing in flight: every entry of a failed batch is pending
                        await self._settle()
                        pending = await self._read(self._ownership.owned, None, pending=True)
                        self._backlog = _in_order([*pending, *self._backlog])
                        self._reread_pending = False
                    await self._step()
                except StoreUnavailable as exc:
                    log.error("store_unavailable", error=str(exc))
                    self._reread_pending = True
                    await pause(stopping, 1.0)
                except Exception:  # the loop must outlive any bug: entries stay pending and come back
                    log.exception("worker_loop_failed")
                    self._reread_pending = True
                    await pause(stopping, 1.0)
            await self._settle()
            await self._apply_backlog()
        finally:
            keep_alive.cancel()
            for lane in self._lanes:  # cancelled (the daemon's grace period is over): their entries stay pending
                lane.cancel()
            try:
                await self._queue.acknowledge(self._done)
            except Exception as exc:  # the entries are re-delivered to the next owner: harmless, applied once
                log.warning("final_acknowledge_failed", error=str(exc))
            with contextlib.suppress(StoreUnavailable):  # if Redis is gone, the leases expire by themselves
                await self._ownership.release_all()

    async def _step(self) -> None:
        """Start one more batch (the backlog's items whose customers are free, or a read's), or wait for one in
        flight to end when LANES are busy or there is nothing to start."""
        if len(self._lanes) >= LANES:
            await self._settle(all_of_them=False)
            return
        self._drop_lost()
        busy = {item.customer_id for items in self._lanes.values() for item in items}
        items, self._backlog = _split(self._backlog, busy)
        started = time.monotonic()
        if not items:  # nothing left to apply first: read
            if not self._behind:  # once the last batch started has applied its customers (see _behind)
                await self._applied.wait()
            # only partitions whose lease surely holds: after a stall, not one the next owner may be reading
            fresh = await self._read(self._ownership.readable(), None if self._lanes else BLOCK_MS)
            self._behind = len(fresh) >= BATCH // 2
            items, held = _split([*self._backlog, *fresh], busy)
            self._backlog = held
        if items:
            self._applied = asyncio.Event()
            self._lanes[asyncio.create_task(self._lane(items, self._applied))] = items
        elif self._lanes:  # nothing to start: until a batch ends, look for new work as a blocking read would
            await self._settle(all_of_them=False, timeout=BLOCK_MS / 1000)
        elif time.monotonic() - started < BLOCK_MS / 2000:
            # nothing owned, or the embedded store answered a blocking read at once: don't spin
            await pause(self._stopping, BLOCK_MS / 1000)

    def _drop_lost(self) -> Collection[int]:
        """The partitions owned now; the backlog's items of one lost meanwhile (its lease ran out in an outage)
        are dropped: its new owner claims them."""
        owned = self._ownership.owned
        self._backlog = [item for item in self._backlog if item.partition in owned]
        return owned

    async def _lane(self, items: Sequence[WorkItem], applied: asyncio.Event) -> None:
        """One batch in flight; `applied` is set once its customers are applied (its commit may be under way)."""
        try:
            await self.process(items, self._applying(applied))
        finally:
            applied.set()

    @contextlib.asynccontextmanager
    async def _applying(self, applied: asyncio.Event) -> AsyncIterator[None]:
        """A batch's turn to apply its customers; `applied` is set when it ends."""
        try:
            async with self._turn:
                yield
        finally:
            applied.set()

    async def _settle(self, all_of_them: bool = True, timeout: float | None = None) -> None:
        """Wait for the batches in flight to end (all of them, or the first; or `timeout` seconds, whichever
        comes first: a batch stuck retrying a failing item does not keep others' new work waiting). A committed
        batch's entries are acknowledged with the next read; a failed one's are applied again after a re-read of
        the pending ones (idempotent: what was committed is skipped), a second later, as after a failure of the
        loop's own."""
        lanes = self._lanes
        if not lanes:
            return
        ended, _ = await asyncio.wait(lanes, timeout=timeout, return_when=asyncio.ALL_COMPLETED if all_of_them
                                      else asyncio.FIRST_COMPLETED)
        failed = False
        for lane in ended:
            items = lanes.pop(lane)
            error = lane.exception()
            if error is None:
                self._done += items
                continue
            self._backlog = _in_order([*items, *self._backlog])
            self._reread_pending = failed = True
            if isinstance(error, StoreUnavailable):
                log.error("store_unavailable", error=str(error))
            elif isinstance(error, StaleWork):  # stalled past the lease: the new owner's state stands
                log.warning("stale_work_refused", error=str(error))
            else:
                log.error("worker_batch_failed", error=f"{type(error).__name__}: {error}", exc_info=error)
        if failed:
            await pause(self._stopping, 1.0)

    async def _apply_backlog(self) -> None:
        """At a stop, once the batches in flight are done: the items held behind them are applied too, so that
        no entry is left read and unacknowledged (it would wait for the lease to run out). If that fails (the
        store down), they stay pending for the next owner."""
        self._drop_lost()
        items, self._backlog = self._backlog, []
        if not items:
            return
        try:
            await self.process(items)
        except Exception as exc:
            log.warning("final_batch_failed", error=f"{type(exc).__name__}: {exc}")
            return
        self._done += items

    async def _read(self, owned: Collection[int], block_ms: int | None, pending: bool = False) -> list[WorkItem]:
        """The next batch, in the round trip that acknowledges the committed ones. Redis counts a read's entries
        per stream, so BATCH is shared among the partitions owned. With `pending`: every entry this consumer
        was given and did not acknowledge (after a start or a failure)."""
        count = BATCH if pending else max(PER_PARTITION_MIN, -(-BATCH // max(1, len(owned))))
        done, self._done = self._done, []
        try:
            return await self._queue.read(owned, self._consumer, count, block_ms, pending=pending, done=done)
        except BaseException:
            self._done = done + self._done  # not acknowledged, maybe: again with the next read
            raise

    async def _report(self) -> None:
        """Refresh the workspace's gauges an autoscaler and dashboards read."""
        metrics = self._metrics
        metrics.work_backlog.set(await self._queue.backlog())
        metrics.work_pending.set(await self._queue.pending())
        metrics.waiting_timers.set(await self._queue.waiting_timers())
        metrics.owned_partitions.set(len(self._ownership.owned))

    async def process(self, items: Sequence[WorkItem], turn: AbstractAsyncContextManager[object] | None = None
                      ) -> None:
        """Apply a batch: its customers in `turn` (the worker's, by default), then what they left to `_apply`."""
        by_customer: dict[str, list[WorkItem]] = {}
        for item in items:
            by_customer.setdefault(item.customer_id, []).append(item)
        left = await self._engine.apply_batch(by_customer, self._limit, turn or self._turn)
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
            except (StoreUnavailable, StaleWork):  # StaleWork: the partition moved; the new owner applies it
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


def _split(items: Iterable[WorkItem], busy: set[str]) -> tuple[list[WorkItem], list[WorkItem]]:
    """(items whose customer is free, items whose customer a batch in flight holds), each in its order."""
    free: list[WorkItem] = []
    held: list[WorkItem] = []
    for item in items:
        (held if item.customer_id in busy else free).append(item)
    return free, held


def _in_order(items: Iterable[WorkItem]) -> list[WorkItem]:
    """Stream entries once each, in their streams' order: a customer's entries are in one stream, so this is
    the order they must be applied in, whichever way they came back (re-read, inherited, held)."""
    unique = {(item.partition, item.entry_id): item for item in reversed(list(items))}
    return sorted(unique.values(), key=lambda item: (item.partition, stream_position(item.entry_id)))

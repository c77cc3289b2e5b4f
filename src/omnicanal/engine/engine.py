"""The engine: applies customers' work items and writes the outcome back.

Writes are ordered so that a crash between any two is harmless (see `_write`): what a replay could not redo goes
before the customer's commit, what may be left undone after it. Counters are the exception: they are statistics,
flushed once per batch, and a crash can lose or (on replay) double some.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from omnicanal.engine.clock import Clock
from omnicanal.engine.interpreter import Interpreter
from omnicanal.engine.registry import JourneyRegistry
from omnicanal.engine.session import CustomerSession
from omnicanal.errors import StoreUnavailable
from omnicanal.identity import identifiers
from omnicanal.store.customers import CustomerStore, Snapshot, Writes
from omnicanal.store.identity import IdentityIndex
from omnicanal.store.journeys import JourneyStore
from omnicanal.store.merge import MERGED_INTO, CustomerMerge
from omnicanal.store.work import WorkItem, WorkQueue

log = structlog.get_logger("omnicanal.engine")


def _ids_to_check(items: Sequence[WorkItem]) -> list[str]:
    """The event ids to look up in the customer's applied-events index: those that may come again (not unique)."""
    return [item.event["id"] for item in items if item.event is not None and not item.unique]


@dataclass
class Engine:
    clock: Clock
    registry: JourneyRegistry
    interpreter: Interpreter
    customers: CustomerStore
    queue: WorkQueue
    journey_store: JourneyStore
    idempotency_window: float
    default_timezone: str
    identity: IdentityIndex
    merges: CustomerMerge
    _stats: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def flush(self, pipe: Any) -> None:
        """Queue on `pipe` the counters of everything applied since the last flush (the worker sends them with
        the batch's acknowledgements). They are statistics: a crash before the flush loses some, and a replay
        may count twice."""
        stats, self._stats = self._stats, defaultdict(Counter)
        self.journey_store.record(pipe, stats)

    async def apply(self, customer_id: str, items: Sequence[WorkItem]) -> None:
        """Apply a customer's items in order; raises StoreUnavailable (items stay pending, re-delivered).

        Journey work goes through a session; a merge (`identify`) is an operation between two customers, done
        in its place in the order: what came before it applies to the visitor, what comes after is forwarded.
        """
        pending: list[WorkItem] = []
        for position, item in enumerate(items):
            if item.kind not in ("merge", "absorb"):
                pending.append(item)
                continue
            if pending and await self._apply_session(customer_id, pending):
                return
            pending = []
            if item.kind == "absorb":
                await self._absorb(customer_id, item)
            else:
                await self._hand_over(customer_id, item, items[position + 1:])
                return
        if pending:
            await self._apply_session(customer_id, pending)

    async def _apply_session(self, customer_id: str, items: Sequence[WorkItem]) -> bool:
        """Apply journey work; True when the customer turned out to be merged (the items were forwarded)."""
        event_ids = _ids_to_check(items)
        snapshot = await self.customers.snapshot(customer_id, event_ids)
        if (into := snapshot.profile.get(MERGED_INTO)) is not None:
            await self.queue.append(item.for_customer(into) for item in items)
            return True
        session = CustomerSession(self, snapshot)
        for item in items:
            await session.apply(item)
        async with self.customers.writes() as pipe:
            await self._write(pipe, [session])
        self._account(session)
        return False

    async def apply_batch(self, work: dict[str, list[WorkItem]], limit: asyncio.Semaphore) -> dict[str, list[WorkItem]]:
        """Apply many customers' journey work with reads and writes batched: one round trip for every snapshot,
        one for every commit. Returns what it leaves to `apply`, one customer at a time: merges, customers merged
        away (their work is forwarded there), and customers whose session failed (retried there). `limit` bounds
        how many customers are in flight at once (each holds a Redis connection and maybe a provider call)."""
        left = {cid: items for cid, items in work.items() if any(i.kind in ("merge", "absorb") for i in items)}
        simple = {cid: items for cid, items in work.items() if cid not in left}
        snapshots = await self.customers.snapshots({cid: _ids_to_check(items) for cid, items in simple.items()})
        ready = {cid: snap for cid, snap in snapshots.items()
                 if isinstance(snap, Snapshot) and snap.profile.get(MERGED_INTO) is None}
        runnable = list(ready)
        left.update({cid: items for cid, items in simple.items() if cid not in ready})
        results = await asyncio.gather(*(self._run(ready[cid], simple[cid], limit) for cid in runnable),
                                       return_exceptions=True)
        sessions: list[CustomerSession] = []
        for cid, result in zip(runnable, results, strict=True):
            if isinstance(result, StoreUnavailable):
                raise result
            if isinstance(result, BaseException):
                left[cid] = simple[cid]
            else:
                sessions.append(result)
        async with self.customers.writes() as pipe:
            await self._write(pipe, sessions)
        for session in sessions:
            self._account(session)
        return left

    async def _run(self, snapshot: Snapshot, items: Sequence[WorkItem], limit: asyncio.Semaphore) -> CustomerSession:
        async with limit:
            session = CustomerSession(self, snapshot)
            for item in items:
                await session.apply(item)
            return session

    async def _write(self, writes: Writes, sessions: Sequence[CustomerSession]) -> None:
        """Queue sessions' writes around their commits so that a crash between any two of them is harmless.

        Before the commits, what a replay could not redo once a commit marks the work done: new timers (one for
        a state never committed is found stale and ignored), journeys joined in the running-journey index, and
        merges asked for by `identify` (one asked twice is done once). After them, what may safely be left
        undone: the removal of timers no longer needed, and of journeys left from the index (a drain of a
        customer no longer in the journey does nothing). Timers and index changes are grouped across the
        sessions: one command per partition or journey, not one per customer.
        """
        joined: list[tuple[str, str]] = []
        left: list[tuple[str, str]] = []
        for session in sessions:
            before = {raw["journey"] for raw in session.snapshot.instances.values()}
            after = {instance.journey for instance in session.instances.values()}
            joined += ((session.customer_id, journey) for journey in after - before)
            left += ((session.customer_id, journey) for journey in before - after)
        self.queue.schedule(writes.before, ((t.customer_id, t.instance_id, t.token, t.due)
                                            for session in sessions for t in session.new_timers))
        self.journey_store.mark_active(writes.before, joined)
        for session in sessions:
            for visitor in session.identified:
                self.identity.link_into(writes.before, session.customer_id, [("anon", visitor)])
                self.queue.append_into(writes.before, [
                    WorkItem(-1, "", "merge", visitor, payload={"into": session.customer_id})])
        seen_since = time.time() - self.idempotency_window
        for session in sessions:
            session.prepare_commit()
            if session.commit:
                await self.customers.commit(writes, session.customer_id, session.commit, session.now, seen_since,
                                            new=not session.snapshot.exists)
        self.queue.cancel(writes.after, ((t.customer_id, t.instance_id, t.token)
                                         for session in sessions for t in session.old_timers))
        self.journey_store.mark_inactive(writes.after, left)

    def _account(self, session: CustomerSession) -> None:
        """Counters, written by the next `flush`."""
        for journey_id, counters in session.stats.items():
            self._stats[journey_id].update(counters)

    async def _hand_over(self, visitor: str, item: WorkItem, rest: Sequence[WorkItem]) -> None:
        """The visitor's side of a merge: send everything to the known customer, leave a tombstone."""
        into = (item.payload or {})["into"]
        state = await self.merges.export(visitor)
        if state["profile"].get(MERGED_INTO) is None and visitor != into:
            absorb = WorkItem(-1, "", "absorb", into, payload={"from": visitor, "state": state})
            await self.queue.append([absorb, *(later.for_customer(into) for later in rest)])
            await self.merges.tombstone(visitor, into, self.clock.now())
            journeys = {instance["journey"] for instance in state["instances"].values()}
            await self.journey_store.track_active(visitor, (), journeys)
        elif rest:
            await self.queue.append(later.for_customer(state["profile"].get(MERGED_INTO, into)) for later in rest)

    async def _absorb(self, customer_id: str, item: WorkItem) -> None:
        """The known customer's side of a merge."""
        payload = item.payload or {}
        state = payload["state"]
        moved = await self.merges.absorb(customer_id, payload["from"], state, self.clock.now())
        await self.journey_store.track_active(customer_id, {state["instances"][iid]["journey"] for iid in moved}, ())
        await self.identity.link(customer_id, identifiers(state["profile"].get("addresses", {})))

"""The engine: applies one customer's work items and writes the outcome back.

Order of writes after a customer's items are applied: new timers first (a timer for a state that was never
committed is recognised as stale and ignored), then the customer's Commit in one transaction, then removal of
timers that are no longer needed, then counters. A crash between any two leaves a state the re-delivered work
item repairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from omnicanal.engine.clock import Clock
from omnicanal.engine.interpreter import Interpreter
from omnicanal.engine.registry import JourneyRegistry
from omnicanal.engine.session import CustomerSession
from omnicanal.store.customers import CustomerStore
from omnicanal.store.journeys import JourneyStore
from omnicanal.store.work import WorkItem, WorkQueue

log = structlog.get_logger("omnicanal.engine")


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

    async def apply(self, customer_id: str, items: Sequence[WorkItem]) -> None:
        """Apply a customer's items in order; raises StoreUnavailable (items stay pending, re-delivered)."""
        event_ids = [item.event["id"] for item in items if item.event is not None]
        snapshot = await self.customers.snapshot(customer_id, event_ids)
        session = CustomerSession(self, snapshot)
        for item in items:
            await session.apply(item)
        if session.new_timers:
            await self.queue.schedule((t.customer_id, t.instance_id, t.token, t.due) for t in session.new_timers)
        if session.commit:
            await self.customers.commit(customer_id, session.commit, session.now, self.idempotency_window)
        if session.old_timers:
            await self.queue.cancel((t.customer_id, t.instance_id, t.token) for t in session.old_timers)
        await self.journey_store.count({jid: {k: v for k, v in c.items() if v} for jid, c in session.stats.items()})
        before = {raw["journey"] for raw in snapshot.instances.values()}
        after = {instance.journey for instance in session.instances.values()}
        if before != after:
            await self.journey_store.track_active(customer_id, after - before, before - after)

"""The engine: applies customers' work items through the journey core and writes the outcome back.

For each customer: read their snapshot, apply their items with the pure core (journey/core.py), carrying out the
sends it asks for as it asks (engine/delivery.py), then write the changes. Writes are ordered so that a crash
between any two is harmless (see `_write`): what a replay could not redo goes before the customer's commit, what
may be left undone after it. The batch's counters go in the same round trip, right after the commits (on a
single Redis): a replay finds its work applied and counts nothing twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from omnicanal.engine.clock import Clock
from omnicanal.engine.delivery import Delivery
from omnicanal.engine.fetch import Fetcher
from omnicanal.engine.registry import JourneyRegistry
from omnicanal.errors import StoreUnavailable
from omnicanal.identity import identifiers
from omnicanal.journey import core
from omnicanal.journey.coupons import REDEEMED
from omnicanal.journey.effects import (
    Attempt,
    CancelEvent,
    Changes,
    DrainJourney,
    EvaluateSegments,
    EventArrived,
    ResumeJourney,
    StartJourney,
    TimerFired,
    Work,
    add_counts,
    new_counts,
)
from omnicanal.journey.sending import settled_claims
from omnicanal.journey.session import Context
from omnicanal.journey.state import CustomerState, Instance, customer_view
from omnicanal.metrics import WorkspaceMetrics, real_seconds
from omnicanal.store.audit import AuditLog
from omnicanal.store.broadcasts import BroadcastStore
from omnicanal.store.coupons import Coupons
from omnicanal.store.customers import Commit, CustomerStore, Snapshot, Writes
from omnicanal.store.erasure import CustomerErasure
from omnicanal.store.holdings import CustomerHoldings
from omnicanal.store.identity import IdentityIndex
from omnicanal.store.journeys import JourneyStore
from omnicanal.store.keys import valid_customer_id
from omnicanal.store.merge import MERGED_INTO, CustomerMerge, refusal
from omnicanal.store.schema import (
    AUDIENCE,
    ERASE,
    EVALUATE,
    GOAL_WATCHES,
    RETENTION_TIMER,
    TIMER_KIND,
    TOUCHPOINTS,
)
from omnicanal.store.segments import SegmentIndex
from omnicanal.store.work import WorkItem, WorkQueue, stream_position
from omnicanal.timestamps import iso

log = structlog.get_logger("omnicanal.engine")

PAUSED_FRESH = 0.5
"""Seconds a worker goes on with the set of paused journeys it read before reading it again."""


def _ids_to_check(items: Sequence[WorkItem]) -> list[str]:
    """The event ids to look up in the customer's applied-events index: those that may come again (not unique),
    a broadcast's start among them."""
    return [event["id"] for item in items if (event := _event_of(item)) is not None and not item.unique]


def _event_of(item: WorkItem) -> dict[str, Any] | None:
    if item.kind == "start" and item.payload:
        event: dict[str, Any] = item.payload["event"]
        return event
    return item.event


def _alone(item: WorkItem) -> bool:
    """Whether an item is an operation on the customer as a whole, applied in its place in their order but outside
    a journey session: a merge (`identify`), or an erasure (asked for, or their retention timer)."""
    return item.kind in ("merge", "absorb", ERASE) or (item.kind == TIMER_KIND and item.instance_id == RETENTION_TIMER)


def _work(item: WorkItem) -> Work | None:
    """A stream item as the core's work (None: not journey work)."""
    if item.kind == "event" and item.event is not None:
        return EventArrived(item.event, item.unique)
    if item.kind == "drain" and item.payload:
        return DrainJourney(item.payload["journey"], item.payload.get("reason", "drained"))
    if item.kind == "resume" and item.payload:
        return ResumeJourney(item.payload["journey"])
    if item.kind == "cancel" and item.payload:
        return CancelEvent(item.payload["event_id"])
    if item.kind == "start" and item.payload:
        return StartJourney(item.payload["journey"], item.payload["event"], item.payload.get("local_time"))
    if item.kind == "timer" and item.instance_id is not None and item.token is not None:
        return TimerFired(item.instance_id, item.token)
    if item.kind == EVALUATE:
        return EvaluateSegments()
    return None


def _started_journeys(items: Iterable[WorkItem]) -> set[str]:
    """The journeys that broadcast (and scheduled) starts among the items start."""
    return {item.payload["journey"] for item in items if item.kind == "start" and item.payload}


def _definitions(items: Iterable[WorkItem]) -> set[tuple[str, str]]:
    """The segment definitions (id, fingerprint) that backfill items were queued for."""
    return {(item.payload["segment"], item.payload["fingerprint"]) for item in items
            if item.kind == EVALUATE and item.payload}


@dataclass(slots=True)
class Applied:
    """One customer's work, applied: what the store read, the state after, the changes to write."""

    snapshot: Snapshot
    state: CustomerState
    changes: Changes
    commit: Commit


@dataclass
class Engine:
    clock: Clock
    registry: JourneyRegistry
    context: Context
    """Templates and the brand's rules; replaced when the files are reloaded."""
    delivery: Delivery
    customers: CustomerStore
    queue: WorkQueue
    journey_store: JourneyStore
    idempotency_window: float
    identity: IdentityIndex
    merges: CustomerMerge
    coupons: Coupons
    fetcher: Fetcher
    segments: SegmentIndex
    broadcasts: BroadcastStore
    holdings: CustomerHoldings
    erasure: CustomerErasure
    audit: AuditLog
    metrics: WorkspaceMetrics
    retention: float | None = None
    """Journey seconds of inactivity after which a customer is erased (OMNICANAL_RETENTION_DAYS; None: never)."""
    refresh: Callable[[], Awaitable[object]] | None = None
    """Reloads the files if they changed since they were loaded (Runtime.refresh): asked when work names a
    segment definition or a journey this process does not run yet."""
    _paused_read: float = field(default=-PAUSED_FRESH)
    _told_differ: set[tuple[str, str]] = field(default_factory=set)

    async def _paused_journeys(self) -> None:
        """The paused journeys, as every worker must see them within PAUSED_FRESH seconds of a pause."""
        if time.monotonic() - self._paused_read < PAUSED_FRESH:
            return
        paused = frozenset(await self.journey_store.paused())
        self._paused_read = time.monotonic()
        if paused != self.context.paused:
            self.context = replace(self.context, paused=paused)

    async def _current_files(self, items: Sequence[WorkItem]) -> None:
        """A segment backfill's items are queued by the process that loaded the new definition first, and a
        scheduled journey's starts by the process that fired it, which may be the first to have loaded the
        journey: the others reload their files (which changed on disk) before applying such work with older
        ones — a start of a journey they do not know yet would be skipped. One whose files still say otherwise
        (a deployment not yet everywhere, a journey deleted since) applies the work with what it has; a segment
        definition that differs is said once."""
        loaded = self.context.segments.by_id
        wanted = _definitions(items)
        if not (any(segment_id not in loaded or loaded[segment_id].fingerprint != fingerprint
                    for segment_id, fingerprint in wanted)
                or any(self.registry.current_of(journey) is None for journey in _started_journeys(items))):
            return
        if self.refresh is not None:
            await self.refresh()
        loaded = self.context.segments.by_id
        for segment_id, fingerprint in wanted - self._told_differ:
            if segment_id not in loaded or loaded[segment_id].fingerprint != fingerprint:
                self._told_differ.add((segment_id, fingerprint))
                log.warning("segment_definition_differs", segment=segment_id, backfilled=fingerprint,
                            loaded=loaded[segment_id].fingerprint if segment_id in loaded else None,
                            detail="this process's segment files are not the ones the backfill was armed with: "
                                   "its customers are evaluated with this process's definitions")

    async def apply(self, customer_id: str, items: Sequence[WorkItem]) -> None:
        """Apply a customer's items in order; raises StoreUnavailable (items stay pending, re-delivered).

        Journey work goes through a session; a merge (`identify`) is an operation between two customers, done
        in its place in the order: what came before it applies to the visitor, what comes after is forwarded. An
        erasure too: what came before it is applied (then erased), what comes after starts a new customer.
        """
        pending: list[WorkItem] = []
        for position, item in enumerate(items):
            if not _alone(item):
                pending.append(item)
                continue
            if pending and await self._apply_session(customer_id, pending):
                return
            pending = []
            if item.kind == "absorb":
                await self._absorb(customer_id, item)
            elif item.kind != "merge":
                await self._erase(customer_id, item, items[:position + 1])
            elif await self._hand_over(customer_id, item, items[position + 1:]):
                return
        if pending:
            await self._apply_session(customer_id, pending)

    async def _apply_session(self, customer_id: str, items: Sequence[WorkItem]) -> bool:
        """Apply journey work; True when the customer turned out to be merged (the items were forwarded)."""
        await self._paused_journeys()
        await self._current_files(items)
        snapshot = await self.customers.snapshot(customer_id, _ids_to_check(items))
        if (into := snapshot.profile.get(MERGED_INTO)) is not None:
            await self.queue.append(item.for_customer(into) for item in items)
            return True
        applied = await self._run(snapshot, items)
        async with self.customers.writes() as pipe:
            await self._write(pipe, [applied])
        self._account(applied, items)
        return False

    async def apply_batch(self, work: dict[str, list[WorkItem]], limit: asyncio.Semaphore,
                          turn: AbstractAsyncContextManager[object]) -> dict[str, list[WorkItem]]:
        """Apply many customers' journey work with reads and writes batched: one round trip for every snapshot,
        one for every commit. Returns what it leaves to `apply`, one customer at a time: merges, customers merged
        away (their work is forwarded there), and customers whose work failed (retried there). `limit` bounds
        how many customers are in flight at once (each holds a Redis connection and maybe a provider call);
        `turn`, held while they are applied (not while their snapshots are read or their commits written), lets
        a worker's batches in flight take turns on the CPU."""
        left = {cid: items for cid, items in work.items() if any(map(_alone, items))}
        simple = {cid: items for cid, items in work.items() if cid not in left}
        await self._paused_journeys()
        await self._current_files([item for items in simple.values() for item in items])
        snapshots = await self.customers.snapshots({cid: _ids_to_check(items) for cid, items in simple.items()})
        ready = {cid: snap for cid, snap in snapshots.items()
                 if isinstance(snap, Snapshot) and snap.profile.get(MERGED_INTO) is None}
        runnable = list(ready)
        left.update({cid: items for cid, items in simple.items() if cid not in ready})
        async with turn:
            results = await asyncio.gather(*(self._run_limited(ready[cid], simple[cid], limit) for cid in runnable),
                                           return_exceptions=True)
        done: list[Applied] = []
        for cid, result in zip(runnable, results, strict=True):
            if isinstance(result, StoreUnavailable):
                raise result
            if isinstance(result, BaseException):
                left[cid] = simple[cid]
            else:
                done.append(result)
        async with self.customers.writes() as pipe:
            await self._write(pipe, done)
        for applied in done:
            self._account(applied, simple[applied.snapshot.customer_id])
        return left

    async def _run_limited(self, snapshot: Snapshot, items: Sequence[WorkItem], limit: asyncio.Semaphore) -> Applied:
        async with limit:
            return await self._run(snapshot, items)

    async def _run(self, snapshot: Snapshot, items: Sequence[WorkItem]) -> Applied:
        """Apply a customer's items with the core, carrying out the sends it asks for."""
        customer_id = snapshot.customer_id
        instances = {iid: Instance.from_dict(raw) for iid, raw in snapshot.instances.items()}
        watches = list(snapshot.profile.get(GOAL_WATCHES) or ())
        await self.registry.preload([*((i.journey, i.version) for i in instances.values()),
                                     *((w["journey"], w["version"]) for w in watches)])
        state = CustomerState(customer_id, customer_view(customer_id, snapshot.profile, snapshot.attributes),
                              instances, dict(snapshot.entries), set(snapshot.seen), snapshot.timeline_end,
                              watches=watches, touchpoints=list(snapshot.profile.get(TOUCHPOINTS) or ()),
                              audience=snapshot.profile.get(AUDIENCE) or {}, claimed=snapshot.claimed)
        commit = Commit(read=snapshot.applied)
        work: list[Work] = []
        erased_starts: list[str] = []
        applied = stream_position(snapshot.applied) if snapshot.applied else None
        for item in items:
            if item.entry_id:  # from the stream: one at or before the last applied entry was applied already
                position = stream_position(item.entry_id)
                if applied is not None and position <= applied:
                    continue
                applied, commit.applied = position, item.entry_id
            if item.kind == EVALUATE and not snapshot.exists:
                continue  # erased since the backfill's walk met them: an evaluation creates no one
            if item.kind == "start" and item.payload and not snapshot.exists and not work:
                # erased since the broadcast's walk met them (nothing else of theirs came since): a start
                # creates no one either, and is counted, so that the broadcast finishes
                erased_starts.append(str(item.payload["event"]["properties"].get("broadcast", "")))
                continue
            if (unit := _work(item)) is not None:
                work.append(unit)
        redemptions = [(unit.event["id"], unit.event["properties"].get("code")) for unit in work
                       if isinstance(unit, EventArrived) and unit.event["name"] == REDEEMED]
        if redemptions:  # checked and marked in the store before the core reads the verdicts
            state.redemptions = await self.coupons.redeem(redemptions, self.clock.now())
        steps = core.apply(self.context, state, work, self.clock.now())
        try:
            request = next(steps)
            while True:
                if isinstance(request, Attempt):
                    commit.settled.add(request.message_id)  # claimed now: settled by this commit
                    outcome = await self.delivery.attempt(request, commit.messages)
                else:
                    outcome = await self.fetcher.fetch(request)
                request = steps.send(outcome)
        except StopIteration as finished:
            changes: Changes = finished.value
        for broadcast in erased_starts:
            changes.broadcasts[broadcast] = "skipped:erased"
        commit.settled |= settled_claims(state)
        real_now = time.time()  # the idempotency window is a promise to clients: real time
        commit.seen = dict.fromkeys(changes.seen, real_now)
        commit.timeline = changes.timeline
        commit.instances = {iid: state.instances[iid].to_dict() for iid in changes.saved}
        commit.ended = changes.ended
        commit.entries = changes.entries
        commit.attributes = changes.attributes
        if changes.touchpoints:
            commit.profile[TOUCHPOINTS] = state.touchpoints
        if changes.watches:
            commit.profile[GOAL_WATCHES] = state.watches
        if changes.audience:
            commit.profile[AUDIENCE] = state.audience
        return Applied(snapshot, state, changes, commit)

    async def _write(self, writes: Writes, done: Sequence[Applied]) -> None:
        """Queue the writes of applied work around its commits so that a crash between any two is harmless.

        Before the commits, what a replay could not redo once a commit marks the work done: new timers (one for
        a state never committed is found stale and ignored), journeys joined in the running-journey index, the
        segment index (store/segments.py) and merges asked for by `identify` (one asked twice is done once).
        After them, what may safely be left undone: the removal of timers no longer needed, and of journeys left
        from the index (a drain of a customer no longer in the journey does nothing). Timers and index changes are
        grouped across the customers: one command per partition, journey or segment, not one per customer.
        """
        joined: list[tuple[str, str]] = []
        left: list[tuple[str, str]] = []
        for applied in done:
            customer_id = applied.snapshot.customer_id
            before = {raw["journey"] for raw in applied.snapshot.instances.values()}
            after = {instance.journey for instance in applied.state.instances.values()}
            joined += ((customer_id, journey) for journey in after - before)
            left += ((customer_id, journey) for journey in before - after)
        timers = [(a.snapshot.customer_id, t.instance_id, t.token, t.due) for a in done for t in a.changes.new_timers]
        if self.retention is not None:  # activity moves the retention timer later, in the same ZADD as the timers
            inactive_from = self.clock.now() + self.retention
            timers += [(a.snapshot.customer_id, RETENTION_TIMER, "", inactive_from) for a in done if a.commit]
        self.queue.schedule(writes.before, timers)
        self.journey_store.mark_active(writes.before, joined)
        self.segments.follow(writes.before, ((a.snapshot.customer_id, a.changes.memberships) for a in done
                                             if a.changes.memberships))
        self.queue.append_into(writes.before, [WorkItem.of_event(event) for applied in done
                                               for event in applied.changes.emitted])
        for applied in done:
            if applied.changes.coupons:
                self.coupons.issue(writes.before, applied.snapshot.customer_id, applied.changes.coupons,
                                   self.clock.now())
        for applied in done:
            customer_id = applied.snapshot.customer_id
            for visitor in filter(valid_customer_id, applied.changes.identified):
                self.queue.append_into(writes.before, [
                    WorkItem(-1, "", "merge", visitor, payload={"into": customer_id})])
        seen_since = time.time() - self.idempotency_window
        for applied in done:
            if applied.commit:
                await self.customers.commit(writes, applied.snapshot.customer_id, applied.commit, self.clock.now(),
                                            seen_since, new=not applied.snapshot.exists)
        self.queue.cancel(writes.after, ((a.snapshot.customer_id, t.instance_id, t.token)
                                         for a in done for t in a.changes.old_timers))
        self.journey_store.mark_inactive(writes.after, left)
        counts = new_counts()
        for applied in done:
            add_counts(counts, applied.changes.stats)
            self.broadcasts.count(writes.after, applied.changes.broadcasts)
        self.journey_store.record(writes.after, counts, self.clock.now())

    def _account(self, applied: Applied, items: Sequence[WorkItem]) -> None:
        """Errors and message outcomes said in the log and metrics, and how long the events waited."""
        now = self.clock.now()
        metrics = self.metrics
        for item in items:
            if item.event is not None and "received_at" in item.event:
                metrics.event_lag.observe(real_seconds(now - item.event["received_at"], self.clock.speed))
        for entry in applied.changes.timeline:
            kind = entry["kind"]
            if kind == "message":
                metrics.messages(entry["journey"], entry["step"], entry.get("channel", ""), entry["status"]).inc()
            elif kind == "error":
                log.warning("journey_error", customer_id=applied.snapshot.customer_id, where=entry["where"],
                            error=entry["message"])

    async def _erase(self, customer_id: str, item: WorkItem, applied: Sequence[WorkItem]) -> None:
        """Erase the customer (store/erasure.py) — unless it is their retention timer and they were active since
        it fired. The items applied so far (theirs, this one included) are acknowledged and deleted from the
        stream at once: their data goes with the rest, not with the next read."""
        retention = item.kind == TIMER_KIND
        if retention and await self.erasure.active_since(customer_id):
            return
        held = await self.holdings.read(customer_id)
        summary = await self.erasure.erase(held, self.registry.current, self.context.segments.by_id)
        await self.queue.acknowledge([done for done in applied if done.entry_id])
        reason = "retention" if retention else "request"
        await self.audit.record((item.payload or {}).get("actor", "retention" if retention else "api"),
                                "customer.erase", customer_id, {"reason": reason, **summary})
        log.info("customer_erased", customer_id=customer_id, reason=reason, **summary)
        if (reply := (item.payload or {}).get("reply")) is not None:
            await self.erasure.reply(str(reply), summary)

    async def _hand_over(self, visitor: str, item: WorkItem, rest: Sequence[WorkItem]) -> bool:
        """The visitor's side of a merge: send everything to the known customer, leave a tombstone. True when the
        visitor's later items went with it; False when the merge is refused (see merge.refusal: the one who
        asked is told on their timeline) and the visitor's items apply here as usual."""
        into = (item.payload or {})["into"]
        state = await self.merges.export(visitor)
        if (merged_into := state["profile"].get(MERGED_INTO)) is not None:
            await self.queue.append(later.for_customer(merged_into) for later in rest)
            return True
        if visitor == into:
            return False
        if (refused := refusal(visitor, state)) is not None:
            log.warning("identify_refused", customer_id=into, anonymous_id=visitor, reason=refused)
            await self.queue.append([WorkItem(-1, "", "absorb", into, payload={"from": visitor, "refused": refused})])
            return False
        absorb = WorkItem(-1, "", "absorb", into, payload={"from": visitor, "state": state})
        await self.queue.append([absorb, *(later.for_customer(into) for later in rest)])
        await self.merges.tombstone(visitor, into, self.clock.now())
        journeys = {instance["journey"] for instance in state["instances"].values()}
        await self.journey_store.track_active(visitor, (), journeys)
        return True

    async def _absorb(self, customer_id: str, item: WorkItem) -> None:
        """The known customer's side of a merge (or of its refusal, noted on their timeline)."""
        payload = item.payload or {}
        if "refused" in payload:
            await self.merges.note(customer_id, {"kind": "error", "at": iso(self.clock.now()), "where": "identify",
                                                 "message": payload["refused"]})
            return
        state = payload["state"]
        moved = await self.merges.absorb(customer_id, payload["from"], state, self.clock.now())
        await self.journey_store.track_active(customer_id, {state["instances"][iid]["journey"] for iid in moved}, ())
        await self.identity.claim(customer_id, [("anon", payload["from"]),
                                                *identifiers(state["profile"].get("addresses", {}))])

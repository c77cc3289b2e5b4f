"""Assembling a running engine from settings: store, journeys, templates, connectors, worker and timer loops.

`serve`, `api`, `worker`, `demo` and the tests all start the same Runtime; only the settings and the role
differ. Resources are entered on an exit stack and closed in reverse order, whatever fails half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from omnicanal.channels import CHANNELS, ConnectorContext, ConnectorRegistry
from omnicanal.config import Settings
from omnicanal.engine.backfills import BackfillRunner
from omnicanal.engine.broadcasts import BroadcastRunner
from omnicanal.engine.clock import Clock
from omnicanal.engine.delivery import Delivery
from omnicanal.engine.engine import Engine
from omnicanal.engine.fetch import Fetcher
from omnicanal.engine.ownership import PartitionOwnership
from omnicanal.engine.registry import JourneyRegistry
from omnicanal.engine.schedules import ScheduleRunner
from omnicanal.engine.timers import run_timers
from omnicanal.engine.walks import SetWalks
from omnicanal.engine.worker import Worker
from omnicanal.errors import ProjectError
from omnicanal.journey.loader import load_journeys
from omnicanal.journey.model import Journey
from omnicanal.journey.segments import Segments, load_segments
from omnicanal.journey.session import Context
from omnicanal.links import links_of
from omnicanal.metrics import WorkspaceMetrics
from omnicanal.policy.caps import longest
from omnicanal.policy.choice import Rules
from omnicanal.render import TemplateCatalog
from omnicanal.store.audit import AuditLog
from omnicanal.store.backfills import SegmentBackfills
from omnicanal.store.broadcasts import BroadcastStore
from omnicanal.store.connection import Redis, call
from omnicanal.store.coupons import Coupons
from omnicanal.store.customers import CustomerStore
from omnicanal.store.erasure import CustomerErasure
from omnicanal.store.holdings import CustomerHoldings
from omnicanal.store.idempotency import IdempotencyIndex
from omnicanal.store.identity import IdentityIndex
from omnicanal.store.journeys import JourneyStore
from omnicanal.store.keys import Keyspace
from omnicanal.store.leases import Lease, LeaseStore
from omnicanal.store.merge import CustomerMerge
from omnicanal.store.rates import RateLimiter
from omnicanal.store.schedules import ScheduleMarks
from omnicanal.store.segments import SegmentIndex
from omnicanal.store.sends import SendLog
from omnicanal.store.transport import open_transport
from omnicanal.store.version import check_format
from omnicanal.store.work import WorkQueue

log = structlog.get_logger("omnicanal")


class Role(StrEnum):
    """What a process does: everything (`serve`), only the HTTP API (`api`), or only the work (`worker`)."""

    ALL = "all"
    API = "api"
    WORKER = "worker"


def load_project(settings: Settings) -> tuple[TemplateCatalog, list[Journey], Segments]:
    """Templates, journeys and segments from the configured directories; raises ProjectError with every
    problem."""
    templates = TemplateCatalog.load(settings.templates_dir, settings.default_locale)
    segments = load_segments(settings.segments_dir)
    return templates, list(load_journeys(settings.journeys_dir, templates, segments.by_id).values()), segments


def channel_rules(settings: Settings) -> Rules:
    """The brand's channel-choice rules, from the settings (parsed and validated there)."""
    return Rules(
        opt_in_channels=frozenset(settings.opt_in_channels),
        quiet_hours=settings.quiet_hours,
        quiet_hours_by_channel=settings.quiet_hours_by_channel,
        default_timezone=settings.default_timezone,
    )


def _files_signature(settings: Settings) -> tuple[tuple[str, float, int], ...]:
    """Names, mtimes and sizes of the journey, template and segment files: a change means a reload."""
    paths: list[Path] = []
    for directory in (settings.journeys_dir, settings.templates_dir, settings.segments_dir):
        with contextlib.suppress(OSError):
            paths += sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    signature = []
    for path in paths:
        with contextlib.suppress(OSError):
            stat = path.stat()
            signature.append((str(path), stat.st_mtime, stat.st_size))
    return tuple(signature)


@dataclass
class Runtime:
    """A started engine. `stop()` finishes in-flight work and closes everything, in reverse order."""

    settings: Settings
    role: Role
    redis: Redis
    keys: Keyspace
    clock: Clock
    registry: JourneyRegistry
    customers: CustomerStore
    queue: WorkQueue
    journey_store: JourneyStore
    engine: Engine
    connectors: ConnectorRegistry
    identity: IdentityIndex
    idempotency: IdempotencyIndex
    worker: Worker
    ownership: PartitionOwnership
    broadcasts: BroadcastStore
    metrics: WorkspaceMetrics
    """This workspace's series of the process's metrics."""
    backfills: SegmentBackfills
    walks: SetWalks
    """The walks of sets this process takes part in: broadcasts' audiences, segments' backfills."""
    resources: contextlib.AsyncExitStack
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    broken: str | None = None
    """Why this process cannot do its job any more (a loop died); readiness reports it."""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    files: tuple[tuple[str, float, int], ...] = ()
    """The journey, template and segment files as last loaded (names, mtimes, sizes)."""
    _reloading: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    async def start(cls, settings: Settings, role: Role = Role.ALL, clock: Clock | None = None,
                    canned_fetches: Mapping[str, Any] | None = None) -> Runtime:
        """Load and check everything first, then connect, then start the loops the role runs.

        `clock` replaces the shared journey clock (the simulator's manual clock); by default it is read from
        the store so that every process agrees on journey time. `canned_fetches` answers `fetch` steps by URL
        instead of calling out (the simulator's scenario)."""
        files = _files_signature(settings)
        templates, journeys, segments = load_project(settings)
        async with contextlib.AsyncExitStack() as stack:
            transport = open_transport(settings.redis_url)
            redis = transport.client
            stack.push_async_callback(redis.aclose)
            if settings.embedded:
                log.warning("embedded_store", detail="no OMNICANAL_REDIS_URL: using the in-process store; "
                            "nothing is kept after exit")
            keys = Keyspace(settings.workspace, settings.partitions)
            await call(redis.ping())
            await check_format(redis, keys)
            clock = clock or await Clock.shared(redis, keys, settings.clock_speed)
            customers = CustomerStore(transport, keys, settings.timeline_limit, settings.retention)
            queue = WorkQueue(transport, keys)
            journey_store = JourneyStore(redis, keys, settings.stats_retention, counting=settings.stats)
            registry = JourneyRegistry(journey_store)
            await registry.replace(journeys)
            await queue.ensure_groups()
            http = await stack.enter_async_context(aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)))
            context = ConnectorContext(redis=redis, keys=keys, http=http, public_url=settings.public_url,
                                       outbound=settings.outbound)
            connectors = ConnectorRegistry(context, settings.channels, settings.rate_limits)
            stack.push_async_callback(connectors.aclose)
            metrics = WorkspaceMetrics(settings.workspace)
            brand_caps_kept = longest(settings.frequency_caps)
            delivery = Delivery(
                connectors, customers, SendLog(transport, keys), RateLimiter(redis, keys, settings.rate_limits), clock,
                metrics, caps_kept=lambda: max(brand_caps_kept, registry.longest_cap),
            )
            coupons = Coupons(transport, keys)
            journey_context = Context(
                registry, templates, channel_rules(settings), settings.frequency_caps, settings.default_locale,
                settings.send_retry_budget, settings.timeline_limit, global_control=settings.global_control,
                coupon_secret=await coupons.secret(settings.coupon_secret),
                receipts=frozenset(name for name, spec in CHANNELS.items() if spec.delivery_receipts),
                links=links_of(settings), segments=segments,
            )
            identity = IdentityIndex(redis, keys, customers)
            broadcasts = BroadcastStore(transport, keys)
            holdings = CustomerHoldings(transport, keys)
            erasure = CustomerErasure(transport, keys, identity)
            engine = Engine(clock, registry, journey_context, delivery, customers, queue, journey_store,
                            settings.idempotency_window, identity, CustomerMerge(redis, keys), coupons,
                            Fetcher(http, settings.fetch_allowed_hosts, settings.fetch_max_bytes, canned_fetches,
                                    settings.outbound), SegmentIndex(transport, keys), broadcasts, holdings, erasure,
                            AuditLog(redis, keys), metrics, settings.retention)
            ownership = PartitionOwnership(LeaseStore(transport, keys), queue, settings.worker_id,
                                           settings.partitions, settings.lease_seconds, metrics)
            worker = Worker(engine, queue, ownership, settings.worker_id, metrics)
            backfills = SegmentBackfills(transport, keys)
            await backfills.arm(segments.fingerprints, clock.now())
            runtime = cls(settings, role, redis, keys, clock, registry, customers, queue, journey_store, engine,
                          connectors, identity, IdempotencyIndex(redis, keys, settings.idempotency_window), worker,
                          ownership, broadcasts, metrics, backfills, SetWalks(Lease(transport), redis,
                                                                              settings.worker_id),
                          stack.pop_all(), files=files)
        engine.refresh = runtime.refresh
        runtime._start_loops()
        log.info("started", role=role.value, journeys=sorted(registry.current), templates=len(templates.names()),
                 segments=sorted(segments.by_id),
                 clock_speed=settings.clock_speed, workspace=settings.workspace, worker_id=settings.worker_id)
        return runtime

    def _start_loops(self) -> None:
        loops: list[tuple[str, Coroutine[Any, Any, None]]] = []
        if self.role is not Role.API:
            loops.append(("worker", self.worker.run(self.stopping)))
            loops.append(("timers", run_timers(self.queue, self.clock, self.ownership,
                                               self.settings.timer_poll_interval, self.metrics, self.stopping)))
            walker = BroadcastRunner(self.broadcasts, self.queue, self.customers, self.walks, self.keys, self.clock)
            loops.append(("broadcasts", walker.run(self.stopping)))
            backfill = BackfillRunner(self.backfills, self.queue, self.walks, self.keys, self.clock,
                                      lambda: self.engine.context.segments.by_id, self.settings.segment_backfill_rate)
            loops.append(("backfills", backfill.run(self.stopping)))
            schedules = ScheduleRunner(self.registry, lambda: self.engine.context.segments.by_id, self.broadcasts,
                                       ScheduleMarks(self.redis, self.keys), self.clock, self.settings.schedule_grace)
            loops.append(("schedules", schedules.run(self.stopping)))
        if self.settings.reload_interval > 0:
            loops.append(("reload", self._watch_files()))
        for name, loop in loops:
            task = asyncio.create_task(loop, name=name)
            task.add_done_callback(self._loop_ended)
            self.tasks.append(task)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        """A loop may only end because the process stops; anything else is said loudly and fails readiness."""
        if self.stopping.is_set() or task.cancelled():
            return
        self.broken = f"the {task.get_name()} loop stopped: {task.exception()!r}"
        log.error("loop_stopped", loop=task.get_name(), error=repr(task.exception()))

    async def reload(self) -> bool:
        """Load journeys, templates and segments again; True once the files' versions run. A segment that is
        new or changed gets a backfill (engine/backfills.py).

        When it cannot (a broken file, the store down, a directory gone) the previous version keeps running,
        the reason is logged, and a failure other than a broken file is counted in `omnicanal_loop_errors_total`;
        the next file change or SIGHUP tries again."""
        async with self._reloading:
            self.files = _files_signature(self.settings)
            try:
                templates, journeys, segments = load_project(self.settings)
                await self.registry.replace(journeys)
                await self.backfills.arm(segments.fingerprints, self.clock.now())
            except ProjectError as exc:
                log.error("reload_rejected", problems=[str(p) for p in exc.problems])
                return False
            except Exception as exc:
                self.metrics.loop_errors("reload").inc()
                log.error("reload_failed", error=f"{type(exc).__name__}: {exc}")
                return False
            self.engine.context = replace(self.engine.context, templates=templates, segments=segments)
            log.info("reloaded", journeys={j.id: j.version for j in journeys}, segments=sorted(segments.by_id))
            return True

    async def refresh(self) -> None:
        """Reload if the files changed since they were last loaded (the file watch's look, and a worker's when
        it is given work for a segment definition it does not run yet: a reload under way finishes first)."""
        async with self._reloading:
            changed = _files_signature(self.settings) != self.files
        if changed:
            await self.reload()

    async def _watch_files(self) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.settings.reload_interval)
            await self.refresh()

    async def stop(self) -> None:
        """Stop taking work, let the batch in hand finish (up to the grace period), then close everything."""
        self.stopping.set()
        if self.tasks:
            _, late = await asyncio.wait(self.tasks, timeout=self.settings.shutdown_grace)
            for task in late:  # past the grace period: unacknowledged entries go to the next owner
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.resources.aclose()
        log.info("stopped")


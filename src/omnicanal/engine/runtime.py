"""Assembling a running engine from settings: store, journeys, templates, connectors, worker and timer loops.

`serve`, `demo` and the tests all start the same Runtime; only the settings differ.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog

from omnicanal.channels import ConnectorContext, ConnectorRegistry
from omnicanal.config import Settings
from omnicanal.engine.clock import Clock
from omnicanal.engine.delivery import Delivery
from omnicanal.engine.engine import Engine
from omnicanal.engine.interpreter import Interpreter
from omnicanal.engine.registry import JourneyRegistry
from omnicanal.engine.timers import run_timers
from omnicanal.engine.worker import Worker
from omnicanal.journey.loader import load_journeys
from omnicanal.render import TemplateCatalog
from omnicanal.store.connection import Redis, call, open_redis
from omnicanal.store.customers import CustomerStore
from omnicanal.store.journeys import JourneyStore
from omnicanal.store.keys import Keyspace
from omnicanal.store.work import WorkQueue

log = structlog.get_logger("omnicanal")


@dataclass
class Runtime:
    """A started engine. `stop()` finishes in-flight work and closes everything, in reverse order."""

    settings: Settings
    redis: Redis
    keys: Keyspace
    clock: Clock
    templates: TemplateCatalog
    registry: JourneyRegistry
    customers: CustomerStore
    queue: WorkQueue
    journey_store: JourneyStore
    connectors: ConnectorRegistry
    engine: Engine
    worker: Worker
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, settings: Settings, *, workers: bool = True, redis: Redis | None = None) -> Runtime:
        """Load and check everything first, then connect, then start the loops (if `workers`)."""
        templates = TemplateCatalog.load(settings.templates_dir, settings.default_locale)
        journeys = load_journeys(settings.journeys_dir, templates).values()
        redis = redis if redis is not None else open_redis(settings.redis_url)
        if settings.embedded:
            log.warning("embedded_store", detail="no OMNICANAL_REDIS_URL: using the in-process store; "
                        "nothing is kept after exit")
        keys = Keyspace(settings.workspace, settings.partitions)
        await call(redis.ping())
        clock = await Clock.shared(redis, keys, settings.clock_speed)
        customers = CustomerStore(redis, keys)
        queue = WorkQueue(redis, keys)
        journey_store = JourneyStore(redis, keys)
        registry = JourneyRegistry(journey_store, journeys)
        await registry.remember_all()
        await queue.ensure_groups()
        connectors = ConnectorRegistry(ConnectorContext(redis=redis, keys=keys))
        delivery = Delivery(templates, connectors, customers, settings.default_locale)
        engine = Engine(clock, registry, Interpreter(delivery), customers, queue, journey_store,
                        settings.idempotency_window)
        runtime = cls(settings, redis, keys, clock, templates, registry, customers, queue, journey_store,
                      connectors, engine, Worker(engine, queue, settings.worker_id))
        if workers:
            runtime.tasks = [
                asyncio.create_task(runtime.worker.run(runtime.stopping), name="worker"),
                asyncio.create_task(
                    run_timers(queue, clock, settings.timer_poll_interval, runtime.stopping), name="timers"
                ),
            ]
        log.info("started", journeys=sorted(registry.current), templates=len(templates.names()),
                 clock_speed=settings.clock_speed, workspace=settings.workspace)
        return runtime

    async def stop(self) -> None:
        """Stop taking work, let the batch in hand finish and be acknowledged, then close connections."""
        self.stopping.set()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.connectors.aclose()
        await self.redis.aclose()
        log.info("stopped")

"""Operator commands that work on the store directly: the dead-letter stream, journey draining, stats, export,
API keys and the audit log.

They connect to OMNICANAL_REDIS_URL like a worker would (the embedded store would be empty: they refuse it). What
they change is recorded in the audit log with the actor `cli:<operating system user>`.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from omnicanal import broadcasting, lifecycle
from omnicanal.codec import encode
from omnicanal.config import Settings
from omnicanal.engine.clock import Clock
from omnicanal.engine.runtime import load_project
from omnicanal.errors import ConfigError, InputError, NotFound, OmnicanalError
from omnicanal.scopes import Scope
from omnicanal.stats import report
from omnicanal.store.apikeys import ApiKeyStore
from omnicanal.store.audit import AuditLog
from omnicanal.store.broadcasts import Broadcast, BroadcastStore
from omnicanal.store.export import EXPORTS, ExportProgress, TimelineExport
from omnicanal.store.journeys import JourneyStore
from omnicanal.store.keys import Keyspace
from omnicanal.store.schema import StoredKey
from omnicanal.store.transport import open_transport
from omnicanal.store.work import WorkItem, WorkQueue
from omnicanal.suggest import did_you_mean
from omnicanal.timestamps import iso


@dataclass(frozen=True)
class DeadLetter:
    id: str
    item: WorkItem
    error: str

    def describe(self) -> str:
        what = (f"event {self.item.event['name']} ({self.item.event['id']})" if self.item.event
                else f"{self.item.kind} of instance {self.item.instance_id}")
        return f"{self.id}  customer {self.item.customer_id}  {what}\n    {self.error}"


def _redis_url(settings: Settings) -> str:
    if settings.embedded or settings.redis_url is None:
        raise ConfigError("set OMNICANAL_REDIS_URL to the Redis of the running daemon (the embedded store is "
                          "private to its process)")
    return settings.redis_url


def cli_actor() -> str:
    """Who the audit log says did what an operator command did: `cli:<user>`, the operating system's user running
    it (several operators share a Redis; `cli` alone would not say which). A user the system cannot name (a
    container's uid without a passwd entry, no LOGNAME or USER) is named by its uid: the command still runs."""
    try:
        user = getpass.getuser().strip()
    except (OSError, KeyError):  # no name for the uid: KeyError up to Python 3.12, OSError from 3.13
        user = ""
    return f"cli:{user or f'uid-{os.getuid()}'}"

IDS_AUDITED = 100
"""Dead-letter ids an audit entry lists (it counts them all)."""


@dataclass(frozen=True)
class _Store:
    queue: WorkQueue
    journeys: JourneyStore
    audit: AuditLog
    api_keys: ApiKeyStore
    broadcasts: BroadcastStore
    clock: Clock
    actor: str
    """What the audit log names as the author of this command's changes (cli_actor)."""


@asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[_Store]:
    transport = open_transport(_redis_url(settings))
    keys = Keyspace(settings.workspace, settings.partitions)
    try:
        yield _Store(WorkQueue(transport, keys), JourneyStore(transport.client, keys),
                     AuditLog(transport.client, keys), ApiKeyStore(transport.client, keys),
                     BroadcastStore(transport, keys),
                     await Clock.shared(transport.client, keys, settings.clock_speed), cli_actor())
    finally:
        await transport.aclose()


async def list_dead_letters(settings: Settings, limit: int) -> list[DeadLetter]:
    async with _store(settings) as store:
        return [DeadLetter(*entry) for entry in await store.queue.dead_letters(limit)]


async def retry_dead_letters(settings: Settings, ids: list[str]) -> list[str]:
    """Put the entries back to work (all of them when `ids` is empty); returns the ids that were found."""
    async with _store(settings) as store:
        wanted = ids or [entry_id for entry_id, *_ in await store.queue.dead_letters(100_000)]
        done = [entry_id for entry_id in wanted if await store.queue.retry_dead_letter(entry_id)]
        await _audit_dead_letters(store, "dlq.retry", done)
        return done


async def drop_dead_letters(settings: Settings, ids: list[str]) -> list[str]:
    async with _store(settings) as store:
        wanted = ids or [entry_id for entry_id, *_ in await store.queue.dead_letters(100_000)]
        done = [entry_id for entry_id in wanted if await store.queue.drop_dead_letter(entry_id)]
        await _audit_dead_letters(store, "dlq.drop", done)
        return done


async def _audit_dead_letters(store: _Store, action: str, done: list[str]) -> None:
    if done:
        await store.audit.record(store.actor, action, "dlq", {"count": len(done), "ids": done[:IDS_AUDITED]})


async def control_journey(settings: Settings, action: str, journey_id: str) -> int:
    """`pause`, `resume`, `stop` or `drain` a journey (see lifecycle.py); returns how many customers it reached.
    NotFound for a journey neither in the journey files nor ever loaded by a process of the workspace (a file
    removed since), as the HTTP calls answer 404: a misspelt id would be paused while the journey meant runs on."""
    async with _store(settings) as store:
        queue, journeys = store.queue, store.journeys
        if not await journeys.known(journey_id):
            on_file = _journeys_on_file(settings)
            if journey_id not in on_file:
                raise NotFound(f"no journey {journey_id!r}{did_you_mean(journey_id, on_file)} in "
                               f"{settings.journeys_dir} or among those workspace {settings.workspace!r} ran; in "
                               f"the files: {', '.join(sorted(on_file)) or 'none'}")
        if action == "pause":
            count = await lifecycle.pause(journeys, journey_id)
        elif action == "resume":
            count = await lifecycle.resume(journeys, queue, journey_id)
        elif action == "stop":
            count = await lifecycle.stop(journeys, queue, journey_id)
        else:
            count = await lifecycle.drain(journeys, queue, journey_id)
        await store.audit.record(store.actor, f"journey.{action}", journey_id, {"customers": count})
        return count


def _journeys_on_file(settings: Settings) -> set[str]:
    """The ids of the journey files that load (none when they do not: the store then says what ran)."""
    try:
        return {journey.id for journey in load_project(settings)[1]}
    except OmnicanalError:
        return set()


async def create_broadcast(settings: Settings, journey: str, audience: dict[str, Any], at: float | None,
                           rate: float, data: dict[str, Any]) -> Broadcast:
    """Ask the daemon's workers to start `journey` for an audience (checked against the project's files: the
    journeys and segments the daemon runs)."""
    _, journeys, segments = load_project(settings)
    async with _store(settings) as store:
        broadcast = broadcasting.new_broadcast(journey, {j.id for j in journeys}, audience, segments.by_id,
                                               store.clock.now(), at, rate, data, origin="cli")
        await broadcasting.start(store.broadcasts, broadcast)
        await store.audit.record(store.actor, "broadcast.create", broadcast.id,
                                 {"journey": journey, "audience": audience})
        return broadcast


async def read_broadcast(settings: Settings, broadcast_id: str) -> Broadcast:
    async with _store(settings) as store:
        found = await store.broadcasts.get(broadcast_id)
    if found is None:
        raise NotFound(f"no broadcast {broadcast_id!r}: `omnicanal broadcasts list` shows the latest")
    return found


async def recent_broadcasts(settings: Settings, limit: int) -> list[Broadcast]:
    async with _store(settings) as store:
        return await store.broadcasts.recent(limit)


async def cancel_broadcast(settings: Settings, broadcast_id: str) -> Broadcast:
    async with _store(settings) as store:
        found = await store.broadcasts.cancel(broadcast_id)
        if found is None:
            raise NotFound(f"no broadcast {broadcast_id!r}: `omnicanal broadcasts list` shows the latest")
        await store.audit.record(store.actor, "broadcast.cancel", broadcast_id, {"journey": found.journey})
        return found


async def create_key(settings: Settings, name: str, scopes: list[str], signing: bool = False
                     ) -> tuple[StoredKey, str]:
    """A new API key of the settings' workspace, and its secret (shown once: only its hash is stored); `signing`:
    its requests must be signed too, with `key.signing_secret` (signing.py).

    A signing key is an event source's: `events:write` only. The signature covers a timestamp and a body, so two
    requests without a body (reads, erasures, journey controls) in the same second would be one request, the second
    refused as a replay; and a browser cannot sign, so the dashboard would be opened with the bare key."""
    if signing and set(scopes) != {Scope.EVENTS_WRITE.value}:
        raise InputError([{"field": "--scope", "message": "a key that signs its requests is for an event source: "
                                                          "give it --scope events:write only, and make another key "
                                                          "without --signing for the rest"}])
    async with _store(settings) as store:
        key, secret = await store.api_keys.create(name, scopes, time.time(), signing)
        await store.audit.record(store.actor, "keys.create", key.id,
                                 {"name": name, "scopes": list(key.scopes), "signing": signing})
        return key, secret


async def list_keys(settings: Settings) -> list[StoredKey]:
    async with _store(settings) as store:
        return await store.api_keys.all()


async def revoke_key(settings: Settings, key_id: str) -> tuple[StoredKey, bool]:
    """The key, revoked (API processes stop taking it within access.CACHE_SECONDS), and whether it was revoked
    now (False: it already was); NotFound naming the workspace's keys."""
    now = time.time()
    async with _store(settings) as store:
        key = await store.api_keys.revoke(key_id, now)
        if key is None:
            known = [key.id for key in await store.api_keys.all()]
            raise NotFound(f"no API key {key_id!r} in workspace {settings.workspace!r}; known: "
                           f"{', '.join(known) or 'none'} (omnicanal keys list --all)")
        if key.revoked_at == now:
            await store.audit.record(store.actor, "keys.revoke", key_id, {"name": key.name})
        return key, key.revoked_at == now


async def read_audit(settings: Settings, since: float | None, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` audit entries (from `since` on), newest first."""
    async with _store(settings) as store:
        return await store.audit.read(limit, since)


async def journey_stats(settings: Settings, journey_id: str, start: float | None, end: float | None,
                        bucket: str | None) -> dict[str, Any]:
    """The stats of a journey of the configured journeys directory (see stats.report); `end` None: now."""
    journeys = {journey.id: journey for journey in load_project(settings)[1]}
    if journey_id not in journeys:
        raise NotFound(f"no journey {journey_id!r} in {settings.journeys_dir}; known: {', '.join(sorted(journeys))}")
    transport = open_transport(_redis_url(settings))
    try:
        keys = Keyspace(settings.workspace, settings.partitions)
        now = end if end is not None else (await Clock.current(transport.client, keys)).now()
        return await report(JourneyStore(transport.client, keys), journeys[journey_id], start, now, bucket)
    finally:
        await transport.aclose()



async def export(settings: Settings, what: str, since: float, until: float | None, out: BinaryIO,
                 progress: Callable[[ExportProgress], None], every: float = 1.0) -> ExportProgress:
    """Write every `what` (a key of store.export.EXPORTS) of every customer whose time is in [since, until) to
    `out`, one JSON object a line, as it is read; `progress` hears how far it got every `every` seconds.
    Returns the final progress."""
    transport = open_transport(_redis_url(settings))
    reader = TimelineExport(transport, Keyspace(settings.workspace, settings.partitions))
    ticker = asyncio.create_task(_tick(every, lambda: progress(reader.progress)))
    try:
        async for customer_id, entry in reader.entries(EXPORTS[what], since, until):
            out.write(encode(export_line(customer_id, entry)) + b"\n")
    finally:
        ticker.cancel()
        await transport.aclose()
    return reader.progress


async def _tick(every: float, call: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(every)
        call()


def export_line(customer_id: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A timeline entry as a warehouse row: its customer first, times as ISO 8601 UTC (the entry's `at` is
    already; a status's is made so), without the `kind` the export already says."""
    line = {"customer_id": customer_id, **entry}
    del line["kind"]
    if "status_history" in line:
        line["status_history"] = [{**status, "at": iso(status["at"])} if isinstance(status.get("at"), int | float)
                                  else status for status in line["status_history"]]
    return line

"""A customer's state in Redis: the one object the engine and the API hold to read and write it.

Each part lives in its own module — the stored form in schema.py, the worker's read in snapshot.py and its write
in commit.py, profile writes from outside the worker in profiles.py, message records and receipts in
messages.py, the timeline in timeline.py; this class puts them behind one name and one transport.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis import exceptions as redis_errors

from omnicanal.errors import StaleWork
from omnicanal.store.commit import Commit, queue_commit
from omnicanal.store.keys import CustomerKeys, Keyspace
from omnicanal.store.messages import MessageLog
from omnicanal.store.profiles import ProfileUpdate, ProfileWrites
from omnicanal.store.schema import STALE_COMMIT
from omnicanal.store.snapshot import SNAPSHOT, Snapshot, decode_snapshot, snapshot_keys
from omnicanal.store.timeline import read_timeline
from omnicanal.store.transport import Transport, Writes


class CustomerStore:
    """Reads and writes the keys of one customer at a time."""

    def __init__(self, transport: Transport, keys: Keyspace, timeline_limit: int = 5_000,
                 retention: float | None = None) -> None:
        self._transport = transport
        self._keys = keys
        self.timeline_limit = timeline_limit
        """Entries kept per customer timeline (OMNICANAL_TIMELINE_LIMIT); older ones are trimmed as new ones come."""
        self._profiles = ProfileWrites(transport, keys, retention)
        self._messages = MessageLog(transport, keys)

    def keys(self, customer_id: str) -> CustomerKeys:
        return self._keys.customer(customer_id)

    # -- the worker's read and write ------------------------------------------------------------------------------

    async def snapshot(self, customer_id: str, event_ids: list[str]) -> Snapshot:
        found = (await self.snapshots({customer_id: event_ids}))[customer_id]
        if isinstance(found, Exception):
            raise found
        return found

    async def snapshots(self, wanted: dict[str, list[str]]) -> dict[str, Snapshot | Exception]:
        """The snapshots of many customers (with which of their event ids were applied), in one round trip where
        the transport allows. A customer whose stored state cannot be read gets the error instead, so one
        corrupted record stops only its owner."""
        calls = [(snapshot_keys(self.keys(cid)), ids) for cid, ids in wanted.items()]
        answers = await self._transport.scripts(SNAPSHOT, calls)
        return {cid: decode_snapshot(cid, answer) for cid, answer in zip(wanted, answers, strict=True)}

    @asynccontextmanager
    async def writes(self) -> AsyncIterator[Writes]:
        """The writes of a whole batch, sent when the block ends: `before` the commits, the commits, `after` them
        (see transport.Writes). A commit refused because another worker applied that customer's work since its
        snapshot was read raises StaleWork once all of them were sent (the others' commits are written)."""
        try:
            async with self._transport.batch() as writes:
                yield writes
        except redis_errors.ResponseError as exc:
            if str(exc).startswith(STALE_COMMIT + " "):
                raise StaleWork(f"commit refused, the customer's work was applied by another worker: {exc}") from exc
            raise

    async def commit(self, writes: Writes, customer_id: str, commit: Commit, now: float, seen_since: float,
                     new: bool) -> None:
        """Queue a Commit: atomic (one script); a `new` customer gets its creation time and is listed; applied
        event ids older than `seen_since` (real time) are forgotten."""
        queue_commit(writes, self.keys(customer_id), commit, now, seen_since, new, self.timeline_limit)
        if new:
            writes.after.sadd(self._keys.customers, customer_id)

    # -- profile --------------------------------------------------------------------------------------------------

    async def upsert_profile(self, customer_id: str, fields: dict[str, Any], attributes: dict[str, Any],
                             now: float, once: str | None = None, changes: bool = False) -> ProfileUpdate:
        """See profiles.ProfileWrites.upsert: atomic, merged in Redis, once per provider message id if given,
        with the attributes it changed if asked."""
        return await self._profiles.upsert(customer_id, fields, attributes, now, once, changes)

    async def remove_address(self, customer_id: str, channel: str, address: str) -> None:
        """See profiles.ProfileWrites.remove_address: atomic."""
        await self._profiles.remove_address(customer_id, channel, address)

    async def profile(self, customer_id: str) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
        """(profile, attributes, running instances); empty profile and attributes: unknown customer."""
        snap = await self.snapshot(customer_id, [])
        return snap.profile, snap.attributes, list(snap.instances.values())

    async def timeline(self, customer_id: str) -> list[dict[str, Any]]:
        """Every entry, oldest first, messages carrying their latest status and status history."""
        return await read_timeline(self._transport.client, self.keys(customer_id))

    # -- messages (see messages.py) ----------------------------------------------------------------------------------

    async def save_sent_message(self, customer_id: str, message_id: str, record: dict[str, Any],
                                provider_id: str) -> None:
        await self._messages.save_sent(customer_id, message_id, record, provider_id)

    async def message_of_provider_id(self, provider_id: str) -> tuple[str, str] | None:
        return await self._messages.of_provider_id(provider_id)

    async def message(self, customer_id: str, message_id: str) -> dict[str, Any] | None:
        return await self._messages.get(customer_id, message_id)

    async def record_status(self, customer_id: str, message_id: str, status: str, at: float,
                            error_code: str | None = None) -> dict[str, Any] | None:
        return await self._messages.record_status(customer_id, message_id, status, at, error_code)

    async def save_message(self, customer_id: str, message_id: str, record: dict[str, Any]) -> None:
        await self._messages.save(customer_id, message_id, record)


__all__ = ["Commit", "CustomerStore", "ProfileUpdate", "Snapshot", "Writes"]
"""Commit, ProfileUpdate, Snapshot and Writes are the types callers use with this store (defined in commit.py,
profiles.py, snapshot.py and transport.py)."""

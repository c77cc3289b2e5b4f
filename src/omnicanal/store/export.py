"""Reading every customer's timeline for a warehouse export, a page at a time (`omnicanal export`).

The customers set is walked with SSCAN, a page of customers at a time; their timelines are read in LRANGE chunks,
every customer of the page in the same round trip, and the message records a chunk names in one more. So the
process holds at most a page of customers times a chunk of entries, however many customers and entries the
store has, and the first lines leave before the scan is over.

A timeline may be trimmed (its oldest entries dropped, schema.TIMELINE_TRIMMED counting them) while it is read:
entries are followed by their position counted from the first entry ever, and each chunk is read between two
reads of the trimmed count, so an entry is exported once — unless trimmed before it was reached. Like any SCAN,
SSCAN may return a customer twice when the set is resized meanwhile: rows carry ids (`event_id`, `message_id`)
a warehouse can load on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from omnicanal.codec import loads
from omnicanal.store import schema
from omnicanal.store.connection import call, first_error, translated
from omnicanal.store.keys import CustomerKeys, Keyspace
from omnicanal.store.scripts import Command
from omnicanal.store.transport import Transport
from omnicanal.timestamps import iso

EXPORTS = {"events": "event", "messages": "message", "conversions": "conversion"}
"""What can be exported, and the kind of timeline entry each is."""
CUSTOMERS_PER_PAGE = 50
ENTRIES_PER_READ = 100
"""A page of customers and a chunk of entries: with entries of a few KB (rendered e-mails), ~10 MB at most."""


@dataclass(slots=True)
class ExportProgress:
    customers_total: int = 0
    """Customers in the set when the export began."""
    customers_done: int = 0
    entries: int = 0
    """Entries given so far."""


@dataclass(slots=True)
class _Reading:
    """Where one customer's timeline is being read: `next` the position of the next entry (None: not begun), as
    counted when `trimmed` entries had been trimmed."""

    customer_id: str
    keys: CustomerKeys
    next: int | None = None
    trimmed: int = 0

    def start(self) -> int:
        """The list index the next chunk starts at."""
        return 0 if self.next is None else max(0, self.next - self.trimmed)


class TimelineExport:
    """Timeline entries of one kind across all customers, within a time range, oldest first per customer."""

    def __init__(self, transport: Transport, keys: Keyspace, customers_per_page: int = CUSTOMERS_PER_PAGE,
                 entries_per_read: int = ENTRIES_PER_READ) -> None:
        self._transport = transport
        self._keys = keys
        self._page = customers_per_page
        self._chunk = entries_per_read
        self.progress = ExportProgress()

    async def entries(self, kind: str, since: float, until: float | None
                      ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(customer id, entry) of every timeline entry of `kind` (EXPORTS' values) whose `at` is in
        [since, until) (`until` None: no end); message entries carry their latest status and status history, as
        `CustomerStore.timeline` gives them."""
        client = self._transport.client
        start, end = iso(since), None if until is None else iso(until)
        self.progress.customers_total = int(await call(client.scard(self._keys.customers)))
        cursor = 0
        while True:
            cursor, found = await call(client.sscan(self._keys.customers, cursor, count=self._page))
            for first in range(0, len(found), self._page):
                async for exported in self._page_entries(found[first:first + self._page], kind, start, end):
                    yield exported
            if int(cursor) == 0:
                return

    async def _page_entries(self, customer_ids: Sequence[str], kind: str, since: str, until: str | None
                            ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        readings = [_Reading(cid, self._keys.customer(cid)) for cid in customer_ids]
        while readings:
            chunks = await self._read_chunks(readings)
            wanted = {reading.customer_id: [entry for entry in map(loads, chunk) if entry.get("kind") == kind
                                            and _within(entry.get("at"), since, until)]
                      for reading, chunk in zip(readings, chunks, strict=True) if chunk}
            if kind == "message":
                await self._with_statuses(wanted)
            for customer_id, entries in wanted.items():
                for entry in entries:
                    self.progress.entries += 1
                    yield customer_id, entry
            unfinished = [reading for reading, chunk in zip(readings, chunks, strict=True)
                          if chunk is None or len(chunk) == self._chunk]
            self.progress.customers_done += len(readings) - len(unfinished)
            readings = unfinished

    async def _read_chunks(self, readings: Sequence[_Reading]) -> list[list[str] | None]:
        """The next chunk of each customer's timeline, in one round trip, their readings moved past it; None for
        a customer whose trimmed count changed meanwhile (read again from the right place next time)."""
        commands: list[Command] = []
        for reading in readings:
            start, k = reading.start(), reading.keys
            commands += [("HGET", k.profile, schema.TIMELINE_TRIMMED),
                         ("LRANGE", k.timeline, start, start + self._chunk - 1),
                         ("HGET", k.profile, schema.TIMELINE_TRIMMED)]
        async with translated():
            replies = first_error(await self._transport.send(commands))
        chunks: list[list[str] | None] = []
        for n, reading in enumerate(readings):
            before, chunk, after = int(replies[3 * n] or 0), replies[3 * n + 1], int(replies[3 * n + 2] or 0)
            if before != after or (reading.next is not None and before != reading.trimmed):
                reading.trimmed = after
                chunks.append(None)
                continue
            reading.next, reading.trimmed = before + reading.start() + len(chunk), before
            chunks.append(list(chunk))
        return chunks

    async def _with_statuses(self, wanted: dict[str, list[dict[str, Any]]]) -> None:
        """Give message entries their record's latest status and status history (one round trip)."""
        named = {cid: [e["message_id"] for e in entries if e.get("message_id")] for cid, entries in wanted.items()}
        named = {cid: ids for cid, ids in named.items() if ids}
        if not named:
            return
        commands: list[Command] = [
            ("HMGET", self._keys.customer(cid).messages, *(field for mid in ids
                                                           for field in (mid, mid + schema.HISTORY_SUFFIX)))
            for cid, ids in named.items()]
        async with translated():
            replies = first_error(await self._transport.send(commands))
        for (cid, ids), stored in zip(named.items(), replies, strict=True):
            records = {mid: schema.decode_message(mid, record, history)
                       for mid, record, history in zip(ids, stored[0::2], stored[1::2], strict=True) if record}
            for entry in wanted[cid]:
                if (record := records.get(entry.get("message_id", ""))) is not None:
                    entry["status"] = record["status"]
                    entry["status_history"] = record["history"]


def _within(at: Any, since: str, until: str | None) -> bool:
    """Whether an entry's `at` (timestamps.iso text: fixed width, so text order is time order) is in range."""
    return isinstance(at, str) and at >= since and (until is None or at < until)

"""Everything the store holds about one customer, found without a SCAN of the keyspace: the right of access
(`GET /v1/customers/{id}/export`) reads it, and an erasure (erasure.py) deletes what it names.

The customer's own keys (one slot) hold their profile, attributes, running instances, timeline, messages and
applied event ids; the rest points at them from elsewhere and is found from those:

    identity entries       the addresses of the profile and the anonymous ids merged into it, when they point here
    merged visitors        the tombstones of those anonymous ids (`merged_into` the customer)
    provider message ids   the message records' `provider_id`
    idempotency keys       the event ids of the timeline and of the applied-events index
    segment memberships    the member sets of the segments (those loaded, and those the customer's state names)
    coupons                the codes on the timeline's messages and the running instances' fallbacks
    timers                 the members `customer|…` of the partition's timers set (ZSCAN with that prefix), the
                           customer's and their merged visitors'
    outbox records         the outbox list's records of the customer (a development aid, at most 10,000)
    dead letters           the dead-letter stream's items of the customer

Coupons are found while their message is on the timeline (OMNICANAL_TIMELINE_LIMIT entries) or pending on an
instance; a coupon record expires a month after the coupon by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omnicanal.codec import loads
from omnicanal.identity import identifiers
from omnicanal.store import schema
from omnicanal.store.connection import call, decode_map, translated
from omnicanal.store.keys import Keyspace
from omnicanal.store.merge import CustomerMerge
from omnicanal.store.transport import Transport

SCAN_COUNT = 1000
"""Members looked at per ZSCAN or XRANGE round trip."""


@dataclass(slots=True)
class Holdings:
    """What the store holds about one customer: their state as `CustomerMerge.export` gives it, and what points
    at them from other keys."""

    customer_id: str
    state: dict[str, Any]
    identities: list[tuple[str, str]] = field(default_factory=list)
    """(kind, value) of the identity entries that point at the customer."""
    merged: list[str] = field(default_factory=list)
    """Anonymous ids merged into the customer, whose tombstones point here."""
    coupons: dict[str, dict[str, str]] = field(default_factory=dict)
    outbox: list[str] = field(default_factory=list)
    """The customer's outbox records, as stored (the exact text, for the redaction script)."""
    dead_letters: list[str] = field(default_factory=list)
    timers: list[tuple[str, str]] = field(default_factory=list)
    """(timers key, member) of every timer of the customer and of the visitors merged into them."""

    @property
    def exists(self) -> bool:
        return bool(self.state["profile"] or self.state["attributes"] or self.state["timeline"])

    @property
    def provider_ids(self) -> list[str]:
        return [str(record["provider_id"]) for record in self.state["messages"].values() if record.get("provider_id")]

    @property
    def event_ids(self) -> list[str]:
        ids = [entry["event_id"] for entry in self.state["timeline"] if entry.get("kind") == "event"
               and entry.get("event_id")]
        return list(dict.fromkeys([*ids, *self.state["seen"]]))

    @property
    def journeys(self) -> set[str]:
        return {instance["journey"] for instance in self.state["instances"].values()}

    @property
    def segments(self) -> set[str]:
        """The segments the customer's state says they are in (schema.AUDIENCE: `s`)."""
        audience = self.state["profile"].get(schema.AUDIENCE) or {}
        return {str(segment) for segment in audience.get("s", ())} if isinstance(audience, dict) else set()


def _coupon_codes(state: dict[str, Any]) -> list[str]:
    codes = [entry["coupon"] for entry in state["timeline"] if entry.get("kind") == "message" and entry.get("coupon")]
    for instance in state["instances"].values():
        codes += [pending["coupon"] for pending in (instance.get("fallbacks") or {}).values() if pending.get("coupon")]
    return list(dict.fromkeys(codes))


class CustomerHoldings:
    def __init__(self, transport: Transport, keys: Keyspace) -> None:
        self._transport = transport
        self._redis = transport.client
        self._keys = keys
        self._merge = CustomerMerge(self._redis, keys)

    async def read(self, customer_id: str) -> Holdings:
        state = await self._merge.export(customer_id)
        merged = [str(anon) for anon in state["profile"].get(schema.MERGED_FROM, [])]
        held = Holdings(customer_id, state, merged=merged)
        candidates = [*identifiers(state["profile"].get(schema.ADDRESSES, {})), *(("anon", anon) for anon in merged)]
        codes = _coupon_codes(state)
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            for kind, value in candidates:
                pipe.get(self._keys.identity(kind, value))
            for code in codes:
                pipe.hgetall(self._keys.coupon(code))
            answers = await pipe.execute() if len(pipe) else []
        owners, coupons = answers[:len(candidates)], answers[len(candidates):]
        held.identities = [found for found, owner in zip(candidates, owners, strict=True) if owner == customer_id]
        held.coupons = {code: decode_map(raw) for code, raw in zip(codes, coupons, strict=True)
                        if decode_map(raw).get("customer") == customer_id}
        for owner in (customer_id, *merged):
            held.timers += await self._timers(owner)
        held.outbox = await self._outbox(customer_id)
        held.dead_letters = await self._dead_letters(customer_id)
        return held

    async def _timers(self, customer_id: str) -> list[tuple[str, str]]:
        key = self._keys.partition(self._keys.partition_of(customer_id)).timers
        found: list[tuple[str, str]] = []
        async with translated():
            async for member, _ in self._redis.zscan_iter(key, match=schema.timers_of(customer_id), count=SCAN_COUNT):
                found.append((key, str(member)))
        return found

    async def _outbox(self, customer_id: str) -> list[str]:
        records = await call(self._redis.lrange(self._keys.outbox, 0, -1))
        return [str(text) for text in records if customer_id in text and loads(text).get("customer_id") == customer_id]

    async def _dead_letters(self, customer_id: str) -> list[str]:
        found: list[str] = []
        start = "-"
        while True:
            entries = await call(self._redis.xrange(self._keys.dlq, start, "+", count=SCAN_COUNT))
            for entry_id, fields in entries:
                item = schema.decode_work(-1, entry_id, fields)
                if item.customer_id == customer_id:
                    found.append(str(entry_id))
            if len(entries) < SCAN_COUNT:
                return found
            start = "(" + str(entries[-1][0])

"""Profile writes from outside a customer's ordered work — `PUT /v1/customers`, an inbound message or STOP
keyword, a provider saying an address is dead — each one Lua script (lua/upsert_profile.lua,
lua/remove_address.lua), so that they never lose a change a worker commits for the same customer meanwhile,
nor one another's: addresses and consents are merged inside Redis, not read and written back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from omnicanal.codec import encode, loads
from omnicanal.identity import identifiers
from omnicanal.store import schema
from omnicanal.store.keys import Keyspace
from omnicanal.store.scripts import load, section
from omnicanal.store.transport import Transport

UPSERT_PROFILE = load("upsert_profile")
REMOVE_ADDRESS = load("remove_address")
CLAIM_IDENTITY = load("claim_identity")
_MERGED = (schema.ADDRESSES, schema.CONSENTS)


def upsert_args(fields: dict[str, Any], attributes: dict[str, Any], now: float, once: str = "",
                olds: bool = False) -> list[Any]:
    """The script's arguments (see lua/upsert_profile.lua): addresses and consents go whole, to be merged; a
    null field or attribute is removed; `once`: the provider message id the update is applied once for; `olds`:
    the attributes' values before the write come back."""
    merged = [encode(fields[name]) if fields.get(name) is not None else "" for name in _MERGED]
    given = {name: value for name, value in fields.items() if name not in _MERGED}
    kept = [x for name, value in given.items() if value is not None
            for x in (name, schema.encode_profile_field(name, value))]
    return [
        repr(now), *merged, once, "1" if olds else "0",
        *section(kept, 2),
        *section([name for name, value in given.items() if value is None], 1),
        *section([x for name, value in attributes.items() if value is not None for x in (name, encode(value))], 2),
        *section([name for name, value in attributes.items() if value is None], 1),
    ]


@dataclass(frozen=True, slots=True)
class ProfileUpdate:
    """What an upsert did: whether it applied (a provider message applied before: not), the addresses before
    and after it when the update gave some (the identity index follows them), and, when asked for, the
    attributes it changed (`{name: {"from": old, "to": new}}`, a removed one `to` null: customer.updated)."""

    applied: bool
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of_answer(cls, answer: list[Any], attributes: dict[str, Any]) -> ProfileUpdate:
        """From the script's answer: {0}, or {1, the addresses before, after} (JSON; '' when none were given),
        then the stored JSON of each attribute given before the write, when asked for (see upsert_args: those
        set, then those removed)."""
        if not int(answer[0]):
            return cls(False)
        before, after = ((loads(text) or {}) if text else {} for text in answer[1:3])
        given = [*(name for name, value in attributes.items() if value is not None),
                 *(name for name, value in attributes.items() if value is None)]
        olds = {name: loads(old) if old is not None else None for name, old in zip(given, answer[3:], strict=False)}
        changes = {name: {"from": olds[name], "to": attributes[name]} for name in olds
                   if olds[name] != attributes[name]}
        return cls(True, before, after, changes)


class ProfileWrites:
    def __init__(self, transport: Transport, keys: Keyspace, retention: float | None = None) -> None:
        self._transport = transport
        self._keys = keys
        self._retention = retention
        """Journey seconds of inactivity before erasure (None: off): an update moves the retention timer later."""

    async def upsert(self, customer_id: str, fields: dict[str, Any], attributes: dict[str, Any], now: float,
                     once: str | None = None, changes: bool = False) -> ProfileUpdate:
        """Merge a profile update: given fields replace, addresses merge per channel (null removes one), consents
        merge per channel and purpose in the order they were decided, null fields and attributes go; the customer
        is listed, and known from then on. With `once` (a provider's message id), an update already applied for
        that id changes nothing. With `changes`, the attributes it changed come back, their old values read in
        the same script as the write (no other write can come between). With retention on, the customer's
        retention timer moves to `now` + retention."""
        k = self._keys.customer(customer_id)
        writes = [self._transport.command("SADD", self._keys.customers, customer_id)]
        if self._retention is not None:
            timers = self._keys.partition(self._keys.partition_of(customer_id)).timers
            writes.append(self._transport.command("ZADD", timers, repr(now + self._retention),
                                                  schema.retention_member(customer_id)))
        answer, *_ = await asyncio.gather(
            self._transport.script(UPSERT_PROFILE, [k.profile, k.attrs, k.inbound],
                                   upsert_args(fields, attributes, now, once or "", changes)), *writes)
        return ProfileUpdate.of_answer(list(answer), attributes)

    async def remove_address(self, customer_id: str, channel: str, address: str) -> bool:
        """Forget an address the provider says is dead (an unregistered push token, an unknown number), and its
        identity entry unless another channel of the customer still has it (an erasure finds the entries from
        the addresses: one left behind would outlive the customer); False if the customer did not have it."""
        k = self._keys.customer(customer_id)
        if not await self._transport.script(REMOVE_ADDRESS, [k.profile], [channel, address]):
            return False
        kept = await self._transport.command("HGET", k.profile, schema.ADDRESSES)
        still = identifiers(loads(kept) if kept else {})
        for kind, value in identifiers({channel: [address] if channel == "push" else address}):
            if (kind, value) not in still:
                await self._transport.script(CLAIM_IDENTITY, [self._keys.identity(kind, value)], [customer_id, ""])
        return True

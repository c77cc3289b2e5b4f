"""The identity index: which customer an e-mail, phone, push token or anonymous id belongs to.

An index beside the profiles (each entry its own key, in its own slot), kept by these rules so that one profile
cannot take another's identifiers by claiming them:

- the first customer to claim an identifier keeps it: another profile with the same address (a shared family
  e-mail, or someone typing a victim's address) does not re-point it, since nothing verified that address;
- unless the owner no longer has it (their address changed, or they were merged away), or is only a placeholder
  named after it (a reply from a number nobody had lands on a customer whose id is that number): then the next
  claim takes it;
- a customer whose address changes lets go of the old one at once (only if it still points at them).

Every change is a compare-and-set of one entry (lua/claim_identity.lua): racing claims cannot both win.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from omnicanal.identity import identifiers
from omnicanal.store.connection import Redis, call, translated
from omnicanal.store.customers import CustomerStore
from omnicanal.store.keys import Keyspace
from omnicanal.store.schema import MERGED_FROM
from omnicanal.store.scripts import load

CLAIM_IDENTITY = load("claim_identity")


class IdentityIndex:
    def __init__(self, redis: Redis, keys: Keyspace, customers: CustomerStore) -> None:
        self._redis = redis
        self._keys = keys
        self._customers = customers

    async def _swap(self, kind: str, value: str, expected: str, wanted: str) -> str:
        """Point (kind, value) at `wanted` ('' : nobody) if it points at `expected` now; whom it points at after."""
        owner = await call(self._redis.eval(CLAIM_IDENTITY.source, 1, self._keys.identity(kind, value), expected,
                                            wanted))
        return owner.decode() if isinstance(owner, bytes) else str(owner)

    async def claim(self, customer_id: str, claimed: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Point the identifiers nobody owns at the customer, and those whose owner no longer has them; returns
        the owner of each afterwards (the customer, or the first owner who keeps it)."""
        owners: dict[tuple[str, str], str] = {}
        for kind, value in dict.fromkeys(claimed):
            owner = await self._swap(kind, value, "", customer_id)
            if owner != customer_id and not await self._holds(owner, kind, value):
                owner = await self._swap(kind, value, owner, customer_id)
            owners[kind, value] = owner
        return owners

    async def forget(self, customer_id: str, forgotten: Iterable[tuple[str, str]]) -> None:
        """Remove the entries of identifiers the customer no longer has (those pointing at someone else stay)."""
        for kind, value in forgotten:
            await self._swap(kind, value, customer_id, "")

    async def follow(self, customer_id: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
        """Keep the index true to the customer's addresses going from `before` to `after` (a profile update)."""
        now = identifiers(after)
        await self.forget(customer_id, [found for found in identifiers(before) if found not in now])
        await self.claim(customer_id, now)

    async def _holds(self, owner: str, kind: str, value: str) -> bool:
        """Whether the customer an entry points at still has that identifier (an address, or a merged visitor), as
        more than a placeholder named after it."""
        if owner == value:
            return False
        profile, _, _ = await self._customers.profile(owner)
        if kind == "anon":
            return value in profile.get(MERGED_FROM, [])
        return (kind, value) in identifiers(profile.get("addresses", {}))

    async def resolve(self, kind: str, value: str) -> str | None:
        found: str | None = await call(self._redis.get(self._keys.identity(kind, value)))
        return found

    async def resolve_many(self, identifiers: Sequence[tuple[str, str]]) -> list[str | None]:
        """The customer of each (kind, value), None for those nobody has: one round trip (a Cluster's client
        splits it by node)."""
        async with translated(), self._redis.pipeline(transaction=False) as pipe:
            for kind, value in identifiers:
                pipe.get(self._keys.identity(kind, value))
            return list(await pipe.execute())

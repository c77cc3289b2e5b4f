"""Coupons issued with messages, and their redemption: each code a hash of its own (Keyspace.coupon), kept a
month past its expiry so that a late redemption is told `expired`, not `unknown`."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from omnicanal.store import schema
from omnicanal.store.connection import call, flat_map
from omnicanal.store.keys import Keyspace
from omnicanal.store.scripts import load
from omnicanal.store.transport import Transport

REDEEM = load("redeem_coupon")
KEPT_AFTER_EXPIRY = 30 * 86400
MAX_CODE = 64
"""A code longer than this is refused as unknown without a look-up."""


class Coupons:
    def __init__(self, transport: Transport, keys: Keyspace) -> None:
        self._transport = transport
        self._keys = keys

    async def secret(self, configured: str | None) -> bytes:
        """The key codes are derived with: the configured one, or one made once per workspace and kept."""
        if configured:
            return configured.encode()
        client = self._transport.client
        await call(client.set(self._keys.coupon_secret, secrets.token_hex(32), nx=True))
        return str(await call(client.get(self._keys.coupon_secret))).encode()

    def issue(self, pipe: Any, customer_id: str, coupons: Iterable[Mapping[str, Any]], journey_now: float) -> None:
        """Queue on `pipe` the coupons issued with a customer's messages (a later message carrying the same code,
        a fallback, takes it over)."""
        for coupon in coupons:
            key = self._keys.coupon(coupon["code"])
            fields = {name: str(coupon[name]) for name in schema.COUPON_FIELDS if name != "customer"}
            pipe.hset(key, mapping={**fields, "customer": customer_id})
            pipe.expire(key, int(coupon["expires"] - journey_now + KEPT_AFTER_EXPIRY) + 1)

    async def redeem(self, redemptions: Sequence[tuple[str, Any]], now: float) -> dict[str, dict[str, Any]]:
        """Check and mark each (event id, code) at once; the verdict by event id (`status` and, for a known code,
        its message, journey, step and channel)."""
        valid = [(event_id, code) for event_id, code in redemptions
                 if isinstance(code, str) and 0 < len(code) <= MAX_CODE]
        verdicts: dict[str, dict[str, Any]] = {event_id: {"status": "unknown"} for event_id, _ in redemptions}
        if not valid:
            return verdicts
        answers = await self._transport.scripts(REDEEM, [([self._keys.coupon(code)], [event_id, repr(now)])
                                                         for event_id, code in valid])
        for (event_id, _), answer in zip(valid, answers, strict=True):
            status, *flat = answer
            verdicts[event_id] = {**flat_map(flat), "status": str(status)}
        return verdicts

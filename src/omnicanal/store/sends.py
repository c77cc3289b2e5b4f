"""Claiming a send before the provider is called, and the atomic frequency-cap check that goes with it.

A send step's message is claimed under an id derived from the instance and the step visit: the claim is what
makes a send at-most-once across replays. A marketing send must also fit the customer's frequency caps, whose
record is a sorted set of recent sends. Both happen in one Lua script on the customer's slot — one round trip
per message, and two sends racing for the last slot of a cap cannot both win.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from omnicanal.codec import encode
from omnicanal.policy.caps import Cap, longest
from omnicanal.store import schema
from omnicanal.store.connection import call
from omnicanal.store.keys import Keyspace
from omnicanal.store.scripts import load
from omnicanal.store.transport import Transport

CLAIM = load("claim")


@dataclass(frozen=True, slots=True)
class Claim:
    """The answer to a claim: `previous` (the message was claimed before: never send it again), `cap` (a
    frequency cap forbids it), or neither (claimed: call the provider)."""

    previous: dict[str, Any] | None = None
    cap: Cap | None = None


class SendLog:
    def __init__(self, transport: Transport, keys: Keyspace) -> None:
        self._keys = keys
        self._transport = transport  # its scripts are coalesced: the customers of a batch claim together

    async def claim(self, customer_id: str, message_id: str, record: dict[str, Any], channel: str, journey: str,
                    now: float, caps: Sequence[Cap], keep: float = 0.0) -> Claim:
        """Claim the message with its `sending` record and, if `caps` apply, count it against them — unless it
        was claimed before or a cap forbids it (then its history ends with `capped` and nothing is counted).

        The record of sends is shared by every journey, so it is trimmed to `keep` (the longest period any cap
        may look back: the brand's and every journey's), never to this send's caps alone: another journey's
        `caps: [1/7d]` needs the sends of seven days even when this one's longest cap is an hour."""
        k = self._keys.customer(customer_id)
        stored = schema.encode_message(record)
        capped = encode([*stored.history, {"status": "capped", "at": now}]) if caps else b""
        args: list[str | bytes | int | float] = [message_id, stored.record, stored.history_json(), capped, repr(now),
                                                 schema.send_member(message_id, channel, journey), channel, journey]
        if caps:
            args.append(repr(max(keep, longest(caps))))
            for cap in caps:
                args += [cap.limit, repr(cap.seconds), cap.scope]
        answer = await self._transport.script(CLAIM, [k.messages, k.sends, k.claims], args)
        if int(answer[0]) == 1:
            return Claim(previous=schema.decode_message(message_id, answer[1], answer[2]))
        if int(answer[0]) == 2:
            return Claim(cap=caps[int(answer[1]) - 1])
        return Claim()

    async def forget(self, customer_id: str, message_id: str, channel: str, journey: str) -> None:
        """Give the slot back: the send did not happen after all (the provider refused it)."""
        await call(self._transport.client.zrem(self._keys.customer(customer_id).sends,
                                               schema.send_member(message_id, channel, journey)))

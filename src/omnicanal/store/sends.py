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

from omnicanal.codec import encode, loads
from omnicanal.policy.caps import Cap
from omnicanal.store.connection import Coalescer, Redis, call
from omnicanal.store.keys import Keyspace

# KEYS[1] the customer's messages hash, KEYS[2] their sends zset (member "message_id|channel|journey", score: time)
# ARGV: message id, record (JSON), the record as kept when capped (JSON), now, member, channel, journey,
# longest cap window, then triples (limit, seconds, scope) — none for a send no cap applies to.
# Returns {1, previous record} when the message was claimed before (a replay), {2, i} when the i-th cap (1-based)
# forbids it (the capped record is kept, nothing counted), {0} when claimed (and counted, with caps).
_CLAIM = """
local previous = redis.call('HGET', KEYS[1], ARGV[1])
if previous then return {1, previous} end
if #ARGV > 8 then
  local now, window = tonumber(ARGV[4]), tonumber(ARGV[8])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
  local recent = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. (now - window), '+inf', 'WITHSCORES')
  local cap = 0
  for i = 9, #ARGV, 3 do
    cap = cap + 1
    local limit, since, scope = tonumber(ARGV[i]), now - tonumber(ARGV[i + 1]), ARGV[i + 2]
    local count = 0
    for j = 1, #recent, 2 do
      if tonumber(recent[j + 1]) > since then
        local _, _, channel, journey = string.find(recent[j], '^[^|]*|([^|]*)|(.*)$')
        if scope == 'customer' or (scope == 'channel' and channel == ARGV[6])
           or (scope == 'journey' and journey == ARGV[7]) then
          count = count + 1
        end
      end
    end
    if count >= limit then
      redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
      return {2, cap}
    end
  end
  redis.call('ZADD', KEYS[2], now, ARGV[5])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {0}
"""


@dataclass(frozen=True, slots=True)
class Claim:
    """The answer to a claim: `previous` (the message was claimed before: never send it again), `cap` (a
    frequency cap forbids it), or neither (claimed: call the provider)."""

    previous: dict[str, Any] | None = None
    cap: Cap | None = None


class SendLog:
    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self._keys = keys
        self._redis = redis
        self._claim = redis.register_script(_CLAIM)
        self._together = Coalescer(redis)  # the customers of a batch claim together

    async def claim(self, customer_id: str, message_id: str, record: dict[str, Any], channel: str, journey: str,
                    now: float, caps: Sequence[Cap]) -> Claim:
        """Claim the message with its `sending` record and, if `caps` apply, count it against them — unless it
        was claimed before or a cap forbids it (then its record says `capped` and nothing is counted)."""
        k = self._keys.customer(customer_id)
        capped = encode({**record, "status": "capped"}) if caps else b""  # only a capped send keeps this one
        args: list[str | bytes | int | float] = [message_id, encode(record), capped, repr(now),
                                                 f"{message_id}|{channel}|{journey}", channel, journey]
        if caps:
            args.append(repr(max(cap.seconds for cap in caps)))
            for cap in caps:
                args += [cap.limit, repr(cap.seconds), cap.scope]
        answer = await self._together.script(self._claim, [k.messages, k.sends], args)
        if int(answer[0]) == 1:
            return Claim(previous=loads(answer[1]))
        if int(answer[0]) == 2:
            return Claim(cap=caps[int(answer[1]) - 1])
        return Claim()

    async def forget(self, customer_id: str, message_id: str, channel: str, journey: str) -> None:
        """Give the slot back: the send did not happen after all (the provider refused it)."""
        await call(self._redis.zrem(self._keys.customer(customer_id).sends, f"{message_id}|{channel}|{journey}"))

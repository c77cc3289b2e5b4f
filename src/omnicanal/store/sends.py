"""The record of a customer's marketing sends, and the atomic frequency-cap check on it."""

from __future__ import annotations

from collections.abc import Sequence

from omnicanal.policy.caps import Cap
from omnicanal.store.connection import Redis, call
from omnicanal.store.keys import Keyspace

# KEYS[1] the customer's sends zset (member "message_id|channel|journey", score: time)
# ARGV: now, member, channel, journey, longest window, then triples (limit, seconds, scope)
# Returns 0 and records the send when every cap allows it, else the 1-based index of the first cap hit.
_CHECK_AND_RECORD = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[5]))
local recent = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (now - tonumber(ARGV[5])), '+inf', 'WITHSCORES')
local cap = 0
for i = 6, #ARGV, 3 do
  cap = cap + 1
  local limit, since, scope = tonumber(ARGV[i]), now - tonumber(ARGV[i + 1]), ARGV[i + 2]
  local count = 0
  for j = 1, #recent, 2 do
    if tonumber(recent[j + 1]) > since then
      local _, _, channel, journey = string.find(recent[j], '^[^|]*|([^|]*)|(.*)$')
      if scope == 'customer' or (scope == 'channel' and channel == ARGV[3])
         or (scope == 'journey' and journey == ARGV[4]) then
        count = count + 1
      end
    end
  end
  if count >= limit then return cap end
end
redis.call('ZADD', KEYS[1], now, ARGV[2])
return 0
"""


class SendLog:
    def __init__(self, redis: Redis, keys: Keyspace) -> None:
        self._keys = keys
        self._redis = redis
        self._script = redis.register_script(_CHECK_AND_RECORD)

    async def admit(self, customer_id: str, message_id: str, channel: str, journey: str, now: float,
                    caps: Sequence[Cap]) -> Cap | None:
        """Record the send if no cap forbids it; otherwise the cap that does (nothing recorded)."""
        if not caps:
            return None
        args: list[str | int | float] = [repr(now), f"{message_id}|{channel}|{journey}", channel, journey,
                                         repr(max(cap.seconds for cap in caps))]
        for cap in caps:
            args += [cap.limit, repr(cap.seconds), cap.scope]
        hit = int(await call(self._script(keys=[self._keys.customer(customer_id).sends], args=args)))
        return caps[hit - 1] if hit else None

    async def forget(self, customer_id: str, message_id: str, channel: str, journey: str) -> None:
        """Give the slot back: the send did not happen after all (the provider refused it)."""
        await call(self._redis.zrem(self._keys.customer(customer_id).sends, f"{message_id}|{channel}|{journey}"))

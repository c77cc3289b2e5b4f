"""Limits measured in the same run: what Redis alone allows for the command mix the engine needs.

The mix is read off Redis itself: `INFO commandstats` before and after a scenario gives how many times each
command ran; divided by the journey steps run (or timers fired), it is the engine's command mix per step.
`redis-benchmark` then measures each command's rate on this Redis (pipelined: 16 clients x 16 deep, the
most Redis gives), with representative keys and value sizes (PROXIES). One step costs Redis
sum(calls_c / rate_c) seconds, so the Redis-bound limit is

    limit steps/s = 1 / sum over commands c of (calls of c per step / redis-benchmark rate of c)

Commands run inside Lua scripts appear in commandstats under their own names and are counted as such; the
script call itself is benchmarked as `EVAL "return 0" 0` (its overhead). MULTI and EXEC cost what a PING
costs (the commands between them are counted on their own). Commandstats are instance-wide: anything else
running on this Redis during the scenario is counted too (it can only lower the limit).
"""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from common import REDIS_HOST, REDIS_PORT, SCRATCH_DB

LIMIT_DB = SCRATCH_DB  # redis-benchmark writes its keys here; flushed before and after
VALUE_1K = "x" * 1024
VALUE_400 = "x" * 400
VALUE_600 = "x" * 600

PROXIES: dict[str, list[str]] = {
    "hgetall": ["HGETALL", "bench:lim:hash"],
    "hget": ["HGET", "bench:lim:hash", "f1"],
    "hmget": ["HMGET", "bench:lim:hash", "f1", "f2"],
    "hset": ["HSET", "bench:lim:h:__rand_int__", "f", VALUE_1K],
    "hsetnx": ["HSETNX", "bench:lim:hn:__rand_int__", "f", VALUE_400],
    "hdel": ["HDEL", "bench:lim:h:__rand_int__", "f"],
    "hincrby": ["HINCRBY", "bench:lim:stats", "step:x:__rand_int__", "1"],
    "hexists": ["HEXISTS", "bench:lim:hash", "f1"],
    "zadd": ["ZADD", "bench:lim:z:__rand_int__", "1795000000.5", "member-__rand_int__"],
    "zrem": ["ZREM", "bench:lim:z:__rand_int__", "member-__rand_int__"],
    "zscore": ["ZSCORE", "bench:lim:z:__rand_int__", "member-__rand_int__"],
    "zcard": ["ZCARD", "bench:lim:z:__rand_int__"],
    "zremrangebyscore": ["ZREMRANGEBYSCORE", "bench:lim:z:__rand_int__", "-inf", "0"],
    "zrangebyscore": ["ZRANGEBYSCORE", "bench:lim:z:__rand_int__", "-inf", "0", "LIMIT", "0", "500"],
    "zrange": ["ZRANGE", "bench:lim:z:__rand_int__", "0", "0", "WITHSCORES"],
    "zcount": ["ZCOUNT", "bench:lim:z:__rand_int__", "-inf", "+inf"],
    "rpush": ["RPUSH", "bench:lim:l:__rand_int__", VALUE_400],
    "lpush": ["LPUSH", "bench:lim:l:__rand_int__", VALUE_400],
    "ltrim": ["LTRIM", "bench:lim:l:__rand_int__", "-5000", "-1"],
    "lrange": ["LRANGE", "bench:lim:l:__rand_int__", "0", "-1"],
    "sadd": ["SADD", "bench:lim:set", "customer-__rand_int__"],
    "srem": ["SREM", "bench:lim:set", "customer-__rand_int__"],
    "sismember": ["SISMEMBER", "bench:lim:set", "customer-__rand_int__"],
    "scard": ["SCARD", "bench:lim:set"],
    "xadd": ["XADD", "bench:lim:stream", "MAXLEN", "~", "10000", "*", "k", "event", "c", "customer", "d",
             VALUE_600],
    "xreadgroup": ["XRANGE", "bench:lim:stream", "-", "+", "COUNT", "10"],
    "xack": ["XACK", "bench:lim:stream", "g", "0-1"],
    "xdel": ["XDEL", "bench:lim:stream", "0-1"],
    "xlen": ["XLEN", "bench:lim:stream"],
    "evalsha": ["EVAL", "return 0", "0"],
    "eval": ["EVAL", "return 0", "0"],
    "incr": ["INCR", "bench:lim:c:__rand_int__"],
    "incrby": ["INCRBY", "bench:lim:c:__rand_int__", "1"],
    "expire": ["EXPIRE", "bench:lim:c:__rand_int__", "5"],
    "pexpire": ["PEXPIRE", "bench:lim:c:__rand_int__", "5000"],
    "set": ["SET", "bench:lim:s:__rand_int__", VALUE_400],
    "get": ["GET", "bench:lim:s:__rand_int__"],
    "mget": ["MGET", "bench:lim:s:1", "bench:lim:s:2"],
    "exists": ["EXISTS", "bench:lim:s:__rand_int__"],
    "del": ["DEL", "bench:lim:s:__rand_int__"],
    "ping": ["PING"],
    "multi": ["PING"],
    "exec": ["PING"],
}
IGNORED = frozenset({"info", "config|resetstat", "config", "client", "client|setinfo", "select", "hello",
                     "flushdb", "script", "script|load", "dbsize", "memory", "memory|usage", "scan", "type"})


def has_redis_benchmark() -> bool:
    return shutil.which("redis-benchmark") is not None


async def commandstats(redis: aioredis.Redis) -> dict[str, int]:
    """Calls per command so far (instance-wide)."""
    info = await redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in info.items()}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    names = set(before) | set(after)
    diff = {name: after.get(name, 0) - before.get(name, 0) for name in names}
    return {name: calls for name, calls in diff.items() if calls > 0 and name not in IGNORED}


@dataclass
class Limits:
    """redis-benchmark rates per command, measured once per run and shared by every row."""

    rates: dict[str, float] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)

    async def rate(self, command: str) -> float:
        if command not in self.rates:
            proxy = PROXIES.get(command)
            if proxy is None:
                self.unknown.add(command)
                proxy = PROXIES["ping"]
            self.rates[command] = await redis_benchmark(proxy)
        return self.rates[command]

    async def per_unit(self, calls: dict[str, int], units: int) -> tuple[float, dict[str, float]]:
        """(Redis-bound units/s, calls per unit by command) for a commandstats delta covering `units` units."""
        if units <= 0 or not calls:
            return float("nan"), {}
        mix = {name: count / units for name, count in sorted(calls.items(), key=lambda kv: -kv[1])}
        seconds = 0.0
        for name, per in mix.items():
            seconds += per / await self.rate(name)
        return 1.0 / seconds, mix


async def prepare() -> None:
    """Keys the read proxies read, in the limit DB."""
    redis = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=LIMIT_DB, decode_responses=True)
    try:
        await redis.flushdb()
        await redis.hset("bench:lim:hash", mapping={"f1": VALUE_400, "f2": VALUE_400, "f3": VALUE_1K})
        await redis.xgroup_create("bench:lim:stream", "g", "0", mkstream=True)
        for _ in range(20):
            await redis.xadd("bench:lim:stream", {"k": "event", "c": "customer", "d": VALUE_600})
    finally:
        await redis.aclose()


async def cleanup() -> None:
    redis = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=LIMIT_DB)
    try:
        await redis.flushdb()
    finally:
        await redis.aclose()


async def redis_benchmark(command: list[str], requests: int = 100_000) -> float:
    """Requests per second redis-benchmark gets for one command, 16 clients pipelining 16 deep."""
    process = await asyncio.create_subprocess_exec(
        "redis-benchmark", "-h", REDIS_HOST, "-p", str(REDIS_PORT), "--dbnum", str(LIMIT_DB), "-c", "16", "-P", "16",
        "-n", str(requests), "-r", "100000", "-q", "--csv", *command,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    rows = list(csv.reader(io.StringIO(out.decode())))
    if process.returncode != 0 or len(rows) < 2:
        raise RuntimeError(f"redis-benchmark {command[0]} failed: {err.decode()[-300:]}")
    return float(rows[1][1])

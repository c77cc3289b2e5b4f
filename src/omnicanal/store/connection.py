"""Opening Redis (real or embedded) and translating its failures into StoreUnavailable.

The embedded store is fakeredis: the same Redis API, commands, streams and Lua, in the process. It lets the
demo and a laptop run with nothing installed; it keeps nothing after exit, which `serve` says at start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as redis
from redis import exceptions as redis_errors

from omnicanal.errors import StoreUnavailable

Redis = redis.Redis | redis.RedisCluster
"""The client types the store works with: a single Redis (fakeredis' async client is a subclass) or a Cluster."""

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""`redis+cluster://host:port` names any node of a Redis Cluster; the client discovers the others."""

_UNAVAILABLE = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.BusyLoadingError,
    redis_errors.ReadOnlyError,
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    redis_errors.MasterDownError,
    redis_errors.SlotNotCoveredError,
    OSError,
)


MAX_CONNECTIONS = 128
"""Connections per process; the worker runs at most WORKER_CONCURRENCY customers at once, each one call at a time."""
POOL_WAIT = 10.0
"""Seconds a call waits for a free connection before the store counts as unavailable."""


def open_redis(url: str | None) -> Redis:
    """A client for `url`, or an embedded in-process store when `url` is empty."""
    if not url:
        from fakeredis import FakeAsyncRedis  # imported late: production processes never load it

        client: Redis = FakeAsyncRedis(decode_responses=True, protocol=2)
        return client
    scheme, sep, rest = url.partition("://")
    if sep and scheme in CLUSTER_SCHEMES:
        return redis.RedisCluster.from_url(
            f"{CLUSTER_SCHEMES[scheme]}://{rest}", decode_responses=True, protocol=2, socket_connect_timeout=2,
            socket_timeout=5,
        )
    # A blocking pool: under a burst, a call waits for a free connection instead of failing with "Too many
    # connections" (which the API would have to answer with 503).
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT,
        decode_responses=True,
        protocol=2,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=15,
        retry_on_timeout=False,
    )
    return redis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Turn Redis' connection-level failures into StoreUnavailable, once, at the store's boundary."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc


async def call(awaitable: Awaitable[Any]) -> Any:
    """Await one Redis call with failures translated (redis-py's answers are loosely typed: callers narrow)."""
    async with translated():
        return await awaitable


FieldMap = dict[Any, Any]
"""A mapping as redis-py's invariant signatures accept it."""


def decode_map(raw: Any) -> dict[str, str]:
    """HGETALL answers as a plain dict of str (RESP2 and RESP3 shapes alike)."""
    return dict(raw or {})

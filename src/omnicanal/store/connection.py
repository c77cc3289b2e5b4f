"""Opening Redis (real or embedded), translating its failures into StoreUnavailable, and sending raw commands
straight to a connection at the least CPU per command (what transport.DirectRedis sends with).

The embedded store is fakeredis: the same Redis API, commands, streams and Lua, in the process. It lets the
demo and a laptop run with nothing installed; it keeps nothing after exit, which `serve` says at start.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import hiredis
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
    redis_errors.OutOfMemoryError,  # maxmemory reached under noeviction
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    redis_errors.MasterDownError,
    redis_errors.SlotNotCoveredError,
    redis_errors.InvalidResponse,  # the URL names a server that is not Redis (an HTTP server's port)
    OSError,
)
_REFUSING = frozenset({"MISCONF"})
"""Error codes of a Redis that refuses writes until an operator acts (MISCONF: its snapshots fail)."""
RETRY_AFTER: dict[type[BaseException], float] = {redis_errors.OutOfMemoryError: 10.0,
                                                 redis_errors.BusyLoadingError: 5.0}
"""Seconds a client is told to wait (Retry-After) when Redis is full or loading; 1 s for the rest."""


def _refused_connection(exc: BaseException) -> bool:
    """A connection the server refuses to set up as the URL asks: a database number past its `databases`, a
    `redis+cluster://` URL naming a node not in cluster mode (or no node answering)."""
    if isinstance(exc, redis_errors.ResponseError):
        return str(exc).startswith("DB index is out of range")
    return isinstance(exc, redis_errors.RedisClusterException) and "cannot be connected" in str(exc)


def unavailable(exc: BaseException) -> StoreUnavailable | None:
    """The StoreUnavailable a Redis failure means — Redis cannot take the command now, and nothing was stored —
    or None for other failures (a script's error, a bug), which are not the store's state."""
    if (not isinstance(exc, _UNAVAILABLE) and getattr(exc, "status_code", None) not in _REFUSING
            and not _refused_connection(exc)):
        return None
    reason = (f"what answers at OMNICANAL_REDIS_URL does not speak Redis ({exc}): check its host and port"
              if isinstance(exc, redis_errors.InvalidResponse) else str(exc))
    error = StoreUnavailable(f"Redis is unavailable: {reason}", retry_after=RETRY_AFTER.get(type(exc), 1.0))
    error.__cause__ = exc
    return error


MAX_CONNECTIONS = 128
"""Connections per process; the worker runs at most WORKER_CONCURRENCY customers at once, each one call at a time."""
POOL_WAIT = 10.0
"""Seconds a call waits for a free connection before the store counts as unavailable."""


class PackedConnection(redis.Connection):
    """redis-py's asyncio connection with commands packed by hiredis, in C.

    redis-py packs commands in Python on asyncio connections (its blocking client already uses hiredis): ~30 µs
    for a journey step's commit script against ~4 µs, which made packing a tenth of a worker's CPU. The bytes on
    the wire are the same; an argument of a type Redis cannot take is the same DataError. (A Cluster's client
    makes its node connections itself: it keeps redis-py's packing.)
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):  # "SCRIPT LOAD" and other command names written with a space
            args = (*args[0].encode().split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            pass
        # hiredis takes str, bytes, memoryview, int and float; redis-py also takes bytearray
        args = tuple(bytes(arg) if isinstance(arg, bytearray) else arg for arg in args)
        try:
            return [hiredis.pack_command(args)]
        except TypeError as exc:
            raise redis_errors.DataError(f"{exc} (got {[type(arg).__name__ for arg in args]})") from exc


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
        # Plain TCP only: `rediss` and `unix` URLs name their own connection class, which the URL's wins.
        **({"connection_class": PackedConnection} if scheme == "redis" else {}),
    )
    return redis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes its connections


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """Turn the failures that mean Redis cannot take commands into StoreUnavailable, once, at the store's
    boundary."""
    try:
        yield
    except Exception as exc:
        if (error := unavailable(exc)) is None:
            raise
        raise error from exc


async def call(awaitable: Awaitable[Any]) -> Any:
    """Await one Redis call with failures translated (redis-py's answers are loosely typed: callers narrow)."""
    async with translated():
        return await awaitable


FieldMap = dict[Any, Any]
"""A mapping as redis-py's invariant signatures accept it."""


def flat_map(flat: Sequence[Any]) -> dict[str, str]:
    """A flat field list as Redis gives it raw (HGETALL from a script, a stream entry: `[field, value, ...]`) as
    a dict (an odd length: ValueError)."""
    pairs = iter(flat)
    return dict(zip(pairs, pairs, strict=True))


def decode_map(raw: Any) -> dict[str, str]:
    """HGETALL answers as a plain dict of str (RESP2 and RESP3 shapes alike)."""
    return dict(raw or {})


async def send_commands(redis_client: redis.Redis, commands: Sequence[Sequence[Any]], blocking: float = 0.0
                        ) -> list[Any]:
    """Commands written to one connection at once, their raw replies read in order: an error reply comes back
    as its ResponseError (not raised), the others as Redis sent them, without redis-py's response callbacks.

    What a pipeline of scripts and writes needs, for less than half what redis-py's pipeline costs: measured
    here, ~13 µs of CPU per EVAL of a snapshot script in a 50-command pipeline against ~6 µs this way. Most of
    the difference is a timeout armed around every reply (~3.4 µs each); here one timeout, the connection's
    socket timeout, bounds the whole exchange. A connection whose exchange fails or times out is dropped (a
    reply left unread would be the next caller's): redis-py's reads and writes disconnect on any exception.
    The caller translates failures (`translated`). `blocking`: seconds a command of the exchange may block in
    Redis (XREADGROUP's BLOCK), on top of the socket timeout. Only for clients on PackedConnection
    (transport_for).
    """
    pool = redis_client.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]  # untyped in redis-py 8
    try:
        async with asyncio.timeout(connection.socket_timeout + blocking):
            await connection.send_packed_command(connection.pack_commands(commands))
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(await connection.read_response(timeout=math.inf))
                except redis_errors.ResponseError as exc:
                    replies.append(exc)
            return replies
    finally:
        await pool.release(connection)


def first_error(replies: Sequence[Any]) -> list[Any]:
    """`replies`, unless one is an error reply: then that error is raised, as redis-py's pipelines do."""
    for reply in replies:
        if isinstance(reply, redis_errors.ResponseError):
            raise reply
    return list(replies)

"""Opening Redis (real or embedded), translating its failures into StoreUnavailable, and sending the hot path's
scripts and batch writes at the least CPU per command.

The embedded store is fakeredis: the same Redis API, commands, streams and Lua, in the process. It lets the
demo and a laptop run with nothing installed; it keeps nothing after exit, which `serve` says at start.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import hiredis
import redis.asyncio as redis
from redis import exceptions as redis_errors
from redis.commands.core import AsyncScript

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
    OSError,
)
_REFUSING = frozenset({"MISCONF"})
"""Error codes of a Redis that refuses writes until an operator acts (MISCONF: its snapshots fail)."""
RETRY_AFTER: dict[type[BaseException], float] = {redis_errors.OutOfMemoryError: 10.0,
                                                 redis_errors.BusyLoadingError: 5.0}
"""Seconds a client is told to wait (Retry-After) when Redis is full or loading; 1 s for the rest."""


def unavailable(exc: BaseException) -> StoreUnavailable | None:
    """The StoreUnavailable a Redis failure means — Redis cannot take the command now, and nothing was stored —
    or None for other failures (a script's error, a bug), which are not the store's state."""
    if not isinstance(exc, _UNAVAILABLE) and getattr(exc, "status_code", None) not in _REFUSING:
        return None
    error = StoreUnavailable(f"Redis is unavailable: {exc}", retry_after=RETRY_AFTER.get(type(exc), 1.0))
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


def decode_map(raw: Any) -> dict[str, str]:
    """HGETALL answers as a plain dict of str (RESP2 and RESP3 shapes alike)."""
    return dict(raw or {})


def queue_script(pipe: Any, source: str | bytes | memoryview, keys: Sequence[Any], args: Sequence[Any]) -> None:
    """Queue a Lua script on a pipeline as EVAL with its source.

    Not redis-py's registered scripts: on a pipeline they cost a SCRIPT EXISTS round trip before every
    execution. Redis caches a script by its digest either way, and EVAL needs nothing loaded beforehand, so a
    Redis that restarted (and lost its script cache) needs nothing done either.
    """
    pipe.execute_command(*eval_command(source, keys, args))


def eval_command(source: str | bytes | memoryview, keys: Sequence[Any], args: Sequence[Any]) -> tuple[Any, ...]:
    """The EVAL command running `source` on `keys` with `args`."""
    return ("EVAL", source, len(keys), *keys, *args)


def sends_directly(redis_client: Redis) -> bool:
    """Whether `send_commands` can carry this client's commands: a single Redis on the connections this module
    packs (not a Cluster, whose client routes each command, nor the embedded store, which has no socket)."""
    return isinstance(redis_client, redis.Redis) and \
        getattr(redis_client.connection_pool, "connection_class", None) is PackedConnection


async def send_commands(redis_client: redis.Redis, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """Commands written to one connection at once, their raw replies read in order: an error reply comes back
    as its ResponseError (not raised), the others as Redis sent them, without redis-py's response callbacks.

    What a pipeline of scripts and writes needs, for less than half what redis-py's pipeline costs: measured
    here, ~13 µs of CPU per EVAL of a snapshot script in a 50-command pipeline against ~6 µs this way. Most of
    the difference is a timeout armed around every reply (~3.4 µs each); here one timeout, the connection's
    socket timeout, bounds the whole exchange. A connection whose exchange fails or times out is dropped (a
    reply left unread would be the next caller's): redis-py's reads and writes disconnect on any exception.
    The caller translates failures (`translated`). Only for clients that `sends_directly`.
    """
    pool = redis_client.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]  # untyped in redis-py 8
    try:
        async with asyncio.timeout(connection.socket_timeout):
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


async def run_script(redis_client: Redis, script: AsyncScript,
                     calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> list[Any]:
    """The answers of one Lua script called with each (keys, args), in order: in one round trip on a single
    Redis, as concurrent calls on a Cluster (its keys live on several nodes, and its pipelines cannot run
    scripts)."""
    async with translated():
        if isinstance(redis_client, redis.RedisCluster):
            return list(await asyncio.gather(*(script(keys=keys, args=args) for keys, args in calls)))
        if sends_directly(redis_client):
            return first_error(await send_commands(redis_client, [eval_command(script.script, keys, args)
                                                                  for keys, args in calls]))
        async with redis_client.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                queue_script(pipe, script.script, keys, args)
            return list(await pipe.execute())


Queued = Callable[[Any], object] | tuple[Any, ...]
"""What a Coalescer sends: a call queuing one command on a redis-py pipeline, or a raw command (`eval_command`)."""


class Coalescer:
    """Commands issued during the same two turns of the event loop, sent to Redis together as one pipeline.

    Many coroutines reach the same call at once — the API's concurrent requests each storing an event, a
    worker's customers each claiming a message before calling the provider — and one pipeline for all of them
    instead of a call each saves redis-py's per-call cost (a pooled connection, a timeout, a write and a read),
    most of what a small command costs. Each caller still waits for, and gets, its own answer or its own error.

    The pipeline leaves one turn later than the first call's: the API's concurrent requests reach the store
    over two turns of the loop, and waiting for the second put about twice as many in each pipeline (measured:
    single-event ingest 17,700 -> 20,900 events/s with 64 connections; a third turn gained nothing).
    """

    def __init__(self, redis_client: Redis) -> None:
        self._redis = redis_client
        self._direct = sends_directly(redis_client)
        self._cluster = isinstance(redis_client, redis.RedisCluster)  # a Protocol check: ~0.4 µs each time
        self._pending: list[tuple[Queued, asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def command(self, queue: Callable[[Any], object]) -> Any:
        """The answer to the one command `queue` puts on the pipeline it is given."""
        return await self._enqueue(queue)

    async def script(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """A Lua script's answer; on a Cluster, whose client cannot pipeline scripts, the call goes alone."""
        if self._cluster:
            return await call(script(keys=keys, args=args))
        return await self._enqueue(eval_command(script.script, keys, args))

    async def _enqueue(self, queued: Queued) -> Any:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        self._pending.append((queued, answer))
        if len(self._pending) == 1:  # the first call: send them all once this turn and the next are over
            loop.call_soon(self._send_after_this_turn)
        return await answer

    def _send_after_this_turn(self) -> None:
        asyncio.get_running_loop().call_soon(self._send)

    def _send(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._execute(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _execute(self, batch: list[tuple[Queued, asyncio.Future[Any]]]) -> None:
        results: list[Any]
        try:
            async with translated():
                results = await self._replies([queued for queued, _ in batch])
        except Exception as exc:  # Redis unavailable (translated), or any failure: every caller hears of it
            results = [exc] * len(batch)
        for (_, answer), result in zip(batch, results, strict=True):
            if answer.done():  # its caller was cancelled
                continue
            if isinstance(result, BaseException):  # an error reply is its caller's alone
                answer.set_exception(unavailable(result) or result)
            else:
                answer.set_result(result)

    async def _replies(self, batch: list[Queued]) -> list[Any]:
        """Raw commands (scripts) go straight to the connection when they can; a command that needs redis-py's
        reply parsing takes the pipeline, and the raw ones with it."""
        if self._direct and all(isinstance(queued, tuple) for queued in batch):
            return await send_commands(cast(redis.Redis, self._redis), cast(list[tuple[Any, ...]], batch))
        async with self._redis.pipeline(transaction=False) as pipe:
            for queued in batch:
                if isinstance(queued, tuple):
                    pipe.execute_command(*queued)
                else:
                    queued(pipe)
            return list(await pipe.execute(raise_on_error=False))

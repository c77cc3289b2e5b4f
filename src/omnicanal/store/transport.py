"""How the store's commands reach Redis: one small interface over a single Redis, a Redis Cluster and the embedded
store, chosen once when the store is opened (`open_transport`), so that no caller asks which one it has.

    Transport           scripts, coalesced commands, batches of writes, stream reads
    ├── PipelinedRedis  a single Redis through redis-py's pipelines: TLS, unix sockets, the embedded store
    │   └── DirectRedis plain `redis://`: scripts and batches written straight to a connection (send_commands)
    └── ClusterRedis    a Redis Cluster: each command routed to its slot's node, scripts one call each (its
                        client cannot pipeline them), multi-stream reads split per node

Plain commands that need redis-py's reply parsing go through `client` (with `call`/`translated`): they work the
same on all three.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import redis.asyncio as redis
from redis import exceptions as redis_errors

from omnicanal.store.connection import (
    FieldMap,
    PackedConnection,
    Redis,
    first_error,
    flat_map,
    open_redis,
    send_commands,
    translated,
    unavailable,
)
from omnicanal.store.scripts import Command, Script, script_of

Queue = Callable[[Any], None]
"""A function queuing commands on the redis-py pipeline it is given."""


class Writes:
    """The writes of a batch: commands queued on `before` go first, the scripts (customers' commits) next, the
    commands queued on `after` last — whatever the transport, so a customer's new timers land before its commit
    and what may be left undone comes after it."""

    def __init__(self, before: Any, after: Any) -> None:
        self.before = before
        self.after = after
        self.scripts: list[Command] = []

    def script(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> None:
        self.scripts.append(script.command(keys, args))


def _unknown_script(reply: Any) -> bool:
    """Whether a reply is Redis's NOSCRIPT (redis-py drops the word from the message of its NoScriptError)."""
    return isinstance(reply, redis_errors.NoScriptError) or (
        isinstance(reply, redis_errors.ResponseError) and str(reply).startswith("NOSCRIPT"))


def _queued(pipe: Any) -> list[Command]:
    """The commands queued on a redis-py pipeline, as sent."""
    return [args for args, _ in pipe.command_stack]


class Coalescer:
    """Commands issued during the same two turns of the event loop, sent to Redis together.

    Many coroutines reach the same call at once — the API's concurrent requests each storing an event, a
    worker's customers each claiming a message before calling the provider — and one round trip for all of them
    instead of a call each saves redis-py's per-call cost (a pooled connection, a timeout, a write and a read),
    most of what a small command costs. Each caller still waits for, and gets, its own answer or its own error.

    The batch leaves one turn later than the first call's: the API's concurrent requests reach the store over two
    turns of the loop, and waiting for the second puts about twice as many in each round trip.
    """

    def __init__(self, send: Callable[[list[Command]], Awaitable[list[Any]]]) -> None:
        self._send_batch = send
        self._pending: list[tuple[Command, asyncio.Future[Any]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def submit(self, command: Command) -> Any:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        self._pending.append((command, answer))
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

    async def _execute(self, batch: list[tuple[Command, asyncio.Future[Any]]]) -> None:
        results: list[Any]
        try:
            async with translated():
                results = await self._send_batch([command for command, _ in batch])
        except Exception as exc:  # Redis unavailable (translated), or any failure: every caller hears of it
            results = [exc] * len(batch)
        for (_, answer), result in zip(batch, results, strict=True):
            if answer.done():  # its caller was cancelled
                continue
            if isinstance(result, BaseException):  # an error reply is its caller's alone
                answer.set_exception(unavailable(result) or result)
            else:
                answer.set_result(result)


class Transport(ABC):
    """The store's way to Redis. `client` is the redis-py client, for plain commands."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self._together = Coalescer(self.send)
        self._loaded: set[str] = set()
        """Digests of the scripts loaded into Redis by this transport."""

    async def send(self, commands: Sequence[Command]) -> list[Any]:
        """Raw commands in as few round trips as the topology allows, their raw replies in order; an error reply
        comes back as its ResponseError, not raised. The caller translates failures (`translated`).

        A script is loaded (SCRIPT LOAD) the first time this transport sends it, in a round trip of its own, so
        that the commands around it run in their order. One Redis forgot since (restarted behind a connection
        that reconnected, or told SCRIPT FLUSH) answers NOSCRIPT without running it: it is loaded again and that
        call sent again, after the others of its round trip. (A batch's writes queued after its commits then
        land before them; only a crash between the two round trips would show it: the replay counts that
        batch's steps again.)"""
        scripts = {script.sha: script for command in commands if (script := script_of(command)) is not None}
        if new := {sha: script for sha, script in scripts.items() if sha not in self._loaded}:
            await self._load(new)
        replies = await self._send(commands)
        unknown = [n for n, reply in enumerate(replies) if _unknown_script(reply)]
        if unknown:
            await self._load({commands[n][1]: scripts[commands[n][1]] for n in unknown})
            for n, reply in zip(unknown, await self._send([commands[n] for n in unknown]), strict=True):
                replies[n] = reply
        return replies

    @abstractmethod
    async def _send(self, commands: Sequence[Command]) -> list[Any]:
        """`send` without the loading of unknown scripts."""

    async def _load(self, scripts: dict[str, Script]) -> None:
        """Have Redis know these scripts (SCRIPT LOAD), and remember it."""
        first_error(await self._send([("SCRIPT", "LOAD", script.source) for script in scripts.values()]))
        self._loaded.update(scripts)

    async def command(self, *args: Any) -> Any:
        """One command's reply, sent with the other commands and scripts issued at the same time (Coalescer)."""
        return await self._together.submit(args)

    async def script(self, script: Script, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """A script's reply, sent with the other commands and scripts issued at the same time (Coalescer)."""
        return await self._together.submit(script.command(keys, args))

    async def scripts(self, script: Script, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> list[Any]:
        """The replies of a script called with each (keys, args), in order; the first error reply is raised."""
        async with translated():
            return first_error(await self.send([script.command(keys, args) for keys, args in calls]))

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[Writes]:
        """Writes queued in the block, sent when it ends in one round trip, in their order (see Writes)."""
        async with translated(), self.client.pipeline(transaction=False) as before, \
                self.client.pipeline(transaction=False) as after:
            writes = Writes(before, after)
            yield writes
            commands = [*_queued(before), *writes.scripts, *_queued(after)]
            if commands:
                first_error(await self.send(commands))

    async def read_groups(self, group: str, consumer: str, streams: FieldMap, count: int, block_ms: int | None,
                          first: Queue) -> list[Any]:
        """XREADGROUP of `streams` (stream -> id to read after), with the commands `first` queues sent ahead of it
        in the same round trip (Redis runs them before the read blocks). `block_ms` None: answer at once."""
        async with translated(), self.client.pipeline(transaction=False) as pipe:
            first(pipe)
            pipe.xreadgroup(group, consumer, streams, count=count, block=block_ms)
            answer: list[Any] = (await pipe.execute())[-1] or []
            return answer

    async def aclose(self) -> None:
        await self.client.aclose()


class PipelinedRedis(Transport):
    """A single Redis, its commands sent through redis-py's pipelines."""

    async def _send(self, commands: Sequence[Command]) -> list[Any]:
        async with self.client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return list(await pipe.execute(raise_on_error=False))


class DirectRedis(PipelinedRedis):
    """A single Redis on connections packed by hiredis: scripts, batches and stream reads go straight to a
    connection, read under one timeout per exchange (connection.send_commands: half the CPU of redis-py's
    pipeline)."""

    async def _send(self, commands: Sequence[Command]) -> list[Any]:
        return await send_commands(cast(redis.Redis, self.client), commands)

    async def read_groups(self, group: str, consumer: str, streams: FieldMap, count: int, block_ms: int | None,
                          first: Queue) -> list[Any]:
        async with translated(), self.client.pipeline(transaction=False) as pipe:
            first(pipe)
            read = ["XREADGROUP", "GROUP", group, consumer, "COUNT", count,
                    *(("BLOCK", block_ms) if block_ms is not None else ()), "STREAMS", *streams, *streams.values()]
            replies = first_error(await send_commands(cast(redis.Redis, self.client), [*_queued(pipe), read],
                                                      blocking=(block_ms or 0) / 1000))
        # as redis-py's parsing gives them: each entry's fields as a mapping (None: deleted while pending)
        return [(stream, [(entry_id, None if fields is None else flat_map(fields)) for entry_id, fields in entries])
                for stream, entries in replies[-1] or ()]


class ClusterRedis(Transport):
    """A Redis Cluster: plain commands in one pipeline (its client splits it per node), each script as its own
    call (its client cannot pipeline scripts), all at once; a batch in three steps, `before`, the scripts,
    `after`, so its order holds across nodes."""

    async def _send(self, commands: Sequence[Command]) -> list[Any]:
        replies: list[Any] = [None] * len(commands)
        plain = [n for n, command in enumerate(commands) if command[0] != "EVALSHA"]

        async def pipelined() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                for n in plain:
                    pipe.execute_command(*commands[n])
                for n, reply in zip(plain, await pipe.execute(raise_on_error=False), strict=True):
                    replies[n] = reply

        async def alone(n: int) -> None:
            try:
                replies[n] = await self.client.execute_command(*commands[n])
            except redis_errors.ResponseError as exc:
                replies[n] = exc

        await asyncio.gather(*([pipelined()] if plain else []),
                             *(alone(n) for n, command in enumerate(commands) if command[0] == "EVALSHA"))
        return replies

    async def _load(self, scripts: dict[str, Script]) -> None:
        """SCRIPT LOAD on every primary (redis-py's cluster client sends it to each): a script's keys may live on
        any of them."""
        for script in scripts.values():
            await self.client.execute_command("SCRIPT", "LOAD", script.source)
        self._loaded.update(scripts)

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[Writes]:
        async with translated(), self.client.pipeline() as before, self.client.pipeline() as after:
            writes = Writes(before, after)
            yield writes
            if len(before):
                await before.execute()
            first_error(await self.send(writes.scripts))
            if len(after):
                await after.execute()

    async def read_groups(self, group: str, consumer: str, streams: FieldMap, count: int, block_ms: int | None,
                          first: Queue) -> list[Any]:
        """One read per stream (they live on different nodes), after the commands `first` queues; when all are
        empty, a pause stands in for the blocking read a single Redis would do."""
        async with translated(), self.client.pipeline(transaction=False) as pipe:
            first(pipe)
            if len(pipe):
                await pipe.execute()
        async with translated(), self.client.pipeline(transaction=False) as pipe:
            for stream, start in streams.items():
                pipe.xreadgroup(group, consumer, {stream: start}, count=count)
            answers = [entry for answer in await pipe.execute() for entry in (answer or [])]
        if not answers and block_ms:
            await asyncio.sleep(min(block_ms, 20) / 1000)
        return answers


def transport_for(client: Redis) -> Transport:
    """The transport that fits `client`: the one place that asks what kind of Redis it is."""
    if isinstance(client, redis.RedisCluster):
        return ClusterRedis(client)
    if getattr(client.connection_pool, "connection_class", None) is PackedConnection:
        return DirectRedis(client)
    return PipelinedRedis(client)


def open_transport(url: str | None) -> Transport:
    """The store's transport to `url` (empty: the embedded store)."""
    return transport_for(open_redis(url))


"""The Redis connection the engine opens: commands packed by hiredis carry every argument exactly; scripts and
batch writes sent straight to a connection answer each caller in order, and an exchange that fails leaves no
reply behind for the next one."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as redis
from redis.exceptions import DataError, ResponseError

from omnicanal.errors import StoreUnavailable
from omnicanal.store.connection import PackedConnection, open_redis, send_commands, translated
from omnicanal.store.keys import Keyspace
from omnicanal.store.scripts import Script
from omnicanal.store.transport import ClusterRedis, DirectRedis, PipelinedRedis, open_transport
from omnicanal.store.work import WorkItem, WorkQueue, stream_position


async def test_plain_tcp_urls_pack_in_c_and_every_argument_type_round_trips(redis_url: str) -> None:
    client = open_redis(redis_url)
    try:
        assert client.connection_pool.connection_class is PackedConnection
        values = {"text": "Sneakers Lumière ✓", "int": 5000, "float": 1796118757.3223026, "tiny": 0.1 + 0.2,
                  "bytes": b"\x00a"}
        await client.hset("pack:h", mapping=values)  # type: ignore[arg-type]
        stored = await client.hgetall("pack:h")
        assert stored == {"text": "Sneakers Lumière ✓", "int": "5000", "float": "1796118757.3223026",
                          "tiny": "0.30000000000000004", "bytes": "\x00a"}
        assert float(stored["float"]) == values["float"]
        await client.set("pack:views", memoryview(b"view"))  # redis-py's own packer takes both: so does ours
        await client.append("pack:views", bytearray(b"+array"))
        assert await client.get("pack:views") == "view+array"
        # A command name with a space, as redis-py writes some of them, is split like redis-py does.
        assert await client.execute_command("CONFIG GET", "maxmemory")
        # Scripts in pipelines (the engine's commits and snapshots) go through the same packing.
        async with client.pipeline(transaction=False) as pipe:
            pipe.eval("return ARGV[1] .. KEYS[1]", 1, "k", 1.5)
            assert await pipe.execute() == ["1.5k"]
    finally:
        await client.aclose()


async def test_an_argument_redis_cannot_take_is_a_data_error_naming_the_types(redis_url: str) -> None:
    client = open_redis(redis_url)
    try:
        with pytest.raises(DataError, match=r"NoneType"):
            await client.execute_command("SET", "pack:k", None)
        assert await client.exists("pack:k") == 0
    finally:
        await client.aclose()


def test_tls_and_unix_socket_urls_keep_redis_pys_own_connection_class() -> None:
    assert open_redis("rediss://127.0.0.1:6380/0").connection_pool.connection_class is not PackedConnection
    assert open_redis("unix:///tmp/redis.sock").connection_pool.connection_class is not PackedConnection


def test_the_transport_is_chosen_once_from_the_url() -> None:
    assert type(open_transport("redis://127.0.0.1:6379/0")) is DirectRedis
    assert type(open_transport("rediss://127.0.0.1:6380/0")) is PipelinedRedis
    assert type(open_transport("unix:///tmp/redis.sock")) is PipelinedRedis
    assert type(open_transport(None)) is PipelinedRedis  # the embedded store
    assert type(open_transport("redis+cluster://127.0.0.1:7000")) is ClusterRedis


@pytest.mark.parametrize("url", ["test", "embedded"])
async def test_scripts_answer_each_caller_and_an_error_reply_is_its_callers_alone(redis_url: str, url: str) -> None:
    """Directly on a connection (plain redis://) and through redis-py's pipeline (the embedded store) alike."""
    transport = open_transport(redis_url if url == "test" else None)
    try:
        echo = Script("echo", "return ARGV[1] .. KEYS[1]")
        refuse = Script("refuse", "return redis.error_reply('ERR refused ' .. ARGV[1])")
        answers = await asyncio.gather(transport.script(echo, ["a"], [1]), transport.script(refuse, [], ["b"]),
                                       transport.script(echo, ["c"], [3]), transport.command("PING"),
                                       return_exceptions=True)
        assert answers[0] == "1a" and answers[2] == "3c" and answers[3] in ("PONG", True)
        assert isinstance(answers[1], ResponseError) and "refused b" in str(answers[1])
        # The first error of a batch of scripts is raised, as a redis-py pipeline raises it.
        assert await transport.scripts(echo, [(["x"], [1]), (["y"], [2])]) == ["1x", "2y"]
        with pytest.raises(ResponseError, match="refused z"):
            await transport.scripts(refuse, [([], ["z"])])
        assert await transport.client.ping()  # and the connection still answers in step
    finally:
        await transport.aclose()


async def test_scripts_a_redis_forgot_are_loaded_again_and_run_once() -> None:
    """Scripts go as EVALSHA; a Redis that lost its script cache (a restart, SCRIPT FLUSH: here the embedded
    store, whose cache is this test's alone) answers NOSCRIPT without running them: loaded, run once."""
    transport = open_transport(None)
    count = Script("count", "return redis.call('INCR', KEYS[1])")
    try:
        assert await transport.script(count, ["runs"], []) == 1
        await transport.client.script_flush()
        assert await asyncio.gather(transport.script(count, ["runs"], []), transport.command("GET", "runs")) == [2, "1"]
        await transport.client.script_flush()
        async with transport.batch() as writes:
            writes.script(count, ["runs"], [])
            writes.after.incr("after")
        assert await transport.client.mget("runs", "after") == ["3", "1"]
    finally:
        await transport.aclose()


@pytest.mark.parametrize("url", ["test", "embedded"])
async def test_a_batch_sends_before_then_scripts_then_after(redis_url: str, url: str) -> None:
    transport = open_transport(redis_url if url == "test" else None)
    append = Script("append", "return redis.call('RPUSH', KEYS[1], ARGV[1])")
    try:
        async with transport.batch() as writes:
            writes.after.rpush("batch:order", "after")
            writes.script(append, ["batch:order"], ["script"])
            writes.before.rpush("batch:order", "before")
        assert await transport.client.lrange("batch:order", 0, -1) == ["before", "script", "after"]
        with pytest.raises(ResponseError):
            async with transport.batch() as writes:
                writes.script(Script("fails", "return redis.error_reply('ERR no')"), [], [])
    finally:
        await transport.client.delete("batch:order")
        await transport.aclose()


async def test_an_exchange_that_times_out_is_dropped_and_leaves_no_reply_for_the_next_caller(redis_url: str) -> None:
    # One connection, a short socket timeout: the next exchange must reuse the pool's only slot.
    pool = redis.BlockingConnectionPool.from_url(redis_url, max_connections=1, socket_timeout=0.3,
                                                 decode_responses=True, connection_class=PackedConnection)
    client = redis.Redis.from_pool(pool)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            async with translated():
                await send_commands(client, [("BLPOP", "direct:list", 5)])  # blocks past the timeout
        assert time.monotonic() - started < 2.0
        # Had the connection been kept, its pending BLPOP would take this element and its reply be read next.
        assert await client.rpush("direct:list", "x") == 1
        assert await send_commands(client, [("LRANGE", "direct:list", 0, -1), ("PING",)]) == [["x"], "PONG"]
    finally:
        await client.aclose()


@pytest.mark.parametrize("url", ["test", "embedded"])
async def test_a_pending_read_returns_every_entry_given_and_not_acknowledged(redis_url: str, url: str) -> None:
    """After a start or a failure, a worker reads again what it was given and did not acknowledge: all of it,
    however many reads gave it (`count` per stream and round trip), oldest first, the acknowledged ones left out."""
    transport = open_transport(redis_url if url == "test" else None)
    queue = WorkQueue(transport, Keyspace("pend", 2))
    try:
        await queue.ensure_groups()
        await queue.append(WorkItem.of_event({"id": f"e{n}", "name": "page_viewed", "customer_id": f"c{n % 5}"})
                           for n in range(60))
        given: list[WorkItem] = []
        while len(given) < 60:  # the first 7 acknowledged with the reads after them
            given += await queue.read(range(2), "w1", 10, None, done=given[:7])
        pending = await queue.read(range(2), "w1", 4, None, pending=True)
        for partition in range(2):  # each stream's entries once, in their order
            assert [item.entry_id for item in pending if item.partition == partition] == sorted(
                (item.entry_id for item in given[7:] if item.partition == partition), key=stream_position)
        assert len(pending) == 53
    finally:
        async for key in transport.client.scan_iter(match="*pend*"):
            await transport.client.delete(key)
        await transport.aclose()

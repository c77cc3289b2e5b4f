"""The Redis connection the engine opens: commands packed by hiredis carry every argument exactly."""

from __future__ import annotations

import pytest
from redis.exceptions import DataError

from omnicanal.store.connection import PackedConnection, open_redis


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

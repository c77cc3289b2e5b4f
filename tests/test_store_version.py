"""The stored-format version: a workspace is stamped by the first process to start on it, and a process refuses,
naming what it found and what to do, a store written in another format — before it writes anything."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as redis

from conftest import StartApi, settings_for
from omnicanal.engine.runtime import Runtime
from omnicanal.errors import StoreFormatError
from omnicanal.store.keys import Keyspace
from omnicanal.store.schema import FORMAT

KEYS = Keyspace("default", 4)


async def test_a_new_workspace_is_stamped_and_the_next_process_accepts_it(start_api: StartApi,
                                                                          redis_url: str) -> None:
    await start_api()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert await client.get(KEYS.format) == str(FORMAT)
        await start_api()  # a second process on the same store
    finally:
        await client.aclose()


@pytest.mark.parametrize(("found", "said"), [
    (None, "written by a version that did not record its stored format"),
    ("99", "written by stored format 99"),
])
async def test_a_store_of_another_format_is_refused(project: Path, redis_url: str, found: str | None,
                                                    said: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        await client.sadd(KEYS.customers, "c42")
        if found is not None:
            await client.set(KEYS.format, found)
        with pytest.raises(StoreFormatError) as refused:
            await Runtime.start(settings_for(project, redis_url=redis_url))
        assert said in str(refused.value) and f"stored format {FORMAT}" in str(refused.value)
        assert "OMNICANAL_REDIS_URL" in str(refused.value)
        assert await client.get(KEYS.format) == found  # nothing written
        assert not await client.exists(KEYS.partition(0).work)
    finally:
        await client.aclose()

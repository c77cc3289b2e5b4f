"""OMNICANAL_RETENTION_DAYS: a customer inactive that long is erased by their retention timer (a member of their
partition's timers set that every applied event moves later), never by a scan — through the HTTP API, on real
Redis, with journey time running 36,000 times faster (a journey day lasts 2.4 real seconds)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as redis

from conftest import StartApi
from omnicanal.store.schema import retention_member
from test_erasure import dump, holding

IDLE = {"attributes": {"first_name": "Ida"}, "addresses": {"email": "ida.idle@example.com", "sms": "+33611111111"}}
BUSY = {"attributes": {"first_name": "Bob"}, "addresses": {"email": "bob.busy@example.com"}}
DAY = 86400 / 36000
"""Real seconds of a journey day in these tests."""

pytestmark = pytest.mark.slow  # waits for journey days to pass: a few real seconds each


async def test_an_inactive_customer_is_erased_and_an_active_one_kept(start_api: StartApi, redis_url: str) -> None:
    api = await start_api(retention_days=1)
    await api.put_customer("ida.idle", IDLE)
    await api.put_customer("bob.busy", BUSY)
    await api.event("page_seen", "ida.idle")
    timers = api.runtime.keys.partition(api.runtime.keys.partition_of("bob.busy")).timers
    first_due = await api.runtime.redis.zscore(timers, retention_member("bob.busy"))
    assert first_due is not None  # the profile update set it

    async with asyncio.timeout(4 * DAY):
        while (await api.client.get("/v1/customers/ida.idle")).status != 404:
            await api.event("page_seen", "bob.busy")  # Bob keeps coming back, every few journey hours
            await asyncio.sleep(DAY / 6)
    assert await api.runtime.redis.zscore(timers, retention_member("bob.busy")) > first_due

    bob = await api.request("GET", "/v1/customers/bob.busy", 200)
    assert bob["attributes"] == {"first_name": "Bob"}
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        contents = await dump(client)
    finally:
        await client.aclose()
    assert holding(contents, ("ida.idle", "ida.idle@example.com", "+33611111111")) == {}
    assert holding(contents, ("bob.busy",))


async def test_without_the_setting_nobody_is_erased_and_no_retention_timer_is_kept(start_api: StartApi) -> None:
    api = await start_api()
    await api.put_customer("ida.idle", IDLE)
    await api.event("page_seen", "ida.idle")
    await api.settled()
    timers = api.runtime.keys.partition(api.runtime.keys.partition_of("ida.idle")).timers
    assert await api.runtime.redis.zscore(timers, retention_member("ida.idle")) is None
    await asyncio.sleep(1.5 * DAY)
    assert (await api.client.get("/v1/customers/ida.idle")).status == 200

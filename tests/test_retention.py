"""OMNICANAL_RETENTION_DAYS: a customer inactive that long is erased by their retention timer (a member of their
partition's timers set that every applied event moves later), never by a scan — through the HTTP API, on real
Redis, with journey time on a manual clock that the test moves on (days pass in milliseconds)."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as redis

from conftest import StartApi
from omnicanal.engine.clock import ManualClock
from omnicanal.store.schema import retention_member
from test_erasure import dump, holding

IDLE = {"attributes": {"first_name": "Ida"}, "addresses": {"email": "ida.idle@example.com", "sms": "+33611111111"}}
BUSY = {"attributes": {"first_name": "Bob"}, "addresses": {"email": "bob.busy@example.com"}}
DAY = 86400.0


async def test_an_inactive_customer_is_erased_and_an_active_one_kept(start_api: StartApi, redis_url: str) -> None:
    clock = ManualClock(time.time())
    start = clock.now()
    api = await start_api(clock=clock, retention_days=1)
    await api.put_customer("ida.idle", IDLE)
    await api.put_customer("bob.busy", BUSY)
    await api.event("page_seen", "ida.idle")
    timers = api.runtime.keys.partition(api.runtime.keys.partition_of("bob.busy")).timers
    first_due = await api.runtime.redis.zscore(timers, retention_member("bob.busy"))
    assert first_due is not None  # the profile update set it

    async with asyncio.timeout(10):
        while (await api.client.get("/v1/customers/ida.idle")).status != 404:
            assert clock.now() < start + 4 * DAY, "Ida was not erased within 4 journey days"
            clock.advance_to(clock.now() + DAY / 6)
            await api.event("page_seen", "bob.busy")  # Bob keeps coming back, every 4 journey hours
            await api.settled()
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
    clock = ManualClock(time.time())
    api = await start_api(clock=clock)
    await api.put_customer("ida.idle", IDLE)
    await api.event("page_seen", "ida.idle")
    await api.settled()
    timers = api.runtime.keys.partition(api.runtime.keys.partition_of("ida.idle")).timers
    assert await api.runtime.redis.zscore(timers, retention_member("ida.idle")) is None
    clock.advance_to(clock.now() + 1.5 * DAY)
    await asyncio.sleep(0.1)  # ten looks of the timer loop (every 10 ms in the tests) at the later time
    await api.settled()
    assert (await api.client.get("/v1/customers/ida.idle")).status == 200

"""Several workers on one Redis: partitions shared, order kept, reloads, dead letters, draining."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from structlog.testing import capture_logs

from conftest import StartApi, has_message, journey_ended
from omnicanal.store.schema import DEAD_ERROR, DEAD_FAILED_AT, WorkItem, encode_work

pytestmark = pytest.mark.slow  # several workers, lease hand-overs and file reloads in real time

OMNICANAL = str(Path(sys.executable).with_name("omnicanal"))


async def test_two_workers_share_partitions_and_keep_each_customers_order(start_api: StartApi) -> None:
    first = await start_api(worker_id="w-a", partitions=8, lease_seconds=2)
    second = await start_api(worker_id="w-b", partitions=8, lease_seconds=2)
    async with asyncio.timeout(10):  # fair share: 4 partitions each once both have looked
        while not (len(first.runtime.ownership.owned) == len(second.runtime.ownership.owned) == 4):
            await asyncio.sleep(0.05)
    assert first.runtime.ownership.owned.isdisjoint(second.runtime.ownership.owned)

    sent: dict[str, list[str]] = {f"c{n}": [] for n in range(30)}
    for round_ in range(10):
        for customer_id in sent:
            api = first if round_ % 2 else second  # events arrive through both APIs
            sent[customer_id].append(await api.event("page_viewed", customer_id, properties={"n": round_}))
    await first.settled()
    for customer_id, ids in sent.items():
        assert [e["event_id"] for e in await first.timeline(customer_id)] == ids
    assert first.runtime.worker.processed > 0 and second.runtime.worker.processed > 0


async def test_a_stopped_workers_partitions_are_taken_over(start_api: StartApi) -> None:
    first = await start_api(worker_id="w-a", partitions=4, lease_seconds=1)
    second = await start_api(worker_id="w-b", partitions=4, lease_seconds=1)
    async with asyncio.timeout(10):
        while len(second.runtime.ownership.owned) != 2:
            await asyncio.sleep(0.05)
    await first.runtime.stop()  # gives its partitions back
    async with asyncio.timeout(10):
        while len(second.runtime.ownership.owned) != 4:
            await asyncio.sleep(0.05)
    await second.put_customer("t1", {"addresses": {"email": "t1@example.com"}})
    await second.event("signed_up", "t1")
    await second.wait_until("t1", has_message("welcome"))


CHANGED = "  - send: {template: welcome, channels: [email, push]}\n"


async def test_reload_keeps_running_versions_and_refuses_broken_files(project: Path, start_api: StartApi) -> None:
    journey_file = project / "journeys" / "welcome_series.yaml"
    api = await start_api(clock_speed=3600.0, reload_interval=0.1)
    old_version = (await api.request("GET", "/v1/journeys/welcome_series", 200))["version"]
    await api.put_customer("v1", {"addresses": {"email": "v1@example.com"}})
    await api.event("signed_up", "v1")
    await api.wait_until("v1", has_message("welcome"))

    def refused(logs: list[dict[str, Any]]) -> bool:
        return any(entry["event"] == "reload_rejected" and any(
            "welcome_series.yaml" in problem and "forever" in problem for problem in entry["problems"]
        ) for entry in logs)

    with capture_logs() as logs:  # broken: the watcher refuses it, says why, and the previous version stays
        journey_file.write_text(journey_file.read_text() + "  - wait: forever\n")
        async with asyncio.timeout(5):
            while not refused(logs):
                await asyncio.sleep(0.05)
    assert (await api.request("GET", "/v1/journeys/welcome_series", 200))["version"] == old_version

    text = journey_file.read_text().replace("  - wait: forever\n", "")
    journey_file.write_text(text.replace("  - wait: 2d\n", "  - wait: 1d\n"))
    async with asyncio.timeout(5):
        while (await api.request("GET", "/v1/journeys/welcome_series", 200))["version"] == old_version:
            await asyncio.sleep(0.05)
    customer = await api.request("GET", "/v1/customers/v1", 200)
    assert customer["journeys"][0]["version"] == old_version  # in flight: finishes on the version it began

    await api.put_customer("v2", {"addresses": {"email": "v2@example.com"}})
    await api.event("signed_up", "v2")
    await api.wait_until("v2", has_message("welcome"))
    newer = await api.request("GET", "/v1/customers/v2", 200)
    assert newer["journeys"][0]["version"] != old_version


async def test_poisoned_work_is_dead_lettered_and_can_be_retried(project: Path, start_api: StartApi,
                                                                  redis_url: str) -> None:
    api = await start_api()
    await api.event("page_viewed", "p1")
    await api.settled()
    client = redis.Redis.from_url(redis_url)
    key = api.runtime.keys.customer("p1").profile
    await client.hset(key, "i:broken", "{not json")  # a corrupted instance, as a bad edit might leave it
    await api.event("page_viewed", "p1", properties={"after": "corruption"})
    await api.event("page_viewed", "p2")  # other customers go on
    async with asyncio.timeout(10):
        while not await client.xlen(api.runtime.keys.dlq):
            await asyncio.sleep(0.05)
    await api.settled()
    assert len(await api.timeline("p2")) == 1

    env = {"OMNICANAL_REDIS_URL": redis_url, "OMNICANAL_PARTITIONS": "4", "PATH": "/usr/bin:/bin"}
    listed = subprocess.run([OMNICANAL, "dlq", "list"], env=env, capture_output=True, text=True, check=True)
    assert "customer p1" in listed.stdout and "JSONDecodeError" in listed.stdout
    await client.hdel(key, "i:broken")  # the operator repairs the data...
    retried = subprocess.run([OMNICANAL, "dlq", "retry"], env=env, capture_output=True, text=True, check=True)
    assert "1 item(s) put back" in retried.stdout
    async with asyncio.timeout(10):  # ...and the event is applied after all
        while len(await api.timeline("p1")) != 2:
            await asyncio.sleep(0.05)
    assert await client.xlen(api.runtime.keys.dlq) == 0
    await client.aclose()


async def test_drain_exits_every_running_instance(start_api: StartApi, redis_url: str) -> None:
    api = await start_api(clock_speed=60.0, partitions=4)
    for n in range(5):
        await api.put_customer(f"d{n}", {"addresses": {"email": f"d{n}@example.com"}})
        await api.event("signed_up", f"d{n}")
    await api.settled()
    assert (await api.request("GET", "/v1/journeys/welcome_series", 200))["active"] == 5
    env = {"OMNICANAL_REDIS_URL": redis_url, "OMNICANAL_PARTITIONS": "4", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([OMNICANAL, "journeys", "drain", "welcome_series"], env=env, capture_output=True,
                            text=True, check=True)
    assert "asked 5 customer(s)" in result.stdout
    for n in range(5):
        entries = await api.wait_until(f"d{n}", journey_ended("welcome_series"))
        assert entries[-1]["reason"] == "drained"
    await api.settled()
    assert (await api.request("GET", "/v1/journeys/welcome_series", 200))["active"] == 0


async def test_a_dead_letter_retried_twice_at_once_is_applied_once(start_api: StartApi, redis_url: str) -> None:
    """Two `omnicanal dlq retry` at the same time (two operators, a scheduled retry meeting a manual one) both read
    the parked entry before either deletes it, and both put it back. An event sent without an idempotency key is
    `unique` in the stream (its id is not kept in the applied-events index), so it was applied twice."""
    api = await start_api()
    queue = api.runtime.queue
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    parked = []
    for n in range(20):
        await api.event("page_viewed", f"q{n}")  # a newer event of each customer is applied first
        event = {"id": f"evt_parked{n:022d}", "name": "page_viewed", "customer_id": f"q{n}", "properties": {},
                 "timestamp": "2026-01-01T00:00:00.000Z", "received_at": 1.0}
        fields = {**encode_work(WorkItem.of_event(event, unique=True)), DEAD_ERROR: "boom", DEAD_FAILED_AT: "1"}
        parked.append((await client.xadd(api.runtime.keys.dlq, fields), event["id"]))
    await api.settled()
    retried = await asyncio.gather(*(queue.retry_dead_letter(entry_id) for entry_id, _ in parked for _ in range(2)))
    assert any(retried)
    await api.settled()
    for n, (_, event_id) in enumerate(parked):
        applied = [e["event_id"] for e in await api.timeline(f"q{n}") if e["kind"] == "event"]
        assert applied.count(event_id) == 1, applied
    assert await client.xlen(api.runtime.keys.dlq) == 0
    await client.aclose()

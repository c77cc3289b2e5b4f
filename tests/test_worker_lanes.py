"""Two batches in flight in one worker (worker.LANES): a customer's items read while an earlier batch holds them
wait for it, so each customer's work is still applied once, in arrival order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as redis
from structlog.testing import capture_logs

from conftest import StartApi, write_journey

COUNTING = """
id: counting
trigger: {event: page_viewed}
re_entry: always
steps:
  - update:
      customer: {views: "(customer.views | default(0)) + 1"}
"""


async def test_a_burst_read_in_many_batches_applies_each_customers_events_in_order(
    project: Path, start_api: StartApi,
) -> None:
    """800 events of four customers in one request: a read takes 16 entries per partition (the worker owns them
    all), so every later batch holds items of customers an earlier one is still applying. Each event adds one
    to an attribute: a batch that read a customer before the earlier one committed would lose increments."""
    write_journey(project, "counting", COUNTING)
    api = await start_api()
    customers = [f"burst{n}" for n in range(4)]
    events = [{"name": "page_viewed", "customer_id": customer, "properties": {"n": n}}
              for n in range(200) for customer in customers]
    body = await api.request("POST", "/v1/events/batch", 202, json={"events": events})
    sent: dict[str, list[str]] = {customer: [] for customer in customers}
    for event, result in zip(events, body["results"], strict=True):
        sent[event["customer_id"]].append(result["id"])
    await api.settled()
    for customer, ids in sent.items():
        assert [e["event_id"] for e in await api.timeline(customer) if e["kind"] == "event"] == ids
        assert (await api.request("GET", f"/v1/customers/{customer}", 200))["attributes"]["views"] == 200
    assert api.runtime.worker.processed == len(events)  # each once


async def test_events_posted_concurrently_while_batches_are_in_flight_are_each_applied_once(
    start_api: StartApi,
) -> None:
    api = await start_api()
    ids = await asyncio.gather(*(api.event("page_viewed", f"conc{n % 3}", properties={"n": n}) for n in range(300)))
    await api.settled()
    applied = [e["event_id"] for n in range(3) for e in await api.timeline(f"conc{n}") if e["kind"] == "event"]
    assert sorted(applied) == sorted(ids)


async def test_a_customer_whose_work_is_retried_does_not_hold_up_other_customers_new_work(
    start_api: StartApi, redis_url: str,
) -> None:
    """A corrupted record makes p1's event fail: it is retried in place for over a second before it is
    dead-lettered. p2's event, posted once the retries began, is applied meanwhile (one batch retries, the other
    goes on)."""
    api = await start_api()
    await api.event("page_viewed", "hol1")
    await api.settled()
    client = redis.Redis.from_url(redis_url)
    try:
        await client.hset(api.runtime.keys.customer("hol1").profile, "i:broken", "{not json")
        with capture_logs() as logs:
            await api.event("page_viewed", "hol1", properties={"after": "corruption"})
            async with asyncio.timeout(5):
                while not any(entry["event"] == "work_retry" for entry in logs):
                    await asyncio.sleep(0.01)
            await api.event("page_viewed", "hol2")
            await api.wait_until("hol2", lambda entries: len(entries) == 1, timeout=5)
            assert await client.xlen(api.runtime.keys.dlq) == 0  # hol1's item still being retried
            assert not any(entry["event"] == "work_dead_lettered" for entry in logs)
        async with asyncio.timeout(10):  # then parked, as before
            while not await client.xlen(api.runtime.keys.dlq):
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()

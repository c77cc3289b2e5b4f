"""Two batches in flight in one worker (worker.LANES): a customer's items read while an earlier batch holds them
wait for it, so each customer's work is still applied once, in arrival order."""

from __future__ import annotations

import asyncio
from pathlib import Path

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

"""Lifecycle control through HTTP and the CLI: pause and resume a journey (events that came meanwhile apply in
order), stop it, cancel one customer's instance, cancel everything an event started, and refuse an idempotency
key reused with another body."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import StartApi, journey_ended, write_journey
from test_cli import run

JOURNEY = """
id: nudge
trigger: {event: browsed}
re_entry: always
steps:
  - wait_for: {event: order, timeout: 2h, on_timeout: remind}
  - exit: {reason: bought}
  - id: remind
    send: {template: welcome_offer, channels: [email]}
"""
PROFILE = {"addresses": {"email": "n@example.com"}}


async def test_pause_defers_and_resume_applies_in_order(project: Path, start_api: StartApi) -> None:
    write_journey(project, "nudge", JOURNEY)
    api = await start_api(clock_speed=600.0)
    await api.put_customer("p1", PROFILE)
    await api.event("browsed", "p1")
    await api.wait_until("p1", lambda es: any(e.get("status") == "started" for e in es))
    paused = await api.request("POST", "/v1/journeys/nudge/pause", 202)
    assert paused == {"journey": "nudge", "status": "paused", "customers": 1}
    await asyncio.sleep(0.6)  # every worker sees the pause
    await api.event("order", "p1")
    await api.put_customer("p2", PROFILE)
    await api.event("browsed", "p2")  # no new entry while paused
    await api.settled()
    assert [e["status"] for e in await api.timeline("p2") if e["kind"] == "journey"] == ["skipped"]
    assert not any(e["kind"] == "journey" and e["status"] != "started" for e in await api.timeline("p1"))
    resumed = await api.request("POST", "/v1/journeys/nudge/resume", 202)
    assert resumed["status"] == "running" and resumed["customers"] == 1
    entries = await api.wait_until("p1", journey_ended("nudge"))
    assert [e.get("reason") for e in entries if e["kind"] == "journey"] == [None, "bought"]
    await api.request("POST", "/v1/journeys/nope/pause", 404)


async def test_stop_and_cancel_one_instance(project: Path, start_api: StartApi) -> None:
    write_journey(project, "nudge", JOURNEY)
    api = await start_api(clock_speed=60.0)
    for customer_id in ("s1", "s2"):
        await api.put_customer(customer_id, PROFILE)
        await api.event("browsed", customer_id)
        await api.wait_until(customer_id, lambda es: any(e.get("status") == "started" for e in es))
    unknown = await api.request("DELETE", "/v1/customers/email:nobody@example.com/journeys/nudge", 422)
    assert unknown["errors"][0]["field"] == "customer_id"
    await api.request("DELETE", "/v1/customers/s1/journeys/nope", 404)
    await api.request("DELETE", "/v1/customers/s1/journeys/nudge", 202)
    entries = await api.wait_until("s1", journey_ended("nudge"))
    assert entries[-1]["reason"] == "cancelled"
    stopped = await api.request("POST", "/v1/journeys/nudge/stop", 202)
    assert stopped["status"] == "stopped"
    entries = await api.wait_until("s2", journey_ended("nudge"))
    assert entries[-1]["reason"] == "stopped"
    await api.request("POST", "/v1/journeys/nudge/resume", 202)


async def test_cancel_by_idempotency_key_ends_what_the_event_started(project: Path, start_api: StartApi) -> None:
    write_journey(project, "nudge", JOURNEY)
    api = await start_api(clock_speed=60.0)
    await api.put_customer("k1", PROFILE)
    await api.event("browsed", "k1", idempotency_key="visit-1")
    await api.wait_until("k1", lambda es: any(e.get("status") == "started" for e in es))
    answer = await api.request("POST", "/v1/events/cancel", 202,
                               json={"customer_id": "k1", "idempotency_key": "visit-1"})
    assert answer["status"] == "cancelling"
    entries = await api.wait_until("k1", journey_ended("nudge"))
    assert entries[-1]["reason"] == "cancelled"
    assert not any(e["kind"] == "message" for e in entries)


async def test_a_reused_idempotency_key_with_another_body_is_a_conflict(start_api: StartApi) -> None:
    api = await start_api()
    body = {"name": "cart_abandoned", "customer_id": "i1", "idempotency_key": "cart-1",
            "properties": {"total": 10}}
    first = await api.request("POST", "/v1/events", 202, json=body)
    again = await api.request("POST", "/v1/events", 202, json=body)  # a retry: the same id
    assert first["id"] == again["id"]
    conflict = await api.request("POST", "/v1/events", 409, json={**body, "properties": {"total": 99}})
    assert conflict["error"] == "conflict" and conflict["errors"][0]["field"] == "idempotency_key"
    batch = await api.request("POST", "/v1/events/batch", 202, json={"events": [
        {**body, "properties": {"total": 99}}, {**body, "idempotency_key": "cart-2"}]})
    assert [r["status"] for r in batch["results"]] == ["conflict", "accepted"]


async def test_a_retry_with_its_keys_in_another_order_is_the_same_event(start_api: StartApi) -> None:
    """JSON objects have no order: a retry that serialised the same properties (or timestamp) another way was a
    409, and a client that treats a conflict as a failure lost the event it had sent."""
    api = await start_api()
    text = ('{"name": "cart_abandoned", "customer_id": "i1", "idempotency_key": "cart-1", '
            '"timestamp": "2026-11-23T10:00:00.0001Z", "properties": {"total": 10, "items": [{"sku": "A", "n": 1}]}}')
    retry = ('{"properties": {"items": [{"n": 1, "sku": "A"}], "total": 10}, '
             '"timestamp": "2026-11-23T11:00:00.0002+01:00", "idempotency_key": "cart-1", "customer_id": "i1", '
             '"name": "cart_abandoned"}')
    headers = {"Content-Type": "application/json"}
    first = await api.request("POST", "/v1/events", 202, data=text, headers=headers)
    again = await api.request("POST", "/v1/events", 202, data=retry, headers=headers)
    assert first["id"] == again["id"]
    batch = await api.request("POST", "/v1/events/batch", 202, data=f'{{"events": [{retry}]}}', headers=headers)
    assert batch["results"] == [{"index": 0, "status": "accepted", "id": first["id"]}]
    await api.settled()
    assert [e["kind"] for e in await api.timeline("i1")].count("event") == 1


def test_the_cli_pauses_and_resumes(project: Path, redis_url: str) -> None:
    env = {"OMNICANAL_REDIS_URL": redis_url, "OMNICANAL_JOURNEYS_DIR": str(project / "journeys")}
    paused = run("journeys", "pause", "abandoned_cart", **env)
    assert paused.returncode == 0, paused.stderr
    assert "abandoned_cart paused" in paused.stdout
    resumed = run("journeys", "resume", "abandoned_cart", **env)
    assert "abandoned_cart running again" in resumed.stdout

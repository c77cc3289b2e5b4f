"""The reference scenario of BRIEF.md through the HTTP API, on real Redis, with its three endings."""

from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as redis

from conftest import Api, StartApi, has_message, journey_ended
from omnicanal.engine.clock import ManualClock

LEA = {
    "attributes": {"first_name": "Léa", "tier": "gold"},
    "addresses": {"sms": "+33612345678", "whatsapp": "+33612345678", "email": "lea@example.com",
                  "push": ["device-token-1"]},
    "locale": "fr", "timezone": "Europe/Paris", "channel_preference": ["push", "whatsapp"],
}
CART = {"items": [{"sku": "SKU-1", "name": "Sneakers", "price": 89.0}], "total": 89.0}


def in_store_order(sku: str = "SKU-1") -> dict[str, Any]:
    return {"order_id": "T-1", "channel": "store", "store": "Lyon Part-Dieu",
            "items": [{"sku": sku, "name": "Sneakers", "price": 89.0}], "total": 89.0}


async def abandon_cart(api: Api, customer_id: str = "c42") -> None:
    await api.put_customer(customer_id, LEA)
    await api.event("cart_abandoned", customer_id, idempotency_key="cart-981", properties=CART)


async def test_bought_in_store_gets_whatsapp_thanks_after_the_push(start_api: StartApi) -> None:
    api = await start_api()
    await abandon_cart(api)
    await api.wait_until("c42", has_message("cart_discount"))
    await api.event("order_placed", "c42", properties=in_store_order())
    entries = await api.wait_until("c42", journey_ended("abandoned_cart"))

    messages = [e for e in entries if e["kind"] == "message"]
    assert [(m["template"], m["channel"], m["status"]) for m in messages] == [
        ("cart_discount", "push", "sent"),
        ("order_thanks", "whatsapp", "sent"),
    ]
    push, thanks = messages
    assert "Sneakers" in push["content"]["body"] and push["content"]["title"].startswith("Léa")
    assert push["to"] == "device-token-1"
    assert "Lyon Part-Dieu" in thanks["content"]["body"] and "T-1" in thanks["content"]["body"]
    assert thanks["to"] == "+33612345678"
    assert any(e["kind"] == "conversion" and e["attributed_to"] for e in entries)
    assert entries[-1] == {**entries[-1], "kind": "journey", "status": "exited", "reason": "bought"}

    outbox = await api.request("GET", "/v1/outbox?customer_id=c42", 200)
    assert [(m["channel"], m["template"]) for m in outbox["messages"]] == [
        ("push", "cart_discount"), ("whatsapp", "order_thanks")]
    journey = await api.request("GET", "/v1/journeys/abandoned_cart", 200)
    assert journey["counts"]["converted"] == 1 and journey["counts"]["exited"] == 1
    steps = {s["id"]: s["counts"] for s in journey["steps"]}
    assert steps["push_discount"]["sent"] == 1 and steps["thank_you"]["sent"] == 1
    assert steps["last_chance"]["entered"] == 0
    assert journey["channels"] == {"push": {"sent": 1}, "whatsapp": {"sent": 1}}


async def test_no_purchase_gets_one_email_reminder(start_api: StartApi) -> None:
    api = await start_api(clock_speed=360000.0)
    await abandon_cart(api)
    entries = await api.wait_until("c42", journey_ended("abandoned_cart"))
    messages = [(m["template"], m["channel"]) for m in entries if m["kind"] == "message"]
    assert messages == [("cart_discount", "push"), ("cart_reminder", "email")]
    assert entries[-1]["status"] == "completed"
    reminder = next(e for e in entries if e.get("template") == "cart_reminder")
    assert reminder["to"] == "lea@example.com" and reminder["locale"] == "fr"
    assert "Sneakers" in reminder["content"]["text"]


async def test_purchase_before_the_push_skips_it(start_api: StartApi) -> None:
    api = await start_api(clock_speed=60.0)  # the first hour lasts a minute: time to buy first
    await abandon_cart(api)
    await api.event("order_placed", "c42", properties={**in_store_order(), "channel": "web"})
    entries = await api.wait_until("c42", journey_ended("abandoned_cart"))
    assert [m["template"] for m in entries if m["kind"] == "message"] == ["order_thanks"]


async def test_an_order_of_other_items_does_not_end_the_wait(start_api: StartApi) -> None:
    api = await start_api(clock_speed=60.0)
    await abandon_cart(api)
    await api.event("order_placed", "c42", properties=in_store_order(sku="SKU-OTHER"))
    await api.settled()
    customer = await api.request("GET", "/v1/customers/c42", 200)
    [instance] = customer["journeys"]
    assert instance["journey"] == "abandoned_cart" and instance["step"] == "give_them_time"
    assert instance["status"] == "waiting" and instance["vars"]["skus"] == ["SKU-1"]
    assert customer["attributes"]["last_cart_total"] == 89.0


async def test_small_carts_do_not_start_the_journey(start_api: StartApi) -> None:
    api = await start_api()
    await api.put_customer("c7", LEA)
    await api.event("cart_abandoned", "c7", properties={"items": [], "total": 5})
    await api.settled()
    entries = await api.timeline("c7")
    assert [e["kind"] for e in entries] == ["event"]


async def test_the_cart_is_remembered_when_its_timeline_entry_is_trimmed(start_api: StartApi) -> None:
    """A waiting instance keeps its event on the timeline, not a copy; when the timeline's limit trims that entry
    away while the shopper browses on, the instance stores the event again, and the push still names the item."""
    clock = ManualClock(time.time())
    api = await start_api(clock=clock, timeline_limit=10)  # the hour before the push passes when the test says
    await abandon_cart(api)
    await api.settled()
    for n in range(15):
        await api.event("page_viewed", "c42", properties={"n": n})
    await api.settled()
    entries = await api.timeline("c42")
    assert len(entries) == 10 and all(e["kind"] == "event" and e["name"] == "page_viewed" for e in entries)
    clock.advance_to(clock.now() + 3600 + 1)
    entries = await api.wait_until("c42", has_message("cart_discount"))
    push = next(e for e in entries if e.get("template") == "cart_discount")
    assert "Sneakers" in push["content"]["body"]


async def test_a_waiting_instance_is_a_profile_field_under_short_names(start_api: StartApi, redis_url: str) -> None:
    """A waiting customer costs Redis one profile field for their instance, its fields under short names and its
    event kept on the timeline (`e`, its position there): the journey goes on from that form."""
    api = await start_api()
    await abandon_cart(api)
    await api.settled()
    keys = api.runtime.keys.customer("c42")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        profile = await client.hgetall(keys.profile)
        (_, stored), = ((name, value) for name, value in profile.items() if name.startswith("i:"))
        short = json.loads(stored)
        assert set(short) == {"e", "j", "v", "s", "p", "n", "x", "w"} and set(short["w"]) == {"k", "t", "u"}
        customer = await api.request("GET", "/v1/customers/c42", 200)
        assert [j["journey"] for j in customer["journeys"]] == ["abandoned_cart"]

        await api.event("order_placed", "c42", properties=in_store_order())
        entries = await api.wait_until("c42", journey_ended("abandoned_cart"))
        assert [m["template"] for m in entries if m["kind"] == "message"] == ["order_thanks"]
        assert not [name for name in await client.hkeys(keys.profile) if name.startswith("i:")]
    finally:
        await client.aclose()

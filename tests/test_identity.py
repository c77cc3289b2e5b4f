"""One customer, whatever they are known by: identifiers, and the anonymous visitor who logs in."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from conftest import StartApi, has_message, journey_ended, write_journey
from omnicanal.engine.clock import ManualClock
from omnicanal.identity import lookup_of

CART = {"items": [{"sku": "SKU-1", "name": "Sneakers", "price": 89.0}], "total": 89.0}


async def test_any_identifier_finds_the_customer(start_api: StartApi) -> None:
    api = await start_api()
    await api.put_customer("c42", {"addresses": {"email": "Lea@Example.com", "sms": "06 12 34 56 78",
                                                 "push": ["tok-9"]}})
    for given in ("c42", "email:lea@example.com", "lea@example.com", "phone:+33612345678", "+33612345678",
                  "push:tok-9"):
        assert (await api.request("GET", f"/v1/customers/{given}", 200))["customer_id"] == "c42", given
    profile = await api.request("GET", "/v1/customers/c42", 200)
    assert profile["addresses"]["sms"] == "+33612345678" and profile["addresses"]["email"] == "lea@example.com"
    bad = await api.request("PUT", "/v1/customers/c43", 422, json={"addresses": {"sms": "12"}})
    assert bad["errors"][0]["field"] == "addresses.sms"
    await api.request("GET", "/v1/customers/email:nobody@example.com", 404)


async def test_an_anonymous_cart_continues_for_the_customer_who_logs_in(start_api: StartApi) -> None:
    clock = ManualClock(time.time())
    api = await start_api(clock=clock)  # the hour before the push passes once the visitor has logged in
    await api.event("page_viewed", "anon-7", properties={"path": "/sneakers"})
    await api.event("cart_abandoned", "anon-7", idempotency_key="cart-1", properties=CART)
    await api.wait_until("anon-7", lambda es: any(e["kind"] == "journey" for e in es))
    clock.advance_to(clock.now() + 60)  # a minute later, the visitor logs in
    await api.put_customer("c42", {"attributes": {"first_name": "Léa"}, "locale": "fr",
                                   "addresses": {"push": ["tok-1"], "email": "lea@example.com"}})
    await api.event("identify", "c42", properties={"anonymous_id": "anon-7"})
    await api.event("page_viewed", "anon-7", properties={"path": "/after-login"})  # a late event of the visitor
    await api.settled()
    clock.advance_to(clock.now() + 3600 + 1)  # no order in the first hour: the push
    entries = await api.wait_until("c42", has_message("cart_discount"))

    discount = next(e for e in entries if e.get("template") == "cart_discount")
    assert (discount["channel"], discount["to"]) == ("push", "tok-1")
    assert discount["content"]["title"].startswith("Léa")
    assert "Sneakers" in discount["content"]["body"]  # the cart the visitor left: its event moved with the journey
    names = [e["name"] for e in entries if e["kind"] == "event"]
    assert names[:2] == ["page_viewed", "cart_abandoned"] and "identify" in names
    assert names.count("page_viewed") == 2  # the late event was forwarded, not lost
    merged = next(e for e in entries if e["kind"] == "identity")
    assert merged["merged"] == "anon-7" and merged["moved_journeys"] == ["abandoned_cart"]
    assert (await api.request("GET", "/v1/customers/anon-7", 200))["customer_id"] == "c42"
    assert (await api.request("GET", "/v1/customers/anon:anon-7", 200))["customer_id"] == "c42"
    customer = await api.request("GET", "/v1/customers/c42", 200)
    assert [j["journey"] for j in customer["journeys"]] == ["abandoned_cart"]

    await api.event("order_placed", "c42", properties={**CART, "order_id": "W-1", "channel": "web"})
    ended = await api.wait_until("c42", journey_ended("abandoned_cart"))
    assert ended[-1]["reason"] == "bought"
    assert len([e for e in ended if e["kind"] == "journey" and e["status"] == "started"]) == 1


WAITER = """
id: waiter
trigger: {event: parked}
steps:
  - wait_for: {event: arrived, timeout: 30d, on_timeout: late}
  - exit: {reason: arrived}
  - id: late
    exit: {reason: late}
"""
G16 = {"addresses": {"email": "G16@Example.com", "sms": "+33612345678", "push": ["tok-16"]}}


async def keys_naming(redis_url: str, text: str) -> list[str]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return [key async for key in client.scan_iter(match=f"*{text}*")]
    finally:
        await client.aclose()


@pytest.mark.parametrize("given", ["email:g16@example.com", "G16@example.com", "phone:+33612345678",
                                   "+33612345678", "push:tok-16"])
async def test_an_event_addressed_by_email_phone_or_token_resumes_that_customers_journey(
        project: Path, start_api: StartApi, redis_url: str, given: str) -> None:
    write_journey(project, "waiter", WAITER)
    api = await start_api()
    await api.put_customer("g16", G16)
    await api.event("parked", "g16")
    await api.settled()
    await api.event("arrived", given, idempotency_key="a1")
    entries = await api.wait_until("g16", journey_ended("waiter"))
    assert entries[-1]["reason"] == "arrived"
    assert await api.event("arrived", "g16", idempotency_key="a1") == await api.event("arrived", given,
                                                                                      idempotency_key="a1")
    assert await keys_naming(redis_url, f":c:{given}}}") == []  # no customer named after the address


async def test_an_event_for_an_unknown_address_is_422_and_creates_nobody(start_api: StartApi, redis_url: str) -> None:
    api = await start_api()
    for given, field_text in (("email:nobody@example.com", "no customer has e-mail nobody@example.com"),
                              ("nobody@example.com", "no customer has e-mail nobody@example.com"),
                              ("+33698765432", "no customer has phone +33698765432"),
                              ("phone:12", "not a valid phone number"),
                              ("anon:v9", "no customer has anonymous id v9")):
        body = await api.request("POST", "/v1/events", 422, json={"name": "page_viewed", "customer_id": given})
        [error] = body["errors"]
        assert error["field"] == "customer_id" and field_text in error["message"], body
    body = await api.request("POST", "/v1/events", 422, json={"name": "x", "customer_id": "nobody@example.com"})
    assert "PUT the customer with that address first, or send their id" in body["message"]
    await api.settled()
    for text in ("nobody", "98765432", "v9", "phone:12"):
        assert await keys_naming(redis_url, text) == []


async def test_a_batch_resolves_each_event_and_rejects_the_unknown_ones_by_index(
        project: Path, start_api: StartApi) -> None:
    write_journey(project, "waiter", WAITER)
    api = await start_api()
    await api.put_customer("g16", G16)
    await api.put_customer("g17", {"addresses": {"email": "g17@example.com"}})
    await api.request("POST", "/v1/events/batch", 202, json={"events": [
        {"name": "parked", "customer_id": c} for c in ("g16", "g17", "g18")]})
    await api.settled()
    events: list[Any] = [{"name": "arrived", "customer_id": c} for c in (
        "+33612345678", "nobody@example.com", "g17@example.com", "g18", "phone:12")]
    body = await api.request("POST", "/v1/events/batch", 202, json={"events": events})
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected", "accepted", "accepted", "rejected"]
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3, 4]
    assert body["results"][1]["errors"][0]["field"] == "events.1.customer_id"
    assert "no customer has e-mail nobody@example.com" in body["results"][1]["errors"][0]["message"]
    assert body["results"][4]["errors"][0]["field"] == "events.4.customer_id"
    for customer in ("g16", "g17", "g18"):
        assert (await api.wait_until(customer, journey_ended("waiter")))[-1]["reason"] == "arrived"
    none_known = await api.request("POST", "/v1/events/batch", 422, json={"events": events[1:2]})
    assert none_known["accepted"] == 0


async def test_a_profile_update_addressed_by_email_or_phone_updates_that_customer(
        start_api: StartApi, redis_url: str) -> None:
    api = await start_api()
    await api.put_customer("g16", G16)
    by_email = await api.put_customer("email:g16@example.com", {"attributes": {"tier": "gold"}})
    by_phone = await api.put_customer("+33612345678", {"locale": "fr"})
    assert by_email["customer_id"] == by_phone["customer_id"] == "g16"
    profile = await api.request("GET", "/v1/customers/g16", 200)
    assert (profile["attributes"], profile["locale"]) == ({"tier": "gold"}, "fr")
    body = await api.request("PUT", "/v1/customers/nobody@example.com", 422, json={"locale": "fr"})
    assert body["errors"][0]["field"] == "customer_id" and "nobody@example.com" in body["message"]
    assert await keys_naming(redis_url, "nobody") == []


def test_only_ids_shaped_like_an_address_are_looked_up() -> None:
    assert [lookup_of(given, "FR") for given in ("c42", "anon-7", "shop:981", "0612345678")] == [None] * 4
    assert lookup_of("Lea@Example.com", "FR") == ("email", "lea@example.com")
    assert lookup_of("email:Lea@Example.com", "FR") == ("email", "lea@example.com")
    assert lookup_of("phone:0612345678", "FR") == lookup_of("+33612345678", "FR") == ("phone", "+33612345678")
    assert lookup_of("push:tok-1", "FR") == ("push", "tok-1")
    assert lookup_of("anon:v1", "FR") == ("anon", "v1")
    with pytest.raises(ValueError, match="phone number"):
        lookup_of("+1", "FR")


PICKUP = """
id: pickup
trigger: {event: parked, key: "event.properties.order"}
re_entry: always
steps:
  - wait_for: {event: arrived, timeout: 30d}
  - exit: {reason: arrived}
"""


async def test_a_visitors_keyed_instance_moves_over_beside_the_customers_instance_for_another_key(
        project: Path, start_api: StartApi) -> None:
    """One instance per key value runs: the visitor's order B is not the customer's order A, so logging in keeps
    both waiting, each for its own order."""
    write_journey(project, "pickup", PICKUP)
    api = await start_api()
    await api.put_customer("c42", {"addresses": {"email": "lea@example.com"}})
    await api.event("parked", "c42", properties={"order": "A"})
    await api.event("parked", "anon-7", properties={"order": "B"})
    await api.wait_until("anon-7", lambda es: any(e["kind"] == "journey" for e in es))
    await api.event("identify", "c42", properties={"anonymous_id": "anon-7"})
    entries = await api.wait_until("c42", lambda es: any(e["kind"] == "identity" for e in es))
    assert next(e for e in entries if e["kind"] == "identity")["moved_journeys"] == ["pickup"]
    assert len((await api.request("GET", "/v1/customers/c42", 200))["journeys"]) == 2
    await api.event("arrived", "c42", properties={"order": "B"})  # the visitor's order: its instance only
    await api.wait_until("c42", journey_ended("pickup"))
    assert len((await api.request("GET", "/v1/customers/c42", 200))["journeys"]) == 1


NUDGE_TEMPLATE = """
en:
  inbox: {title: "Hello", body: "Something for you"}
"""
NUDGE = """
id: {id}
trigger: {{event: {trigger}}}
goal: {{event: order_placed, within: 30d}}
steps:
  - send: {{template: nudge, channels: [inbox]}}
"""


async def test_the_visitors_open_goal_windows_and_touchpoints_move_over_beside_the_customers(
        project: Path, start_api: StartApi) -> None:
    """The visitor's journey ended with its goal window open, after an in-app message: the purchase made once
    logged in converts it and credits that message, though the customer has a window and a message of their own."""
    (project / "templates" / "nudge.yaml").write_text(NUDGE_TEMPLATE, encoding="utf-8")
    write_journey(project, "welcome_nudge", NUDGE.format(id="welcome_nudge", trigger="welcomed"))
    write_journey(project, "browse_nudge", NUDGE.format(id="browse_nudge", trigger="browsed"))
    api = await start_api()
    await api.put_customer("c42", {"addresses": {"email": "lea@example.com"}})
    await api.event("welcomed", "c42")
    await api.event("browsed", "anon-7")
    await api.wait_until("c42", journey_ended("welcome_nudge"))
    visitor = await api.wait_until("anon-7", journey_ended("browse_nudge"))
    nudged = next(e["message_id"] for e in visitor if e["kind"] == "message")
    await api.event("identify", "c42", properties={"anonymous_id": "anon-7"})
    await api.wait_until("c42", lambda es: any(e["kind"] == "identity" for e in es))
    await api.event("order_placed", "c42", properties={"total": 50.0})
    entries = await api.wait_until("c42", lambda es: sum(e["kind"] == "conversion" for e in es) == 2)
    browse = next(e for e in entries if e["kind"] == "conversion" and e["journey"] == "browse_nudge")
    assert browse["attributed_to"] == [nudged]
    assert nudged in browse["credits"]["linear"]

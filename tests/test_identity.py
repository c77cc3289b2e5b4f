"""One customer, whatever they are known by: identifiers, and the anonymous visitor who logs in."""

from __future__ import annotations

import pytest

from conftest import StartApi, has_message, journey_ended

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


@pytest.mark.slow  # the journey's hour lasts 6 real seconds
async def test_an_anonymous_cart_continues_for_the_customer_who_logs_in(start_api: StartApi) -> None:
    api = await start_api(clock_speed=600.0)  # the hour before the push lasts 6 s: time to log in
    await api.event("page_viewed", "anon-7", properties={"path": "/sneakers"})
    await api.event("cart_abandoned", "anon-7", idempotency_key="cart-1", properties=CART)
    await api.wait_until("anon-7", lambda es: any(e["kind"] == "journey" for e in es))
    await api.put_customer("c42", {"attributes": {"first_name": "Léa"}, "locale": "fr",
                                   "addresses": {"push": ["tok-1"], "email": "lea@example.com"}})
    await api.event("identify", "c42", properties={"anonymous_id": "anon-7"})
    await api.event("page_viewed", "anon-7", properties={"path": "/after-login"})  # a late event of the visitor
    entries = await api.wait_until("c42", has_message("cart_discount"), timeout=20)

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

"""`identify` merges anonymous visitors only, and the identity index cannot be taken by claiming an address: no
customer can take over another's profile, consents, timeline or lookups."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as redis

from conftest import Api, StartApi
from standins import TwilioStandIn
from test_channels_end_to_end import twilio_post

VICTIM = {"attributes": {"first_name": "Léa", "tier": "gold"}, "locale": "fr",
          "addresses": {"email": "lea@example.com", "sms": "+33612345678"}, "consents": {"sms": False}}


async def refused_identify(api: Api, customer_id: str, anonymous_id: str) -> dict[str, Any]:
    """Send `identify` and wait for its refusal on the sender's timeline."""
    await api.event("identify", customer_id, properties={"anonymous_id": anonymous_id})
    entries = await api.wait_until(customer_id, lambda es: any(e.get("where") == "identify" for e in es))
    return next(e for e in entries if e.get("where") == "identify")


@pytest.mark.parametrize("victim_profile", [VICTIM, {"attributes": {"tier": "gold"}}],
                         ids=["with addresses", "attributes only"])
async def test_identify_cannot_merge_a_known_customer(start_api: StartApi, victim_profile: dict[str, Any]) -> None:
    api = await start_api()
    await api.put_customer("victim", victim_profile)
    await api.event("page_viewed", "victim", properties={"path": "/account"})
    await api.settled()
    before = await api.request("GET", "/v1/customers/victim", 200)
    timeline = await api.timeline("victim")
    await api.put_customer("mallory", {"addresses": {"email": "mallory@example.com"}})

    refusal = await refused_identify(api, "mallory", "victim")
    assert refusal["kind"] == "error" and "'victim' is a known customer" in refusal["message"]
    await api.settled()
    assert await api.request("GET", "/v1/customers/victim", 200) == before  # not a redirect to mallory
    assert await api.timeline("victim") == timeline
    mallory = await api.request("GET", "/v1/customers/mallory", 200)
    assert mallory["attributes"] == {} and mallory["consents"] == {}
    await api.request("GET", "/v1/customers/anon:victim", 404)
    await api.event("page_viewed", "victim", properties={"path": "/later"})  # still the victim's own events
    await api.wait_until("victim", lambda es: len(es) == len(timeline) + 1)


async def test_identify_does_not_reserve_an_id_nobody_has_yet(start_api: StartApi) -> None:
    api = await start_api()
    await api.put_customer("mallory", {"attributes": {"tier": "basic"}})
    refusal = await refused_identify(api, "mallory", "c99")
    assert "'c99' has no activity: nothing to merge" in refusal["message"]
    await api.put_customer("c99", {"attributes": {"first_name": "Tom"}})  # the customer who gets that id later
    assert (await api.request("GET", "/v1/customers/c99", 200))["customer_id"] == "c99"
    await api.event("page_viewed", "c99")
    await api.wait_until("c99", lambda es: any(e["kind"] == "event" for e in es))


@pytest.mark.parametrize("anonymous_id", ["email:lea@example.com", "lea@example.com", "+33612345678", "anon:v7",
                                          "phone:+33612345678", "push:tok-1"])
async def test_an_anonymous_id_that_is_an_address_is_422_and_creates_nobody(
        start_api: StartApi, redis_url: str, anonymous_id: str) -> None:
    api = await start_api()
    await api.put_customer("victim", VICTIM)
    body = await api.request("POST", "/v1/events", 422, json={"name": "identify", "customer_id": "mallory",
                                                              "properties": {"anonymous_id": anonymous_id}})
    assert body["errors"][0]["field"] == "properties.anonymous_id"
    assert "only anonymous visitors are merged" in body["errors"][0]["message"]
    batch = await api.request("POST", "/v1/events/batch", 422, json={"events": [
        {"name": "identify", "customer_id": "mallory", "properties": {"anonymous_id": anonymous_id}}]})
    assert batch["results"][0]["errors"][0]["field"] == "events.0.properties.anonymous_id"
    await api.settled()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert [key async for key in client.scan_iter(match=f"*:c:{anonymous_id}}}*")] == []
        assert [key async for key in client.scan_iter(match="*:c:mallory}*")] == []
    finally:
        await client.aclose()


async def test_the_first_owner_keeps_an_address_until_it_changes(start_api: StartApi) -> None:
    api = await start_api()
    await api.put_customer("victim", VICTIM)
    await api.put_customer("mallory", {"addresses": {"email": "Lea@Example.com", "sms": "+33612345678"}})
    for lookup in ("email:lea@example.com", "lea@example.com", "phone:+33612345678"):
        assert (await api.request("GET", f"/v1/customers/{lookup}", 200))["customer_id"] == "victim", lookup
    await api.event("page_viewed", "lea@example.com", properties={"path": "/by-email"})
    await api.wait_until("victim", lambda es: any(e["kind"] == "event" for e in es))

    await api.put_customer("victim", {"addresses": {"email": "lea.new@example.com", "sms": None}})
    assert (await api.request("GET", "/v1/customers/email:lea.new@example.com", 200))["customer_id"] == "victim"
    await api.request("GET", "/v1/customers/email:lea@example.com", 404)  # forgotten as it changed
    await api.request("GET", "/v1/customers/phone:+33612345678", 404)
    await api.put_customer("mallory", {"addresses": {"email": "lea@example.com"}})  # now free: it may be claimed
    assert (await api.request("GET", "/v1/customers/email:lea@example.com", 200))["customer_id"] == "mallory"


async def test_a_reply_from_an_unknown_number_yields_it_to_the_customer_later_given_it(
        start_api: StartApi, twilio: TwilioStandIn) -> None:
    api = await start_api(channels={"sms": "twilio_sms"})
    reply = {"From": "+33611223344", "To": "+1", "Body": "Bonjour", "MessageSid": "SM-early"}
    assert await twilio_post(api, "/webhooks/twilio/inbound", reply, twilio.auth_token) == 200
    assert (await api.request("GET", "/v1/customers/phone:+33611223344", 200))["customer_id"] == "+33611223344"
    await api.put_customer("c42", {"addresses": {"sms": "+33611223344"}})  # the placeholder named after it yields
    assert (await api.request("GET", "/v1/customers/phone:+33611223344", 200))["customer_id"] == "c42"

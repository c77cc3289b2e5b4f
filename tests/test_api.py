"""The HTTP contract: bodies, error answers naming the field, limits, keys, and documents."""

from __future__ import annotations

import asyncio

import pytest

from conftest import StartApi
from omnicanal.api import permissions

EVENT = {"name": "page_viewed", "customer_id": "c1"}


async def test_invalid_json_is_400(start_api: StartApi) -> None:
    api = await start_api()
    body = await api.request("POST", "/v1/events", 400, data=b"{not json",
                             headers={"Content-Type": "application/json"})
    assert body["error"] == "bad_request" and "not valid JSON" in body["message"]


@pytest.mark.parametrize(("payload", "field"), [
    ({"customer_id": "c1"}, "name"),
    ({"name": "x"}, "customer_id"),
    ({**EVENT, "properties": [1, 2]}, "properties"),
    ({**EVENT, "timestamp": "yesterday"}, "timestamp"),
    ({**EVENT, "customer_id": "bad id {with} braces"}, "customer_id"),
    ({**EVENT, "name": ""}, "name"),
    ({**EVENT, "colour": "blue"}, "colour"),
    ([EVENT], "body"),
])
async def test_invalid_event_is_422_naming_the_field(start_api: StartApi, payload: object, field: str) -> None:
    api = await start_api()
    body = await api.request("POST", "/v1/events", 422, json=payload)
    assert body["error"] == "invalid_input"
    assert field in [e["field"] for e in body["errors"]], body
    assert await api.runtime.queue.backlog() == 0  # nothing stored


async def test_oversized_body_is_413(start_api: StartApi) -> None:
    api = await start_api(max_body_bytes=2048)
    body = await api.request("POST", "/v1/events", 413, json={**EVENT, "properties": {"x": "y" * 4000}})
    assert body["error"] == "body_too_large"


async def test_batch_stores_the_valid_events_and_names_the_invalid_ones(start_api: StartApi) -> None:
    api = await start_api()
    events = [EVENT, {"name": "page_viewed"}, {**EVENT, "idempotency_key": "k1"}]
    body = await api.request("POST", "/v1/events/batch", 202, json={"events": events})
    assert body["accepted"] == 2 and body["rejected"] == 1
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected", "accepted"]
    assert body["results"][1]["errors"] == [{"field": "events.1.customer_id", "message": "Field required"}]
    await api.settled()
    assert len(await api.timeline("c1")) == 2


async def test_batch_limits(start_api: StartApi) -> None:
    api = await start_api()
    await api.request("POST", "/v1/events/batch", 422, json={"events": []})
    too_many = await api.request("POST", "/v1/events/batch", 422, json={"events": [EVENT] * 1001})
    assert too_many["errors"][0]["field"] == "events"
    all_bad = await api.request("POST", "/v1/events/batch", 422, json={"events": [{"name": "x"}]})
    assert all_bad["accepted"] == 0


async def test_customer_upsert_merges_and_validates(start_api: StartApi) -> None:
    api = await start_api()
    await api.put_customer("c42", {"attributes": {"first_name": "Léa", "tier": "gold"},
                                   "addresses": {"sms": "+33612345678", "push": ["t1"]}, "locale": "fr"})
    body = await api.put_customer("c42", {"attributes": {"tier": None, "city": "Lyon"},
                                          "addresses": {"email": "lea@example.com", "push": None},
                                          "timezone": "Europe/Paris", "channel_preference": ["whatsapp"]})
    assert body["attributes"] == {"first_name": "Léa", "city": "Lyon"}
    assert body["addresses"] == {"sms": "+33612345678", "email": "lea@example.com"}
    assert (body["locale"], body["timezone"], body["channel_preference"]) == ("fr", "Europe/Paris", ["whatsapp"])
    bad = await api.request("PUT", "/v1/customers/c42", 422, json={"timezone": "Mars/Olympus",
                                                                   "locale": "french"})
    assert {e["field"] for e in bad["errors"]} == {"timezone", "locale"}
    assert "IANA" in bad["message"]


async def test_unknown_things_are_404(start_api: StartApi) -> None:
    api = await start_api()
    assert (await api.request("GET", "/v1/customers/nobody", 404))["error"] == "not_found"
    await api.request("GET", "/v1/customers/nobody/timeline", 404)
    body = await api.request("GET", "/v1/journeys/nope", 404)
    assert "abandoned_cart" in body["message"]
    await api.request("GET", "/v1/nothing-here", 404)


async def test_journeys_are_listed_with_versions(start_api: StartApi) -> None:
    api = await start_api()
    body = await api.request("GET", "/v1/journeys", 200)
    ids = [j["id"] for j in body["journeys"]]
    assert ids == ["abandoned_cart", "browse_digest", "click_and_collect", "welcome_series"]
    assert all(len(j["version"]) == 12 for j in body["journeys"])


async def test_api_keys_are_required_when_configured(start_api: StartApi) -> None:
    api = await start_api(api_keys=["s3cret", "other"])
    assert (await api.request("POST", "/v1/events", 401, json=EVENT))["error"] == "unauthorized"
    await api.request("POST", "/v1/events", 401, json=EVENT, headers={"Authorization": "Bearer wrong"})
    await api.request("POST", "/v1/events", 202, json=EVENT, headers={"Authorization": "Bearer s3cret"})
    await api.request("POST", "/v1/events", 202, json=EVENT, headers={"X-API-Key": "other"})
    await api.request("GET", "/healthz", 200)


async def test_health_readiness_metrics_and_openapi(start_api: StartApi) -> None:
    api = await start_api()
    assert (await api.request("GET", "/healthz", 200)) == {"status": "ok"}
    ready = await api.request("GET", "/readyz", 200)
    assert ready["checks"]["store"] == "ok"
    await api.event("page_viewed", "m1")
    metrics = await api.client.get("/metrics")
    assert "omnicanal_events_accepted_total" in await metrics.text()
    spec = await api.request("GET", "/openapi.json", 200)
    assert spec["openapi"].startswith("3.")
    assert {"/v1/events", "/v1/events/batch", "/v1/customers/{customer_id}"} <= set(spec["paths"])
    assert "customer_id" in spec["components"]["schemas"]["EventIn"]["properties"]


async def test_the_openapi_document_describes_every_v1_operation(start_api: StartApi) -> None:
    """The journey controls, ending one customer's instance and cancelling an event were served but missing from
    `GET /openapi.json`: clients generated from it could not call them, and the schemathesis run never sent them
    (the one customer route that skipped the customer id check was among them)."""
    api = await start_api()
    spec = await api.request("GET", "/openapi.json", 200)
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item
                  if method != "parameters"}
    served = {route for route in permissions.ROUTES if route[1].startswith("/v1/") and route[0] != "OPTIONS"}
    assert served - documented == set(), served - documented


async def test_concurrent_single_events_each_get_their_own_answer(start_api: StartApi) -> None:
    """Concurrent requests share Redis round trips: each is still answered with its own id, once stored, and an
    idempotent retry racing its original in the same round trip still has one effect."""
    api = await start_api()
    bodies = [{"name": "page_viewed", "customer_id": f"burst-{n % 20}", "properties": {"n": n}} for n in range(100)]
    bodies += [{**EVENT, "idempotency_key": "same-key"}] * 5
    answers = await asyncio.gather(*(api.request("POST", "/v1/events", 202, json=body) for body in bodies))
    ids = [answer["id"] for answer in answers]
    assert len(set(ids[:100])) == 100 and len(set(ids[100:])) == 1
    await api.settled()
    for customer in range(20):
        entries = await api.timeline(f"burst-{customer}")
        assert sorted(e["properties"]["n"] for e in entries if e["kind"] == "event") == list(range(customer, 100, 20))
    assert len([e for e in await api.timeline("c1") if e["kind"] == "event"]) == 1


async def test_numbers_beyond_64_bits_are_accepted_and_kept_as_floats(start_api: StartApi) -> None:
    """JSON allows any integer; like JavaScript, the engine keeps those beyond 64 bits as floating point numbers
    (nothing refused, nothing crashes), and every other number exactly."""
    api = await start_api()
    properties = {"big": 2**70 + 1, "negative": -(2**65) - 3, "exact": [2**63 - 1, -(2**63), 1.5]}
    await api.request("POST", "/v1/events", 202, json={**EVENT, "properties": properties})
    await api.settled()
    [event] = [e for e in await api.timeline("c1") if e["kind"] == "event"]
    assert event["properties"]["big"] == pytest.approx(2**70)
    assert event["properties"]["negative"] == pytest.approx(-(2**65))
    assert event["properties"]["exact"] == [2**63 - 1, -(2**63), 1.5]


async def test_an_event_s_timestamp_is_kept_in_utc_as_the_engine_writes_its_own(start_api: StartApi) -> None:
    """`occurred_at` was the text as sent (`+02:00`, no zone at all, microseconds) beside the engine's own
    `...Z` times: the timeline and exports mixed forms that do not sort as text. A time without a zone is UTC."""
    api = await start_api()
    sent = {"2027-01-15T10:00:00+02:00": "2027-01-15T08:00:00.000Z",
            "2027-01-15T08:00:01.123456": "2027-01-15T08:00:01.123Z",
            "2027-01-15T08:00:02Z": "2027-01-15T08:00:02.000Z",
            "0001-01-01T00:30:00-00:30": "0001-01-01T01:00:00.000Z",
            "9999-12-31T23:59:59.999999Z": "9999-12-31T23:59:59.999Z"}
    for index, timestamp in enumerate(sent):
        await api.request("POST", "/v1/events", 202, json={**EVENT, "idempotency_key": f"k{index}",
                                                           "timestamp": timestamp})
    await api.settled()
    kept = [e["occurred_at"] for e in await api.timeline("c1") if e["kind"] == "event"]
    assert kept == list(sent.values())
    for outside in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"):
        body = await api.request("POST", "/v1/events", 422, json={**EVENT, "timestamp": outside})
        assert [e["field"] for e in body["errors"]] == ["timestamp"], body
        assert "UTC" in body["errors"][0]["message"]

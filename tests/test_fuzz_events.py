"""The event parser on generated bodies, through HTTP on real Redis: any body is a 202 or a 4xx whose JSON names
the field at fault, never a 5xx; and events for one customer, whatever they carry, never change another's
profile or timeline.

Hypothesis drives the requests from a thread (it does not run async tests); each request is awaited on the
test's event loop, which goes on serving the daemon meanwhile.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from conftest import Api, StartApi
from fuzz_support import SSTI, fuzz_settings

SHIPPED_EVENTS = ("cart_abandoned", "order_placed", "product_viewed", "signed_up", "order_picked_up",
                  "order_ready_for_pickup", "order_cancelled", "unsubscribed_all", "identify", "customer.updated")
FIELDS = ("name", "customer_id", "properties", "timestamp", "idempotency_key")
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(),
              st.text(max_size=30), st.sampled_from(SSTI)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)), inner,
                                            max_size=5)),
    max_leaves=20,
)
NAMES = st.one_of(st.sampled_from(SHIPPED_EVENTS), st.text(max_size=12), JSON)
IDS = st.one_of(st.sampled_from(["fuzz-a", "email:fuzz-a@example.com", "+33612345601", "anon:x", "a" * 129]),
                st.text(max_size=12), JSON)
EVENTS = st.fixed_dictionaries({}, optional={
    "name": NAMES, "customer_id": IDS, "properties": st.one_of(st.dictionaries(st.text(max_size=10), JSON), JSON),
    "timestamp": st.one_of(st.sampled_from(["2026-11-23T10:00:00Z", "0001-01-01T00:00:00+14:00",
                                            "9999-12-31T23:59:59-14:00", "2026-02-30T00:00:00Z", "yesterday"]),
                           JSON),
    "idempotency_key": st.one_of(st.sampled_from(["k1", "k2", ""]), JSON),
    "extra": JSON,
})
BODIES = st.one_of(EVENTS, JSON)


def on(loop: asyncio.AbstractEventLoop, work: Coroutine[Any, Any, Any]) -> Any:
    """Run `work` on the test's loop from hypothesis' thread, bounded: a request that hangs fails the test."""
    return asyncio.run_coroutine_threadsafe(work, loop).result(timeout=30)


async def post(api: Api, path: str, body: Any) -> tuple[int, Any]:
    response = await api.client.post(path, data=json.dumps(body), headers={"Content-Type": "application/json"})
    assert response.content_type == "application/json", (response.status, await response.text())
    return response.status, await response.json()


def assert_refusal_names_the_field(status: int, answer: dict[str, Any], body: Any, prefix: str = "") -> None:
    """A 4xx with JSON saying what is wrong; one about the input names a path in the body (or the body itself)."""
    assert status in (400, 409, 413, 422), (status, answer)
    assert isinstance(answer.get("error"), str) and isinstance(answer.get("message"), str), answer
    if status in (409, 413, 422):
        named = {*FIELDS, "body", *(body if isinstance(body, dict) else ()),
                 *(str(index) for index in range(len(body) if isinstance(body, list) else 0))}
        fields = [error["field"] for error in answer["errors"]]
        assert fields and all(any(f in (prefix + n, prefix.rstrip(".")) or f.startswith(f"{prefix}{n}.")
                                  for n in named) for f in fields), answer


async def test_any_event_body_is_202_or_a_4xx_naming_the_field(start_api: StartApi) -> None:
    api, loop = await start_api(), asyncio.get_running_loop()

    @given(body=BODIES)
    @fuzz_settings(75)
    def one(body: Any) -> None:
        status, answer = on(loop, post(api, "/v1/events", body))
        if status == 202:
            assert answer["status"] == "accepted" and answer["id"].startswith("evt_"), answer
        else:
            assert_refusal_names_the_field(status, answer, body)

    await asyncio.to_thread(one)
    await api.settled()
    assert (await api.request("GET", "/readyz", 200))["status"] == "ready"


async def test_any_batch_answers_each_event_by_its_index(start_api: StartApi) -> None:
    api, loop = await start_api(), asyncio.get_running_loop()

    @given(events=st.lists(BODIES, min_size=1, max_size=6))
    @fuzz_settings(60)
    def batch(events: list[Any]) -> None:
        status, answer = on(loop, post(api, "/v1/events/batch", {"events": events}))
        if "results" not in answer:  # the body as a whole is refused (a NaN, too large...)
            assert_refusal_names_the_field(status, answer, {"events": events})
            return
        assert status in (202, 422), (status, answer)
        assert [result["index"] for result in answer["results"]] == list(range(len(events))), answer
        for index, result in enumerate(answer["results"]):
            if result["status"] != "accepted":
                assert_refusal_names_the_field(422, {"error": "-", "message": "-", **result}, events[index],
                                               f"events.{index}.")
        assert answer["accepted"] == sum(r["status"] == "accepted" for r in answer["results"])
        assert status == (202 if answer["accepted"] else 422)

    await asyncio.to_thread(batch)


VICTIM = "fuzz-b"
VICTIM_PROFILE = {"attributes": {"first_name": "Bea", "tier": "gold"}, "locale": "fr",
                  "addresses": {"sms": "+33612345602", "email": "fuzz-b@example.com", "push": ["device-b"]},
                  "consents": {"sms": True, "email": {"marketing": True}}}
ATTACKS = st.one_of(JSON, st.sampled_from([
    VICTIM, f"email:{VICTIM_PROFILE['addresses']['email']}", VICTIM_PROFILE["addresses"]["email"],
    VICTIM_PROFILE["addresses"]["sms"], f"phone:{VICTIM_PROFILE['addresses']['sms']}", "device-b"]))
"""What an event for another customer may carry to reach the victim: its id, its addresses, its token."""


async def test_events_for_one_customer_never_change_another(start_api: StartApi) -> None:
    api, loop = await start_api(), asyncio.get_running_loop()
    await api.put_customer(VICTIM, VICTIM_PROFILE)
    await api.event("page_viewed", VICTIM, properties={"url": "/"})  # no journey: nothing of its own moves
    await api.settled()
    profile = await api.request("GET", f"/v1/customers/{VICTIM}", 200)
    timeline = await api.timeline(VICTIM)

    @given(name=st.sampled_from(SHIPPED_EVENTS), customer=st.sampled_from(["fuzz-a", "fuzz-c", "anon-1"]),
           properties=st.dictionaries(st.sampled_from(["anonymous_id", "customer_id", "email", "phone", "id",
                                                       "to", "addresses", "attributes", "consents", "merge_into",
                                                       "total", "items", "channel"]), ATTACKS, max_size=5))
    @fuzz_settings(80)
    def attack(name: str, customer: str, properties: dict[str, Any]) -> None:
        status, answer = on(loop, post(api, "/v1/events", {"name": name, "customer_id": customer,
                                                            "properties": properties}))
        assert status in (202, 413, 422), (status, answer)

    await asyncio.to_thread(attack)
    await api.settled()
    assert await api.request("GET", f"/v1/customers/{VICTIM}", 200) == profile
    assert await api.timeline(VICTIM) == timeline

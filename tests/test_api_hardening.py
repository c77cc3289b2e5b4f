"""Every answer is JSON, whatever goes wrong: a bug is a 500 with an id found in the log, a Redis that refuses
writes (out of memory, read-only) is a 503 with Retry-After, and a body that parses but cannot be stored (a lone
surrogate, nesting too deep) is a 422 naming the field — in a batch, for that event alone."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
import structlog
from redis import exceptions as redis_errors

from conftest import StartApi
from faults_support import free_port
from omnicanal.api.schemas import MAX_DEPTH

EVENT = {"name": "page_viewed", "customer_id": "h1"}
JSON = {"Content-Type": "application/json"}


def nested(depth: int) -> str:
    """`{"a": {"a": ... 1}}`, `depth` objects deep, as JSON text (too deep for `json.dumps` to write)."""
    return '{"a": ' * depth + "1" + "}" * depth


def with_properties(properties: str, event: dict[str, Any] = EVENT) -> str:
    """The JSON text of `event` with these properties (JSON text)."""
    return json.dumps(event)[:-1] + f', "properties": {properties}}}'


async def test_a_handler_bug_answers_json_500_with_an_id_logged_once_with_its_traceback(
        start_api: StartApi, monkeypatch: pytest.MonkeyPatch) -> None:
    api = await start_api()

    async def broken(customer_id: str) -> Any:
        raise ZeroDivisionError("a bug in a handler")

    monkeypatch.setattr(api.runtime.customers, "profile", broken)
    with structlog.testing.capture_logs() as logs:
        response = await api.client.get("/v1/customers/h1")
        body = await response.json()
    assert response.status == 500 and response.content_type == "application/json"
    assert body["error"] == "internal" and body["id"] in body["message"]
    assert "ZeroDivisionError" not in body["message"]  # the client gets the id, the log gets the details
    [logged] = [entry for entry in logs if entry.get("error_id") == body["id"]]
    assert logged["log_level"] == "error" and logged["exc_info"] is True and logged["path"] == "/v1/customers/h1"


@pytest.mark.parametrize(("text", "field"), [
    (json.dumps({**EVENT, "properties": {"note": "broken \ud800 text"}}), "properties.note"),
    (json.dumps({**EVENT, "properties": {"items": [{"sku": "ok"}, {"sku": "\udfff"}]}}), "properties.items.1.sku"),
    (json.dumps({**EVENT, "properties": {"key \ud800": 1}}), "properties.key \\ud800"),
    (json.dumps({**EVENT, "idempotency_key": "\ud800"}), "idempotency_key"),
    (with_properties(nested(990)), "properties" + ".a" * (MAX_DEPTH - 1)),
    (with_properties(nested(MAX_DEPTH)), "properties" + ".a" * (MAX_DEPTH - 1)),
])
async def test_an_event_that_cannot_be_stored_is_422_naming_the_field(
        start_api: StartApi, text: str, field: str) -> None:
    api = await start_api()
    body = await api.request("POST", "/v1/events", 422, data=text, headers=JSON)
    assert body["error"] == "invalid_input" and [e["field"] for e in body["errors"]] == [field], body
    assert await api.runtime.queue.backlog() == 0  # nothing stored


async def test_nesting_up_to_the_limit_is_stored(start_api: StartApi) -> None:
    api = await start_api()
    deepest = nested(MAX_DEPTH - 1)  # the event body is one level, its properties the others
    await api.request("POST", "/v1/events", 202, data=with_properties(deepest), headers=JSON)
    await api.settled()
    [event] = [e for e in await api.timeline("h1") if e["kind"] == "event"]
    assert event["properties"] == json.loads(deepest)


async def test_a_body_too_deep_to_parse_is_422_not_a_crash(start_api: StartApi) -> None:
    api = await start_api()
    for depth in (1030, 100_000):
        body = await api.request("POST", "/v1/events", 422, data=with_properties(nested(depth)), headers=JSON)
        assert body["errors"][0]["field"] == "body" and str(MAX_DEPTH) in body["message"]


async def test_a_profile_that_cannot_be_stored_is_422_naming_the_field(start_api: StartApi) -> None:
    api = await start_api()
    for text, field in ((json.dumps({"attributes": {"nick": "\ud83d"}}), "attributes.nick"),
                        (json.dumps({"addresses": {"viber": "\ud800"}}), "addresses.viber"),
                        ('{"attributes": ' + nested(500) + "}", "attributes" + ".a" * (MAX_DEPTH - 1))):
        body = await api.request("PUT", "/v1/customers/h1", 422, data=text, headers=JSON)
        assert [e["field"] for e in body["errors"]] == [field], body
    await api.request("GET", "/v1/customers/h1", 404)  # nothing stored


async def test_a_batch_stores_its_valid_events_and_rejects_the_unstorable_ones_by_index(start_api: StartApi) -> None:
    api = await start_api()

    async def batch(*properties: str) -> Any:
        text = '{"events": [' + ", ".join(map(with_properties, properties)) + "]}"
        return await api.request("POST", "/v1/events/batch", 202, data=text, headers=JSON)

    body = await batch('{"n": 0}', '{"n": "\\ud800"}', nested(MAX_DEPTH), '{"n": 3}')
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected", "rejected", "accepted"]
    assert body["results"][1]["errors"][0]["field"] == "events.1.properties.n"
    assert body["results"][2]["errors"][0]["field"] == "events.2.properties" + ".a" * (MAX_DEPTH - 1)
    body = await batch(nested(990), '{"n": 4}')  # as deep as makes encoding it exhaust the stack
    assert [r["status"] for r in body["results"]] == ["rejected", "accepted"]
    assert body["results"][0]["errors"][0]["field"].startswith("events.0.properties.a.a")
    await api.settled()
    assert [e["properties"]["n"] for e in await api.timeline("h1") if e["kind"] == "event"] == [0, 3, 4]


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[str]:
    """A redis-server of this test's own (its memory limit and role are changed: never the shared one's). Ask for
    it before `start_api`: the engine then stops before the server is killed (a worker that loses its Redis
    while stopping waits out its 1 s retry pause)."""
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path), "--maxmemory-policy", "noeviction"],
                              stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        async with asyncio.timeout(10):
            while True:
                try:
                    await client.ping()
                    break
                except redis_errors.ConnectionError:
                    await asyncio.sleep(0.05)
        yield url
    finally:
        await client.aclose()
        server.kill()
        server.wait()


async def refused(api: Any) -> None:
    """An event, a batch and a profile update are each answered 503 with Retry-After, nothing stored."""
    for method, path, payload in (("POST", "/v1/events", EVENT), ("POST", "/v1/events/batch", {"events": [EVENT]}),
                                  ("PUT", "/v1/customers/h1", {"locale": "fr"})):
        response = await api.client.request(method, path, json=payload)
        assert (response.status, response.content_type) == (503, "application/json"), await response.text()
        assert int(response.headers["Retry-After"]) >= 1
        body = await response.json()
        assert body["error"] == "store_unavailable" and "nothing was stored" in body["message"]


async def test_a_redis_out_of_memory_is_503_with_retry_after_then_recovers(
        own_redis: str, start_api: StartApi) -> None:
    api = await start_api(redis_url=own_redis)
    filler = redis.Redis.from_url(own_redis)
    try:
        used = (await filler.info("memory"))["used_memory"]
        await filler.config_set("maxmemory", used + 1024 * 1024)
        for size in (64 * 1024, 64):  # fill it up to the last byte, as a busy deployment under noeviction would
            with pytest.raises(redis_errors.OutOfMemoryError):
                for n in range(100_000):
                    await filler.set(f"filler:{size}:{n}", b"x" * size)
        await refused(api)
        await filler.delete(*[key async for key in filler.scan_iter("filler:*", count=1000)])
        await api.event("page_viewed", "h1")  # memory freed: accepted again
    finally:
        await filler.aclose()


async def test_a_read_only_redis_is_503_with_retry_after(own_redis: str, start_api: StartApi) -> None:
    api = await start_api(redis_url=own_redis)
    admin = redis.Redis.from_url(own_redis)
    try:
        await admin.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))  # a replica of nobody: read-only
        await refused(api)
        await admin.execute_command("REPLICAOF", "NO", "ONE")
        await api.event("page_viewed", "h1")
    finally:
        await admin.aclose()


async def test_a_profile_cannot_grow_past_the_attributes_limit_one_put_at_a_time(start_api: StartApi) -> None:
    """Each PUT was checked alone: five of 40 KB under five names made a 200 KB profile, which every expression of
    that customer reads, past OMNICANAL_MAX_PROPERTIES_BYTES."""
    api = await start_api()
    await api.put_customer("g1", {"attributes": {"a": "x" * 40_000}})
    body = await api.request("PUT", "/v1/customers/g1", 413, json={"attributes": {"b": "x" * 40_000}})
    assert body["errors"][0]["field"] == "attributes", body
    assert "with these merged" in body["errors"][0]["message"] and "null removes one" in body["errors"][0]["message"]
    profile = await api.request("GET", "/v1/customers/g1", 200)
    assert set(profile["attributes"]) == {"a"}
    # replacing, or removing one while adding another, stays within the limit
    await api.put_customer("g1", {"attributes": {"a": "y" * 40_000}})
    await api.put_customer("g1", {"attributes": {"a": None, "b": "x" * 40_000}})
    assert set((await api.request("GET", "/v1/customers/g1", 200))["attributes"]) == {"b"}

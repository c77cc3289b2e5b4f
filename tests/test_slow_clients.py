"""Clients that cannot hold the daemon: slow headers and bodies are cut off, the outbox answers a page at a time,
numbers that are not JSON are refused, and the API describes itself as it is (Allow on 405, OpenAPI)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import StartApi, has_message, write_journey
from omnicanal.store.keys import CUSTOMER_ID_PATTERN
from test_daemon import Daemon


async def silence_after(port: int, sent: bytes, limit: float) -> tuple[bytes, float]:
    """Open a connection on 127.0.0.1, send `sent`, then nothing: what the server answers, and how long until it
    closed the connection (at most `limit`, the test's own bound)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()
    writer.write(sent)
    await writer.drain()
    try:
        async with asyncio.timeout(limit):
            answer = await reader.read()
    finally:
        writer.close()
    return answer, time.monotonic() - began


@pytest.mark.slow  # the header deadline is aiohttp's server setting: a real `omnicanal api` process
async def test_a_client_that_never_finishes_its_headers_is_cut_off(project: Path, redis_url: str) -> None:
    daemon = Daemon(project, redis_url, clock_speed=1.0)
    daemon.env["OMNICANAL_HEADER_TIMEOUT"] = "1"
    await daemon.start()
    try:
        (answer, took), (idle, idle_took), (health, _) = await asyncio.gather(
            silence_after(daemon.port, b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow", 15),
            silence_after(daemon.port, b"", 15),  # connected, nothing sent at all
            daemon.call("GET", "/healthz"))  # a normal client is served meanwhile
        assert answer == b"" and took < 5, (answer, took)  # closed, not held open
        assert idle == b"" and idle_took < 5
        assert health == 200
    finally:
        daemon.stop()


async def test_a_body_that_does_not_arrive_in_time_is_408_and_the_connection_closed(start_api: StartApi) -> None:
    api = await start_api(body_timeout=0.5)
    port = api.client.port
    assert port is not None
    head = (b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{\"name\": ")
    answer, took = await silence_after(port, head, 15)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["message"].endswith("(OMNICANAL_BODY_TIMEOUT)")
    assert took < 5


async def test_the_outbox_answers_a_page_at_a_time(project: Path, start_api: StartApi) -> None:
    write_journey(project, "notes", "id: notes\ntrigger: {event: note}\nre_entry: always\nsteps:\n"
                                    "  - send: {template: welcome, channels: [email], purpose: transactional}\n")
    api = await start_api()
    for customer in ("a", "b"):
        await api.put_customer(customer, {"addresses": {"email": f"{customer}@example.com"}})
    for number in range(5):
        for customer in ("a", "b"):
            await api.event("note", customer, idempotency_key=f"n{number}")
            await api.wait_until(customer, lambda es, n=number: len([e for e in es if e["kind"] == "message"]) > n)
    everything = await api.request("GET", "/v1/outbox", 200)
    assert len(everything["messages"]) == 10 and everything["next"] is None
    pages: list[list[Any]] = []
    after = 0
    while after is not None:
        page = await api.request("GET", f"/v1/outbox?customer_id=a&limit=2&after={after}", 200)
        pages.append([m["customer_id"] for m in page["messages"]])
        after = page["next"]
    assert pages == [["a", "a"], ["a", "a"], ["a"]]
    for query, field in (("limit=0", "limit"), ("limit=1001", "limit"), ("after=-1", "after"), ("limit=x", "limit")):
        body = await api.request("GET", f"/v1/outbox?{query}", 422)
        assert body["errors"][0]["field"] == field, query
    assert has_message("welcome")(await api.timeline("a"))


@pytest.mark.parametrize(("body", "field"), [
    ('{"name": "x", "customer_id": "c1", "properties": {"total": NaN}}', "properties.total"),
    ('{"name": "x", "customer_id": "c1", "properties": {"items": [1, Infinity]}}', "properties.items.1"),
    ('{"name": "x", "customer_id": "c1", "properties": {"total": -Infinity}}', "properties.total"),
])
async def test_nan_and_infinity_are_refused_naming_the_field(start_api: StartApi, body: str, field: str) -> None:
    api = await start_api()
    answer = await api.request("POST", "/v1/events", 422, data=body, headers={"Content-Type": "application/json"})
    assert answer["errors"] == [{"field": field, "message": "NaN and Infinity are not JSON numbers: send a number, "
                                                            "or null"}]


async def test_a_405_names_the_methods_allowed(start_api: StartApi) -> None:
    api = await start_api()
    response = await api.client.request("DELETE", "/v1/events")
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    assert (await response.json())["error"] == "method_not_allowed"


async def test_openapi_declares_bearer_security_only_with_keys_and_describes_errors_and_ids(
        start_api: StartApi) -> None:
    open_api = await (await start_api()).request("GET", "/openapi.json", 200)
    assert "security" not in open_api and "securitySchemes" not in open_api["components"]
    keyed = await (await start_api(api_keys=["s3cret"])).request("GET", "/openapi.json", 200)
    assert keyed["security"] == [{"bearer": []}]
    assert keyed["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, method in (("/v1/events", "post"), ("/v1/events/batch", "post"), ("/v1/customers/{customer_id}", "put")):
        assert {"400", "413", "422"} <= set(open_api["paths"][path][method]["responses"]), path
    [customer] = open_api["paths"]["/v1/customers/{customer_id}"]["parameters"]
    assert customer["schema"]["pattern"] == CUSTOMER_ID_PATTERN
    [journey] = open_api["paths"]["/v1/journeys/{journey_id}"]["parameters"]
    assert journey["schema"]["pattern"].startswith("^[a-z0-9]")

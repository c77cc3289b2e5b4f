"""A hostile client's requests, each answered with a JSON 4xx saying what to fix — never a 500: bodies whose
compression or chunking breaks, forms that cannot be parsed, profile fields naming channels that do not exist."""

from __future__ import annotations

import asyncio
import json

import pytest

from conftest import Api, StartApi
from standins import TwilioStandIn

EVENT = json.dumps({"name": "page_viewed", "customer_id": "h1"}).encode()


async def exchange(api: Api, head: bytes, *later: bytes) -> tuple[int, dict[str, object]]:
    """Send a request's bytes on a fresh connection (`later` parts each after a pause, so the handler is already
    reading the body); the status and JSON body of the answer."""
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(head)
        for part in later:
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.write(part)
        await writer.drain()
        async with asyncio.timeout(5):
            answer = await reader.read()
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"application/json" in headers, answer
    return int(status_line.split()[1]), json.loads(body)


def post(path: str, content_type: str, body: bytes, *extra: str) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: omnicanal", f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}", "Connection: close", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_is_not_compressed_as_announced_is_400(start_api: StartApi, encoding: str) -> None:
    api = await start_api()
    status, body = await exchange(api, post("/v1/events", "application/json", EVENT,
                                            f"Content-Encoding: {encoding}"))
    assert status == 400 and body["error"] == "bad_request" and encoding in str(body["message"]), body
    assert await api.runtime.queue.backlog() == 0


async def test_a_chunked_body_that_breaks_midway_is_a_4xx_within_the_body_timeout(start_api: StartApi) -> None:
    api = await start_api(body_timeout=1)
    head = (b"POST /v1/events HTTP/1.1\r\nHost: omnicanal\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\n{\"nam\r\n")
    status, body = await exchange(api, head, b"zz\r\nnot a chunk\r\n0\r\n\r\n")
    assert status in (400, 408), body  # aiohttp's parser may not tell the handler: the body's deadline ends it
    assert await api.runtime.queue.backlog() == 0


@pytest.mark.parametrize("path", ["/webhooks/twilio/inbound", "/webhooks/twilio/status", "/ui/login"])
async def test_a_multipart_form_without_its_boundary_is_400(start_api: StartApi, twilio: TwilioStandIn,
                                                           path: str) -> None:
    api = await start_api(channels={"sms": "twilio_sms"})
    status, body = await exchange(api, post(path, "multipart/form-data", b"From=%2B33612345678&Body=STOP"))
    assert status == 400 and "boundary" in str(body["message"]), body


@pytest.mark.parametrize(("profile", "field", "says"), [
    ({"consents": {"SMS": False}}, "consents.SMS", "did you mean 'sms'?"),
    ({"consents": {"e-mail": {"marketing": False}}}, "consents.e-mail", "did you mean 'email'?"),
    ({"channel_preference": ["whatsapp", "mail"]}, "channel_preference.1", "did you mean 'email'?"),
    ({"addresses": {"e-mail": "lea@example.com"}}, "addresses", "addresses.e-mail: unknown channel"),
    ({"addresses": {"email": "lea @example.com"}}, "addresses.email", "name@example.com, without spaces"),
    ({"addresses": {"email": "lea\u0000@example.com"}}, "addresses.email", "name@example.com, without spaces"),
    ({"addresses": {"push": [""]}}, "addresses.push.0", "without spaces or control characters"),
    ({"addresses": {"push": ["token\nX-Injected: 1"]}}, "addresses.push.0", "without spaces or control characters"),
    ({"addresses": {"messenger": True}}, "addresses.messenger", "string"),
    ({"addresses": {"webhook": "../../admin"}}, "addresses.webhook", "http:// or https:// URL"),
    # an attribute named like a profile field was stored, and `customer.locale` (the profile's) never read it
    ({"attributes": {"locale": "de"}}, "attributes", 'attributes.locale: locale is a profile field, not an '
                                                     'attribute: send it at the top level of the body ("locale": ...)'),
    ({"attributes": {"tier": "gold", "id": "c2"}}, "attributes", "attributes.id: id is a profile field, not an "
                                                                 "attribute: use another name"),
])
async def test_a_profile_naming_no_channel_or_an_address_unfit_for_its_channel_is_422(
        start_api: StartApi, profile: dict[str, object], field: str, says: str) -> None:
    """A consent for `SMS` was stored beside `sms` and never read: the customer who said no kept getting texts."""
    api = await start_api()
    await api.put_customer("c1", {"addresses": {"sms": "+33612345678"}})
    body = await api.request("PUT", "/v1/customers/c1", 422, json=profile)
    assert [(e["field"], says in e["message"]) for e in body["errors"]] == [(field, True)], body
    stored = await api.request("GET", "/v1/customers/c1", 200)
    assert stored["addresses"] == {"sms": "+33612345678"} and stored["consents"] == {}


async def test_a_number_too_long_to_read_is_422_saying_to_send_it_as_text(start_api: StartApi) -> None:
    """Python's JSON reader stops at 4,300 digits; its message told the client to call sys.set_int_max_str_digits."""
    api = await start_api()
    text = '{"name": "page_viewed", "customer_id": "h1", "properties": {"n": ' + "9" * 5000 + "}}"
    body = await api.request("POST", "/v1/events", 422, data=text, headers={"Content-Type": "application/json"})
    assert body["errors"] == [{"field": "body", "message": "a number with more than 4,300 digits: no value needs "
                                                           "one; send it as text"}], body
    assert "sys." not in body["message"] and await api.runtime.queue.backlog() == 0


@pytest.mark.parametrize("customer_id", ["a%2Fb", "a%20b", "%C3%A9", "y" * 200])
async def test_ending_a_journey_for_a_customer_id_no_key_can_hold_is_422_and_queues_nothing(
        start_api: StartApi, customer_id: str) -> None:
    """`DELETE /v1/customers/{id}/journeys/{journey}` was the one customer route that skipped the id check: `a/b`,
    a space, unicode or a 200-character id got a 202 and a drain in the work stream."""
    api = await start_api()
    body = await api.request("DELETE", f"/v1/customers/{customer_id}/journeys/abandoned_cart", 422)
    assert [e["field"] for e in body["errors"]] == ["customer_id"], body
    assert await api.runtime.queue.backlog() == 0


@pytest.mark.parametrize(("properties", "field"), [('{"n": 1' + "0" * 400 + "}", "properties.n"),
                                                 ('{"l": [0, -' + "9" * 320 + "]}", "properties.l.1")])
async def test_an_integer_beyond_a_floats_range_is_422_not_stored(start_api: StartApi, properties: str,
                                                                   field: str) -> None:
    """Integers beyond 64 bits are kept as floating point numbers, as JavaScript reads them (README); one beyond a
    float's range was kept as a 400-digit integer instead, which a JavaScript client reading the timeline sees as
    Infinity — the value the API refuses when it is written `1e400`."""
    api = await start_api()
    text = f'{{"name": "page_viewed", "customer_id": "h1", "properties": {properties}}}'
    body = await api.request("POST", "/v1/events", 422, data=text, headers={"Content-Type": "application/json"})
    assert body["errors"] == [{"field": field, "message": "a number beyond ±1.8e308, which JSON readers take as "
                                                          "Infinity: send it as text"}], body
    assert await api.runtime.queue.backlog() == 0
    big = '{"name": "page_viewed", "customer_id": "h1", "properties": {"n": ' + "9" * 300 + "}}"
    await api.request("POST", "/v1/events", 202, data=big, headers={"Content-Type": "application/json"})


async def test_a_body_declared_larger_than_the_limit_is_413_at_once(start_api: StartApi) -> None:
    """A Content-Length over OMNICANAL_MAX_BODY_BYTES was waited for: the client that sent one byte of a declared
    100 GB held the connection and the handler until the body timeout (30 s), then got a 408, not the 413."""
    api = await start_api()
    head = (b"POST /v1/events HTTP/1.1\r\nHost: omnicanal\r\nContent-Type: application/json\r\n"
            b"Content-Length: 99999999999\r\nConnection: close\r\n\r\n{")
    status, body = await exchange(api, head)  # within exchange's 5 s
    assert (status, body["error"]) == (413, "body_too_large"), body
    assert "OMNICANAL_MAX_BODY_BYTES" in str(body["message"])
    assert await api.runtime.queue.backlog() == 0

"""The in-app inbox, as a brand's app uses it: a journey sends on channel `inbox`; the app, holding the customer's
id signed by the brand's backend, lists the messages, follows new ones live (Server-Sent Events), marks them read
(a `message.read` event a journey can wait for) or archived; from any origin (CORS)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp

from conftest import Api, StartApi, write_journey
from omnicanal.api.inbox import inbox_signature
from omnicanal.engine.clock import ManualClock
from omnicanal.errors import ConfigError, TemplateError
from omnicanal.render import TemplateCatalog
from test_cli import run

SECRET = "inbox-secret-for-tests-0123456789"
NEWS = """
id: news
trigger: {event: news, key: "event.properties.headline"}
steps:
  - send: {template: news, channels: [inbox]}
  - wait_for: {event: message.read, timeout: 1d, on_timeout: nudge}
  - send: {template: news, channels: [email]}
  - exit
  - id: nudge
    send: {template: news, channels: [sms]}
"""
TEMPLATE = """
en:
  inbox:
    title: "News for {{ customer.first_name | default('you', true) }}"
    body: "{{ event.properties.headline }}"
    url: "https://shop.example/news"
  email:
    subject: "Thanks for reading"
    text: "You read: {{ event.properties.headline }}"
  sms:
    body: "Unread news: {{ event.properties.headline }}"
"""


def credentials(customer_id: str) -> dict[str, str]:
    return {"customer": customer_id, "signature": inbox_signature(SECRET, customer_id)}


async def started(project: Path, start_api: StartApi, **settings: Any) -> Api:
    write_journey(project, "news", NEWS)
    (project / "templates" / "news.yaml").write_text(TEMPLATE, encoding="utf-8")
    return await start_api(**{"inbox_secret": SECRET, "clock_speed": 1.0, **settings})  # real time: no timeout


async def inbox(api: Api, customer_id: str, expect: int = 200, **query: str) -> Any:
    return await api.request("GET", "/v1/inbox", expect, params={**credentials(customer_id), **query})


async def news(api: Api, customer_id: str, headline: str) -> None:
    await api.event("news", customer_id, properties={"headline": headline})
    await api.wait_until(customer_id, lambda entries: any(
        e["kind"] == "message" and e.get("channel") == "inbox" and e.get("content", {}).get("body") == headline
        for e in entries))


async def test_a_message_sent_on_the_inbox_is_listed_read_and_heard_by_the_journey(
    project: Path, start_api: StartApi
) -> None:
    api = await started(project, start_api)
    await api.put_customer("i1", {"attributes": {"first_name": "Léa"}, "addresses": {"email": "i1@example.com"}})
    await news(api, "i1", "Spring collection")
    listed = await inbox(api, "i1")
    [message] = listed["messages"]
    assert (listed["customer_id"], listed["unread"], listed["next"]) == ("i1", 1, None)
    assert (message["title"], message["body"], message["url"]) == ("News for Léa", "Spring collection",
                                                                   "https://shop.example/news")
    assert message["read_at"] is None and message["archived_at"] is None and message["journey"] == "news"

    read = await api.request("POST", "/v1/inbox/read", 200, params=credentials("i1"), json={"ids": [message["id"]]})
    assert read == {"marked": [message["id"]], "unread": 0}
    again = await api.request("POST", "/v1/inbox/read", 200, params=credentials("i1"), json={"all": True})
    assert again == {"marked": [], "unread": 0}  # read once: its first time is kept, no second event
    entries = await api.wait_until("i1", lambda es: any(e.get("template") == "news" and e.get("channel") == "email"
                                                         for e in es))
    reads = [e for e in entries if e["kind"] == "event" and e["name"] == "message.read"]
    assert [r["properties"]["message_id"] for r in reads] == [message["id"]]
    assert not any(e.get("channel") == "sms" for e in entries)  # read within the day: no nudge
    assert (await inbox(api, "i1"))["messages"][0]["read_at"] is not None
    record = next(e for e in entries if e["kind"] == "message" and e.get("channel") == "inbox")
    assert record["status"] == "read"  # the record's status history has the read


async def test_archived_messages_leave_the_list_and_pages_follow_next(project: Path, start_api: StartApi) -> None:
    api = await started(project, start_api)
    for headline in ("one", "two", "three"):
        await news(api, "i2", headline)
    assert [m["body"] for m in (await inbox(api, "i2"))["messages"]] == ["three", "two", "one"]
    first = await inbox(api, "i2", limit="2")
    assert [m["body"] for m in first["messages"]] == ["three", "two"] and first["unread"] == 3
    rest = await inbox(api, "i2", limit="2", before=first["next"])
    assert [m["body"] for m in rest["messages"]] == ["one"] and rest["next"] is None
    archived = await api.request("POST", "/v1/inbox/archive", 200, params=credentials("i2"),
                                 json={"ids": [first["messages"][0]["id"], "not-a-message"]})
    assert archived == {"marked": [first["messages"][0]["id"]], "unread": 2}
    assert [m["body"] for m in (await inbox(api, "i2"))["messages"]] == ["two", "one"]
    assert [m["body"] for m in (await inbox(api, "i2", archived="true"))["messages"]] == ["three"]
    export = await api.request("GET", "/v1/customers/i2/export", 200)  # right of access: the inbox too
    assert [(m["body"], m["archived_at"] is not None) for m in export["inbox"]] == [
        ("three", True), ("two", False), ("one", False)]
    erased = await api.request("DELETE", "/v1/customers/i2", 200)  # right of erasure: the inbox goes
    assert erased["status"] == "erased" and (await inbox(api, "i2"))["messages"] == []


async def test_only_the_signed_customer_reads_an_inbox(project: Path, start_api: StartApi) -> None:
    api = await started(project, start_api, api_keys="k-" + "x" * 30)  # API keys on: the inbox needs none
    unsigned = await api.request("GET", "/v1/inbox", 401, params={"customer": "i3"})
    assert "signature" in unsigned["message"]
    forged = await api.request("GET", "/v1/inbox", 401, params={"customer": "i3",
                                                                "signature": inbox_signature(SECRET, "i4")})
    assert "not this customer id's" in forged["message"]
    for hostile in ("é" * 64, "\u0000", "ff" * 1000):  # not ASCII, a NUL, far too long: refused, never a 500
        refused = await api.request("GET", "/v1/inbox", 401, params={"customer": "i3", "signature": hostile})
        assert "not this customer id's" in refused["message"]
    headers = {"X-Omnicanal-Customer": "i3", "X-Omnicanal-Signature": inbox_signature(SECRET, "i3")}
    assert (await api.request("GET", "/v1/inbox", 200, headers=headers))["messages"] == []
    bad = await api.request("POST", "/v1/inbox/read", 422, params=credentials("i3"), json={"ids": []})
    assert bad["errors"][0]["field"] == "ids"
    both = await api.request("POST", "/v1/inbox/read", 422, params=credentials("i3"), json={"ids": ["a"], "all": True})
    assert "either" in both["message"]
    assert (await inbox(api, "i3", expect=422, before="nope"))["errors"][0]["field"] == "before"


async def test_the_inbox_api_is_off_without_a_secret(start_api: StartApi) -> None:
    api = await start_api()
    off = await api.request("GET", "/v1/inbox", 404, params=credentials("i5"))
    assert "OMNICANAL_INBOX_SECRET" in off["message"]


async def test_a_page_of_another_origin_may_call_the_inbox(project: Path, start_api: StartApi) -> None:
    api = await started(project, start_api)
    preflight = await api.client.options("/v1/inbox/read", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-omnicanal-signature"})
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "x-omnicanal-signature" in preflight.headers["Access-Control-Allow-Headers"].lower()
    refused = await api.client.get("/v1/inbox", params={"customer": "i6"}, headers={"Origin": "https://app.example"})
    assert refused.status == 401 and refused.headers["Access-Control-Allow-Origin"] == "*"  # errors readable too


async def test_the_stream_brings_new_messages_and_what_a_reconnection_missed(project: Path, start_api: StartApi
                                                                              ) -> None:
    api = await started(project, start_api)
    await news(api, "i7", "before the stream")  # not sent on a new stream as a message: it starts from now
    async with api.client.get("/v1/inbox/stream", params=credentials("i7")) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert await next_event(stream.content) == {"event": "unread", "data": '{"unread":1}'}
        await news(api, "i7", "live")
        event = await next_event(stream.content)
        assert event["event"] == "message" and json.loads(event["data"])["body"] == "live"
        assert await next_event(stream.content) == {"event": "unread", "data": '{"unread":2}'}
    await news(api, "i7", "while away")
    async with api.client.get("/v1/inbox/stream", params=credentials("i7"),
                              headers={"Last-Event-ID": event["id"]}) as stream:
        missed = await next_event(stream.content)
    assert missed["event"] == "message" and json.loads(missed["data"])["body"] == "while away"


async def test_the_stream_tells_a_read_or_archive_made_on_another_device(project: Path, start_api: StartApi
                                                                          ) -> None:
    api = await started(project, start_api)
    await news(api, "i11", "one")
    await news(api, "i11", "two")
    [two, one] = (await inbox(api, "i11"))["messages"]
    async with api.client.get("/v1/inbox/stream", params=credentials("i11")) as stream:
        assert await next_event(stream.content) == {"event": "unread", "data": '{"unread":2}'}
        await api.request("POST", "/v1/inbox/read", 200, params=credentials("i11"), json={"ids": [one["id"]]})
        update = await next_event(stream.content)
        assert update["event"] == "update" and json.loads(update["data"])["read_at"] is not None
        assert json.loads(update["data"])["id"] == one["id"]
        assert await next_event(stream.content) == {"event": "unread", "data": '{"unread":1}'}
        await api.request("POST", "/v1/inbox/archive", 200, params=credentials("i11"), json={"all": True})
        archived = [await next_event(stream.content) for _ in range(3)]
    assert [(e["event"], json.loads(e["data"]).get("id")) for e in archived] == [
        ("update", one["id"]), ("update", two["id"]), ("unread", None)]
    assert json.loads(archived[-1]["data"]) == {"unread": 0}


async def next_event(content: aiohttp.StreamReader, timeout: float = 10.0) -> dict[str, str]:
    """The next Server-Sent Event's fields (comments and the `retry` line skipped)."""
    fields: dict[str, str] = {}
    async with asyncio.timeout(timeout):
        while True:
            line = (await content.readline()).decode().rstrip("\n")
            if not line:
                if "data" in fields:
                    return fields
                fields = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            if name != "retry":
                fields[name] = value


async def test_the_inbox_needs_no_address_and_validates_its_variant(project: Path, start_api: StartApi) -> None:
    api = await started(project, start_api)
    refused = await api.request("PUT", "/v1/customers/i8", 422, json={"addresses": {"inbox": "i8"}})
    assert "needs no address" in refused["message"]
    (project / "templates" / "news.yaml").write_text(TEMPLATE.replace('    title: "News for', '    titel: "News for'),
                                                      encoding="utf-8")
    try:
        TemplateCatalog.load(project / "templates", "en")
    except (ConfigError, TemplateError) as exc:
        assert "titel" in str(exc) and "title" in str(exc)
    else:
        raise AssertionError("a misspelt inbox field loaded")


async def test_a_visitors_inbox_joins_the_customers_when_they_log_in(project: Path, start_api: StartApi) -> None:
    api = await started(project, start_api)
    await news(api, "anon-9", "seen before login")
    visitor = await inbox(api, "anon-9")
    await api.request("POST", "/v1/inbox/read", 200, params=credentials("anon-9"),
                      json={"ids": [visitor["messages"][0]["id"]]})
    await api.put_customer("c9", {"addresses": {"email": "c9@example.com"}})
    await news(api, "c9", "for the customer")
    await api.event("identify", "c9", properties={"anonymous_id": "anon-9"})
    await api.wait_until("c9", lambda entries: any(e["kind"] == "identity" for e in entries))
    merged = await inbox(api, "c9")
    assert [(m["body"], m["read_at"] is not None) for m in merged["messages"]] == [
        ("for the customer", False), ("seen before login", True)]
    assert merged["unread"] == 1


def test_the_cli_signs_a_customer_id_as_the_api_checks_it() -> None:
    signed = run("inbox-signature", "c42", OMNICANAL_INBOX_SECRET=SECRET)
    assert signed.returncode == 0 and signed.stdout.strip() == inbox_signature(SECRET, "c42")
    url = run("inbox-signature", "c42", "--url", OMNICANAL_INBOX_SECRET=SECRET, OMNICANAL_PUBLIC_URL="https://x.example")
    assert url.stdout.strip() == f"https://x.example/v1/inbox?customer=c42&signature={signed.stdout.strip()}"
    off = run("inbox-signature", "c42")
    assert off.returncode == 2 and "OMNICANAL_INBOX_SECRET is not set" in off.stderr


async def test_a_stopping_process_ends_its_streams_at_once(project: Path, start_api: StartApi) -> None:
    """Streams never end by themselves: a process stopping (SIGTERM) must not wait for them (aiohttp would, a
    minute) — the clients reconnect to another process, from their Last-Event-ID."""
    api = await started(project, start_api)
    async with api.client.get("/v1/inbox/stream", params=credentials("i10")) as stream:
        assert (await stream.content.readline()).startswith(b"retry:")
        api.runtime.stopping.set()
        async with asyncio.timeout(3):
            rest = await stream.content.read()
    assert b"event: message" not in rest


FALLBACK = """
id: nudged
trigger: {event: nudge}
steps:
  - send: {template: news, channels: [inbox, email], fallback_after: 1d, delivered_on: message.read}
  - wait: 3d
"""


async def test_an_unread_inbox_message_falls_back_to_email_and_a_read_one_does_not(
    project: Path, start_api: StartApi
) -> None:
    write_journey(project, "nudged", FALLBACK)
    clock = ManualClock(time.time())
    api = await started(project, start_api, clock=clock)
    for customer_id in ("r1", "u1"):
        await api.put_customer(customer_id, {"addresses": {"email": f"{customer_id}@example.com"}})
        await api.event("nudge", customer_id, properties={"headline": "Last chance"})
        await api.wait_until(customer_id, lambda es: any(e.get("channel") == "inbox" for e in es))
    [message] = (await inbox(api, "r1"))["messages"]
    await api.request("POST", "/v1/inbox/read", 200, params=credentials("r1"), json={"ids": [message["id"]]})
    await api.wait_until("r1", lambda es: any(e.get("name") == "message.read" for e in es))
    await api.settled()
    clock.advance_to(clock.now() + 86400 + 1)
    entries = await api.wait_until("u1", lambda es: any(e.get("channel") == "email" for e in es))
    assert [e["reason"] for e in entries if e["kind"] == "fallback"] == ["not delivered in time"]
    await api.settled()
    assert [e.get("channel") for e in await api.messages("r1")] == ["inbox"]  # read: no e-mail

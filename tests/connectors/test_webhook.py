"""The webhook connector against a receiver that checks signatures, and the signature contract itself."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from omnicanal_connectors.webhook import WebhookConnector, WebhookSettings, verify_signature

from omnicanal.channels import load_connector_settings
from omnicanal.errors import ConfigError, PermanentDelivery, TransientDelivery, UnknownDelivery
from standins import WebhookReceiver, connector_context, outbound, unused_url

CONTENT = {"payload": {"kind": "call_back", "cart_total": "89.0"}}


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver() as standin:
        yield standin


def webhook_connector(receiver: WebhookReceiver, **settings: Any) -> WebhookConnector:
    values = {"secret": receiver.secret, "url": receiver.default_url, "timeout": 0.3, **settings}
    return WebhookConnector(connector_context(), WebhookSettings(**values))


async def test_posts_the_signed_message_to_the_default_url(receiver: WebhookReceiver) -> None:
    before = int(time.time())
    async with webhook_connector(receiver) as connector:
        message = outbound("webhook", "store-12-tablet", CONTENT, id="msg-9", step="call_back")
        receipt = await connector.send(message)

    [request] = receiver.received
    assert request.path == "/hooks/default"
    assert request.json == {"message_id": "msg-9", "customer_id": "c42", "channel": "webhook",
                            "to": "store-12-tablet", "template": "cart_discount", "locale": "fr",
                            "journey": "abandoned_cart", "step": "call_back", "content": CONTENT}
    timestamp = request.headers["X-Omnicanal-Timestamp"]
    assert before <= int(timestamp) <= time.time()
    expected = hmac.new(receiver.secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256)
    assert request.headers["X-Omnicanal-Signature"] == f"sha256={expected.hexdigest()}"
    assert request.headers["X-Omnicanal-Message-Id"] == "msg-9"
    assert request.headers["Content-Type"] == "application/json"
    assert receiver.verified == [True]
    assert (receipt.status, receipt.provider_id) == ("sent", "wh-1")


async def test_a_url_address_is_used_as_is(receiver: WebhookReceiver) -> None:
    async with webhook_connector(receiver, url=None) as connector:
        await connector.send(outbound("webhook", f"{receiver.url}/hooks/crm/c42", CONTENT))
    assert receiver.received[0].path == "/hooks/crm/c42"


async def test_no_url_at_all_is_permanent(receiver: WebhookReceiver) -> None:
    async with webhook_connector(receiver, url=None) as connector:
        with pytest.raises(PermanentDelivery, match="OMNICANAL_WEBHOOK_URL"):
            await connector.send(outbound("webhook", "store-12-tablet", CONTENT))


async def test_a_wrong_secret_is_refused_for_good(receiver: WebhookReceiver) -> None:
    async with webhook_connector(receiver, secret="not-the-secret") as connector:
        with pytest.raises(PermanentDelivery, match="401"):
            await connector.send(outbound("webhook", "store-12-tablet", CONTENT))
    assert receiver.verified == [False]


@pytest.mark.parametrize(("status", "retry_after", "error"), [
    (500, None, TransientDelivery),
    (503, 12, TransientDelivery),
    (429, 3, TransientDelivery),
    (408, None, TransientDelivery),
    (404, None, PermanentDelivery),
    (422, None, PermanentDelivery),
])
async def test_answers_are_translated(receiver: WebhookReceiver, status: int, retry_after: float | None,
                                      error: type[Exception]) -> None:
    receiver.fail_next(status=status, retry_after=retry_after)
    async with webhook_connector(receiver) as connector:
        with pytest.raises(error) as raised:
            await connector.send(outbound("webhook", "store-12-tablet", CONTENT))
    if isinstance(raised.value, TransientDelivery):
        assert raised.value.retry_after == retry_after


async def test_no_answer_is_unknown_and_no_connection_is_transient(receiver: WebhookReceiver) -> None:
    receiver.fail_next(hang=True)
    async with webhook_connector(receiver) as connector:
        with pytest.raises(UnknownDelivery):
            await connector.send(outbound("webhook", "store-12-tablet", CONTENT))
        with pytest.raises(TransientDelivery):
            await connector.send(outbound("webhook", f"{unused_url()}/hooks/x", CONTENT))


@pytest.fixture
async def unruly() -> AsyncIterator[tuple[str, dict[str, int]]]:
    """A receiver on 127.0.0.1 that accepts the message, then answers without end: /huge an endless body as fast
    as it is read, /trickle one byte every 50 ms. Yields its URL and how many bytes /huge got out."""
    sent = {"huge": 0}

    async def huge(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while sent["huge"] < 1 << 30:
                await response.write(b'{"id": "' + b"x" * 65_536)
                sent["huge"] += 65_544
        return response

    async def trickle(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            while True:
                await response.write(b" ")
                await asyncio.sleep(0.05)

    app = web.Application()
    app.router.add_post("/huge", huge)
    app.router.add_post("/trickle", trickle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", sent
    await runner.cleanup()


async def test_an_answer_without_end_neither_fills_memory_nor_holds_the_send(
        receiver: WebhookReceiver, unruly: tuple[str, dict[str, int]]) -> None:
    """A customer's `webhook` address names any public receiver: an endless or trickled answer must cost at most
    ANSWER_LIMIT bytes and WHOLE_EXCHANGE timeouts (0.3 s here), not the worker's memory or the send for ever."""
    url, sent = unruly
    async with webhook_connector(receiver) as connector:
        receipt = await connector.send(outbound("webhook", f"{url}/huge", CONTENT))
        assert (receipt.status, receipt.provider_id) == ("sent", None)  # delivered; the body is not parsed
        assert sent["huge"] < 64 << 20  # it stopped being read (the socket buffers hold a few MB at most)
        began = time.monotonic()
        with pytest.raises(UnknownDelivery):  # it was handed over, maybe: not sent again blindly
            await connector.send(outbound("webhook", f"{url}/trickle", CONTENT))
        assert time.monotonic() - began < 3


def test_verify_signature_accepts_only_a_fresh_matching_signature() -> None:
    body = json.dumps({"message_id": "m1"}).encode()
    now = 1_800_000_000
    signed = "sha256=" + hmac.new(b"k", f"{now}.".encode() + body, hashlib.sha256).hexdigest()

    assert verify_signature("k", str(now), body, signed, now=now + 10)
    assert verify_signature(b"k", str(now), body, signed, now=now - 10)
    assert not verify_signature("k", str(now), body + b" ", signed, now=now)      # body changed
    assert not verify_signature("k", str(now + 1), body, signed, now=now)         # timestamp changed
    assert not verify_signature("other", str(now), body, signed, now=now)         # another secret
    assert not verify_signature("k", str(now), body, signed, now=now + 301)       # replayed too late
    assert not verify_signature("k", "yesterday", body, signed, now=now)
    assert not verify_signature("k", str(now), body, "sha256=" + "é" * 64, now=now)  # not ASCII: False, not raised


def test_the_secret_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="OMNICANAL_WEBHOOK_SECRET"):
        load_connector_settings(WebhookConnector)

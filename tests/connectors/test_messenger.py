"""The Messenger connector against the Send API stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from omnicanal_connectors.messenger import MessengerConnector, MessengerSettings

from omnicanal.channels import load_connector_settings
from omnicanal.errors import ConfigError, PermanentDelivery, TransientDelivery, UnknownDelivery
from standins import MessengerStandIn, connector_context, outbound, unused_url


@pytest.fixture
async def messenger() -> AsyncIterator[MessengerStandIn]:
    async with MessengerStandIn() as standin:
        yield standin


def messenger_connector(messenger: MessengerStandIn, **settings: Any) -> MessengerConnector:
    values = {"page_access_token": messenger.page_access_token, "api_base_url": messenger.url,
              "api_version": messenger.api_version, "timeout": 0.3, **settings}
    return MessengerConnector(connector_context(), MessengerSettings(**values))


async def test_sends_an_update_with_the_token_in_the_body(messenger: MessengerStandIn) -> None:
    async with messenger_connector(messenger) as connector:
        receipt = await connector.send(outbound("messenger", "6543210987654321", {"body": "Votre panier, Léa"}))

    [request] = messenger.received
    assert request.path == f"/{messenger.api_version}/me/messages"
    assert request.query == {}  # the token never travels in the URL
    assert messenger.messages == [{"recipient": {"id": "6543210987654321"}, "messaging_type": "UPDATE",
                                   "message": {"text": "Votre panier, Léa"},
                                   "access_token": messenger.page_access_token}]
    assert receipt.status == "sent"
    assert receipt.provider_id is not None and receipt.provider_id.startswith("m_")


async def test_a_tag_makes_it_a_tagged_message_from_the_given_page(messenger: MessengerStandIn,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in messenger.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OMNICANAL_MESSENGER_PAGE_ID", "1122334455")
    monkeypatch.setenv("OMNICANAL_MESSENGER_TAG", "HUMAN_AGENT")
    async with MessengerConnector(connector_context()) as connector:
        await connector.send(outbound("messenger", "42", {"body": "Un conseiller vous répond"}))

    assert messenger.received[0].path == f"/{messenger.api_version}/1122334455/messages"
    assert messenger.messages[0]["messaging_type"] == "MESSAGE_TAG"
    assert messenger.messages[0]["tag"] == "HUMAN_AGENT"


@pytest.mark.parametrize(("status", "code", "body", "error", "invalid_address"), [
    (400, 551, None, PermanentDelivery, True),
    (400, None, {"error": {"message": "No matching user found", "code": 100, "error_subcode": 2018001}},
     PermanentDelivery, True),
    (400, 10, None, PermanentDelivery, False),     # outside the allowed window
    (403, 200, None, PermanentDelivery, False),    # permissions
    (400, 190, None, PermanentDelivery, False),    # invalid token
    (400, 613, None, TransientDelivery, None),
    (400, 4, None, TransientDelivery, None),
    (500, 2, None, TransientDelivery, None),
    (400, None, {"error": {"message": "Please retry", "code": 1200, "is_transient": True}}, TransientDelivery, None),
    (502, None, {"not": "a graph error"}, TransientDelivery, None),
])
async def test_graph_errors_are_translated(messenger: MessengerStandIn, status: int, code: int | None, body: Any,
                                           error: type[Exception], invalid_address: bool | None) -> None:
    messenger.fail_next(status=status, code=code, body=body)
    async with messenger_connector(messenger) as connector:
        with pytest.raises(error) as raised:
            await connector.send(outbound("messenger", "42", {"body": "hi"}))
    if invalid_address is not None:
        assert isinstance(raised.value, PermanentDelivery)
        assert raised.value.invalid_address is invalid_address
    assert messenger.page_access_token not in str(raised.value)


async def test_a_rate_limit_carries_retry_after(messenger: MessengerStandIn) -> None:
    messenger.fail_next(status=429, code=613, retry_after=60)
    async with messenger_connector(messenger) as connector:
        with pytest.raises(TransientDelivery) as raised:
            await connector.send(outbound("messenger", "42", {"body": "hi"}))
    assert raised.value.retry_after == 60


async def test_no_answer_is_unknown_and_no_connection_is_transient(messenger: MessengerStandIn) -> None:
    messenger.fail_next(hang=True)
    async with messenger_connector(messenger) as connector:
        with pytest.raises(UnknownDelivery) as unknown:
            await connector.send(outbound("messenger", "42", {"body": "hi"}))
    async with messenger_connector(messenger, api_base_url=unused_url()) as connector:
        with pytest.raises(TransientDelivery) as transient:
            await connector.send(outbound("messenger", "42", {"body": "hi"}))
    for raised in (unknown, transient):
        assert messenger.page_access_token not in str(raised.value)
        assert messenger.page_access_token not in str(raised.value.__cause__)


def test_the_page_token_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="OMNICANAL_MESSENGER_PAGE_ACCESS_TOKEN"):
        load_connector_settings(MessengerConnector)

"""The Twilio SMS and WhatsApp connectors, with the real twilio client, against the Twilio stand-in."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from omnicanal_connectors.twilio_messaging import (
    TwilioSmsConnector,
    TwilioSmsSettings,
    TwilioWhatsAppConnector,
    TwilioWhatsAppSettings,
)

from omnicanal.channels import load_connector_settings
from omnicanal.errors import ConfigError, PermanentDelivery, TransientDelivery, UnknownDelivery
from standins import TwilioStandIn, connector_context, outbound, unused_url


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioStandIn]:
    async with TwilioStandIn() as standin:
        yield standin


def sms_connector(twilio: TwilioStandIn, public_url: str | None = None, **settings: Any) -> TwilioSmsConnector:
    values = {"account_sid": twilio.account_sid, "auth_token": twilio.auth_token, "from_number": twilio.from_number,
              "api_base_url": twilio.url, "timeout": 0.3, **settings}
    return TwilioSmsConnector(connector_context(public_url=public_url), TwilioSmsSettings(**values))


def whatsapp_connector(twilio: TwilioStandIn) -> TwilioWhatsAppConnector:
    settings = TwilioWhatsAppSettings(account_sid=twilio.account_sid, auth_token=twilio.auth_token,
                                      whatsapp_from=twilio.whatsapp_from, api_base_url=twilio.url, timeout=0.3)
    return TwilioWhatsAppConnector(connector_context(), settings)


async def test_sms_posts_the_message_with_a_status_callback(twilio: TwilioStandIn) -> None:
    async with sms_connector(twilio, public_url="https://omni.example/") as connector:
        receipt = await connector.send(outbound("sms", "+33612345678", {"body": "Votre panier vous attend"}))

    assert receipt.status == "queued"
    assert receipt.provider_id is not None and receipt.provider_id.startswith("SM")
    [request] = twilio.received
    assert request.path == f"/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"
    assert request.form == {"To": "+33612345678", "From": twilio.from_number, "Body": "Votre panier vous attend",
                            "StatusCallback": "https://omni.example/webhooks/twilio/status"}


async def test_whatsapp_prefixes_both_numbers_and_omits_the_callback_without_a_public_url(
        twilio: TwilioStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in twilio.env().items():
        monkeypatch.setenv(name, value)
    connector = TwilioWhatsAppConnector(connector_context())  # settings read from the environment
    async with connector:
        await connector.send(outbound("whatsapp", "+33612345678", {"body": "Merci !"}))
        await connector.send(outbound("whatsapp", "whatsapp:+33700000000", {"body": "Encore merci"}))

    assert twilio.messages == [
        {"To": "whatsapp:+33612345678", "From": f"whatsapp:{twilio.whatsapp_from}", "Body": "Merci !"},
        {"To": "whatsapp:+33700000000", "From": f"whatsapp:{twilio.whatsapp_from}", "Body": "Encore merci"},
    ]


async def test_an_approved_template_goes_by_content_sid(twilio: TwilioStandIn) -> None:
    content = {"body": "Merci Léa ! Commande 981", "content_sid": "HX5f3a",
               "content_variables": {"1": "Léa", "2": "981"}}
    async with whatsapp_connector(twilio) as connector:
        await connector.send(outbound("whatsapp", "+33612345678", content))

    [form] = twilio.messages
    assert "Body" not in form
    assert (form["To"], form["ContentSid"]) == ("whatsapp:+33612345678", "HX5f3a")
    assert json.loads(form["ContentVariables"]) == {"1": "Léa", "2": "981"}


async def test_a_messaging_service_picks_the_sender(twilio: TwilioStandIn) -> None:
    async with sms_connector(twilio, from_number=None, messaging_service_sid="MG123") as connector:
        await connector.send(outbound("sms", "+33612345678", {"body": "hi"}))

    assert twilio.messages == [{"To": "+33612345678", "MessagingServiceSid": "MG123", "Body": "hi"}]


@pytest.mark.parametrize(("status", "code", "error", "invalid_address"), [
    (400, 21610, PermanentDelivery, False),   # opted out (STOP)
    (400, 21211, PermanentDelivery, True),    # not a phone number
    (400, 21614, PermanentDelivery, True),    # not a mobile number
    (400, 63016, PermanentDelivery, False),   # WhatsApp, outside the 24 h window
    (400, 21408, PermanentDelivery, False),   # any other 4xx
    (401, 20003, PermanentDelivery, False),
    (500, 20500, TransientDelivery, None),
    (503, None, TransientDelivery, None),
])
async def test_twilio_errors_are_translated(twilio: TwilioStandIn, status: int, code: int | None,
                                            error: type[Exception], invalid_address: bool | None) -> None:
    twilio.fail_next(status=status, code=code)
    async with sms_connector(twilio) as connector:
        with pytest.raises(error) as raised:
            await connector.send(outbound("sms", "+33612345678", {"body": "hi"}))

    if invalid_address is not None:
        assert isinstance(raised.value, PermanentDelivery)
        assert raised.value.invalid_address is invalid_address
    assert raised.value.__cause__ is not None  # the twilio exception, chained for the logs, never raised


async def test_429_retries_after_what_twilio_said(twilio: TwilioStandIn) -> None:
    twilio.fail_next(status=429, code=20429, retry_after=7)
    async with sms_connector(twilio) as connector:
        with pytest.raises(TransientDelivery) as raised:
            await connector.send(outbound("sms", "+33612345678", {"body": "hi"}))
        receipt = await connector.send(outbound("sms", "+33612345678", {"body": "hi"}))

    assert raised.value.retry_after == 7
    assert receipt.status == "queued"


@pytest.mark.parametrize("body", ["<html>accepted</html>", ["not", "a", "message"], {}])
async def test_an_acceptance_whose_answer_cannot_be_read_is_still_queued(twilio: TwilioStandIn, body: Any) -> None:
    """Twilio said 201: it has the message, whatever its body (a proxy's page, an unexpected shape). Raising made
    the engine retry the work, and its replay record the message `unknown`."""
    twilio.fail_next(status=201, body=body)
    async with sms_connector(twilio) as connector:
        receipt = await connector.send(outbound("sms", "+33612345678", {"body": "hi"}))
    assert (receipt.status, receipt.provider_id) == ("queued", None)
    assert len(twilio.received) == 1


async def test_no_answer_after_sending_is_unknown(twilio: TwilioStandIn) -> None:
    twilio.fail_next(hang=True)
    async with sms_connector(twilio) as connector:
        with pytest.raises(UnknownDelivery):
            await connector.send(outbound("sms", "+33612345678", {"body": "hi"}))
    assert len(twilio.received) == 1


async def test_a_refused_connection_is_transient(twilio: TwilioStandIn) -> None:
    async with sms_connector(twilio, api_base_url=unused_url()) as connector:
        with pytest.raises(TransientDelivery) as raised:
            await connector.send(outbound("sms", "+33612345678", {"body": "hi"}))
    assert raised.value.retry_after is None


def test_missing_settings_name_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNICANAL_TWILIO_ACCOUNT_SID", "AC1")
    with pytest.raises(ConfigError) as raised:
        load_connector_settings(TwilioSmsConnector)
    assert "OMNICANAL_TWILIO_AUTH_TOKEN" in str(raised.value)
    assert "OMNICANAL_TWILIO_FROM_NUMBER" in str(raised.value)

    monkeypatch.setenv("OMNICANAL_TWILIO_AUTH_TOKEN", "secret-token")
    with pytest.raises(ConfigError, match="OMNICANAL_TWILIO_WHATSAPP_FROM") as raised:
        TwilioWhatsAppConnector(connector_context())
    assert "secret-token" not in str(raised.value)


async def test_closing_an_unused_connector_is_harmless(twilio: TwilioStandIn) -> None:
    connector = sms_connector(twilio)
    await connector.aclose()
    await connector.aclose()  # twice: no error either
    assert twilio.received == []  # and nothing was opened or sent to close


def test_the_auth_token_is_not_in_the_settings_repr() -> None:
    settings = TwilioWhatsAppSettings(account_sid="AC1", auth_token="secret-token", whatsapp_from="+1")
    assert "secret-token" not in repr(settings)

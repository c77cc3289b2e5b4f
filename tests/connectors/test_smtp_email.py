"""The SMTP e-mail connector, with aiosmtplib, against a real aiosmtpd server in the test loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from omnicanal_connectors.smtp_email import SmtpEmailConnector, SmtpSettings

from omnicanal.channels import load_connector_settings
from omnicanal.errors import ConfigError, PermanentDelivery, TransientDelivery, UnknownDelivery
from standins import SmtpStandIn, connector_context, outbound, unused_url

CONTENT = {"subject": "Votre panier", "text": "Bonjour Léa, votre panier vous attend.",
           "html": "<p>Bonjour L&eacute;a, <b>votre panier</b> vous attend.</p>"}


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpStandIn]:
    async with SmtpStandIn() as standin:
        yield standin


def email_connector(smtp: SmtpStandIn, **settings: Any) -> SmtpEmailConnector:
    values = {"host": smtp.host, "port": smtp.port, "starttls": False, "from_address": smtp.from_address,
              "timeout": 0.3, **settings}
    return SmtpEmailConnector(connector_context(), SmtpSettings(**values))


async def test_a_multipart_message_with_one_click_unsubscribe(smtp: SmtpStandIn) -> None:
    connector = email_connector(smtp, unsubscribe_url="https://shop.example/unsubscribe?c={customer_id}")
    message = outbound("email", "lea@example.com", CONTENT, customer_id="c 42/é", id="msg-7")
    receipt = await connector.send(message)

    [delivered] = smtp.received
    assert delivered.mail_from == "news@shop.example"
    assert delivered.rcpt_tos == ["lea@example.com"]
    email = delivered.message
    assert email["From"] == "Shop <news@shop.example>"
    assert email["To"] == "lea@example.com"
    assert email["Subject"] == "Votre panier"
    assert email["Message-ID"] == receipt.provider_id == "<msg-7@shop.example>"
    assert email["List-Unsubscribe"] == "<https://shop.example/unsubscribe?c=c%2042%2F%C3%A9>"
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert email.get_content_type() == "multipart/alternative"
    text, html = email.iter_parts()
    assert (text.get_content_type(), text.get_content()) == ("text/plain", CONTENT["text"] + "\n")
    assert (html.get_content_type(), html.get_content()) == ("text/html", CONTENT["html"] + "\n")
    assert receipt.status == "sent"


async def test_a_text_only_message_with_a_one_line_subject_and_no_unsubscribe_header(smtp: SmtpStandIn) -> None:
    content = {"subject": "Votre panier\n  vous attend, Léa", "text": "Plain"}
    await email_connector(smtp).send(outbound("email", "lea@example.com", content))

    email = smtp.received[0].message
    assert email["Subject"] == "Votre panier vous attend, Léa"
    assert email.get_content_type() == "text/plain"
    assert email.get_content() == "Plain\n"
    assert "List-Unsubscribe" not in email


async def test_logs_in_with_the_configured_account(monkeypatch: pytest.MonkeyPatch) -> None:
    async with SmtpStandIn(username="mailer", password="s3cret") as smtp:
        for name, value in smtp.env().items():
            monkeypatch.setenv(name, value)
        await SmtpEmailConnector(connector_context()).send(outbound("email", "lea@example.com", CONTENT))
    assert smtp.received[0].authenticated_as == "mailer"


async def test_a_wrong_password_is_permanent() -> None:
    async with SmtpStandIn(username="mailer", password="s3cret") as smtp:
        connector = email_connector(smtp, username="mailer", password="wrong")
        with pytest.raises(PermanentDelivery, match="535"):
            await connector.send(outbound("email", "lea@example.com", CONTENT))


async def test_a_refused_recipient_is_an_invalid_address(smtp: SmtpStandIn) -> None:
    smtp.fail_next(at="rcpt", reply="550 5.1.1 No such user here")
    with pytest.raises(PermanentDelivery) as raised:
        await email_connector(smtp).send(outbound("email", "nobody@example.com", CONTENT))
    assert raised.value.invalid_address is True
    assert smtp.received == []


@pytest.mark.parametrize(("at", "reply", "error"), [
    ("rcpt", "451 4.7.1 Greylisted, try again later", TransientDelivery),
    ("mail", "452 4.3.1 Insufficient system storage", TransientDelivery),
    ("mail", "550 5.7.1 Sender rejected", PermanentDelivery),
    ("data", "451 4.3.0 Queue full", TransientDelivery),
    ("data", "554 5.6.0 Message rejected as spam", PermanentDelivery),
])
async def test_smtp_replies_are_translated(smtp: SmtpStandIn, at: Any, reply: str, error: type[Exception]) -> None:
    smtp.fail_next(at=at, reply=reply)
    with pytest.raises(error) as raised:
        await email_connector(smtp).send(outbound("email", "lea@example.com", CONTENT))
    if isinstance(raised.value, PermanentDelivery):
        assert raised.value.invalid_address is False


async def test_no_answer_to_the_data_is_unknown(smtp: SmtpStandIn) -> None:
    smtp.fail_next(at="data", hang=True)
    with pytest.raises(UnknownDelivery):
        await email_connector(smtp).send(outbound("email", "lea@example.com", CONTENT))


async def test_no_answer_before_the_data_is_transient(smtp: SmtpStandIn) -> None:
    smtp.fail_next(at="rcpt", hang=True)
    with pytest.raises(TransientDelivery):
        await email_connector(smtp).send(outbound("email", "lea@example.com", CONTENT))


async def test_a_refused_connection_is_transient() -> None:
    port = int(unused_url().rpartition(":")[2])
    connector = SmtpEmailConnector(connector_context(), SmtpSettings(
        host="127.0.0.1", port=port, starttls=False, from_address="news@shop.example", timeout=0.3))
    with pytest.raises(TransientDelivery):
        await connector.send(outbound("email", "lea@example.com", CONTENT))


async def test_an_unusable_address_is_refused_before_connecting(smtp: SmtpStandIn) -> None:
    unusable = ("not-an-address", "léa@exemple.fr", "lea@exämple.fr", "a@b@c", "<a@b.c>", "x@", "a@b.c\r\nBcc: z@z")
    for address in unusable:
        with pytest.raises(PermanentDelivery) as raised:
            await email_connector(smtp).send(outbound("email", address, CONTENT))
        assert raised.value.invalid_address is True


def test_missing_or_bad_settings_name_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as raised:
        load_connector_settings(SmtpEmailConnector)
    assert "OMNICANAL_SMTP_HOST" in str(raised.value)
    assert "OMNICANAL_SMTP_FROM_ADDRESS" in str(raised.value)

    monkeypatch.setenv("OMNICANAL_SMTP_HOST", "smtp.example")
    monkeypatch.setenv("OMNICANAL_SMTP_FROM_ADDRESS", "news@shop.example")
    monkeypatch.setenv("OMNICANAL_SMTP_UNSUBSCRIBE_URL", "https://shop.example/u?c={customer}")
    with pytest.raises(ConfigError, match="OMNICANAL_SMTP_UNSUBSCRIBE_URL"):
        SmtpEmailConnector(connector_context())


@pytest.mark.parametrize("reply", [
    "554 5.7.1 <lea@example.com>: Relay access denied",   # the relay will not relay for us: our setup, not her
    "530 5.7.0 Authentication required",
    "550 5.7.1 Service unavailable; client host blocked",
    "552 5.2.2 Mailbox full",
])
async def test_a_recipient_refused_for_another_reason_than_the_address_keeps_it(smtp: SmtpStandIn,
                                                                                reply: str) -> None:
    smtp.fail_next(at="rcpt", reply=reply)
    with pytest.raises(PermanentDelivery) as raised:
        await email_connector(smtp).send(outbound("email", "lea@example.com", CONTENT))
    assert raised.value.invalid_address is False  # a relay refusing everyone must not empty every profile


@pytest.mark.parametrize("reply", ["550 5.1.1 No such user", "553 5.1.3 Bad recipient address syntax",
                                   "550 Requested action not taken: mailbox unavailable"])
async def test_a_recipient_refused_for_its_address_is_an_invalid_address(smtp: SmtpStandIn, reply: str) -> None:
    smtp.fail_next(at="rcpt", reply=reply)
    with pytest.raises(PermanentDelivery) as raised:
        await email_connector(smtp).send(outbound("email", "nobody@example.com", CONTENT))
    assert raised.value.invalid_address is True

"""Every registered connector, through its public `send`, against its stand-in: what it declares, a success,
a provider failure worth retrying, and a request left unanswered.

A connector registered without a row in CASES fails here: a new connector brings its stand-in along.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from omnicanal.channels import (
    BUILT_IN_ROUTES,
    CHANNELS,
    FALLBACK_CONNECTOR,
    Connector,
    ConnectorSettings,
    discover_connectors,
    load_connector_settings,
)
from omnicanal.errors import TransientDelivery, UnknownDelivery
from standins import (
    FcmStandIn,
    MessengerStandIn,
    SmtpStandIn,
    TwilioStandIn,
    WebhookReceiver,
    connector_context,
    outbound,
)

CONNECTORS = discover_connectors()


@dataclass(frozen=True)
class Case:
    standin: Callable[[], Any]
    address: str
    content: dict[str, Any]
    transient: dict[str, Any] = field(default_factory=lambda: {"status": 500})  # fail_next arguments...
    hang: dict[str, Any] = field(default_factory=lambda: {"hang": True})  # ... for an answer that never comes


CASES: dict[str, Case] = {
    "twilio_sms": Case(TwilioStandIn, "+33612345678", {"body": "hi"}),
    "twilio_whatsapp": Case(TwilioStandIn, "+33612345678", {"body": "hi"}),
    "smtp_email": Case(SmtpStandIn, "lea@example.com", {"subject": "s", "text": "t"},  # SMTP's "500" is a 4xx
                       {"at": "data", "reply": "451 4.3.0 Try again later"}, {"at": "data", "hang": True}),
    "fcm_push": Case(FcmStandIn, "device-token-1", {"title": "t", "body": "b"}),
    "webhook": Case(WebhookReceiver, "store-12-tablet", {"payload": {"k": "v"}}),
    "messenger": Case(MessengerStandIn, "42", {"body": "hi"}, {"status": 500, "code": 2}),
}
ENGINE_ITSELF = {FALLBACK_CONNECTOR, *BUILT_IN_ROUTES.values()}
"""Connectors whose provider is the engine (the outbox, the in-app inbox): they keep messages in Redis, tested
end to end (test_api.py, test_inbox.py)."""
SENDING = sorted(name for name in CONNECTORS if name not in ENGINE_ITSELF)


@pytest.mark.parametrize("name", sorted(CONNECTORS))
def test_declares_what_the_engine_needs(name: str) -> None:
    cls = CONNECTORS[name]
    assert cls.name == name
    assert isinstance(cls.channels, frozenset) and cls.channels <= set(CHANNELS)
    assert cls.rate_limit is None or cls.rate_limit > 0
    if name == FALLBACK_CONNECTOR:
        return
    assert cls.channels, "a provider serves named channels"
    if name in ENGINE_ITSELF:
        return
    assert any("rate_limit" in vars(k) for k in cls.__mro__ if k is not Connector), "declare a default rate"
    assert cls.settings_model is not None and issubclass(cls.settings_model, ConnectorSettings)
    assert str(cls.settings_model.model_config.get("env_prefix", "")).startswith("OMNICANAL_")
    assert name in CASES, f"add a conformance case (and a stand-in) for {name}"


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch) -> Callable[[type[Connector], Any], Connector]:
    """Route a connector to a started stand-in through the environment, as in production, with short timeouts."""

    def build(cls: type[Connector], standin: Any) -> Connector:
        assert cls.settings_model is not None
        prefix = str(cls.settings_model.model_config["env_prefix"])
        for name, value in {**standin.env(), f"{prefix}TIMEOUT": "0.3"}.items():
            monkeypatch.setenv(name, value)
        return cls(connector_context(), load_connector_settings(cls))

    return build


@pytest.mark.parametrize("name", SENDING)
async def test_sends_then_fails_as_told(name: str, configure: Callable[[type[Connector], Any], Connector]) -> None:
    case, cls = CASES[name], CONNECTORS[name]
    channel = next(iter(cls.channels))
    async with case.standin() as standin, configure(cls, standin) as connector:
        receipt = await connector.send(outbound(channel, case.address, case.content))
        assert receipt.status in ("sent", "queued")

        standin.fail_next(**case.transient)
        with pytest.raises(TransientDelivery):
            await connector.send(outbound(channel, case.address, case.content))

        standin.fail_next(**case.hang)
        with pytest.raises(UnknownDelivery):
            await connector.send(outbound(channel, case.address, case.content))

"""SMS and WhatsApp through Twilio's Messages API, with the official client in its async form.

Settings (environment, shared by both connectors):

    OMNICANAL_TWILIO_ACCOUNT_SID            required
    OMNICANAL_TWILIO_AUTH_TOKEN             required, secret
    OMNICANAL_TWILIO_FROM_NUMBER            SMS sender (E.164 number or alphanumeric ID) ...
    OMNICANAL_TWILIO_WHATSAPP_FROM          ... WhatsApp sender number (the `whatsapp:` prefix is added) ...
    OMNICANAL_TWILIO_MESSAGING_SERVICE_SID  ... or a Messaging Service (picks the sender from its pool if none set)
    OMNICANAL_TWILIO_API_BASE_URL           another API host (a regional one, or a local stand-in in tests)
    OMNICANAL_TWILIO_TIMEOUT                seconds for the whole request, default 10

TWILIO_REGION and TWILIO_EDGE are ignored on purpose: they rewrite the host, so the base URL alone says where
messages go. Status callbacks go to `{OMNICANAL_PUBLIC_URL}/webhooks/twilio/status` when the public URL is set.

Twilio accepts a message into a per-sender queue and drains it at the sender's throughput (1 segment/s for a US
long code, 3 for toll-free, 100 for a short code, 80 for a WhatsApp sender); a queue holds up to 4 hours of
traffic. The default rates below are what one typical sender drains; set OMNICANAL_RATE_LIMITS to your own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, ClassVar

import aiohttp
from pydantic import Field, PositiveFloat, SecretStr, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from omnicanal.channels import Connector, ConnectorContext, ConnectorSettings, OutboundMessage, Receipt
from omnicanal.errors import DeliveryError, PermanentDelivery, TransientDelivery, UnknownDelivery

from ._http import retry_after
from ._settings import configured

OPTED_OUT = 21610  # the recipient texted STOP: legal opt-out, the number itself is fine
INVALID_NUMBERS = frozenset({21211, 21614})  # not a phone number / not a mobile number
OUTSIDE_WHATSAPP_WINDOW = 63016  # free-form WhatsApp message more than 24 h after the customer's last one


class TwilioSettings(ConnectorSettings):
    model_config = SettingsConfigDict(env_prefix="OMNICANAL_TWILIO_")

    account_sid: str
    auth_token: SecretStr
    messaging_service_sid: str | None = None
    api_base_url: str | None = None
    timeout: PositiveFloat = 10.0

    @property
    def sender(self) -> str | None:
        """The `From` of each message; None lets the Messaging Service choose."""
        return None


def _sender_required(value: str | None, info: ValidationInfo) -> str | None:
    if value is None and info.data.get("messaging_service_sid") is None:
        raise ValueError("required unless OMNICANAL_TWILIO_MESSAGING_SERVICE_SID is set")
    return value


class TwilioSmsSettings(TwilioSettings):
    from_number: str | None = Field(default=None, validate_default=True)
    check_sender = field_validator("from_number")(_sender_required)

    @property
    def sender(self) -> str | None:
        return self.from_number


class TwilioWhatsAppSettings(TwilioSettings):
    whatsapp_from: str | None = Field(default=None, validate_default=True)
    check_sender = field_validator("whatsapp_from")(_sender_required)

    @property
    def sender(self) -> str | None:
        return self.whatsapp_from


@dataclass(slots=True)
class _Exchange:
    """What aiohttp's tracing saw of one send: the client library reports neither of these itself."""

    sent: bool = False
    retry_after: float | None = None
    status: int | None = None
    """The HTTP status of Twilio's answer, once its head came back."""


# Trace callbacks run inside the awaiting task, so a context variable ties them to the send that awaits them.
_exchange: ContextVar[_Exchange | None] = ContextVar("omnicanal_twilio_exchange", default=None)


async def _on_headers_sent(_session: aiohttp.ClientSession, _ctx: SimpleNamespace,
                           _params: aiohttp.TraceRequestHeadersSentParams) -> None:
    if (exchange := _exchange.get()) is not None:
        exchange.sent = True


async def _on_request_end(_session: aiohttp.ClientSession, _ctx: SimpleNamespace,
                          params: aiohttp.TraceRequestEndParams) -> None:
    if (exchange := _exchange.get()) is not None:
        exchange.retry_after = retry_after(params.response.headers)
        exchange.status = params.response.status


def _translate(exc: Exception, exchange: _Exchange) -> DeliveryError:
    """Twilio's answer or the transport failure, as the DeliveryError the engine acts on."""
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        status, code = int(exc.status), exc.code
        detail = f"Twilio error {code} (HTTP {status}): {getattr(exc, 'msg', None) or getattr(exc, 'title', '')}"
        if code in INVALID_NUMBERS:
            return PermanentDelivery(detail, invalid_address=True)
        if code in (OPTED_OUT, OUTSIDE_WHATSAPP_WINDOW):
            return PermanentDelivery(detail)
        if status == 429 or status >= 500:
            return TransientDelivery(detail, retry_after=exchange.retry_after)
        return PermanentDelivery(detail)
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if exchange.sent:
        return UnknownDelivery(f"Twilio: no complete answer after the request was sent ({reason})")
    return TransientDelivery(f"Twilio: the request could not be sent ({reason})")


def _content_fields(content: Mapping[str, Any]) -> dict[str, str]:
    """Free text, or an approved template of Twilio's Content API (`content_sid` + numbered variables).

    WhatsApp outside the 24 h window takes only templates Meta approved: the engine leaves `content_sid` in the
    content exactly then, and the template's `body` stays for the timeline, not for Twilio.
    """
    if content_sid := content.get("content_sid"):
        variables = {str(key): str(value) for key, value in (content.get("content_variables") or {}).items()}
        return {"content_sid": str(content_sid), "content_variables": json.dumps(variables, ensure_ascii=False)}
    return {"body": str(content.get("body", ""))}


class _TwilioConnector(Connector):
    """One Twilio account; subclasses say which channel, which sender, and how addresses are written."""

    provider: ClassVar[str | None] = "twilio"
    address_prefix: ClassVar[str] = ""
    settings_model: ClassVar[type[TwilioSettings]]

    def __init__(self, context: ConnectorContext, settings: ConnectorSettings | None = None) -> None:
        super().__init__(context, settings)
        self.config = configured(type(self), settings, self.settings_model)
        self._http: AsyncTwilioHttpClient | None = None
        self._client: Any = None

    def callback_secret(self) -> str:
        """Twilio signs its callbacks with the account's auth token."""
        return self.config.auth_token.get_secret_value()

    def _twilio(self) -> Any:
        """The client, built on first send: its aiohttp session needs a running loop."""
        if self._client is None:
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(_on_headers_sent)
            trace.on_request_end.append(_on_request_end)
            self._http = AsyncTwilioHttpClient(trace_configs=[trace])
            client = Client(self.config.account_sid, self.config.auth_token.get_secret_value(),
                            http_client=self._http, environment={})
            if self.config.api_base_url:
                client.api.base_url = self.config.api_base_url.rstrip("/")
            self._client = client
        return self._client

    def _address(self, number: str) -> str:
        prefix = self.address_prefix
        return number if not prefix or number.startswith(prefix) else prefix + number

    async def send(self, message: OutboundMessage) -> Receipt:
        fields = {"to": self._address(message.to), **_content_fields(message.content)}
        if self.config.sender:
            fields["from_"] = self._address(self.config.sender)
        if self.config.messaging_service_sid:
            fields["messaging_service_sid"] = self.config.messaging_service_sid
        if self.context.public_url:
            fields["status_callback"] = f"{self.context.public_url.rstrip('/')}/webhooks/twilio/status"
        exchange = _Exchange()
        token = _exchange.set(exchange)
        try:
            async with asyncio.timeout(self.config.timeout):
                created = await self._twilio().messages.create_async(**fields)
        except (TwilioRestException, TwilioServiceException, aiohttp.ClientError, TimeoutError) as exc:
            raise _translate(exc, exchange) from exc
        except Exception:  # the client could not read the answer: a 2xx is still Twilio taking the message
            if exchange.status is not None and 200 <= exchange.status < 300:
                return Receipt(status="queued", provider_id=None)
            raise
        finally:
            _exchange.reset(token)
        return Receipt(status=created.status or "queued", provider_id=created.sid)

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = self._client = None


class TwilioSmsConnector(_TwilioConnector):
    name: ClassVar[str] = "twilio_sms"
    channels: ClassVar[frozenset[str]] = frozenset({"sms"})
    settings_model: ClassVar[type[TwilioSettings]] = TwilioSmsSettings
    rate_limit: ClassVar[float | None] = 10.0  # between toll-free (3/s) and short code (100/s); Twilio queues


class TwilioWhatsAppConnector(_TwilioConnector):
    name: ClassVar[str] = "twilio_whatsapp"
    channels: ClassVar[frozenset[str]] = frozenset({"whatsapp"})
    settings_model: ClassVar[type[TwilioSettings]] = TwilioWhatsAppSettings
    rate_limit: ClassVar[float | None] = 80.0  # a WhatsApp sender's default throughput
    address_prefix: ClassVar[str] = "whatsapp:"

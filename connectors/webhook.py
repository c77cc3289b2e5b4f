"""Signed JSON POSTs to in-house systems (store tablet, call-centre desktop, CRM) as a channel of their own.

Settings (environment):

    OMNICANAL_WEBHOOK_SECRET   required, secret: the HMAC key the receiver shares
    OMNICANAL_WEBHOOK_URL      where to POST when the customer's `webhook` address is not itself a URL
    OMNICANAL_WEBHOOK_TIMEOUT  seconds to connect, and to wait for the answer; default 10

The body is `{"message_id", "customer_id", "channel", "to", "template", "locale", "journey", "step",
"content"}`, sent with

    X-Omnicanal-Timestamp: <unix seconds>
    X-Omnicanal-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>" with the secret>
    X-Omnicanal-Message-Id: <message_id>   (the same on a retry: drop duplicates by it)

The timestamp is signed with the body so a captured request cannot be replayed later. A receiver checks the
raw body before parsing it:

    from omnicanal_connectors.webhook import verify_signature

    if not verify_signature(secret, request.headers["X-Omnicanal-Timestamp"], raw_body,
                            request.headers["X-Omnicanal-Signature"]):
        return 401

A 2xx answer means delivered (an `{"id": ...}` body becomes the provider id); 408, 429 and 5xx are retried
(honouring Retry-After); any other status is final.

The URL may come from a customer's profile, so it only reaches public addresses, or hosts and networks listed in
OMNICANAL_OUTBOUND_ALLOW (omnicanal/outbound.py): a webhook to 169.254.169.254 or 10.0.0.5 fails for good,
before any connection, with the reason on the message.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import ClassVar

from pydantic import PositiveFloat, SecretStr
from pydantic_settings import SettingsConfigDict

from omnicanal.channels import ConnectorContext, ConnectorSettings, OutboundMessage, Receipt
from omnicanal.codec import encode
from omnicanal.errors import PermanentDelivery, TransientDelivery
from omnicanal.outbound import Blocked, pinned_url, target_of
from omnicanal.signing import same_text

from ._http import HttpConnector, post, status_error
from ._settings import configured

SIGNATURE_HEADER = "X-Omnicanal-Signature"
TIMESTAMP_HEADER = "X-Omnicanal-Timestamp"
MESSAGE_ID_HEADER = "X-Omnicanal-Message-Id"
TOLERANCE = 300.0  # seconds a receiver accepts between signing and checking


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, timestamp: str, body: bytes, header: str, *,
                     tolerance: float = TOLERANCE, now: float | None = None) -> bool:
    """True when `header` signs `body` at `timestamp` with `secret`, and the timestamp is recent.

    Compares in constant time; `tolerance` (seconds, either way) bounds how old a request may be replayed.
    """
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and same_text(header, sign(secret, timestamp, body))


class WebhookSettings(ConnectorSettings):
    model_config = SettingsConfigDict(env_prefix="OMNICANAL_WEBHOOK_")

    secret: SecretStr
    url: str | None = None
    timeout: PositiveFloat = 10.0


def _is_url(address: str) -> bool:
    return address.startswith(("https://", "http://"))


class WebhookConnector(HttpConnector):
    name: ClassVar[str] = "webhook"
    channels: ClassVar[frozenset[str]] = frozenset({"webhook"})
    settings_model: ClassVar[type[ConnectorSettings] | None] = WebhookSettings
    # In-house receivers publish no rate: a pace a modest web app takes; raise it with OMNICANAL_RATE_LIMITS.
    rate_limit: ClassVar[float | None] = 20.0

    def __init__(self, context: ConnectorContext, settings: ConnectorSettings | None = None) -> None:
        super().__init__(context, settings)
        self.config = configured(type(self), settings, WebhookSettings)

    async def send(self, message: OutboundMessage) -> Receipt:
        url = message.to if _is_url(message.to) else self.config.url
        if url is None:
            raise PermanentDelivery(f"webhook address {message.to!r} is not a URL and OMNICANAL_WEBHOOK_URL is not "
                                    "set: nowhere to POST")
        body = encode({
            "message_id": message.id, "customer_id": message.customer_id, "channel": message.channel,
            "to": message.to, "template": message.template, "locale": message.locale, "journey": message.journey,
            "step": message.step, "content": dict(message.content),
        })
        target = target_of(url)
        if target is None:
            raise PermanentDelivery(f"webhook address {url!r} is not a valid URL")
        address = await self.context.outbound.address_of(target.host, target.port)
        if isinstance(address, Blocked):
            error = TransientDelivery if address.transient else PermanentDelivery
            raise error(f"webhook receiver: {address.reason}")
        timestamp = str(int(time.time()))
        headers = {
            "Host": target.host_header,
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.config.secret.get_secret_value(), timestamp, body),
            MESSAGE_ID_HEADER: message.id,
        }
        reply = await post(self._session(), "webhook receiver", pinned_url(target.parts, address),
                           timeout=self.config.timeout, body=body, headers=headers,
                           server_hostname=target.host if target.tls else None)
        if not reply.ok:
            raise status_error("webhook receiver", reply, reply.text[:200])
        provider_id = reply.body.get("id") if isinstance(reply.body, dict) else None
        return Receipt(status="sent", provider_id=str(provider_id) if provider_id is not None else None)

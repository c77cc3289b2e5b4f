"""Facebook Messenger through the Graph API's Send API.

    POST {api_base_url}/{api_version}/{page_id}/messages        (form-encoded, as in Meta's reference)
    recipient={"id": "<PSID>"}  messaging_type=UPDATE  message={"text": "..."}  access_token=<page token>

The page access token travels in the form body rather than the query string, so it never appears in a URL
(proxy logs, error messages). A journey's message is proactive, hence `UPDATE`, which Messenger allows within
24 hours of the person's last message; outside that window only a message tag (OMNICANAL_MESSENGER_TAG, e.g.
HUMAN_AGENT, never for promotions) makes it `MESSAGE_TAG`.

Settings (environment):

    OMNICANAL_MESSENGER_PAGE_ACCESS_TOKEN  required, secret
    OMNICANAL_MESSENGER_PAGE_ID            default `me` (the page the token belongs to)
    OMNICANAL_MESSENGER_API_BASE_URL       default https://graph.facebook.com
    OMNICANAL_MESSENGER_API_VERSION        default v25.0
    OMNICANAL_MESSENGER_TAG                optional message tag
    OMNICANAL_MESSENGER_TIMEOUT            seconds to connect, and to wait for the answer; default 10
"""

from __future__ import annotations

import json
from typing import ClassVar

from pydantic import PositiveFloat, SecretStr
from pydantic_settings import SettingsConfigDict

from omnicanal.channels import ConnectorContext, ConnectorSettings, OutboundMessage, Receipt
from omnicanal.errors import DeliveryError, PermanentDelivery, TransientDelivery

from ._http import HttpConnector, HttpReply, post, retry_after, status_error
from ._settings import configured

UNAVAILABLE = 551  # "This person isn't available right now": blocked the page, or left Messenger
NO_MATCHING_USER = (100, 2018001)  # (code, subcode): the PSID is unknown to this page
RATE_LIMITED = frozenset({4, 17, 32, 613})  # application, user, page, and Messenger's own call limits
TEMPORARY = frozenset({1, 2})  # unknown error, service temporarily unavailable


class MessengerSettings(ConnectorSettings):
    model_config = SettingsConfigDict(env_prefix="OMNICANAL_MESSENGER_")

    page_access_token: SecretStr
    page_id: str = "me"
    api_base_url: str = "https://graph.facebook.com"
    api_version: str = "v25.0"
    tag: str | None = None
    timeout: PositiveFloat = 10.0


def _error(reply: HttpReply) -> DeliveryError:
    """The Graph API error object ({"error": {"code", "error_subcode", "message", ...}}) as a DeliveryError."""
    error = reply.body.get("error") if isinstance(reply.body, dict) else None
    if not isinstance(error, dict):
        return status_error("Messenger", reply, reply.text[:200])
    code, subcode = error.get("code"), error.get("error_subcode")
    detail = f"Graph API error {code}" + (f"/{subcode}" if subcode else "") + f": {error.get('message', '')}"
    if code == UNAVAILABLE or (code, subcode) == NO_MATCHING_USER:
        return PermanentDelivery(f"Messenger: {detail}", invalid_address=True)
    if code in RATE_LIMITED or code in TEMPORARY or error.get("is_transient") is True:
        return TransientDelivery(f"Messenger: {detail}", retry_after=retry_after(reply.headers))
    if code == 10 or (isinstance(code, int) and 200 <= code <= 299):  # permissions, or outside the 24 h window
        return PermanentDelivery(f"Messenger: {detail}")
    return status_error("Messenger", reply, detail)


class MessengerConnector(HttpConnector):
    name: ClassVar[str] = "messenger"
    channels: ClassVar[frozenset[str]] = frozenset({"messenger"})
    settings_model: ClassVar[type[ConnectorSettings] | None] = MessengerSettings
    # The Send API allows 300 text messages/s per page, but a page sending over 40/s has its inbox frozen
    # until the volume drops (Messenger Platform rate limits): stay under that.
    rate_limit: ClassVar[float | None] = 40.0

    def __init__(self, context: ConnectorContext, settings: ConnectorSettings | None = None) -> None:
        super().__init__(context, settings)
        self.config = configured(type(self), settings, MessengerSettings)
        base = self.config.api_base_url.rstrip("/")
        self._url = f"{base}/{self.config.api_version}/{self.config.page_id}/messages"

    async def send(self, message: OutboundMessage) -> Receipt:
        form = {
            "recipient": json.dumps({"id": message.to}),
            "messaging_type": "MESSAGE_TAG" if self.config.tag else "UPDATE",
            "message": json.dumps({"text": str(message.content.get("body", ""))}, ensure_ascii=False),
            "access_token": self.config.page_access_token.get_secret_value(),
        }
        if self.config.tag:
            form["tag"] = self.config.tag
        reply = await post(self._session(), "Messenger", self._url, timeout=self.config.timeout, form=form)
        if not reply.ok:
            raise _error(reply)
        message_id = reply.body.get("message_id") if isinstance(reply.body, dict) else None
        return Receipt(status="sent", provider_id=message_id if isinstance(message_id, str) else None)

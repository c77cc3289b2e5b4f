"""A stand-in for Twilio's Messages API: `POST /2010-04-01/Accounts/{sid}/Messages.json`, form-encoded."""

from __future__ import annotations

import base64
import uuid
from email.utils import formatdate
from typing import Any

from aiohttp import web

from .http import Failure, HttpStandIn, Received

DEFAULT_MESSAGES = {
    21211: "The 'To' number is not a valid phone number.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    63016: "Failed to send freeform message because you are outside the allowed window.",
    20429: "Too Many Requests",
}


class TwilioStandIn(HttpStandIn):
    """Answers like Twilio: 201 with the message resource (`sid`, `status: queued`), errors as
    `{"code", "message", "more_info", "status"}`; checks HTTP Basic auth with the account SID and token."""

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "standin-auth-token",
                 from_number: str = "+15005550006", whatsapp_from: str = "+14155238886") -> None:
        super().__init__()
        self.account_sid, self.auth_token = account_sid, auth_token
        self.from_number, self.whatsapp_from = from_number, whatsapp_from

    @property
    def messages(self) -> list[dict[str, str]]:
        """The form of every message request received."""
        return [r.form for r in self.received]

    def env(self) -> dict[str, str]:
        return {
            "OMNICANAL_TWILIO_ACCOUNT_SID": self.account_sid,
            "OMNICANAL_TWILIO_AUTH_TOKEN": self.auth_token,
            "OMNICANAL_TWILIO_FROM_NUMBER": self.from_number,
            "OMNICANAL_TWILIO_WHATSAPP_FROM": self.whatsapp_from,
            "OMNICANAL_TWILIO_API_BASE_URL": self.url,
        }

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create)

    def error_body(self, failure: Failure) -> Any:
        code = failure.code if failure.code is not None else failure.status
        message = failure.message or DEFAULT_MESSAGES.get(int(code), "Error")
        return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": failure.status}

    def _authorized(self, received: Received, sid: str) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return sid == self.account_sid and received.headers.get("Authorization") == f"Basic {expected}"

    async def _create(self, request: web.Request) -> web.Response:
        received = await self.record(request)
        if (failed := await self.failure()) is not None:
            return failed
        if not self._authorized(received, request.match_info["sid"]):
            return web.json_response(self.error_body(Failure(401, 20003, "Authenticate")), status=401)
        form = received.form
        if "To" not in form:
            return web.json_response(self.error_body(Failure(400, 21604, "A 'To' phone number is required.")),
                                     status=400)
        if "Body" not in form and "ContentSid" not in form:
            return web.json_response(self.error_body(Failure(400, 21619, "A text message body or media urls must be "
                                                                       "specified.")), status=400)
        if "From" not in form and "MessagingServiceSid" not in form:
            return web.json_response(self.error_body(Failure(400, 21603, "A 'From' phone number is required.")),
                                     status=400)
        sid = "SM" + uuid.uuid4().hex
        now = formatdate(usegmt=True)
        return web.json_response({
            "sid": sid, "account_sid": self.account_sid, "to": form["To"], "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"), "body": form.get("Body", ""),
            "status": "queued", "num_segments": "1", "num_media": "0", "direction": "outbound-api",
            "api_version": "2010-04-01", "price": None, "price_unit": "USD", "error_code": None,
            "error_message": None, "date_created": now, "date_updated": now, "date_sent": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json", "subresource_uris": {},
        }, status=201)

"""A stand-in for the Messenger Send API (Graph API): `POST /{version}/{page}/messages`, form-encoded."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from .http import Failure, HttpStandIn, Received

DEFAULT_MESSAGES = {
    551: "This person isn't available right now.",
    613: "Calls to this api have exceeded the rate limit.",
    4: "Application request limit reached",
    10: "This message is sent outside of allowed window.",
    190: "Invalid OAuth access token.",
}


class MessengerStandIn(HttpStandIn):
    """Answers `{"recipient_id", "message_id"}`; errors as Graph API error objects (HTTP 400 by default)."""

    def __init__(self, page_access_token: str = "standin-page-token", api_version: str = "v25.0") -> None:
        super().__init__()
        self.page_access_token = page_access_token
        self.api_version = api_version

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Each request's form, with `recipient` and `message` decoded from their JSON."""
        return [self._decoded(r) for r in self.received]

    def env(self) -> dict[str, str]:
        return {"OMNICANAL_MESSENGER_PAGE_ACCESS_TOKEN": self.page_access_token,
                "OMNICANAL_MESSENGER_API_BASE_URL": self.url, "OMNICANAL_MESSENGER_API_VERSION": self.api_version}

    def fail_next(self, count: int = 1, *, status: int = 400, code: int | str | None = None,
                  message: str | None = None, retry_after: float | None = None, hang: bool = False,
                  body: Any = None) -> None:
        """As the base, but the Graph API answers its errors with HTTP 400 unless told otherwise."""
        super().fail_next(count, status=status, code=code, message=message, retry_after=retry_after, hang=hang,
                          body=body)

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/{version}/{page}/messages", self._send)

    def error_body(self, failure: Failure) -> Any:
        code = failure.code if failure.code is not None else (2 if failure.status >= 500 else 100)
        return {"error": {"message": failure.message or DEFAULT_MESSAGES.get(int(code), "Error"),
                          "type": "OAuthException", "code": code, "fbtrace_id": "standin"}}

    @staticmethod
    def _decoded(received: Received) -> dict[str, Any]:
        form: dict[str, Any] = dict(received.form)
        for key in ("recipient", "message"):
            if key in form:
                form[key] = json.loads(form[key])
        return form

    async def _send(self, request: web.Request) -> web.Response:
        received = await self.record(request)
        if (failed := await self.failure()) is not None:
            return failed
        form = self._decoded(received)
        if form.get("access_token") != self.page_access_token:
            return web.json_response(self.error_body(Failure(400, 190)), status=400)
        return web.json_response({"recipient_id": form["recipient"]["id"], "message_id": f"m_{uuid.uuid4().hex}"})

"""A stand-in for an in-house webhook receiver: checks the signature as a real receiver would."""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import web
from omnicanal_connectors.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature

from .http import Failure, HttpStandIn


class WebhookReceiver(HttpStandIn):
    """Accepts `POST /hooks/<anything>`: 200 `{"id": ...}` when signed with `secret`, 401 otherwise."""

    def __init__(self, secret: str = "standin-webhook-secret") -> None:
        super().__init__()
        self.secret = secret
        self.verified: list[bool] = []  # per request received: did its signature check out
        self._serial = itertools.count(1)

    @property
    def default_url(self) -> str:
        return f"{self.url}/hooks/default"

    def env(self) -> dict[str, str]:
        return {"OMNICANAL_WEBHOOK_SECRET": self.secret, "OMNICANAL_WEBHOOK_URL": self.default_url}

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/hooks/{name:.*}", self._receive)

    def error_body(self, failure: Failure) -> Any:
        return {"error": failure.message or f"standin failure {failure.status}"}

    async def _receive(self, request: web.Request) -> web.Response:
        received = await self.record(request)
        valid = verify_signature(self.secret, received.headers.get(TIMESTAMP_HEADER, ""), received.body,
                                 received.headers.get(SIGNATURE_HEADER, ""))
        self.verified.append(valid)
        if (failed := await self.failure()) is not None:
            return failed
        if not valid:
            return web.json_response({"error": "bad signature"}, status=401)
        return web.json_response({"id": f"wh-{next(self._serial)}"})

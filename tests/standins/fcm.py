"""A stand-in for FCM's HTTP v1 send endpoint and Google's OAuth2 token endpoint.

`service_account_file(dir)` writes a service account key whose `token_uri` is this stand-in, so the connector's
JWT flow runs for real: the stand-in checks the assertion's RS256 signature, audience and scope, then issues a
token that the send endpoint accepts.
"""

from __future__ import annotations

import functools
import itertools
import json
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .http import Failure, HttpStandIn

FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


@functools.cache
def _private_key() -> rsa.RSAPrivateKey:
    """One key for the whole test run: generating RSA keys is slow."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FcmStandIn(HttpStandIn):
    def __init__(self, project_id: str = "standin-project", static_token: str = "standin-static-token") -> None:
        super().__init__()
        self.project_id = project_id
        self.static_token = static_token
        self.accepted_tokens = {static_token}
        self.token_requests: list[dict[str, Any]] = []  # the verified JWT claims of each token exchange
        self._serial = itertools.count(1)

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The `message` object of every send request received."""
        return [r.json["message"] for r in self.received if r.path.endswith(":send")]

    def env(self) -> dict[str, str]:
        return {"OMNICANAL_FCM_PROJECT_ID": self.project_id, "OMNICANAL_FCM_ACCESS_TOKEN": self.static_token,
                "OMNICANAL_FCM_API_BASE_URL": self.url}

    def revoke_tokens(self) -> None:
        """Every token issued so far now gets 401, as after a key rotation."""
        self.accepted_tokens.clear()

    def service_account_file(self, directory: Path) -> Path:
        pem = _private_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()).decode()
        path = directory / "service-account.json"
        path.write_text(json.dumps({
            "type": "service_account", "project_id": self.project_id, "private_key_id": "standin-key-1",
            "private_key": pem, "client_email": f"omnicanal@{self.project_id}.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": f"{self.url}/token",
        }))
        return path

    def setup(self, app: web.Application) -> None:
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)

    def error_body(self, failure: Failure) -> Any:
        error: dict[str, Any] = {"code": failure.status, "message": failure.message or "standin failure",
                                 "status": STATUS_NAMES.get(failure.status, "UNKNOWN")}
        if failure.code is not None:
            error["details"] = [{"@type": FCM_ERROR, "errorCode": failure.code}]
        return {"error": error}

    async def _token(self, request: web.Request) -> web.Response:
        received = await self.record(request)
        if (failed := await self.failure()) is not None:
            return failed
        form = received.form
        try:
            claims = jwt.decode(form.get("assertion", ""), _private_key().public_key(), algorithms=["RS256"],
                                audience=f"{self.url}/token")
        except jwt.InvalidTokenError as exc:
            return web.json_response({"error": "invalid_grant", "error_description": str(exc)}, status=400)
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or claims.get("scope") != SCOPE:
            return web.json_response({"error": "invalid_request"}, status=400)
        self.token_requests.append(claims)
        token = f"ya29.standin-{next(self._serial)}"
        self.accepted_tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    async def _send(self, request: web.Request) -> web.Response:
        received = await self.record(request)
        if (failed := await self.failure()) is not None:
            return failed
        token = received.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.accepted_tokens:
            failure = Failure(401, message="Request had invalid authentication credentials.")
            return web.json_response(self.error_body(failure), status=401)
        if request.match_info["project"] != self.project_id:
            return web.json_response(self.error_body(Failure(404, message="project not found")), status=404)
        return web.json_response({"name": f"projects/{self.project_id}/messages/{next(self._serial)}"})

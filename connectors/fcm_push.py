"""Push notifications through Firebase Cloud Messaging's HTTP v1 API, with our own aiohttp call.

firebase-admin hard-codes Google's hosts and is synchronous; one POST per message is all FCM needs:

    POST {api_base_url}/v1/projects/{project_id}/messages:send
    Authorization: Bearer <OAuth2 access token>
    {"message": {"token": "<device token>", "notification": {"title", "body"}, "data": {str: str}}}

Settings (environment):

    OMNICANAL_FCM_PROJECT_ID            required
    OMNICANAL_FCM_SERVICE_ACCOUNT_FILE  a service account's JSON key: tokens are minted from it (RS256 JWT
                                        exchanged at the file's token_uri) and cached until shortly before expiry
    OMNICANAL_FCM_ACCESS_TOKEN          ... or a ready access token, for tests and short-lived setups
    OMNICANAL_FCM_API_BASE_URL          default https://fcm.googleapis.com
    OMNICANAL_FCM_TIMEOUT               seconds to connect, and to wait for the answer; default 10

Another way of getting tokens (workload identity, a metadata server) is a `TokenProvider` passed to the
connector's constructor.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, ClassVar, Protocol

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import Field, PositiveFloat, SecretStr, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from omnicanal.channels import ConnectorContext, ConnectorSettings, OutboundMessage, Receipt
from omnicanal.errors import ConfigError, DeliveryError, PermanentDelivery, TransientDelivery, UnknownDelivery

from ._http import HttpConnector, HttpReply, post, status_error
from ._settings import configured

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
# The device token is dead or belongs to another Firebase project: the engine drops it from the profile.
DEAD_TOKEN_CODES = frozenset({"UNREGISTERED", "SENDER_ID_MISMATCH"})


class FcmSettings(ConnectorSettings):
    model_config = SettingsConfigDict(env_prefix="OMNICANAL_FCM_")

    project_id: str
    service_account_file: Path | None = None
    access_token: SecretStr | None = Field(default=None, validate_default=True)
    api_base_url: str = "https://fcm.googleapis.com"
    timeout: PositiveFloat = 10.0

    @field_validator("access_token")
    @classmethod
    def _a_credential(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None and info.data.get("service_account_file") is None:
            raise ValueError("required unless OMNICANAL_FCM_SERVICE_ACCOUNT_FILE is set (a service account key)")
        return value


class TokenProvider(Protocol):
    """Gives the OAuth2 access token for the next request; `invalidate` after FCM refused it."""

    async def token(self, session: aiohttp.ClientSession) -> str: ...

    def invalidate(self) -> None: ...


class StaticToken:
    """A token given in the settings: nothing to refresh."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self, session: aiohttp.ClientSession) -> str:
        return self._token

    def invalidate(self) -> None:
        """Nothing to do: the next request retries the same token."""


class ServiceAccountToken:
    """Google's service-account flow (RFC 7523): a signed JWT exchanged at `token_uri` for an access token.

    The key is read and checked at start, so a bad file stops start-up rather than every send. The token is
    cached until a minute before it expires, and one refresh at a time runs however many sends wait for it.
    """

    LIFETIME = 3600  # seconds; the longest Google accepts for the assertion
    MARGIN = 60.0

    def __init__(self, path: Path, timeout: float) -> None:
        where = f"OMNICANAL_FCM_SERVICE_ACCOUNT_FILE ({path})"
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
            self._email, self._key_id, self._token_uri = info["client_email"], info["private_key_id"], info["token_uri"]
            key = load_pem_private_key(str(info["private_key"]).encode(), password=None)
            if not isinstance(key, RSAPrivateKey):
                raise ValueError("private_key is not an RSA private key")
            self._key = key
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read the file: {exc.strerror}") from exc
        except (ValueError, TypeError) as exc:  # not JSON, or not a PEM RSA private key
            raise ConfigError(f"{where}: not a service account JSON key: {exc}") from exc
        except KeyError as exc:
            raise ConfigError(f"{where}: the key file has no {exc.args[0]!r}") from exc
        self._timeout = timeout
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self, session: aiohttp.ClientSession) -> str:
        async with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._token, lifetime = await self._exchange(session)
                self._expires_at = time.monotonic() + lifetime - self.MARGIN
            return self._token

    def invalidate(self) -> None:
        self._token = None

    async def _exchange(self, session: aiohttp.ClientSession) -> tuple[str, float]:
        now = int(time.time())
        claims = {"iss": self._email, "scope": SCOPE, "aud": self._token_uri, "iat": now, "exp": now + self.LIFETIME}
        assertion = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._key_id})
        try:
            reply = await post(session, "FCM token endpoint", self._token_uri, timeout=self._timeout,
                               form={"grant_type": JWT_BEARER, "assertion": assertion})
        except UnknownDelivery as exc:  # whatever became of the token request, the message itself never left
            raise TransientDelivery(str(exc)) from exc
        body = reply.body if isinstance(reply.body, dict) else {}
        if not reply.ok or not isinstance(body.get("access_token"), str):
            detail = body.get("error_description") or body.get("error") or reply.text[:200]
            raise status_error("FCM token endpoint", reply, f"no access token: {detail}")
        return body["access_token"], float(body.get("expires_in", self.LIFETIME))


def _error(reply: HttpReply) -> DeliveryError:
    """FCM's error body (google.rpc.Status with FcmError details) as the DeliveryError it means."""
    error = reply.body.get("error", {}) if isinstance(reply.body, dict) else {}
    details = [d for d in error.get("details", []) if isinstance(d, dict)] if isinstance(error, dict) else []
    codes = {d.get("errorCode") for d in details if d.get("@type") == FCM_ERROR}
    fields = {v.get("field") for d in details if d.get("@type") == BAD_REQUEST for v in d.get("fieldViolations", [])}
    detail = f"{error.get('status', '')} {'/'.join(sorted(c for c in codes if c))}: {error.get('message', '')}"
    if codes & DEAD_TOKEN_CODES:
        return PermanentDelivery(f"FCM: {detail}", invalid_address=True)
    # An INVALID_ARGUMENT names the faulty field, except for a malformed device token, which comes bare.
    if "INVALID_ARGUMENT" in codes and (not fields or "message.token" in fields):
        return PermanentDelivery(f"FCM: {detail}", invalid_address=True)
    return status_error("FCM", reply, detail)


class FcmPushConnector(HttpConnector):
    name: ClassVar[str] = "fcm_push"
    channels: ClassVar[frozenset[str]] = frozenset({"push"})
    settings_model: ClassVar[type[ConnectorSettings] | None] = FcmSettings
    rate_limit: ClassVar[float | None] = 10_000.0  # FCM's default quota: 600,000 messages a minute per project

    def __init__(self, context: ConnectorContext, settings: ConnectorSettings | None = None, *,
                 token_provider: TokenProvider | None = None) -> None:
        super().__init__(context, settings)
        self.config = configured(type(self), settings, FcmSettings)
        if token_provider is not None:
            self._tokens: TokenProvider = token_provider
        elif self.config.access_token is not None:
            self._tokens = StaticToken(self.config.access_token.get_secret_value())
        else:
            assert self.config.service_account_file is not None  # the settings validator guarantees one of them
            self._tokens = ServiceAccountToken(self.config.service_account_file, self.config.timeout)
        self._url = f"{self.config.api_base_url.rstrip('/')}/v1/projects/{self.config.project_id}/messages:send"

    async def send(self, message: OutboundMessage) -> Receipt:
        content = message.content
        payload: dict[str, Any] = {
            "token": message.to,
            "notification": {"title": str(content.get("title", "")), "body": str(content.get("body", ""))},
        }
        if data := content.get("data"):
            payload["data"] = {str(key): str(value) for key, value in data.items()}
        reply = await self._post_message(payload)
        if reply.status == 401:  # the cached token went stale: one fresh token, one more try
            self._tokens.invalidate()
            reply = await self._post_message(payload)
            if reply.status == 401:
                raise TransientDelivery("FCM refused a fresh access token (HTTP 401): check the credentials")
        if not reply.ok:
            raise _error(reply)
        name = reply.body.get("name") if isinstance(reply.body, dict) else None
        return Receipt(status="sent", provider_id=name if isinstance(name, str) else None)

    async def _post_message(self, payload: dict[str, Any]) -> HttpReply:
        session = self._session()
        token = await self._tokens.token(session)
        return await post(session, "FCM", self._url, timeout=self.config.timeout, json_body={"message": payload},
                          headers={"Authorization": f"Bearer {token}"})

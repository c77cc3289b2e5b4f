"""The FCM push connector against the FCM stand-in, with a static token and with the service-account flow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from omnicanal_connectors.fcm_push import FcmPushConnector, FcmSettings

from omnicanal.channels import load_connector_settings
from omnicanal.errors import ConfigError, PermanentDelivery, TransientDelivery, UnknownDelivery
from standins import FcmStandIn, connector_context, outbound, unused_url

CONTENT = {"title": "Psst, Léa", "body": "Votre panier vous attend", "data": {"cart_id": "981", "percent": "10"}}


@pytest.fixture
async def fcm() -> AsyncIterator[FcmStandIn]:
    async with FcmStandIn() as standin:
        yield standin


def push_connector(fcm: FcmStandIn, http: aiohttp.ClientSession | None = None, **settings: Any) -> FcmPushConnector:
    values = {"project_id": fcm.project_id, "access_token": fcm.static_token, "api_base_url": fcm.url,
              "timeout": 0.3, **settings}
    return FcmPushConnector(connector_context(http=http), FcmSettings(**values))


async def test_posts_the_v1_message_with_the_static_token(fcm: FcmStandIn) -> None:
    async with aiohttp.ClientSession() as http:  # the engine's shared session
        receipt = await push_connector(fcm, http).send(outbound("push", "device-token-1", CONTENT))

    [request] = fcm.received
    assert request.path == f"/v1/projects/{fcm.project_id}/messages:send"
    assert request.headers["Authorization"] == f"Bearer {fcm.static_token}"
    assert request.json == {"message": {"token": "device-token-1",
                                        "notification": {"title": "Psst, Léa", "body": "Votre panier vous attend"},
                                        "data": {"cart_id": "981", "percent": "10"}}}
    assert receipt.status == "sent"
    assert receipt.provider_id is not None and receipt.provider_id.startswith(f"projects/{fcm.project_id}/messages/")


async def test_the_service_account_flow_mints_and_caches_a_token(fcm: FcmStandIn, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNICANAL_FCM_PROJECT_ID", fcm.project_id)
    monkeypatch.setenv("OMNICANAL_FCM_API_BASE_URL", fcm.url)
    monkeypatch.setenv("OMNICANAL_FCM_SERVICE_ACCOUNT_FILE", str(fcm.service_account_file(tmp_path)))
    async with FcmPushConnector(connector_context()) as connector:  # no shared session: it opens its own
        await connector.send(outbound("push", "device-token-1", {"title": "t", "body": "b"}))
        await connector.send(outbound("push", "device-token-2", {"title": "t", "body": "b"}))

    [claims] = fcm.token_requests  # one exchange for both sends
    assert claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
    assert claims["iss"] == f"omnicanal@{fcm.project_id}.iam.gserviceaccount.com"
    assert claims["exp"] - claims["iat"] == 3600
    token_request = fcm.received[0]
    assert jwt.get_unverified_header(token_request.form["assertion"])["kid"] == "standin-key-1"
    assert [r.headers["Authorization"] for r in fcm.received[1:]] == ["Bearer ya29.standin-1"] * 2
    assert "data" not in fcm.messages[0]


async def test_a_refused_token_is_refreshed_once(fcm: FcmStandIn, tmp_path: Path) -> None:
    connector = push_connector(fcm, access_token=None, service_account_file=fcm.service_account_file(tmp_path))
    async with connector:
        await connector.send(outbound("push", "device-token-1", CONTENT))
        fcm.revoke_tokens()
        receipt = await connector.send(outbound("push", "device-token-1", CONTENT))
    assert receipt.status == "sent"
    assert len(fcm.token_requests) == 2


async def test_a_token_refused_even_fresh_is_transient(fcm: FcmStandIn) -> None:
    async with push_connector(fcm, access_token="revoked") as connector:
        with pytest.raises(TransientDelivery, match="401"):
            await connector.send(outbound("push", "device-token-1", CONTENT))
    assert len(fcm.received) == 2


async def test_a_rejected_service_account_is_permanent(fcm: FcmStandIn, tmp_path: Path) -> None:
    fcm.fail_next(status=400, body={"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    connector = push_connector(fcm, access_token=None, service_account_file=fcm.service_account_file(tmp_path))
    async with connector:
        with pytest.raises(PermanentDelivery, match="Invalid JWT Signature"):
            await connector.send(outbound("push", "device-token-1", CONTENT))


async def test_a_token_endpoint_without_answer_is_transient(fcm: FcmStandIn, tmp_path: Path) -> None:
    fcm.fail_next(hang=True)  # the token request hangs: the message was never sent, so it is not "unknown"
    connector = push_connector(fcm, access_token=None, service_account_file=fcm.service_account_file(tmp_path))
    async with connector:
        with pytest.raises(TransientDelivery):
            await connector.send(outbound("push", "device-token-1", CONTENT))
    assert [r.path for r in fcm.received] == ["/token"]


@pytest.mark.parametrize(("status", "code", "body", "error", "invalid_address"), [
    (404, "UNREGISTERED", None, PermanentDelivery, True),
    (400, "INVALID_ARGUMENT", None, PermanentDelivery, True),  # a malformed device token comes bare
    (403, "SENDER_ID_MISMATCH", None, PermanentDelivery, True),
    (400, None, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "Invalid value at 'message.data'",
                           "details": [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                                        "fieldViolations": [{"field": "message.data[0].value"}]}]}},
     PermanentDelivery, False),  # the payload, not the token
    (403, None, None, PermanentDelivery, False),
    (500, "INTERNAL", None, TransientDelivery, None),
    (503, "UNAVAILABLE", None, TransientDelivery, None),
])
async def test_fcm_errors_are_translated(fcm: FcmStandIn, status: int, code: str | None, body: Any,
                                         error: type[Exception], invalid_address: bool | None) -> None:
    fcm.fail_next(status=status, code=code, body=body)
    async with push_connector(fcm) as connector:
        with pytest.raises(error) as raised:
            await connector.send(outbound("push", "device-token-1", CONTENT))
    if invalid_address is not None:
        assert isinstance(raised.value, PermanentDelivery)
        assert raised.value.invalid_address is invalid_address


async def test_quota_exceeded_retries_after_what_fcm_said(fcm: FcmStandIn) -> None:
    fcm.fail_next(status=429, code="QUOTA_EXCEEDED", retry_after=30)
    async with push_connector(fcm) as connector:
        with pytest.raises(TransientDelivery) as raised:
            await connector.send(outbound("push", "device-token-1", CONTENT))
    assert raised.value.retry_after == 30


async def test_no_answer_is_unknown_and_no_connection_is_transient(fcm: FcmStandIn) -> None:
    fcm.fail_next(hang=True)
    async with push_connector(fcm) as connector:
        with pytest.raises(UnknownDelivery):
            await connector.send(outbound("push", "device-token-1", CONTENT))
    async with push_connector(fcm, api_base_url=unused_url()) as connector:
        with pytest.raises(TransientDelivery):
            await connector.send(outbound("push", "device-token-1", CONTENT))


def test_a_credential_is_required(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OMNICANAL_FCM_PROJECT_ID", "p")
    with pytest.raises(ConfigError) as raised:
        load_connector_settings(FcmPushConnector)
    assert "OMNICANAL_FCM_ACCESS_TOKEN" in str(raised.value)
    assert "OMNICANAL_FCM_SERVICE_ACCOUNT_FILE" in str(raised.value)

    broken = tmp_path / "key.json"
    broken.write_text('{"client_email": "x"}')
    monkeypatch.setenv("OMNICANAL_FCM_SERVICE_ACCOUNT_FILE", str(broken))
    with pytest.raises(ConfigError, match="OMNICANAL_FCM_SERVICE_ACCOUNT_FILE"):
        FcmPushConnector(connector_context())
    monkeypatch.setenv("OMNICANAL_FCM_SERVICE_ACCOUNT_FILE", str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match="cannot read"):
        FcmPushConnector(connector_context())

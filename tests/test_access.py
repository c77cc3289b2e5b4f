"""Scoped API keys through HTTP: every route needs one scope or is public, a missing or wrong key is 401, a key
without the scope 403 naming it, static keys keep every scope, revocation takes effect within the cache bound, the
API stays closed once a key was created, keys are per workspace, and each key's requests per second are limited
across API processes."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from conftest import Api, StartApi, fresh_second
from omnicanal.access import CACHE_SECONDS, WORKSPACE, KeyRing
from omnicanal.admin import create_key, revoke_key
from omnicanal.api import permissions
from omnicanal.api.app import create_app
from omnicanal.scopes import Scope
from omnicanal.store.apikeys import ApiKeyStore
from omnicanal.store.schema import StoredKey


async def new_key(api: Api, *scopes: Scope, workspace: str | None = None) -> tuple[str, str]:
    """(key id, secret) of a key created as `omnicanal keys create` does, in the API's workspace by default."""
    settings = api.runtime.settings.model_copy(update={"workspace": workspace or api.runtime.settings.workspace})
    key, secret = await create_key(settings, "test", [scope.value for scope in scopes])
    return key.id, secret


async def revoke(api: Api, key_id: str) -> None:
    await revoke_key(api.runtime.settings, key_id)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def status_of(api: Api, method: str, path: str, headers: dict[str, str] | None = None,
                    **kwargs: Any) -> int:
    response = await api.client.request(method, path, headers=headers or {}, **kwargs)
    await response.read()
    return response.status


async def until_status(api: Api, expected: int, path: str, headers: dict[str, str] | None = None,
                       **kwargs: Any) -> float:
    """Poll GET `path` until it answers `expected` (fails after three cache periods); returns when, in seconds
    from the call, the last request answered otherwise was sent (0 if none was).

    A change takes effect by the time a request is handled, and a request is handled after it is sent: one
    answered the old way proves the old state held when it was sent or later. Its sending time, not the time
    its answer came back (which a busy machine delays), is what a bound on the change is checked against. For a
    key created or revoked before the call, that time is below CACHE_SECONDS however busy the machine: the copy
    that answered was read before the change and is dated from when that read was asked for (access.KeyRing)."""
    start = time.monotonic()
    last_other = 0.0
    while True:
        sent = time.monotonic() - start
        if await status_of(api, "GET", path, headers, **kwargs) == expected:
            return last_other
        last_other = sent
        assert sent < 3 * CACHE_SECONDS, f"{path} never answered {expected}"
        await asyncio.sleep(0.05)


async def until_known(api: Api, *secrets: str) -> None:
    """Wait until the API's copy of the key table has these keys (at most CACHE_SECONDS after their creation):
    they are answered anything but 401."""
    for secret in secrets:
        start = time.monotonic()
        while True:
            sent = time.monotonic() - start  # as in until_status: a slow answer is not a late key
            if await status_of(api, "GET", "/v1/journeys", bearer(secret)) != 401:
                break
            assert sent < 3 * CACHE_SECONDS, "the new key was never accepted"
            await asyncio.sleep(0.05)


async def test_every_route_needs_one_scope_or_is_public(start_api: StartApi) -> None:
    api = await start_api()
    registered = {(("GET" if route.method == "HEAD" else route.method), route.resource.canonical)
                  for route in api.client.app.router.routes() if route.resource is not None}
    assert registered == set(permissions.ROUTES), registered ^ set(permissions.ROUTES)
    public = {path for (_, path), needs in permissions.ROUTES.items() if needs == permissions.PUBLIC}
    assert public == {"/healthz", "/readyz", "/metrics", "/openapi.json", "/webhooks/twilio/status",
                      "/webhooks/twilio/inbound", "/r/{token}", "/u/{token}", "/ui/login", "/ui/logout",
                      "/ui/static", "/v1/inbox", "/v1/inbox/read", "/v1/inbox/archive", "/v1/inbox/stream"}
    dashboard = {needs for (_, path), needs in permissions.ROUTES.items() if path.startswith("/ui")}
    assert dashboard == {Scope.UI_READ, permissions.PUBLIC}  # the dashboard's gate requires ui:read of every view


async def test_a_route_without_a_scope_stops_the_app(start_api: StartApi, monkeypatch: pytest.MonkeyPatch) -> None:
    api = await start_api()
    monkeypatch.delitem(permissions.ROUTES, ("GET", "/v1/outbox"))
    with pytest.raises(RuntimeError, match="GET /v1/outbox"):
        create_app(api.runtime)


SAMPLES: list[tuple[str, str, Scope, dict[str, Any]]] = [
    ("POST", "/v1/events", Scope.EVENTS_WRITE, {"json": {"name": "page_viewed", "customer_id": "c1"}}),
    ("POST", "/v1/events/batch", Scope.EVENTS_WRITE, {"json": {"events": [{"name": "x", "customer_id": "c1"}]}}),
    ("POST", "/v1/events/cancel", Scope.EVENTS_WRITE, {"json": {"customer_id": "c1", "idempotency_key": "k"}}),
    ("GET", "/v1/customers/c1", Scope.CUSTOMERS_READ, {}),
    ("GET", "/v1/customers/c1/timeline", Scope.CUSTOMERS_READ, {}),
    ("GET", "/v1/outbox", Scope.CUSTOMERS_READ, {}),
    ("PUT", "/v1/customers/c1", Scope.CUSTOMERS_WRITE, {"json": {"locale": "fr"}}),
    ("DELETE", "/v1/customers/c1/journeys/abandoned_cart", Scope.CUSTOMERS_WRITE, {}),
    ("POST", "/v1/journeys/abandoned_cart/pause", Scope.JOURNEYS_ADMIN, {}),
    ("GET", "/v1/audit", Scope.JOURNEYS_ADMIN, {}),
    ("GET", "/v1/journeys", Scope.UI_READ, {}),
    ("GET", "/v1/journeys/abandoned_cart", Scope.UI_READ, {}),
    ("GET", "/v1/journeys/abandoned_cart/stats", Scope.UI_READ, {}),
]


async def test_a_key_passes_where_its_scope_is_needed_and_gets_403_naming_it_elsewhere(start_api: StartApi) -> None:
    api = await start_api()
    keys = {scope: (await new_key(api, scope))[1] for scope in Scope}
    for method, path, scope, body in SAMPLES:
        assert await status_of(api, method, path, bearer(keys[scope]), **body) not in (401, 403), (method, path)
        for other in Scope:
            if other is scope:
                continue
            answer = await api.request(method, path, 403, headers=bearer(keys[other]), **body)
            assert answer["error"] == "forbidden" and answer["scope"] == scope.value, (method, path, other)
            assert scope.value in answer["message"]


async def test_missing_wrong_forged_or_foreign_keys_are_401_json(start_api: StartApi) -> None:
    api = await start_api()
    _, secret = await new_key(api, Scope.EVENTS_WRITE)
    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")  # its id, not its secret
    _, elsewhere = await new_key(api, Scope.EVENTS_WRITE, workspace="shop-fr")
    event = {"json": {"name": "page_viewed", "customer_id": "c1"}}
    for headers in ({}, bearer("nope"), bearer(forged), bearer(elsewhere), {"X-API-Key": forged}):
        answer = await api.request("POST", "/v1/events", 401, headers=headers, **event)
        assert answer["error"] == "unauthorized"
    await api.request("POST", "/v1/events", 202, headers={"X-API-Key": secret}, **event)
    await api.request("GET", "/v1/nowhere", 401)  # probing paths without a key tells nothing
    await api.request("GET", "/v1/nowhere", 404, headers=bearer(secret))
    assert await status_of(api, "GET", "/healthz") == 200  # public routes need nothing


async def test_static_keys_keep_every_scope_beside_stored_keys(start_api: StartApi) -> None:
    api = await start_api(api_keys=["s3cret"])
    _, secret = await new_key(api, Scope.EVENTS_WRITE)
    for method, path, _, body in SAMPLES:
        assert await status_of(api, method, path, bearer("s3cret"), **body) not in (401, 403), (method, path)
    await api.request("POST", "/v1/events", 202, headers=bearer(secret),
                      json={"name": "page_viewed", "customer_id": "c1"})
    await api.request("GET", "/v1/journeys", 403, headers=bearer(secret))


async def test_the_api_is_open_until_a_key_is_created_and_stays_closed_after_revoking_it(
        start_api: StartApi) -> None:
    api = await start_api()
    await api.request("GET", "/v1/journeys", 200)
    key_id, secret = await new_key(api, Scope.UI_READ)
    assert await until_status(api, 401, "/v1/journeys") < CACHE_SECONDS
    await api.request("GET", "/v1/journeys", 200, headers=bearer(secret))
    await revoke(api, key_id)
    assert await until_status(api, 401, "/v1/journeys", bearer(secret)) < CACHE_SECONDS
    await asyncio.sleep(CACHE_SECONDS)
    await api.request("GET", "/v1/journeys", 401)  # revoking every key never opens the API again


async def test_a_revoked_key_is_refused_by_every_process_within_the_bound(start_api: StartApi) -> None:
    first, second = await start_api(), await start_api()
    key_id, secret = await new_key(first, Scope.UI_READ)
    for api in (first, second):
        await until_status(api, 200, "/v1/journeys", bearer(secret))
    await revoke(first, key_id)
    for api in (first, second):
        assert await until_status(api, 401, "/v1/journeys", bearer(secret)) < CACHE_SECONDS


async def test_a_revocation_written_during_a_slow_read_takes_effect_within_the_bound(start_api: StartApi) -> None:
    """The copy of the key table is as old as the moment its read was asked for: a revocation written while the read
    was on its way takes effect CACHE_SECONDS after it was written, however long the answer then took to come back."""
    api = await start_api()
    key_id, secret = await new_key(api, Scope.UI_READ)
    now = 100.0

    class SlowStore(ApiKeyStore):
        """The real store, whose first answer comes back half a cache period after the key was revoked."""

        revoked = False

        async def table(self, used: Mapping[str, float]) -> dict[str, StoredKey]:
            nonlocal now
            table = await super().table(used)
            if not self.revoked:
                self.revoked = True
                await revoke(api, key_id)  # after Redis answered the read, before the answer is back here
                now += CACHE_SECONDS / 2
            return table

    ring = KeyRing([], api.runtime.settings.workspace, SlowStore(api.runtime.redis, api.runtime.keys),
                   clock=lambda: now)
    revoked_at = now
    assert await ring.caller(secret) is not None  # the read that missed the revocation
    now = revoked_at + CACHE_SECONDS
    assert await ring.caller(secret) is None


async def test_the_request_carries_its_keys_workspace(start_api: StartApi, monkeypatch: pytest.MonkeyPatch) -> None:
    api = await start_api(workspace="shop-fr")
    _, secret = await new_key(api, Scope.EVENTS_WRITE)
    assert secret.startswith("ock.shop-fr.")

    async def whoami(request: web.Request) -> web.Response:
        return web.json_response({"workspace": request[WORKSPACE]})

    monkeypatch.setitem(permissions.ROUTES, ("GET", "/v1/whoami"), Scope.EVENTS_WRITE)
    app = create_app(api.runtime)
    app.router.add_get("/v1/whoami", whoami)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/v1/whoami", headers=bearer(secret))
        assert (response.status, await response.json()) == (200, {"workspace": "shop-fr"})
        response = await client.get("/v1/whoami", headers=bearer((await new_key(api, Scope.EVENTS_WRITE,
                                                                                 workspace="default"))[1]))
        assert response.status == 401  # a key of another workspace is not valid here


async def test_each_key_is_limited_per_second_across_api_processes(start_api: StartApi) -> None:
    first = await start_api(rate_limit_per_key=3)
    second = await start_api(rate_limit_per_key=3)
    _, secret = await new_key(first, Scope.UI_READ)
    _, other = await new_key(first, Scope.UI_READ)
    await until_status(first, 200, "/v1/journeys", bearer(secret))
    await until_status(second, 200, "/v1/journeys", bearer(secret))
    await fresh_second()
    statuses = [await status_of(api, "GET", "/v1/journeys", bearer(secret)) for api in (first, second, first)]
    assert statuses == [200, 200, 200]
    response = await second.client.get("/v1/journeys", headers=bearer(secret))
    body = await response.json()
    assert (response.status, body["error"]) == (429, "rate_limited"), body
    assert response.headers["Retry-After"] == "1" and "OMNICANAL_RATE_LIMIT_PER_KEY" in body["message"]
    assert await status_of(first, "GET", "/v1/journeys", bearer(other)) == 200  # another key has its own count
    await asyncio.sleep(int(response.headers["Retry-After"]))
    assert await status_of(first, "GET", "/v1/journeys", bearer(secret)) == 200


async def test_an_api_without_keys_limits_each_client_address(start_api: StartApi) -> None:
    """Nothing to count by but the address: the peer's own, X-Forwarded-For only from a trusted proxy."""
    direct = await start_api(rate_limit_per_key=2)
    proxied = await start_api(rate_limit_per_key=2, trusted_proxies=["127.0.0.0/8", "10.0.0.0/8"])

    async def status(api: Api, forwarded: str | None = None) -> int:
        return await status_of(api, "GET", "/v1/journeys", {"X-Forwarded-For": forwarded} if forwarded else {})

    await fresh_second()
    # Direct: every request comes from 127.0.0.1, whatever X-Forwarded-For claims.
    assert [await status(direct, claimed) for claimed in (None, "198.51.100.1", "198.51.100.2")] == [200, 200, 429]
    response = await direct.client.get("/v1/journeys", headers={"X-Forwarded-For": "198.51.100.3"})
    body = await response.json()
    assert (response.status, body["error"], response.headers["Retry-After"]) == (429, "rate_limited", "1")
    assert "the client address 127.0.0.1" in body["message"] and "OMNICANAL_RATE_LIMIT_PER_KEY" in body["message"]
    # Behind trusted proxies: the first address from the right that is not one of them, never what lies left of it.
    client = ["203.0.113.5", "10.1.2.3, 203.0.113.5", "198.51.100.9, 203.0.113.5, 10.0.0.2"]
    assert [await status(proxied, forwarded) for forwarded in client] == [200, 200, 429]
    assert await status(proxied, "203.0.113.6") == 200  # another client has its own count


async def test_without_a_limit_keys_are_not_counted(start_api: StartApi) -> None:
    api = await start_api(api_keys=["s3cret"])
    for _ in range(30):
        await api.request("GET", "/v1/journeys", 200, headers=bearer("s3cret"))
    assert not await api.runtime.redis.keys(f"oc:{api.runtime.keys.workspace}:hits:*")


async def test_openapi_names_the_scope_of_each_operation_and_the_403_429_answers(start_api: StartApi) -> None:
    api = await start_api()
    await until_known(api, (await new_key(api, Scope.EVENTS_WRITE))[1])
    spec = await api.request("GET", "/openapi.json", 200)
    assert spec["security"] == [{"bearer": []}]
    post_event = spec["paths"]["/v1/events"]["post"]
    assert post_event["security"] == [{"bearer": ["events:write"]}]
    assert {"401", "403", "429"} <= set(post_event["responses"])
    assert "Retry-After" in post_event["responses"]["429"]["headers"]
    assert spec["paths"]["/v1/audit"]["get"]["security"] == [{"bearer": ["journeys:admin"]}]
    assert spec["paths"]["/healthz"]["get"]["security"] == []


# -- the dashboard ------------------------------------------------------------------------------------------------

async def login(api: Api, secret: str, status: int) -> str:
    """Post the login form with `secret`; the page answered (or the redirect's target)."""
    form = await api.client.get("/ui/login")
    token = re.search(r'name="csrf" value="([^"]+)"', await form.text())
    assert token
    response = await api.client.post("/ui/login", data={"key": secret, "csrf": token.group(1)},
                                     allow_redirects=False)
    assert response.status == status, await response.text()
    return response.headers.get("Location") or await response.text()


async def test_the_dashboard_takes_scoped_keys_with_ui_read_only(start_api: StartApi) -> None:
    api = await start_api()
    _, writer = await new_key(api, Scope.EVENTS_WRITE)
    reader_id, reader = await new_key(api, Scope.UI_READ)
    response = await api.client.get("/ui/journeys", headers=bearer(writer), allow_redirects=False)
    assert response.status == 403 and "ui:read" in await response.text()
    denied = await api.request("GET", "/ui/journeys/abandoned_cart/counts.json", 403, headers=bearer(writer))
    assert denied["scope"] == "ui:read"
    assert "ui:read" in await login(api, writer, 403)
    assert (await api.client.get("/ui/journeys", allow_redirects=False)).status == 303  # no session was made

    assert await login(api, reader, 303) == "/ui"
    response = await api.client.get("/ui/operations", allow_redirects=False)
    assert response.status == 200
    await api.request("GET", "/v1/journeys", 401)  # the session opens the dashboard, not the API
    await revoke(api, reader_id)
    opened_until = await until_status(api, 303, "/ui/operations", allow_redirects=False)
    assert opened_until < CACHE_SECONDS, "the revoked key's session still opened pages"
